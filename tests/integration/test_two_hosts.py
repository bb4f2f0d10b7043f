"""Two hosts, no scp (issue 13, point 6): staging restores production's backups from the bucket alone.

Production's PostgreSQL and the S3 server run in a network namespace of the test's own (tests/twohosts.py);
staging stays in the root namespace and reaches them only over a veth pair. Production (drtui run in its
namespace) takes its dumps into the bucket and syncs its WAL there (the runbook's `drtui backup wal-sync`
cron line, every second here); the staging host's drtui.toml names production by its TCP address and the
repository by its bucket and endpoint, and no path of production's. One world for the module: the dump
restore, then the drill, each from the bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import psycopg
import pytest

from drtui.core.postgres import connect
from drtui.sandbox import Sandbox
from drtui.sandbox.world import PASSWORD
from tests.conftest import Result, run_drtui
from tests.s3world import ACCESS_KEY, REGION, SECRET_KEY
from tests.twohosts import ProductionHost, production_host

PREFIX = "prod/"


@dataclass
class TwoHosts:
    sandbox: Sandbox
    production: ProductionHost
    bucket: str
    staging_config: Path

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{PREFIX}"

    def keys(self, prefix: str = PREFIX) -> dict[str, int]:
        s3 = boto3.client("s3", endpoint_url=self.production.endpoint, region_name=REGION,
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        found: dict[str, int] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
        return found

    def on_staging(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        return run_drtui(*args, config=self.staging_config, env={**self.production.credentials, **(env or {})},
                         cwd=self.staging_config.parent, timeout=timeout)


@pytest.fixture(scope="module")
def two_hosts() -> Iterator[TwoHosts]:
    with Sandbox() as sandbox, production_host(sandbox) as production:
        s3 = boto3.client("s3", endpoint_url=production.endpoint, region_name=REGION,
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        bucket = "drtui-two-hosts"
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        url = f"s3://{bucket}/{PREFIX}"
        production.use_repository(url)
        staging_config = production.staging_config(sandbox.root / "staging-host", url)
        yield TwoHosts(sandbox, production, bucket, staging_config)


def test_the_two_hosts_share_only_the_bucket_and_a_tcp_address(two_hosts: TwoHosts) -> None:
    text = two_hosts.staging_config.read_text()
    production = two_hosts.sandbox.env("production")
    for path in (production.data_dir, two_hosts.sandbox.wal_archive, two_hosts.sandbox.backup_dir,
                 two_hosts.sandbox.root / "run" / "production", two_hosts.sandbox.config_path):
        assert str(path) not in text
    assert f'host = "{two_hosts.production.address}"' in text and two_hosts.production.endpoint in text
    with pytest.raises(psycopg.OperationalError):  # nothing answers for production on this host's loopback
        psycopg.connect(host="127.0.0.1", port=production.port, dbname="cleaning", user="postgres",
                        password=PASSWORD, connect_timeout=3)
    with psycopg.connect(host=two_hosts.production.address, port=production.port, dbname="cleaning",
                         user="postgres", password=PASSWORD) as conn:
        assert conn.execute("select host(inet_client_addr())").fetchone()[0] == two_hosts.production.peer


def test_restore_staging_takes_the_dump_from_the_bucket(two_hosts: TwoHosts) -> None:
    made = two_hosts.production.drtui("backup", "dump")
    assert made.returncode == 0, made.stdout + made.stderr
    dumps = [key for key in two_hosts.keys(PREFIX + "backups/") if key.rsplit("/", 1)[-1].startswith("cleaning_")]
    assert len(dumps) == 1, two_hosts.keys()
    with connect(two_hosts.sandbox.env("production")) as conn:
        bookings = conn.execute("select count(*) from bookings").fetchone()[0]
    two_hosts.sandbox.insert("bookings", "staging")  # staging differs from production until the restore

    restored = two_hosts.on_staging("restore", "staging",
                                    env={"TARGET_ENV": "staging", "CONFIRM_STAGING_RESTORE": "YES"})

    assert restored.exit_code == 0, restored.output
    assert dumps[0].rsplit("/", 1)[-1] in restored.output
    assert two_hosts.sandbox.counts("staging")["bookings"] == bookings
    assert not any((two_hosts.staging_config.parent / "backups").iterdir()), "a local copy of the dump"


def test_a_drill_between_the_two_hosts(two_hosts: TwoHosts) -> None:
    made = two_hosts.production.drtui("backup", "dump")  # staging's /healthz/backup wants a recent dump
    assert made.returncode == 0, made.stdout + made.stderr
    before = two_hosts.keys(PREFIX + "wal/")
    two_hosts.sandbox.insert("bookings")

    with two_hosts.production.wal_sync_cron():
        drill = two_hosts.on_staging("drill", env={"TARGET_ENV": "staging", "CONFIRM_DRILL": "YES"}, timeout=400)

    assert drill.exit_code == 0, drill.output
    assert "PASS" in drill.output
    with connect(two_hosts.sandbox.env("production")) as conn:
        expected = conn.execute("select count(*) from bookings").fetchone()[0]
    assert two_hosts.sandbox.counts("staging")["bookings"] == expected
    keys = two_hosts.keys()
    assert [key for key in keys if "/backups/basebackup_" in key], keys  # the fresh base backup streamed there
    assert set(before) <= set(keys) and len(keys) > len(before)
    staging_host = two_hosts.staging_config.parent
    local = sorted(p.name for p in (staging_host / "backups").iterdir()) + sorted(
        p.name for p in (staging_host / "wal_archive").iterdir())
    assert local == ["LAST_BASEBACKUP.txt"], local  # the heartbeat of the drill's base backup, nothing else
    reports = list((staging_host / "drill-reports").glob("pitr_drill_*.md"))
    assert len(reports) == 1 and "PASS" in reports[0].read_text()
