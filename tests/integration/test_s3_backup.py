"""Writing to an S3 repository against moto's standalone server over HTTP: the incremental wal-sync, `drtui wal
push` as archive_command, base backups and dumps streamed to the bucket and verified, and what each failure
says. The session's shared sandbox (these tests only add rows and switch WAL), one bucket per test; the
commands run in-process (click's runner) to save a process start each, except `wal push` once, as PostgreSQL
runs it."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from drtui.cli import main
from drtui.core import upload
from drtui.core.errors import BackupError
from drtui.core.inventory.remote import head, list_prefix
from drtui.core.objectstore import S3Settings, S3Url
from drtui.sandbox import Sandbox
from tests.conftest import Result, run_drtui
from tests.s3world import SECRET_KEY, S3World


@pytest.fixture
def world(shared_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The shared world, with the local backup_dir checked unchanged (heartbeats aside) after each test."""
    before = local_artifacts(shared_sandbox)
    yield shared_sandbox
    for config in shared_sandbox.root.glob("drtui-s3-*.toml"):
        config.unlink()
    assert local_artifacts(shared_sandbox) == before


def local_artifacts(sandbox: Sandbox) -> list[str]:
    return sorted(p.name for p in sandbox.backup_dir.iterdir() if not p.name.startswith("LAST_"))


def drtui(*args: str, config: Path, env: dict[str, str] | None = None) -> Result:
    """The real CLI, in this process (the s3 fixture's boto3 environment is already set here)."""
    done = CliRunner().invoke(main, ["--config", str(config), *args], env=env)
    if done.exception and not isinstance(done.exception, SystemExit):
        raise done.exception
    return Result(done.exit_code, done.stdout, done.stderr)


def repo_config(sandbox: Sandbox, bucket: str, database: str | None = None) -> Path:
    """The sandbox's config with an S3 repository (and another database, to make pg_dump fail)."""
    text = sandbox.config_path.read_text()
    if database:
        text = text.replace('database = "cleaning"', f'database = "{database}"', 1)
    path = sandbox.root / f"drtui-s3-{uuid.uuid4().hex[:8]}.toml"
    path.write_text(text + f'\n[repository]\nurl = "s3://{bucket}/prod/"\n')
    return path


def archive_files(sandbox: Sandbox) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sandbox.wal_archive.iterdir() if not p.name.startswith(".")}


def stored(s3: S3World, bucket: str, prefix: str) -> dict[str, int]:
    return {key[len(prefix):]: size for key, size in s3.keys(bucket, prefix).items()}


def modified(s3: S3World, bucket: str) -> dict[str, object]:
    return {item["Key"]: item["LastModified"] for item in s3.client().list_objects_v2(Bucket=bucket)["Contents"]}


def test_wal_sync_uploads_each_wal_file_once_and_then_only_the_new_ones(world: Sandbox, s3: S3World) -> None:
    bucket = s3.bucket()
    target = {**s3.env, "WAL_SYNC_TARGET": f"s3://{bucket}/wal-archive/"}
    heartbeat = world.config().wal_sync_heartbeat
    world.insert()
    world.switch_wal()
    first = drtui("backup", "wal-sync", "--json", config=world.config_path, env=target)
    assert first.exit_code == 0, first.stderr
    local = archive_files(world)
    assert stored(s3, bucket, "wal-archive/") == local  # one object per WAL file, the same size
    summary = json.loads(first.stdout)
    assert sorted(S3Url.parse(a["path"]).name for a in summary["artifacts"]) == sorted(local)
    assert summary["already_stored"] == 0 and summary["heartbeat"] == str(heartbeat)
    segment = sorted(name for name in local if len(name) == 24)[-1]
    body = s3.client().get_object(Bucket=bucket, Key=f"wal-archive/{segment}")["Body"].read()
    assert body == (world.wal_archive / segment).read_bytes()
    beat = heartbeat.read_text()

    before = modified(s3, bucket)
    second = drtui("backup", "wal-sync", config=world.config_path, env=target)
    assert second.exit_code == 0, second.stderr
    assert "wrote" not in second.stdout and f"{len(local)} WAL files were already stored" in second.stdout
    assert modified(s3, bucket) == before
    assert heartbeat.read_text() >= beat

    world.insert()
    new = world.switch_wal()
    third = drtui("backup", "wal-sync", "--json", config=world.config_path, env=target)
    assert third.exit_code == 0, third.stderr
    added = set(archive_files(world)) - set(local)
    assert new in added
    assert {S3Url.parse(a["path"]).name for a in json.loads(third.stdout)["artifacts"]} == added
    assert {k: v for k, v in modified(s3, bucket).items() if k in before} == before
    assert stored(s3, bucket, "wal-archive/") == archive_files(world)

    # compressed objects say so in their suffix, and a plain copy already there counts as stored
    again = drtui("backup", "wal-sync", "--compress", "gzip", config=world.config_path, env=target)
    assert again.exit_code == 0 and "wrote" not in again.stdout, again.output
    packed = {**s3.env, "WAL_SYNC_TARGET": f"s3://{bucket}/packed/"}
    gz = drtui("backup", "wal-sync", "--compress", "gzip", config=world.config_path, env=packed)
    assert gz.exit_code == 0, gz.stderr
    assert set(stored(s3, bucket, "packed/")) == {name + ".gz" for name in archive_files(world)}
    body = s3.client().get_object(Bucket=bucket, Key=f"packed/{new}.gz")["Body"].read()
    assert gzip.decompress(body) == (world.wal_archive / new).read_bytes() and len(body) < len(gzip.decompress(body))


def test_wal_sync_refuses_to_overwrite_other_content_and_reports_it(world: Sandbox, s3: S3World) -> None:
    bucket = s3.bucket()
    world.switch_wal()  # at least one archived segment, whichever test ran before
    segment = sorted(name for name in archive_files(world) if len(name) == 24)[0]
    size = (world.wal_archive / segment).stat().st_size
    s3.client().put_object(Bucket=bucket, Key=f"prod/wal/{segment}", Body=b"another cluster's segment")
    config = repo_config(world, bucket)  # no WAL_SYNC_TARGET: the repository's wal/ prefix
    heartbeat = world.config().wal_sync_heartbeat
    beat = heartbeat.read_text() if heartbeat.exists() else None
    result = drtui("backup", "wal-sync", config=config, env=s3.env)
    assert result.exit_code == 1, result.output
    assert f"s3://{bucket}/prod/wal/{segment}: stored with 25 bytes, {segment} has {size}" in result.stderr
    assert "left as they are" in result.stderr and "heartbeat was not written" in result.stderr
    assert "hint: two clusters (or a restored copy)" in result.stderr
    assert s3.client().get_object(Bucket=bucket, Key=f"prod/wal/{segment}")["Body"].read() == \
        b"another cluster's segment"
    assert (heartbeat.read_text() if heartbeat.exists() else None) == beat
    assert "prod/heartbeats/" not in "".join(s3.keys(bucket))
    assert set(stored(s3, bucket, "prod/wal/")) == set(archive_files(world))  # the others were uploaded
    assert SECRET_KEY not in result.output


def test_wal_push_is_an_archive_command_that_says_no_on_any_doubt(world: Sandbox, s3: S3World,
                                                                   tmp_path: Path) -> None:
    bucket = s3.bucket()
    world.insert()
    segment = world.switch_wal()
    path = world.wal_archive / segment
    to = ("--to", f"s3://{bucket}/wal/")
    first = run_drtui("wal", "push", str(path), *to, config=world.config_path, env=s3.env)  # as PostgreSQL does
    assert first.exit_code == 0, first.stderr
    assert first.stdout.strip() == f"uploaded: s3://{bucket}/wal/{segment}"
    assert s3.client().get_object(Bucket=bucket, Key=f"wal/{segment}")["Body"].read() == path.read_bytes()
    again = drtui("wal", "push", str(path), *to, config=world.config_path, env=s3.env)
    assert again.exit_code == 0 and again.stdout.strip() == f"already stored: {segment} in s3://{bucket}/wal/"
    gz = drtui("wal", "push", str(path), *to, "--compress", "gzip", config=world.config_path, env=s3.env)
    assert gz.exit_code == 0 and "already stored" in gz.stdout, gz.output  # the plain copy is the same

    other = tmp_path / segment
    other.write_bytes(b"\0" * path.stat().st_size)  # the same name and size, other content
    clash = drtui("wal", "push", str(other), *to, config=world.config_path, env=s3.env)
    assert clash.exit_code == 1
    assert f"s3://{bucket}/wal/{segment}: already stored with other content than {segment}" in clash.stderr
    assert s3.client().get_object(Bucket=bucket, Key=f"wal/{segment}")["Body"].read() == path.read_bytes()

    missing = drtui("wal", "push", str(path), "--to", "s3://drtui-no-such-bucket/wal/",
                        config=world.config_path, env=s3.env)
    assert missing.exit_code == 2 and "drtui-no-such-bucket" in missing.stderr, missing.output
    not_wal = tmp_path / "notes.txt"
    not_wal.write_text("x")
    bad = drtui("wal", "push", str(not_wal), *to, config=world.config_path, env=s3.env)
    assert bad.exit_code == 2 and f"{not_wal}: not a WAL file name" in bad.stderr
    nowhere = drtui("wal", "push", str(path), config=world.config_path, env=s3.env)
    assert nowhere.exit_code == 2 and "no [repository] to push WAL to" in nowhere.stderr
    assert set(stored(s3, bucket, "wal/")) == {segment}


def test_base_backup_and_dump_stream_to_the_repository_and_heartbeats_follow(world: Sandbox, s3: S3World) -> None:
    bucket = s3.bucket()
    config = repo_config(world, bucket)
    base = drtui("backup", "base", "--json", config=config, env=s3.env)
    assert base.exit_code == 0, base.stderr
    artifact = json.loads(base.stdout)["artifacts"][0]
    url = S3Url.parse(artifact["path"])
    assert url.bucket == bucket and url.key.startswith("prod/backups/basebackup_") and url.key.endswith("Z.tar.gz")
    body = s3.client().get_object(Bucket=bucket, Key=url.key)["Body"].read()
    assert len(body) == artifact["size_bytes"]
    with tarfile.open(fileobj=io.BytesIO(body), mode="r|gz") as tar:
        names = [member.name for member in tar]
    assert names[0] == "backup_label" and "PG_VERSION" in names and "backup_manifest" in names
    head = s3.client().head_object(Bucket=bucket, Key=url.key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"]  # the store confirmed a checksum, which drtui compared

    dump = drtui("backup", "dump", "--json", config=config, env=s3.env)
    assert dump.exit_code == 0, dump.stderr
    summary = json.loads(dump.stdout)
    dump_key, uploads_key = (S3Url.parse(a["path"]).key for a in summary["artifacts"])
    assert dump_key.startswith("prod/backups/cleaning_") and uploads_key.startswith("prod/backups/uploads_")
    sql = gzip.decompress(s3.client().get_object(Bucket=bucket, Key=dump_key)["Body"].read()).decode()
    assert "CREATE TABLE public.bookings" in sql and "-- PostgreSQL database dump complete" in sql[-300:]
    uploads = s3.client().get_object(Bucket=bucket, Key=uploads_key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(uploads)) as tar:
        assert "uploads/contracts/terms.pdf" in tar.getnames()

    # no local copy of either (the world fixture checks backup_dir); each heartbeat also in heartbeats/
    for name in ("LAST_BASEBACKUP.txt", "LAST_SUCCESS.txt"):
        copy = s3.client().get_object(Bucket=bucket, Key=f"prod/heartbeats/{name}")["Body"].read().decode()
        assert copy == (world.backup_dir / name).read_text() and copy.endswith("Z\n")
    assert summary["stored_heartbeat"] == f"s3://{bucket}/prod/heartbeats/LAST_SUCCESS.txt"

    # the repository's wal/ prefix, and the runbook's tarball only when asked, beside the other backups
    synced = drtui("backup", "wal-sync", "--tarball", "--json", config=config, env=s3.env)
    assert synced.exit_code == 0, synced.output
    made = [S3Url.parse(a["path"]) for a in json.loads(synced.stdout)["artifacts"]]
    tarball = next(url for url in made if "wal_archive_" in url.key)
    assert tarball.key.startswith("prod/backups/wal_archive_") and tarball.key.endswith("Z.tar.gz")
    packed = s3.client().get_object(Bucket=bucket, Key=tarball.key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        assert set(tar.getnames()) == set(archive_files(world)) == set(stored(s3, bucket, "prod/wal/"))
    assert s3.keys(bucket, "prod/heartbeats/wal_sync_last_ok.txt")


def test_failed_backups_store_nothing_and_name_bucket_and_key(world: Sandbox, s3: S3World) -> None:
    bucket = s3.bucket()
    beats = {name: (world.backup_dir / name).read_text() for name in ("LAST_BASEBACKUP.txt", "LAST_SUCCESS.txt")
             if (world.backup_dir / name).exists()}

    broken = drtui("backup", "dump", config=repo_config(world, bucket, database="nosuchdb"), env=s3.env)
    assert broken.exit_code == 1 and "pg_dump of production failed" in broken.stderr, broken.output
    assert s3.keys(bucket) == {}  # the uploads archive went again with the failed dump
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    nobucket = repo_config(world, "drtui-missing-" + uuid.uuid4().hex[:8])
    for command in ("base", "dump"):
        result = drtui("backup", command, config=nobucket, env=s3.env)
        assert result.exit_code == 2, result.output
        assert "the bucket 'drtui-missing-" in result.stderr and "does not exist" in result.stderr
        assert "hint: check the bucket name" in result.stderr and "Traceback" not in result.stderr
    assert {name: (world.backup_dir / name).read_text() for name in beats} == beats


def test_a_streamed_multipart_upload_is_verified_against_the_stores_checksum(s3: S3World) -> None:
    bucket = s3.bucket()
    url = S3Url(bucket, "backups/big.bin")
    part = 5 << 20  # S3's smallest part
    data = os.urandom(part + 12345)  # two parts
    with upload.upload_stream(url, S3Settings(), part) as sink:
        for start in range(0, len(data), 1 << 20):
            sink.write(data[start:start + (1 << 20)])
    head = s3.client().head_object(Bucket=bucket, Key=url.key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    parts = [data[:part], data[part:]]
    composite = hashlib.sha256(b"".join(hashlib.sha256(part).digest() for part in parts)).digest()
    assert head["ChecksumSHA256"].split("-")[0] == base64.b64encode(composite).decode()

    failed = S3Url(bucket, "backups/failed.bin")
    with pytest.raises(RuntimeError), upload.upload_stream(failed, S3Settings(), part) as sink:
        sink.write(data[: part + 1])
        raise RuntimeError("the producer failed")
    assert set(s3.keys(bucket)) == {url.key}
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    with pytest.raises(BackupError, match=f"^s3://{bucket}/backups/big.bin: the store holds something else"):
        upload.verify(url, len(data), {"not-the-checksum"}, S3Settings())
    assert s3.keys(bucket) == {}  # a bad upload is removed


def test_an_objects_archive_time_is_never_before_it_was_stored(s3: S3World) -> None:
    """S3's LastModified is whole seconds, cut down: read as such, a segment stored at 12:02:37.6 would be
    'archived' at 12:02:37, before the commits it holds, and a window's end read from it refuses a reachable
    target. Each object is put after `before`; its archive time, listed or read by HEAD, is not earlier."""
    bucket, moments = s3.bucket(), {}
    for number in range(3):
        moments[f"wal/{number}"] = time.time()
        s3.client().put_object(Bucket=bucket, Key=f"wal/{number}", Body=b"x")
        time.sleep(0.3)
    listed = list_prefix(S3Url(bucket, "wal/"), S3Settings())
    assert {item.url.key: item.modified >= moments[item.url.key] for item in listed} == dict.fromkeys(moments, True)
    assert all(head(item.url, S3Settings()).modified >= moments[item.url.key] for item in listed)
