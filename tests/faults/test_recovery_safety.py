"""A restore writes nowhere but its own data directory, and replay reaches what the WAL source holds or the run
fails before promotion (issue 11, points 2 and 3)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.gates import Confirmation, approve, evaluate, gather_facts
from drtui.core.launcher import write_plan_file
from drtui.core.planning import Target, TargetKind, make_plan
from drtui.core.postgres import connect
from drtui.core.runner import new_run_id
from drtui.sandbox import Sandbox
from tests.faults.conftest import FaultWorld, assert_message, leftovers, make_fault_world

SECRET = "s3cret-upstream-pw"


def _carry_outside_settings(sandbox: Sandbox) -> None:
    """What HA templates put in postgresql.conf: harmless on a primary, and copied into every base backup."""
    archive = sandbox.wal_archive
    conf = sandbox.env("production").data_dir / "postgresql.conf"
    with conf.open("a") as handle:
        handle.write(f"\narchive_cleanup_command = '/usr/lib/postgresql/15/bin/pg_archivecleanup {archive} %r'\n"
                     f"recovery_end_command = 'touch {archive}/recovery_end_command_ran'\n"
                     f"primary_conninfo = 'host=/nonexistent user=replicator password={SECRET}'\n"
                     "primary_slot_name = 'ha_slot'\n")


@pytest.fixture(scope="module")
def carrying_world() -> Iterator[FaultWorld]:
    """A world whose base backup carries settings that act outside the data directory."""
    with Sandbox() as sandbox:
        _carry_outside_settings(sandbox)
        world = make_fault_world(sandbox)
        world.before()
        yield world


def _count(sandbox: Sandbox, env: str, booking_id: int) -> int:
    with connect(sandbox.env(env)) as conn:
        return conn.execute("select count(*) from bookings where id = %s", (booking_id,)).fetchone()[0]


def _setting(sandbox: Sandbox, env: str, name: str) -> str:
    with connect(sandbox.env(env)) as conn:
        return conn.execute(f"show {name}").fetchone()[0]


def test_a_backup_carrying_cleanup_and_end_commands_leaves_the_wal_source_intact(carrying_world: FaultWorld) -> None:
    world, sandbox = carrying_world, carrying_world.sandbox
    result = world.restore_staging_pitr()
    assert_message(result, "pitr of staging: OK", code=0)
    world.unchanged()  # recovery_end_command would have added a file, archive_cleanup_command removed some
    for name in ("archive_cleanup_command", "recovery_end_command", "primary_conninfo", "primary_slot_name"):
        assert f"{name} (the backup set it)" in result.output, result.output
    assert "archive_mode" in result.output.split("overridden, so that", 1)[1].splitlines()[0]
    assert SECRET not in result.output
    journals = list((sandbox.root / "ops" / "state" / "drtui").rglob("*.jsonl"))
    assert any("archive_cleanup_command (the backup set it)" in p.read_text() for p in journals)
    assert not any(SECRET in p.read_text() for p in journals)
    for insert in world.after_backup:
        assert _count(sandbox, "staging", insert.id) == 1
    assert _setting(sandbox, "staging", "archive_cleanup_command") == ""
    assert _setting(sandbox, "staging", "primary_conninfo") == ""
    assert leftovers(sandbox) == []
    assert list(sandbox.env("staging").data_dir.parent.glob("*.pre_pitr_*")), "staging's old data is preserved"


def test_the_restored_copy_never_archives(carrying_world: FaultWorld) -> None:
    """Runs after the restore above, on the restored staging (regression: passes today)."""
    world, sandbox = carrying_world, carrying_world.sandbox
    world.before()
    assert _setting(sandbox, "staging", "archive_mode") == "off"
    sandbox.insert("bookings", env="staging")
    with connect(sandbox.env("staging")) as conn:
        conn.execute("select pg_switch_wal()")
    time.sleep(2)
    world.unchanged()


def test_an_exact_time_target_keeps_the_rows_before_and_not_after(carrying_world: FaultWorld) -> None:
    """Regression (passes today): recovery stops at the target time, with the same backup."""
    world, sandbox = carrying_world, carrying_world.sandbox
    before = sandbox.insert("bookings")
    time.sleep(1.5)
    target = datetime.now(UTC)
    time.sleep(1.5)
    after = sandbox.insert("bookings")
    sandbox.switch_wal()
    time.sleep(1)  # wal-sync names carry the second
    backup.wal_sync(sandbox.config(), SystemClock())
    world.before()
    result = world.restore_staging_pitr("--target-time", target.isoformat())
    assert_message(result, "pitr of staging: OK", code=0)
    assert _count(sandbox, "staging", before.id) == 1
    assert _count(sandbox, "staging", after.id) == 0
    world.unchanged()
    assert leftovers(sandbox) == []


def _newest_segment(world: FaultWorld) -> Path:
    return max((p for p in world.sandbox.wal_archive.iterdir() if len(p.name) == 24), key=lambda p: p.name)


def _damage(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def _assert_old_data_back(world: FaultWorld, output: str) -> None:
    """Nothing promoted: staging holds its own data again, the failed copy is kept aside and named."""
    assert world.sentinel.present()
    left = leftovers(world.sandbox)
    assert len(left) == 1 and ".failed_" in left[0], left
    assert Path(left[0]).name in output
    world.unchanged()


def test_latest_over_a_segment_with_a_damaged_header_fails_naming_it(fault_world: FaultWorld) -> None:
    segment = _newest_segment(fault_world)
    _damage(segment, 0, b"\0\0")  # the first page's magic number
    fault_world.before()
    result = fault_world.restore_staging_pitr()
    assert_message(result, "follow_recovery", f"WAL file {segment.name}", "magic number 0000", "good copy",
                   code=1)
    assert "exited with exit code 170" in result.output, "PostgreSQL stopped on the fetcher's fatal exit"
    assert "pitr of staging: OK" not in result.output
    _assert_old_data_back(fault_world, result.output)


def test_latest_that_stops_short_on_a_damaged_record_is_not_promoted(fault_world: FaultWorld) -> None:
    segment = _newest_segment(fault_world)
    _damage(segment, 61, b"\xff\xff")  # inside the CRC of the segment's first record
    fault_world.before()
    result = fault_world.restore_staging_pitr()
    assert_message(result, "replay stopped short of the end of the WAL source", f"segment {segment.name}",
                   "checksum does not match", "bytes) of WAL would be lost", "not promoted", "drtui restore promote",
                   code=1)
    # the loss is accepted by restoring to the last replayed transaction, or to the backup's end when none was
    assert "--recovery-target immediate" in result.output or "--target-time" in result.output
    _assert_old_data_back(fault_world, result.output)


def test_latest_over_a_segment_unreadable_at_run_time_fails_naming_it(fault_world: FaultWorld) -> None:
    """Planned and approved first, the segment made unreadable after (so the planner cannot see it): the
    fetcher's check at replay time is what stops the run."""
    sandbox, clock = fault_world.sandbox, SystemClock()
    config = sandbox.config()
    env = config.environment("staging")
    plan = make_plan(config, env, Target(TargetKind.LATEST), clock=clock)
    approved = approve(plan, evaluate(plan, gather_facts(config, env, "staging")),
                       Confirmation(confirmed=True, typed_name="staging", face="headless"), clock)
    plan_file = write_plan_file(approved, config, new_run_id("pitr", "staging", clock))
    segment = _newest_segment(fault_world)
    segment.chmod(0)
    fault_world.before()
    result = fault_world.drtui("_run", str(plan_file))
    assert_message(result, f"WAL file {segment.name}", f"cannot be read by {sandbox.os_user}",
                   "readable by os_user", code=1)
    assert "exited with exit code 170" in result.output
    _assert_old_data_back(fault_world, result.output)
