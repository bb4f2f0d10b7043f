"""Object-store errors and faults (issue 13, point 7), against the real S3 test server over HTTP.

Faults go through the fault-injecting proxy (tests/s3proxy.py) between boto3 and the server: each error of
point 7 gives one message naming the bucket and key and what to do, and leaves the bucket as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from drtui.core import backup, objectstore
from drtui.core.clock import SystemClock
from drtui.core.errors import ErrorKind
from drtui.core.inventory.cache import CACHE_FILE
from drtui.core.objectstore import ObjectStoreError, S3Settings, S3Url
from drtui.sandbox import Sandbox
from tests.conftest import Result, run_drtui
from tests.faults.conftest import FaultWorld, Sentinel, assert_message, leftovers, tree_digest
from tests.s3proxy import S3Proxy, running_proxy
from tests.s3world import S3World, s3_environment

SEGMENT = "wal/000000010000000000000003"
BODY = bytes(range(256)) * 400  # 100 kB
LOCAL_FOLDERS = ("s3_backups", "s3_wal")  # staging's backup_dir and wal_archive: empty, the bucket is the source
FAST = S3Settings(max_attempts=2, connect_timeout=1, read_timeout=1)


@pytest.fixture(scope="module")
def proxy(s3_server) -> Iterator[S3Proxy]:
    with running_proxy(s3_server.endpoint) as running:
        yield running


@pytest.fixture
def store(s3: S3World, proxy: S3Proxy, monkeypatch) -> Iterator[tuple[S3World, S3Proxy, S3Url]]:
    """A bucket with one WAL segment in it; boto3 in this process talks to the server through the proxy."""
    proxy.clear()
    bucket = s3.bucket()
    s3.client().put_object(Bucket=bucket, Key=SEGMENT, Body=BODY, ChecksumAlgorithm="CRC32")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
    yield s3, proxy, S3Url(bucket, SEGMENT)
    assert s3.keys(bucket) == {SEGMENT: len(BODY)}, "the bucket changed"
    proxy.clear()


def fetch(url: S3Url, settings: S3Settings = FAST) -> bytes:
    """Read one object whole, as drtui's readers do; a failure is the message drtui shows."""
    try:
        return objectstore.client(settings).get_object(Bucket=url.bucket, Key=url.key)["Body"].read()
    except Exception as exc:
        raise objectstore.store_error(exc, url, "read the WAL segment", settings) from exc


def failure(url: S3Url, settings: S3Settings = FAST) -> ObjectStoreError:
    with pytest.raises(ObjectStoreError) as caught:
        fetch(url, settings)
    return caught.value


def says(error: ObjectStoreError, *words: str) -> None:
    text = f"{error.title} {error.hint}".lower()
    for word in words:
        assert word.lower() in text, f"{word!r} not in: {error}"


@pytest.mark.parametrize("status, code, kind, words", [
    (500, "InternalError", ErrorKind.FAILED, ("HTTP 500", "persisted through retries", "run the command again")),
    (503, "SlowDown", ErrorKind.FAILED, ("throttling", "SlowDown", "retry_mode", "max_attempts")),
    (503, "ServiceUnavailable", ErrorKind.FAILED, ("HTTP 503", "run the command again")),
    (403, "AccessDenied", ErrorKind.REFUSED, ("access denied", "s3:GetObject", "IAM")),
])
def test_an_error_answer_names_bucket_key_and_what_to_do(store, status, code, kind, words) -> None:
    _, proxy, url = store
    proxy.add(status=status, code=code)
    error = failure(url)
    assert (error.code, error.kind, error.not_found) == (code, kind, False)
    says(error, str(url), "read the WAL segment", *words)
    retried = len(proxy.seen("GET"))
    assert retried == (FAST.max_attempts if status >= 500 else 1), proxy.requests


def test_a_passing_5xx_or_slowdown_is_retried_and_the_read_succeeds(store) -> None:
    _, proxy, url = store
    proxy.add(status=503, code="SlowDown", times=1)
    assert fetch(url) == BODY
    assert [seen.status for seen in proxy.seen("GET")] == [503, 200]


def test_access_denied_on_a_head_has_no_body_and_is_still_named(store) -> None:
    _, proxy, url = store
    proxy.add(method="HEAD", status=403)
    with pytest.raises(Exception) as caught:
        objectstore.client(FAST).head_object(Bucket=url.bucket, Key=url.key)
    error = objectstore.store_error(caught.value, url, "check the base backup", FAST)
    assert (error.code, error.kind) == ("403", ErrorKind.REFUSED)
    says(error, "access denied", str(url), "s3:GetObject")


def test_no_credentials(store, monkeypatch, tmp_path) -> None:
    _, _, url = store
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    error = failure(url)
    assert (error.code, error.kind) == ("NoCredentials", ErrorKind.REFUSED)
    says(error, "no AWS credentials", str(url), "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "role")


def test_a_profile_that_does_not_exist(store, monkeypatch) -> None:
    _, _, url = store
    error = failure(url, S3Settings(profile="no-such-profile", max_attempts=1))
    assert error.kind is ErrorKind.BAD_INPUT
    says(error, "no-such-profile", "repository.profile", "~/.aws/config")


def test_no_such_bucket(store) -> None:
    _, proxy, _ = store
    missing = S3Url("drtui-no-such-bucket", SEGMENT)
    error = failure(missing)
    assert (error.code, error.kind, error.not_found) == ("NoSuchBucket", ErrorKind.REFUSED, False)
    says(error, "drtui-no-such-bucket", "does not exist", proxy.endpoint, "bucket name")


def test_no_such_key_is_the_only_not_found(store) -> None:
    _, _, url = store
    error = failure(S3Url(url.bucket, "wal/000000010000000000000099"))
    assert (error.code, error.kind, error.not_found) == ("NoSuchKey", ErrorKind.REFUSED, True)
    says(error, f"s3://{url.bucket}/wal/000000010000000000000099", "drtui inventory")


def test_a_wrong_region_that_the_store_names_is_followed(store) -> None:
    _, proxy, url = store
    proxy.add(bucket_region="us-west-2")
    assert fetch(url, S3Settings(region="ap-south-1", max_attempts=1)) == BODY
    assert [seen.status for seen in proxy.seen("GET")] == [400, 200]


def test_a_wrong_region_the_store_does_not_name(store) -> None:
    _, proxy, url = store
    proxy.add(bucket_region="us-west-2", region_named=False)
    error = failure(url, S3Settings(region="ap-south-1", max_attempts=1))
    assert (error.code, error.kind) == ("AuthorizationHeaderMalformed", ErrorKind.REFUSED)
    says(error, url.bucket, "another region", "ap-south-1", "repository.region", "AWS_REGION")


def test_a_wrong_endpoint_nobody_listens_on(store, monkeypatch) -> None:
    _, _, url = store
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    error = failure(url)
    assert (error.code, error.kind, error.not_found) == ("Unreachable", ErrorKind.FAILED, False)
    says(error, "cannot reach", str(url), "http://127.0.0.1:9", "AWS_ENDPOINT_URL_S3")


def test_a_wrong_endpoint_that_is_not_s3_never_passes_for_a_missing_object(store, monkeypatch) -> None:
    """A web server's 404 page is not S3's "no such key": taken for one, it would end a restore's WAL early."""
    _, _, url = store
    web = ThreadingHTTPServer(("127.0.0.1", 0), type("Quiet", (SimpleHTTPRequestHandler,),
                                                     {"log_message": lambda *a: None}))
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{web.server_address[1]}")
        errors = [failure(url)]
        with pytest.raises(Exception) as caught:
            objectstore.client(FAST).head_object(Bucket=url.bucket, Key=url.key)
        errors.append(objectstore.store_error(caught.value, url, "read the WAL segment", FAST))
    finally:
        web.shutdown()
        web.server_close()
    for error in errors:
        assert (error.code, error.kind, error.not_found) == ("NotS3", ErrorKind.REFUSED, False)
        says(error, "HTTP 404", "not an S3 API", str(url), "AWS_ENDPOINT_URL_S3")


def test_a_timeout(store) -> None:
    _, proxy, url = store
    proxy.add(delay=FAST.read_timeout + 0.5)
    error = failure(url)
    assert (error.code, error.kind, error.not_found) == ("Timeout", ErrorKind.FAILED, False)
    says(error, "stopped answering", str(url), "read_timeout")


def test_a_connection_cut_mid_object(store) -> None:
    _, proxy, url = store
    proxy.add(method="GET", cut_after=len(BODY) // 3)
    error = failure(url)
    assert (error.code, error.kind, error.not_found) == ("ConnectionBroken", ErrorKind.FAILED, False)
    says(error, "connection", "broke", str(url), "run the command again")


def test_an_object_shorter_than_stored_fails_its_checksum(store) -> None:
    _, proxy, url = store
    proxy.add(method="GET", short_by=1000)
    error = failure(url)
    assert (error.code, error.kind) == ("ChecksumMismatch", ErrorKind.FAILED)
    says(error, str(url), "checksum", "another backup")


def test_an_object_shorter_than_its_listing() -> None:
    error = objectstore.short_object(S3Url("bucket", SEGMENT), 16777216, 1000, "read the WAL segment")
    assert (error.code, error.kind, error.not_found) == ("ShortObject", ErrorKind.FAILED, False)
    says(error, f"s3://bucket/{SEGMENT}", "1000 bytes", "16777216", "another backup")


# -- through drtui: found while planning (exit 2, nothing touched), found mid-restore (stopped and undone) --


@dataclass
class RepositoryWorld:
    """A fault world whose backups and WAL are only in a bucket: staging's config names the repository and
    empty local folders; boto3 reaches the bucket through the proxy."""

    world: FaultWorld
    s3: S3World
    proxy: S3Proxy
    bucket: str
    config: Path
    target: str
    listing: dict[str, str] = field(default_factory=dict)
    folders: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**self.s3.env, "AWS_ENDPOINT_URL_S3": self.proxy.endpoint, "CONFIRM_PITR_RESTORE": "YES"}

    def objects(self) -> dict[str, str]:
        """key -> ETag of every object in the bucket."""
        found: dict[str, str] = {}
        for page in self.s3.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            found.update({item["Key"]: item["ETag"] for item in page.get("Contents", [])})
        return found

    def restore(self, *args: str, env: dict[str, str] | None = None, config: Path | None = None) -> Result:
        return run_drtui("restore", "pitr", "--env", "staging", "--target-time", self.target, *args,
                         config=config or self.config, env={**self.env, **(env or {})}, timeout=240)

    def local(self) -> dict[str, dict[str, str]]:
        """What the folders staging's config names hold (production keeps archiving into its own)."""
        return {name: tree_digest(self.world.sandbox.root / name) for name in LOCAL_FOLDERS}

    def before(self) -> None:
        self.proxy.clear()
        self.listing = self.objects()
        self.folders = self.local()

    def nothing_touched(self) -> None:
        """The bucket, the local folders and staging are as they were, and nothing was left behind."""
        assert self.objects() == self.listing, "the bucket changed"
        assert not self.proxy.seen("PUT") and not self.proxy.seen("POST") and not self.proxy.seen("DELETE")
        assert self.local() == self.folders
        assert self.world.sentinel.present(), "staging lost its data"
        assert leftovers(self.world.sandbox) == []


@pytest.fixture(scope="module")
def repository_world(s3_server, proxy: S3Proxy) -> Iterator[RepositoryWorld]:
    s3 = S3World(s3_server)
    with s3_environment(s3), Sandbox() as sandbox:
        config, clock = sandbox.config(), SystemClock()
        base = backup.base(config, sandbox.env("production"), clock).artifacts[0].path
        inserts = [sandbox.insert("bookings") for _ in range(3)]
        sandbox.switch_wal()
        world = FaultWorld(sandbox, base, inserts, Sentinel.plant(sandbox, "staging"))
        bucket = s3.bucket()
        client = s3.client()
        for folder, prefix in ((sandbox.backup_dir, "prod/backups/"), (sandbox.wal_archive, "prod/wal/")):
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                client.upload_file(str(path), bucket, prefix + path.name)
        for sub in LOCAL_FOLDERS:
            (sandbox.root / sub).mkdir()
        text = sandbox.config_path.read_text().replace('backup_dir = "backups"', 'backup_dir = "s3_backups"')
        config = sandbox.root / "drtui-s3.toml"
        config.write_text(text.replace('wal_archive = "wal_archive"', 'wal_archive = "s3_wal"')
                          + f'\n[repository]\nurl = "s3://{bucket}/prod/"\nmax_attempts = 2\nread_timeout = 2\n')
        try:
            yield RepositoryWorld(world, s3, proxy, bucket, config, world.after_backup[-2].committed_at.isoformat())
        finally:
            proxy.clear()
            s3.drop_buckets()


@pytest.mark.parametrize("fault, words", [
    ({"query": "list-type", "status": 403, "code": "AccessDenied"}, ("access denied", "IAM")),
    ({"query": "list-type", "status": 500, "code": "InternalError"}, ("HTTP 500", "run the command again")),
], ids=["AccessDenied", "500"])  # a refusal as it is, and a failure turned into one (SlowDown, a timeout: alike)
def test_a_store_error_found_while_planning_refuses_and_touches_nothing(repository_world, fault, words) -> None:
    repository_world.before()
    repository_world.proxy.add(**fault)
    result = repository_world.restore()
    assert_message(result, f"s3://{repository_world.bucket}/prod/", *words, code=2)
    repository_world.nothing_touched()


def test_no_credentials_or_no_bucket_found_while_planning(repository_world) -> None:
    repository_world.before()
    anonymous = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                 "AWS_CONFIG_FILE": "/nonexistent"}
    assert_message(repository_world.restore(env=anonymous), "no AWS credentials", repository_world.bucket, code=2)
    other = repository_world.config.with_name("drtui-nobucket.toml")
    other.write_text(repository_world.config.read_text().replace(repository_world.bucket, "drtui-no-such-bucket"))
    assert_message(repository_world.restore(config=other), "drtui-no-such-bucket", "does not exist", code=2)
    repository_world.nothing_touched()


def test_a_5xx_on_a_wal_segment_mid_restore_stops_and_undoes_it_never_ends_the_wal(repository_world) -> None:
    """A segment the plan needs answers 500 through every retry: the restore fails (never "the end of the WAL",
    which only a 404 is) and staging is put back."""
    repository_world.before()
    wal = sorted(key for key in repository_world.listing if key.startswith("prod/wal/") and len(key) == 33)
    repository_world.proxy.add(method="GET", key=f"*/{wal[-1]}", status=500, code="InternalError")
    result = repository_world.restore()
    assert_message(result, wal[-1].rsplit("/", 1)[-1], "HTTP 500", code=1)
    assert "undone" in result.output and "Nothing was lost" in result.output, result.output
    repository_world.nothing_touched()


def test_a_base_backup_cut_off_while_planning_refuses_and_mid_restore_stops_and_undoes(repository_world) -> None:
    """Cut off on every resume: while planning reads the backup, a refusal naming it; once the inventory has
    read it (cached), mid-extraction, where the restore undoes what it did."""
    world = repository_world
    world.before()
    (world.world.sandbox.root / "ops" / "state" / "drtui" / CACHE_FILE).unlink(missing_ok=True)
    base = next(key for key in world.listing if "/basebackup_" in key)
    cut = world.proxy.add(method="GET", key=f"*/{base}", cut_after=200_000)
    assert_message(world.restore(), f"s3://{world.bucket}/{base}", "broke", code=2)
    world.proxy.rules.remove(cut)
    assert run_drtui("inventory", config=world.config, env=world.env).exit_code == 0
    world.proxy.add(method="GET", key=f"*/{base}", cut_after=200_000)
    result = world.restore()
    assert_message(result, f"s3://{world.bucket}/{base}", "broke", "undone", code=1)
    assert len(world.proxy.seen("GET", f"*/{base}")) > 5, "a broken connection is resumed before it fails"
    world.nothing_touched()


def test_a_short_base_backup_or_a_wrong_endpoint_found_while_planning(repository_world) -> None:
    """An object that comes back shorter than the store lists it, and an endpoint nobody answers on."""
    world = repository_world
    world.before()
    (world.world.sandbox.root / "ops" / "state" / "drtui" / CACHE_FILE).unlink(missing_ok=True)
    base = next(key for key in world.listing if "/basebackup_" in key)
    world.proxy.add(method="GET", key=f"*/{base}", short_by=100_000)
    assert_message(world.restore(), f"s3://{world.bucket}/{base}", "checksum does not match", "another backup",
                   code=2)  # the store keeps the object's checksum: botocore checks it as the body is read
    assert_message(world.restore(env={"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}), "cannot reach",
                   f"s3://{world.bucket}/prod/", "http://127.0.0.1:9", "AWS_ENDPOINT_URL_S3", code=2)
    world.nothing_touched()
