"""PITR from an S3 repository on a real S3 API over HTTP (moto's standalone server): production's base backup
and archived WAL are put into a bucket, and staging is restored from the bucket alone. Staging's config names
empty local folders as backup_dir and wal_archive, and the base backup file is deleted once uploaded, so
nothing can come from local disk."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.journal import read_events
from drtui.core.planning import plan_from_json
from drtui.core.postgres import connect, query
from drtui.sandbox import Insert, Sandbox
from tests.conftest import run_drtui
from tests.s3world import S3World, s3_environment

CONFIRM = {"CONFIRM_PITR_RESTORE": "YES"}


@dataclass
class World:
    sandbox: Sandbox
    s3: S3World
    bucket: str
    config_path: Path  # staging's view: the repository in the bucket, empty local folders
    base_key: str
    before: Insert
    after: Insert
    target: datetime
    segment_of_before: str
    after_lsn: str

    def restore(self, *args: str, config: Path | None = None, env: dict[str, str] | None = None):
        return run_drtui("restore", "pitr", "--env", "staging", *args, config=config or self.config_path,
                         env={**CONFIRM, **self.s3.env, **(env or {})}, timeout=180)

    def listing(self) -> dict[str, int]:
        return self.s3.keys(self.bucket)

    def staging_ids(self) -> set[int]:
        return {row[0] for row in query(self.sandbox.env("staging"), "select id from bookings")}

    def local_folders(self) -> list[str]:
        return sorted(os.listdir(self.sandbox.root / "s3r_backups")) + sorted(os.listdir(self.sandbox.root / "s3r_wal"))


def repository_config(sandbox: Sandbox, name: str, url: str) -> Path:
    """The sandbox's config with [repository] = url, and backup_dir / wal_archive empty folders of its own."""
    for folder in ("s3r_backups", "s3r_wal"):
        (sandbox.root / folder).mkdir(exist_ok=True)
    text = sandbox.config_path.read_text()
    text = text.replace('backup_dir = "backups"', 'backup_dir = "s3r_backups"')
    text = text.replace('wal_archive = "wal_archive"', 'wal_archive = "s3r_wal"')
    path = sandbox.root / name
    path.write_text(f'{text}\n[repository]\nurl = "{url}"\n')
    return path


@pytest.fixture(scope="module")
def world(s3_server) -> Iterator[World]:
    """One production history in a bucket: base backup, row `before`, a WAL switch, row `after`."""
    s3 = S3World(s3_server)
    with s3_environment(s3), Sandbox() as sandbox:
        config, prod = sandbox.config(), sandbox.env("production")
        backup.dump(config, prod, SystemClock())  # the app's own health check wants its LAST_SUCCESS.txt
        base = backup.base(config, prod, SystemClock()).artifacts[0].path
        before = sandbox.insert("bookings")
        with connect(prod) as conn:
            lsn = conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]
            segment = conn.execute("select pg_walfile_name(%s::pg_lsn)", (lsn,)).fetchone()[0]
        sandbox.switch_wal()
        time.sleep(0.2)
        after = sandbox.insert("bookings")
        after_lsn = query(prod, "select pg_current_wal_lsn()::text")[0][0]
        sandbox.switch_wal()
        bucket = s3.bucket()
        client = s3.client()
        base_key = f"prod/backups/{base.name}"
        client.upload_file(str(base), bucket, base_key)
        for wal in sorted(sandbox.wal_archive.iterdir()):
            client.upload_file(str(wal), bucket, f"prod/wal/{wal.name}")
        for name in ("LAST_SUCCESS.txt", "LAST_BASEBACKUP.txt"):  # as `drtui backup` copies its heartbeats
            client.upload_file(str(sandbox.backup_dir / name), bucket, f"prod/heartbeats/{name}")
        base.unlink()  # from here on the base backup is only in the bucket
        path = repository_config(sandbox, "drtui-s3.toml", f"s3://{bucket}/prod/")
        try:
            yield World(sandbox, s3, bucket, path, base_key, before, after,
                        before.committed_at + (after.committed_at - before.committed_at) / 2, segment, after_lsn)
        finally:
            s3.drop_buckets()


def test_pitr_to_a_time_from_the_bucket_alone_restores_exactly_those_rows_and_never_writes_to_it(
        world: World) -> None:
    inventory = run_drtui("inventory", "--json", config=world.config_path, env=world.s3.env)
    assert inventory.exit_code == 0, inventory.output
    data = json.loads(inventory.stdout)
    assert [b["file"] for b in data["base_backups"]] == [f"s3://{world.bucket}/{world.base_key}"]
    assert data["wal"]["kind"] == "s3" and data["wal"]["source"] == f"s3://{world.bucket}/prod/wal/"
    assert data["wal"]["gaps"] == [] and data["windows"][0]["usable"], data["windows"]
    assert data["windows"][0]["latest_source"] == "waldump"  # pg_waldump ran on segments fetched from the bucket
    status = run_drtui("status", "--json", config=world.config_path, env=world.s3.env)
    beats = {b["name"]: b for b in json.loads(status.stdout)["heartbeats"]}
    assert beats["base backup"]["state"] == "ok", beats
    assert beats["base backup"]["file"] == f"s3://{world.bucket}/prod/heartbeats/LAST_BASEBACKUP.txt"
    assert beats["WAL sync"]["state"] == "missing" and beats["WAL sync"]["detail"] == "no such object"
    assert json.loads(status.stdout)["newest"]["base_backup"]["file"] == data["base_backups"][0]["file"]
    listing = world.listing()
    marker = 999_999
    query(world.sandbox.env("staging"), "insert into bookings (id, service) values (%s, 'staging marker')", (marker,))

    done = world.restore("--target-time", world.target.isoformat(), "--json")

    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    ids = world.staging_ids()
    assert world.before.id in ids and world.after.id not in ids and marker not in ids
    assert datetime.fromisoformat(summary["recovered_to"]) <= world.target
    events = read_events(Path(summary["journal"]))
    plan = plan_from_json(events[0].plan)
    assert str(plan.base_backup.path) == f"s3://{world.bucket}/{world.base_key}"  # the journal round-trips URLs
    assert str(plan.wal_source) == f"s3://{world.bucket}/prod/wal/" and plan.wal_kind == "s3"
    assert world.local_folders() == []  # neither the base backup nor the WAL came from local disk
    data_dir = world.sandbox.env("staging").data_dir
    assert not [p for p in data_dir.parent.iterdir() if ".pitr_wal_" in p.name]  # the fed WAL is gone
    assert Path(summary["preserved"]).name.startswith("data.pre_pitr_")

    # The restored copy runs on a new timeline; switching WAL there never reaches the bucket.
    assert query(world.sandbox.env("staging"), "show archive_mode") == [("off",)]
    with connect(world.sandbox.env("staging")) as conn:
        conn.execute("select pg_switch_wal()")
        conn.execute("checkpoint")
    time.sleep(1)
    assert world.listing() == listing

    # Records and rollback as after a restore from a folder.
    record = run_drtui("report", "--json", config=world.config_path, env=world.s3.env)
    assert record.exit_code == 0 and json.loads(record.stdout)["run_id"] == Path(summary["journal"]).stem
    rolled = run_drtui("rollback", "--env", "staging", "--json", config=world.config_path, env=world.s3.env)
    assert rolled.exit_code == 0, rolled.output
    assert not Path(summary["preserved"]).exists() and marker in world.staging_ids()


def test_immediate_paused_from_the_repository_then_advanced_to_the_end(world: World) -> None:
    done = world.restore("--recovery-target", "immediate", "--pause-at-target")
    assert done.exit_code == 0, done.output
    assert not {world.before.id, world.after.id} & world.staging_ids()
    # The run has ended, and its feeder with it: a paused restore was fed all the WAL before it ended.
    advanced = run_drtui("restore", "advance", "--env", "staging", "--recovery-target", "latest", "--json",
                         config=world.config_path, env=world.s3.env)
    assert advanced.exit_code == 0, advanced.output
    assert {world.before.id, world.after.id} <= world.staging_ids()
    assert query(world.sandbox.env("staging"), "select pg_is_in_recovery()") == [(False,)]


def test_latest_from_urls_in_the_runbooks_variables_with_no_repository_configured(world: World) -> None:
    urls = {"BASE_BACKUP": f"s3://{world.bucket}/{world.base_key}", "WAL_ARCHIVE": f"s3://{world.bucket}/prod/wal/"}
    done = world.restore("--recovery-target", "latest", "--json", config=world.sandbox.config_path, env=urls)
    assert done.exit_code == 0, done.output
    assert {world.before.id, world.after.id} <= world.staging_ids()
    plan = plan_from_json(read_events(Path(json.loads(done.stdout)["journal"]))[0].plan)
    assert (str(plan.base_backup.path), str(plan.wal_source)) == (urls["BASE_BACKUP"], urls["WAL_ARCHIVE"])


def test_a_gap_in_the_buckets_wal_is_refused_before_anything_moves(world: World) -> None:
    client = world.s3.client()
    for key in world.listing():
        if key.startswith("prod/") and not key.endswith(world.segment_of_before):
            body = client.get_object(Bucket=world.bucket, Key=key)["Body"].read()
            client.put_object(Bucket=world.bucket, Key=key.replace("prod/", "gapped/", 1), Body=body)
    config = repository_config(world.sandbox, "drtui-s3-gapped.toml", f"s3://{world.bucket}/gapped/")
    listing = world.listing()
    data_dir = world.sandbox.env("staging").data_dir
    inode, siblings = data_dir.stat().st_ino, sorted(os.listdir(data_dir.parent))

    # (Not a target time: with no commit before the gap, the window's end is the archive time of its last
    # segment, and an object's is when it was stored: here, after both inserts.)
    done = world.restore("--target-lsn", world.after_lsn, config=config)
    assert done.exit_code == 2, done.output
    assert "after the last archived WAL" in done.stderr and world.segment_of_before in done.stderr, done.stderr

    assert data_dir.stat().st_ino == inode and sorted(os.listdir(data_dir.parent)) == siblings
    assert world.listing() == listing
