"""The verification checks against real clusters and the sandbox's API stand-in, including a real
point-in-time recovery of production into staging for the RPO measurement."""

from __future__ import annotations

import subprocess
import tarfile
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from drtui.core import backup, checks
from drtui.core.clock import SystemClock, stamp
from drtui.core.events import CheckCompleted, Event
from drtui.core.postgres import chown_to, connect
from drtui.sandbox import Sandbox

ALL = [checks.CONNECT, checks.RECOVERY, checks.ARCHIVING, checks.SAMPLES, checks.DATA_TIME, checks.HEALTHZ,
       checks.READYZ, checks.BACKUP, checks.UPLOADS]


def outcomes(results: list[CheckCompleted]) -> dict[str, str]:
    return {check.name: check.outcome for check in results}


def by_name(results: list[CheckCompleted], name: str) -> CheckCompleted:
    return next(check for check in results if check.name == name)


def pitr_into_staging(world: Sandbox, base_backup: Path, target: datetime) -> Path:
    """Restore a base backup of production into the staging environment up to `target`, by hand (the
    bare commands of the runbook): stop, preserve, extract, recovery settings, start, wait for promotion.
    Returns the preserved staging data directory."""
    env = world.env("staging")
    server = world.server("staging")
    server.stop()
    preserved = env.data_dir.with_name(f"{env.data_dir.name}.pre_pitr_{stamp(SystemClock().now())}")
    env.data_dir.rename(preserved)
    env.data_dir.mkdir(mode=0o700)
    with tarfile.open(base_backup, "r:gz") as tar:
        tar.extractall(env.data_dir, filter="data")
    subprocess.run(["chown", "-R", f"{env.os_user}:", str(env.data_dir)], check=True)
    env.data_dir.chmod(0o700)
    (env.data_dir / "recovery.signal").touch()
    chown_to(env.data_dir / "recovery.signal", env.os_user)
    with (env.data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"restore_command = 'cp {world.wal_archive}/%f %p'\n"
                   f"recovery_target_time = '{target.isoformat()}'\n"
                   "recovery_target_action = 'promote'\n"
                   "archive_mode = 'off'\n")
    server.start()
    deadline = time.monotonic() + 60
    while True:
        with connect(env) as conn:
            if not conn.execute("select pg_is_in_recovery()").fetchone()[0]:
                return preserved
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def restored() -> dict:
    """A sandbox whose staging holds production restored to a time between two known inserts."""
    clock = SystemClock()
    with Sandbox() as world:
        config = world.config()
        backup.dump(config, world.env("production"), clock)  # LAST_SUCCESS.txt for /healthz/backup
        base = backup.base(config, world.env("production"), clock).artifacts[0].path
        before = world.insert("bookings")
        time.sleep(0.05)
        target = clock.now()
        time.sleep(0.05)
        after = world.insert("bookings")
        world.switch_wal()
        preserved = pitr_into_staging(world, base, target)
        yield {"world": world, "config": config, "base": base, "before": before, "after": after,
               "target": target, "preserved": preserved}


def test_every_check_passes_on_a_restored_copy(restored: dict) -> None:
    world, config = restored["world"], restored["config"]
    seen: list[Event] = []
    results = checks.run_checks(config, world.env("staging"), recovered_to=restored["target"], emit=seen.append,
                                clock=SystemClock())
    assert seen == results
    assert [check.name for check in results] == ALL
    assert outcomes(results) == dict.fromkeys(ALL, "passed"), [c.detail for c in results]
    samples = by_name(results, checks.SAMPLES)
    assert samples.data["counts"] == world.counts("staging")
    assert samples.data["counts"]["bookings"] == 181  # 180 seeded + the insert before the target
    archiving = by_name(results, checks.ARCHIVING)
    assert archiving.data["archive_mode"] == "off"
    assert "not archiving into the production archive" in archiving.detail
    assert by_name(results, checks.READYZ).data["healthy_at"]
    assert checks.healthy_at(results) is not None
    assert "HTTP 200" in by_name(results, checks.BACKUP).detail
    assert by_name(results, checks.UPLOADS).data["files"] == 6


def test_rpo_is_measured_from_the_last_replayed_transaction(restored: dict) -> None:
    world = restored["world"]
    target, before, after = restored["target"], restored["before"], restored["after"]
    rpo = checks.measure_rpo(world.env("staging"), target)
    assert rpo.source == "replay"
    # The last transaction replayed is the insert just before the target (not the one after it).
    assert before.committed_at - timedelta(seconds=1) <= rpo.last_commit <= target < after.committed_at
    assert rpo.against == "target"
    assert 0 <= rpo.rpo_seconds == pytest.approx((target - rpo.last_commit).total_seconds())
    failure = target + timedelta(minutes=3)
    incident = checks.measure_rpo(world.env("staging"), target, failure)
    assert incident.against == "failure_time"
    assert incident.rpo_seconds == pytest.approx((failure - rpo.last_commit).total_seconds())
    assert incident.as_dict()["failure_time"] == failure.isoformat()


def test_rpo_falls_back_to_created_at_on_a_cluster_that_replayed_nothing(shared_sandbox: Sandbox) -> None:
    inserted = shared_sandbox.insert("leads")
    rpo = checks.measure_rpo(shared_sandbox.env("production"), None)
    assert rpo.source == "created_at"
    assert rpo.last_commit >= inserted.committed_at - timedelta(seconds=1)
    assert rpo.rpo_seconds is None and rpo.against is None


def test_a_data_timestamp_later_than_the_target_fails(restored: dict) -> None:
    world = restored["world"]
    early = restored["target"] - timedelta(hours=2)
    results = checks.run_checks(restored["config"], world.env("staging"), recovered_to=early,
                                emit=lambda e: None, clock=SystemClock())
    data_time = by_name(results, checks.DATA_TIME)
    assert data_time.outcome == "failed"
    assert "is later than the recovery target" in data_time.detail


def test_production_archives_and_says_where(shared_sandbox: Sandbox) -> None:
    config = shared_sandbox.config()
    results = checks.run_checks(config, config.environment("production"), recovered_to=None,
                                emit=lambda e: None, clock=SystemClock())
    archiving = by_name(results, checks.ARCHIVING)
    assert archiving.outcome == "passed"
    assert archiving.data["archive_mode"] == "on"
    assert str(config.wal_archive) in archiving.data["archive_command"]
    data_time = by_name(results, checks.DATA_TIME)
    assert data_time.outcome == "skipped" and "no recovery target" in data_time.detail


def test_nothing_configured_is_skipped_never_passed(shared_sandbox: Sandbox) -> None:
    config = shared_sandbox.config()
    bare = replace(config.environment("staging"), api_base_url=None, uploads_dir=None)
    results = checks.run_checks(config, bare, recovered_to=None, emit=lambda e: None, clock=SystemClock())
    got = outcomes(results)
    for name in (checks.HEALTHZ, checks.READYZ, checks.BACKUP, checks.UPLOADS, checks.DATA_TIME):
        assert got[name] == "skipped", name
    assert "no api_base_url configured" in by_name(results, checks.READYZ).detail
    # Without an API, the database leaving recovery is when service counts as restored.
    assert by_name(results, checks.RECOVERY).data["healthy_basis"] == "database"
    assert checks.summarize(results) == {"passed": 4, "failed": 0, "skipped": 5}


def test_missing_heartbeat_missing_table_and_empty_uploads_fail(sandbox: Sandbox, open_tmp: Path) -> None:
    config = replace(sandbox.config(), backup_dir=open_tmp / "no-backups")
    env = replace(config.environment("staging"), uploads_dir=open_tmp, sample_tables=("bookings", "no_such"))
    results = checks.run_checks(config, env, recovered_to=None, emit=lambda e: None, clock=SystemClock())
    got = outcomes(results)
    assert got[checks.SAMPLES] == "failed"
    assert 'no_such: relation "no_such" does not exist' in by_name(results, checks.SAMPLES).detail
    assert "bookings=" in by_name(results, checks.SAMPLES).detail
    assert got[checks.UPLOADS] == "failed"
    assert "holds no files" in by_name(results, checks.UPLOADS).detail
    # The sandbox's API reads LAST_SUCCESS.txt from its own config: missing there, so 503.
    assert got[checks.BACKUP] == "failed"
    assert "LAST_SUCCESS missing" in by_name(results, checks.BACKUP).detail


def test_a_restored_copy_archiving_into_the_production_archive_fails(sandbox: Sandbox) -> None:
    config = sandbox.config()
    env = config.environment("staging")
    with connect(env) as conn:
        conn.execute("alter system set archive_mode = 'on'")
        conn.execute(f"alter system set archive_command = 'test -d {config.wal_archive}'")
    sandbox.server("staging").stop()
    sandbox.server("staging").start()
    results = checks.run_checks(config, env, recovered_to=None, emit=lambda e: None, clock=SystemClock())
    archiving = by_name(results, checks.ARCHIVING)
    assert archiving.outcome == "failed"
    assert "archives into the production WAL archive" in archiving.detail
    assert "archive_mode = off" in archiving.data["hint"]


def test_readyz_on_old_migrations_offers_the_migrate_command_and_waits(sandbox: Sandbox) -> None:
    config = sandbox.config()
    env = replace(config.environment("staging"), migrate_command="alembic upgrade head")
    with connect(env) as conn:
        conn.execute("update alembic_version set version_num = '0006_previous'")
    results = checks.run_checks(config, env, recovered_to=None, emit=lambda e: None, clock=SystemClock())
    readyz = by_name(results, checks.READYZ)
    assert readyz.outcome == "failed"
    assert "migrations are not current (revision '0006_previous')" in readyz.detail
    assert readyz.data["migrate_command"] == "alembic upgrade head"
    assert checks.healthy_at(results) is None

    fixed_at: list[datetime] = []

    def migrate_later() -> None:
        time.sleep(1.0)
        with connect(env) as conn:
            conn.execute("update alembic_version set version_num = %s", (sandbox_head(),))
        fixed_at.append(SystemClock().now())

    worker = threading.Thread(target=migrate_later)
    worker.start()
    try:
        waited = checks.run_checks(config, env, recovered_to=None, emit=lambda e: None, clock=SystemClock(),
                                   wait_ready_seconds=60)
    finally:
        worker.join()
    assert by_name(waited, checks.READYZ).outcome == "passed"
    assert checks.healthy_at(waited) >= fixed_at[0]


def sandbox_head() -> str:
    from drtui.sandbox.api import HEAD_REVISION

    return HEAD_REVISION


def test_a_stopped_database_fails_every_database_check(sandbox: Sandbox) -> None:
    config = sandbox.config()
    env = config.environment("staging")
    sandbox.server("staging").stop()
    results = checks.run_checks(config, env, recovered_to=None, emit=lambda e: None, clock=SystemClock())
    got = outcomes(results)
    for name in (checks.CONNECT, checks.RECOVERY, checks.ARCHIVING, checks.SAMPLES, checks.DATA_TIME,
                 checks.HEALTHZ, checks.READYZ):
        assert got[name] == "failed", name
    assert "cannot connect to staging" in by_name(results, checks.CONNECT).detail


def test_an_unreachable_api_fails_with_the_reason(shared_sandbox: Sandbox) -> None:
    config = shared_sandbox.config()
    env = replace(config.environment("staging"), api_base_url="http://127.0.0.1:9")
    results = checks.run_checks(config, env, recovered_to=None, emit=lambda e: None, clock=SystemClock())
    healthz = by_name(results, checks.HEALTHZ)
    assert healthz.outcome == "failed"
    assert "ConnectError" in healthz.detail



def test_production_restored_in_place_may_have_archiving_off_with_a_follow_up(restored: dict) -> None:
    world = restored["world"]
    as_production = replace(world.env("staging"), name="production")
    results = checks.run_checks(restored["config"], as_production, recovered_to=None, emit=lambda e: None,
                                clock=SystemClock())
    archiving = by_name(results, checks.ARCHIVING)
    assert archiving.outcome == "passed"
    assert "off on this restored copy" in archiving.detail
    assert "re-enable WAL archiving" in archiving.data["follow_up"]
    strict = checks.run_checks(restored["config"], as_production, recovered_to=None, emit=lambda e: None,
                               clock=SystemClock(), expect_archiving=True)
    assert by_name(strict, checks.ARCHIVING).outcome == "failed"
    assert "nothing after this point can be recovered" in by_name(strict, checks.ARCHIVING).detail


def test_uploads_counting_stops_at_the_limit(shared_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "UPLOADS_COUNT_LIMIT", 3)
    config = shared_sandbox.config()
    results = checks.run_checks(config, config.environment("staging"), recovered_to=None, emit=lambda e: None,
                                clock=SystemClock())
    uploads = by_name(results, checks.UPLOADS)
    assert uploads.outcome == "passed"
    assert uploads.detail.startswith("3+ files; spot-checked photo_0.jpg (2048 bytes)")
