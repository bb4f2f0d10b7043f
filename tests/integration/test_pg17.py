"""PostgreSQL 17: an incremental base backup chain (full + incremental) restored to a time with exact rows,
rebuilt by pg_combinebackup. PostgreSQL 17 comes from Debian trixie's packages (scripts/install-pg17, run by
`make test`'s set-up as root); without it the test is skipped, except under CI, where it must run."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.postgres import chown_to, query, run_as
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui
from tests.integration.test_s3_restore import repository_config
from tests.s3world import S3World, s3_environment

SPREAD_TESTS = True  # every case builds its own world: xdist runs them side by side

PG17_BIN = Path(os.environ.get("DRTUI_PG17_BIN", "/opt/drtui/pg17/usr/lib/postgresql/17/bin"))

if not (PG17_BIN / "postgres").exists():
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL 17 is not installed at {PG17_BIN}: run scripts/install-pg17 as root",
                    pytrace=False)
    pytestmark = pytest.mark.skip(reason=f"no PostgreSQL 17 at {PG17_BIN} (scripts/install-pg17 installs it)")


def _incremental_backup(world: Sandbox, parent: Path, work: Path) -> Path:
    """pg_basebackup --incremental on the parent's manifest, packed as drtui packs a plain backup: a gzipped
    tar of the data directory, backup_label first, in the backup folder under the runbook's name."""
    with tarfile.open(parent) as tar:
        (work / "parent_manifest").write_bytes(tar.extractfile("backup_manifest").read())
    chown_to(work / "parent_manifest", world.os_user)
    env = world.env("production")
    target = work / "incremental"
    run_as(world.os_user, [str(PG17_BIN / "pg_basebackup"), "-h", str(world.root / "run" / "production"),
                           "-p", str(env.port), "-U", "postgres",
                           "-D", str(target), "-Fp", "-X", "stream", "-c", "fast",
                           f"--incremental={work / 'parent_manifest'}"], timeout=120)
    time.sleep(1.1)  # the runbook's names have a one-second stamp
    path = world.backup_dir / time.strftime("basebackup_%Y%m%dT%H%M%SZ.tar.gz", time.gmtime())
    first = ["backup_label", "PG_VERSION", "backup_manifest"]
    subprocess.run(["tar", "-czf", str(path), "-C", str(target), *first,
                    *sorted(p.name for p in target.iterdir() if p.name not in first)], check=True)
    return path


def _chain_with_rows(world: Sandbox, work: Path):
    """A full backup, a row, an incremental backup on it, then a row before the target and one after it."""
    config, prod = world.config(), world.env("production")
    backup.dump(config, prod, SystemClock())  # the app's /healthz/backup wants a recent dump
    full = backup.base(config, prod, SystemClock()).artifacts[0].path
    in_full = world.insert("bookings")
    incremental = _incremental_backup(world, full, work)
    before, after, target = world.rows_around_target()
    return full, incremental, (in_full, before, after), target


def test_an_incremental_chain_restores_to_a_time_with_exact_rows(open_tmp):
    work = open_tmp
    work.chmod(0o777)
    with Sandbox(pg_bin=PG17_BIN, settings={"summarize_wal": "on"}) as world:
        full, incremental, (in_full, before, after), target = _chain_with_rows(world, work)

        listed = run_drtui("inventory", "--json", config=world.config_path)
        assert listed.exit_code == 0, listed.output
        assert '"incremental_from"' in listed.stdout

        result = run_drtui("restore", "pitr", "--env", "staging", "--base-backup", str(incremental),
                           "--target-time", target.isoformat(), config=world.config_path,
                           env={"CONFIRM_PITR_RESTORE": "YES"}, timeout=240)
        assert result.exit_code == 0, result.output
        assert f"builds on {full}" in result.output
        assert "pg_combinebackup" in result.output
        ids = {row[0] for row in query(world.env("staging"), "select id from bookings")}
        assert {in_full.id, before.id} <= ids and after.id not in ids
        version = query(world.env("staging"), "select current_setting('server_version_num')")[0][0]
        assert version.startswith("17")

        full.rename(work / full.name)  # the chain is broken: the plan refuses before touching anything
        refused = run_drtui("restore", "pitr", "--env", "staging", "--base-backup", str(incremental),
                            "--target-time", target.isoformat(), "--dry-run", config=world.config_path)
        assert refused.exit_code == 2, refused.output
        assert f"base backup {incremental.name} is incremental: it builds on a backup started at" in refused.output
        assert "put that backup back, or choose a full base backup" in refused.output


def test_backup_base_incremental_restores_to_a_time_with_exact_rows_and_needs_summarize_wal(open_tmp):
    """`drtui backup base` then `backup base --incremental` (a folder in plain format, on the full backup's
    manifest), restored into a staging whose own pg_bin is PostgreSQL 15: the plan takes [pg_bin] 17, and so do
    the advance and the promote of the paused recovery after it."""
    with Sandbox(pg_bin=PG17_BIN, settings={"summarize_wal": "on"}) as world:
        config, prod = world.config(), world.env("production")
        backup.dump(config, prod, SystemClock())  # the app's /healthz/backup wants a recent dump
        full = run_drtui("backup", "base", "--json", config=world.config_path)
        assert full.exit_code == 0, full.output
        in_full = world.insert("bookings")
        time.sleep(1.1)  # the runbook's names have a one-second stamp
        made = run_drtui("backup", "base", "--incremental", "--json", config=world.config_path)
        assert made.exit_code == 0, made.output
        incremental = Path(json.loads(made.stdout)["artifacts"][0]["path"])
        assert incremental.is_dir() and incremental.name.startswith("basebackup_")
        assert "INCREMENTAL FROM LSN:" in (incremental / "backup_label").read_text()
        assert incremental.stat().st_mode & 0o777 == 0o750  # closed to other users, as every backup
        assert (world.backup_dir / "LAST_BASEBACKUP.txt").exists()
        before = world.insert("bookings")
        world.switch_wal()
        time.sleep(0.2)
        after = world.insert("bookings")
        time.sleep(0.2)
        later = world.insert("bookings")
        target = before.committed_at + (after.committed_at - before.committed_at) / 2
        further = after.committed_at + (later.committed_at - after.committed_at) / 2
        world.switch_wal()

        expiry = run_drtui("backup", "expire", "--keep", "1", "--dry-run", config=world.config_path)
        assert expiry.exit_code == 0, expiry.output
        full_path = Path(json.loads(full.stdout)["artifacts"][0]["path"])
        assert f"kept {full_path} (the incremental {incremental.name} builds on it)" in expiry.output

        text = world.config_path.read_text()
        staging = text.index("[environments.staging]")
        world.config_path.write_text(text[:staging] + text[staging:].replace(
            f'pg_bin = "{PG17_BIN}"', 'pg_bin = "/usr/lib/postgresql/15/bin"', 1) + f'\n[pg_bin]\n17 = "{PG17_BIN}"\n')
        planned = run_drtui("restore", "pitr", "--env", "staging", "--base-backup", str(incremental),
                            "--target-time", target.isoformat(), "--dry-run", config=world.config_path)
        assert planned.exit_code == 0, planned.output
        assert f"programs     {PG17_BIN} (PostgreSQL 17)" in planned.output
        assert "builds on    " + str(Path(json.loads(full.stdout)["artifacts"][0]["path"])) in planned.output
        listed = run_drtui("inventory", "--json", "--env", "staging", config=world.config_path)
        assert listed.exit_code == 0, listed.output
        windows = json.loads(listed.stdout)["windows"]  # 15's pg_waldump cannot read 17's WAL; 17's can
        assert {w["latest_source"] for w in windows} == {"waldump"}, listed.stdout
        result = run_drtui("restore", "pitr", "--env", "staging", "--base-backup", str(incremental),
                           "--target-time", target.isoformat(), "--pause-at-target", config=world.config_path,
                           env={"CONFIRM_PITR_RESTORE": "YES"}, timeout=240)
        assert result.exit_code == 0, result.output
        assert "backups with pg_combinebackup" in result.output
        ids = {row[0] for row in query(world.env("staging"), "select id from bookings")}
        assert {in_full.id, before.id} <= ids and after.id not in ids
        advanced = run_drtui("restore", "advance", "--env", "staging", "--target-time", further.isoformat(),
                             config=world.config_path, timeout=240)
        assert advanced.exit_code == 0, advanced.output
        ids = {row[0] for row in query(world.env("staging"), "select id from bookings")}
        assert after.id in ids and later.id not in ids
        promoted = run_drtui("restore", "promote", "--env", "staging", config=world.config_path, timeout=240)
        assert promoted.exit_code == 0, promoted.output
        version, recovering = query(world.env("staging"), "select current_setting('server_version_num'), "
                                    "pg_is_in_recovery()")[0]
        assert version.startswith("17") and not recovering

        query(prod, "alter system set summarize_wal = off")
        query(prod, "select pg_reload_conf()")
        refused = run_drtui("backup", "base", "--incremental", config=world.config_path)
        assert refused.exit_code == 2, refused.output
        assert "summarize_wal is off on the server of 'production'" in refused.output
        assert "ALTER SYSTEM SET summarize_wal = on" in refused.output
        assert sorted(p.name for p in world.backup_dir.glob("basebackup_*")) == sorted(
            [Path(json.loads(full.stdout)["artifacts"][0]["path"]).name, incremental.name])


def test_an_incremental_chain_in_a_bucket_restores_to_a_time_with_exact_rows(s3_server):
    """`drtui backup base` and `backup base --incremental` into an S3 repository: the parent's manifest is read
    from the bucket and the incremental stored as a .tar.gz beside it. With the WAL uploaded too and nothing
    on local disk, the chain is read from the bucket, fetched by ranged GETs and rebuilt by pg_combinebackup."""
    s3 = S3World(s3_server)
    with s3_environment(s3), Sandbox(pg_bin=PG17_BIN, settings={"summarize_wal": "on"}) as world:
        backup.dump(world.config(), world.env("production"), SystemClock())  # the app's /healthz/backup
        bucket, client = s3.bucket(), s3.client()
        path = repository_config(world, "drtui-s3.toml", f"s3://{bucket}/prod/")
        try:
            full = run_drtui("backup", "base", "--json", config=path, env=s3.env)
            assert full.exit_code == 0, full.output
            in_full = world.insert("bookings")
            time.sleep(1.1)  # the runbook's names have a one-second stamp
            made = run_drtui("backup", "base", "--incremental", "--json", config=path, env=s3.env, timeout=240)
            assert made.exit_code == 0, made.output
            incremental = json.loads(made.stdout)["artifacts"][0]["path"]
            assert incremental.startswith(f"s3://{bucket}/prod/backups/basebackup_")
            assert incremental.endswith(".tar.gz")
            before, after, target = world.rows_around_target()
            for wal in sorted(world.wal_archive.iterdir()):
                client.upload_file(str(wal), bucket, f"prod/wal/{wal.name}")
            result = run_drtui("restore", "pitr", "--env", "staging", "--base-backup", incremental,
                               "--target-time", target.isoformat(), config=path,
                               env={"CONFIRM_PITR_RESTORE": "YES", **s3.env}, timeout=240)
            listed = run_drtui("inventory", "--json", config=path, env=s3.env)
            assert result.exit_code == 0, result.output + listed.stdout
            assert f"builds on {json.loads(full.stdout)['artifacts'][0]['path']}" in result.output
            assert "backups with pg_combinebackup" in result.output
            ids = {row[0] for row in query(world.env("staging"), "select id from bookings")}
            assert {in_full.id, before.id} <= ids and after.id not in ids
            assert [n for n in os.listdir(world.root / "s3r_backups") if n.startswith("basebackup_")] == []
        finally:
            s3.drop_buckets()
