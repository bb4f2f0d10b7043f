"""PITR restores against real clusters: production's base backup and archive restored into the sandbox's
staging environment (production keeps running, its archive is the source)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.events import CheckCompleted, RunFinished, RunStarted, StepFinished, StepLogged, StepStarted
from drtui.core.journal import follow, read_events
from drtui.core.postgres import chown_to, connect, query
from drtui.sandbox import Insert, Sandbox
from tests.conftest import run_drtui

CONFIRM = {"CONFIRM_PITR_RESTORE": "YES"}


@dataclass
class World:
    sandbox: Sandbox
    base_backup: Path
    before: Insert  # committed before the target
    after: Insert  # committed after it
    target: datetime
    lsn: str  # between the two inserts
    segment_of_before: str

    def restore(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180):
        return run_drtui("restore", "pitr", "--env", "staging", *args, config=self.sandbox.config_path,
                         env={**CONFIRM, **(env or {})}, timeout=timeout)

    def staging_ids(self) -> set[int]:
        return {row[0] for row in query(self.sandbox.env("staging"), "select id from bookings")}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One production history shared by the module: base backup, row `before`, restore point, row `after`."""
    with Sandbox() as sandbox:
        config, prod = sandbox.config(), sandbox.env("production")
        backup.dump(config, prod, SystemClock())
        base = backup.base(config, prod, SystemClock()).artifacts[0].path
        before = sandbox.insert("bookings")
        with connect(prod) as conn:
            lsn = conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]
            segment = conn.execute("select pg_walfile_name(%s::pg_lsn)", (lsn,)).fetchone()[0]
            conn.execute("select pg_create_restore_point('before_after')")
        sandbox.switch_wal()
        time.sleep(0.2)
        after = sandbox.insert("bookings")
        target = before.committed_at + (after.committed_at - before.committed_at) / 2
        sandbox.switch_wal()
        backup.wal_sync(config, SystemClock())
        yield World(sandbox, base, before, after, target, lsn, segment)


def tree_checksum(folder: Path) -> str:
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def siblings(world: World) -> list[str]:
    data_dir = world.sandbox.env("staging").data_dir
    return sorted(p.name for p in data_dir.parent.iterdir())


def test_pitr_to_a_time_keeps_the_old_data_byte_for_byte_and_rollback_brings_it_back(world: World) -> None:
    sandbox = world.sandbox
    marker = 999_999
    query(sandbox.env("staging"), "insert into bookings (id, service) values (%s, 'staging marker')", (marker,))
    sandbox.server("staging").stop()
    data_dir = sandbox.env("staging").data_dir
    checksum = tree_checksum(data_dir)
    archive_before = sorted(os.listdir(sandbox.wal_archive))

    done = world.restore("--target-time", world.target.isoformat(), "--json")

    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["ok"] is True and summary["rto_seconds"] > 0
    assert datetime.fromisoformat(summary["recovered_to"]) <= world.target
    assert [s["name"] for s in summary["steps"]][:2] == ["preflight", "extract"]
    assert all(s["outcome"] in ("finished", "skipped") and s["seconds"] >= 0 for s in summary["steps"])
    # no app commands in this world, the WAL folder is read in place and staging was stopped: nothing to do
    assert [s["name"] for s in summary["steps"] if s["outcome"] == "skipped"] == [
        "stage_wal", "stop_app", "stop_postgres", "start_app"]
    assert {c["name"] for c in summary["checks"]} >= {"out_of_recovery", "readyz"}
    ids = world.staging_ids()
    assert world.before.id in ids and world.after.id not in ids and marker not in ids

    events = read_events(Path(summary["journal"]))
    assert {e.step for e in events if isinstance(e, StepStarted)} == {s["name"] for s in summary["steps"]}
    assert {e.step for e in events if isinstance(e, StepFinished)} == {s["name"] for s in summary["steps"]}
    assert isinstance(events[-1], RunFinished) and events[-1].ok
    assert_fast_promotion(events)
    attached = run_drtui("attach", Path(summary["journal"]).stem, "--json", config=sandbox.config_path)
    assert attached.exit_code == 0 and json.loads(attached.stdout)["rto_seconds"] == summary["rto_seconds"]

    preserved = Path(summary["preserved"])
    assert preserved.name.startswith("data.pre_pitr_") and tree_checksum(preserved) == checksum

    # The restored copy promoted onto a new timeline; switching WAL must not reach the production archive.
    with connect(sandbox.env("staging")) as conn:
        conn.execute("select pg_switch_wal()")
        conn.execute("checkpoint")
    time.sleep(1)
    assert sorted(os.listdir(sandbox.wal_archive)) == archive_before

    rolled = run_drtui("rollback", "--env", "staging", "--json", config=sandbox.config_path)
    assert rolled.exit_code == 0, rolled.output
    assert marker in world.staging_ids()
    assert Path(json.loads(rolled.stdout)["set_aside"]).name.startswith("data.replaced_")
    assert not preserved.exists()
    # The rollback has a journal of its own, and the newest restore is still what `drtui report` records.
    events = read_events(Path(json.loads(rolled.stdout)["journal"]))
    assert isinstance(events[0], RunStarted) and events[0].journey == "rollback"
    assert any(f"{preserved} → {data_dir}" in line for e in events if isinstance(e, StepLogged) for line in e.lines)
    assert isinstance(events[-1], RunFinished) and events[-1].ok
    record = run_drtui("report", "--json", config=sandbox.config_path)
    assert record.exit_code == 0, record.output
    assert json.loads(record.stdout)["run_id"] == Path(summary["journal"]).stem


def assert_fast_promotion(events: list) -> None:
    """The restored server promoted on drtui's request, without an end-of-recovery checkpoint in the way."""
    server = [line for e in events if isinstance(e, StepLogged) and e.source == "server" for line in e.lines]
    assert any("received promote request" in line for line in server), server
    assert any("selected new timeline ID" in line for line in server), server
    assert not any("end-of-recovery" in line for line in server), server


def _max_id(world: World) -> int:
    return max(world.staging_ids())


@pytest.mark.parametrize(("args", "expected"), [
    (["--recovery-target", "immediate"], "backup"),
    (["--recovery-target", "latest"], "after"),
    (["--target-name", "before_after"], "before"),
])
def test_immediate_latest_and_name_targets(world: World, args: list[str], expected: str) -> None:
    done = world.restore(*args, "--json")
    assert done.exit_code == 0, done.output
    assert_fast_promotion(read_events(Path(json.loads(done.stdout)["journal"])))
    ids = world.staging_ids()
    if expected == "backup":
        assert world.before.id not in ids and world.after.id not in ids
    elif expected == "before":
        assert world.before.id in ids and world.after.id not in ids
    else:
        assert {world.before.id, world.after.id} <= ids


def test_latest_from_a_wal_tarball_staged_beside_the_data_directory(world: World) -> None:
    tarball = max(world.sandbox.backup_dir.glob("wal_archive_*.tar.gz"))
    done = world.restore("--wal-archive", str(tarball), "--recovery-target", "latest")
    assert done.exit_code == 0, done.output
    assert {world.before.id, world.after.id} <= world.staging_ids()
    assert not [n for n in siblings(world) if n.startswith("data.pitr_wal_")]


def test_xid_target_includes_that_transaction_and_not_the_next(world: World) -> None:
    xid = query(world.sandbox.env("production"), "select xmin::text from bookings where id = %s",
                (world.before.id,))[0][0]
    done = world.restore("--target-xid", xid)
    assert done.exit_code == 0, done.output
    ids = world.staging_ids()
    assert world.before.id in ids and world.after.id not in ids


def test_lsn_target_run_detached_and_followed_through_the_journal(world: World) -> None:
    from drtui.core.clock import SystemClock as Clock
    from drtui.core.gates import Confirmation, approve, evaluate, gather_facts
    from drtui.core.launcher import launch_detached
    from drtui.core.planning import make_plan
    from drtui.headless.targets import make_target

    config = world.sandbox.config()
    env = config.environment("staging")
    clock = Clock()
    plan = make_plan(config, env, make_target(lsn=world.lsn, clock=clock), clock=clock)
    approved = approve(plan, evaluate(plan, gather_facts(config, env, "staging")), Confirmation(True, "staging"),
                       clock)
    run_id, journal = launch_detached(approved, config)
    stop = threading.Event()
    timer = threading.Timer(180, stop.set)
    timer.start()
    try:
        events = list(follow(journal, stop))
    finally:
        timer.cancel()
    assert isinstance(events[-1], RunFinished) and events[-1].ok, events[-1]
    assert run_id in journal.name
    ids = world.staging_ids()
    assert world.before.id in ids and world.after.id not in ids


def test_pause_at_target_leaves_the_data_readable_at_the_target(world: World) -> None:
    done = world.restore("--target-time", world.target.isoformat(), "--pause-at-target", "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["paused_at_target"] is True
    assert {s["name"]: s["outcome"] for s in summary["steps"]}["verify"] == "skipped"
    assert query(world.sandbox.env("staging"), "select pg_is_in_recovery()") == [(True,)]
    ids = world.staging_ids()
    assert world.before.id in ids and world.after.id not in ids

    promoted = run_drtui("restore", "promote", "--env", "staging", "--json", config=world.sandbox.config_path)
    assert promoted.exit_code == 0, promoted.output
    assert {c["name"]: c["outcome"] for c in json.loads(promoted.stdout)["checks"]}["out_of_recovery"] == "passed"
    assert query(world.sandbox.env("staging"), "select pg_is_in_recovery()") == [(False,)]
    events = read_events(Path(json.loads(promoted.stdout)["journal"]))
    assert isinstance(events[0], RunStarted) and events[0].journey == "promote"
    assert any(isinstance(e, CheckCompleted) and e.name == "out_of_recovery" for e in events)
    assert isinstance(events[-1], RunFinished) and events[-1].ok
    journals = sorted(os.listdir(world.sandbox.config().state_dir / "runs"))
    again = run_drtui("restore", "promote", "--env", "staging", config=world.sandbox.config_path)
    assert again.exit_code == 2 and "nothing to promote" in again.stderr
    assert sorted(os.listdir(world.sandbox.config().state_dir / "runs")) == journals  # a refusal leaves none


def test_a_target_that_recovery_cannot_reach_fails_and_puts_the_old_data_back(world: World) -> None:
    before = siblings(world)
    inode = world.sandbox.env("staging").data_dir.stat().st_ino
    done = world.restore("--target-name", "no_such_restore_point")
    assert done.exit_code == 1, done.output
    assert "the WAL ran out before the target was reached" in done.output
    assert "the old data directory is back in place" in done.output
    assert world.sandbox.env("staging").data_dir.stat().st_ino == inode
    after = siblings(world)
    assert set(before) <= set(after) and all(n.startswith("data.failed_") for n in set(after) - set(before))
    assert world.sandbox.server("staging").state().value == "running"


def test_a_base_backup_damaged_after_planning_fails_in_extraction_and_the_old_data_stays(world: World) -> None:
    """Damage the inventory cannot see in advance (the file changes between planning and extraction)."""
    from drtui.core.clock import SystemClock as Clock
    from drtui.core.gates import Confirmation, approve, evaluate, gather_facts
    from drtui.core.journal import Journal
    from drtui.core.planning import make_plan
    from drtui.core.runner import execute
    from drtui.headless.targets import make_target

    config = world.sandbox.config()
    env = config.environment("staging")
    clock = Clock()
    damaged = world.sandbox.root / "damaged" / world.base_backup.name
    damaged.parent.mkdir()
    shutil.copy2(world.base_backup, damaged)
    plan = make_plan(config, env, make_target("immediate", clock=clock), clock=clock, base_backup=damaged)
    approved = approve(plan, evaluate(plan, gather_facts(config, env, "staging")), Confirmation(True, "staging"),
                       clock)
    with damaged.open("r+b") as handle:  # same size, garbage in the middle of the deflate stream
        handle.seek(damaged.stat().st_size // 2)
        handle.write(os.urandom(4096))
    before = siblings(world)
    inode = env.data_dir.stat().st_ino
    journal = Journal(config.state_dir / "runs" / "damaged.jsonl")
    try:
        result = execute(approved, journal, clock, threading.Event(), config=config)
    finally:
        journal.close()
    assert not result.ok
    assert [s.outcome for s in result.steps][:2] == ["done", "failed"] and result.steps[1].name == "extract"
    assert "never moved" in (result.hint or "")
    assert siblings(world) == before and env.data_dir.stat().st_ino == inode
    assert world.sandbox.server("staging").state().value == "running"


@pytest.fixture
def live_lock(world: World) -> Iterator[None]:
    """Another run holding staging's lock: a live process that took it."""
    state_dir = world.sandbox.config().state_dir
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from drtui.core.clock import SystemClock; from drtui.core.lock import EnvLock; "
                               "EnvLock(Path(sys.argv[1]), 'staging').acquire('other-run', SystemClock()); "
                               "print('held', flush=True); time.sleep(300)", str(state_dir)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout and holder.stdout.readline().strip() == "held"
    try:
        yield
    finally:
        holder.kill()
        holder.wait()
        (state_dir / "locks" / "staging.lock").unlink(missing_ok=True)


def _fake_pg16(world: World) -> Path:
    root = world.sandbox.root
    fake = root / "pg16bin"
    fake.mkdir(exist_ok=True)
    script = fake / "pg_config"
    script.write_text("#!/bin/sh\necho 'PostgreSQL 16.4'\n")
    script.chmod(0o755)
    text = world.sandbox.config_path.read_text()
    head, _, staging = text.partition("[environments.staging]")
    staging = staging.replace(f'pg_bin = "{world.sandbox.env("staging").pg_bin}"', f'pg_bin = "{fake}"', 1)
    config = root / "drtui-pg16.toml"
    config.write_text(head + "[environments.staging]" + staging)
    return config


def test_a_pg_bin_of_another_version_plans_with_the_backups_own_programs(world: World) -> None:
    """staging's pg_bin says PostgreSQL 16; the backup is 15: the plan takes Debian's 15 (the refusal, when no
    folder holds the backup's version, is in tests/core/test_pg_versions.py)."""
    done = run_drtui("restore", "pitr", "--env", "staging", "--target-time", world.target.isoformat(), "--dry-run",
                     config=_fake_pg16(world))
    assert done.exit_code == 0, done.output
    assert "programs     /usr/lib/postgresql/15/bin (PostgreSQL 15)" in done.stdout, done.stdout


REFUSALS = [
    ("before the backup", lambda w: ["--target-time", (w.target - timedelta(hours=1)).isoformat()], {},
     "before base backup"),
    ("after the archive", lambda w: ["--target-time", (w.target + timedelta(hours=1)).isoformat()], {},
     "after the last recoverable moment"),
    ("gap in the WAL", lambda w: ["--target-time", w.after.committed_at.isoformat(), "--wal-archive", "GAPPED"],
     {}, "gap"),
    ("not a base backup", lambda w: ["--base-backup", "GARBAGE"], {}, "not a base backup"),
    ("truncated base backup", lambda w: ["--base-backup", "TRUNCATED", "--recovery-target", "immediate"], {},
     "truncated"),
    ("APP_ENV=prod", lambda w: ["--target-time", w.target.isoformat()], {"ENV_FILE": "PROD_ENV"}, "APP_ENV=prod"),
    ("no confirmation", lambda w: ["--target-time", w.target.isoformat()], {"CONFIRM_PITR_RESTORE": ""},
     "CONFIRM_PITR_RESTORE=YES"),
    ("bad time", lambda w: ["--target-time", "yesterday-ish"], {}, "is not a time"),
]


@pytest.mark.parametrize(("case", "make_args", "extra_env", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_exit_2_and_touch_nothing(world: World, open_tmp: Path, case, make_args, extra_env,
                                          message: str) -> None:
    gapped = open_tmp / "gapped_archive"
    garbage = open_tmp / "basebackup_20260101T000000Z.tar.gz"
    substitutions = {"GAPPED": str(gapped), "GARBAGE": str(garbage), "PROD_ENV": str(world.sandbox.root /
                     "production" / ".env")}
    args = [substitutions.get(a, a) for a in make_args(world)]
    env = {k: substitutions.get(v, v) for k, v in extra_env.items()}
    if case == "gap in the WAL":
        shutil.copytree(world.sandbox.wal_archive, gapped)
        (gapped / world.segment_of_before).unlink()
        for path in [gapped, *gapped.iterdir()]:  # a copy the cluster's user can read: a gap, nothing else
            chown_to(path, world.sandbox.os_user)
    if case == "truncated base backup":
        truncated = open_tmp / world.base_backup.name
        truncated.write_bytes(world.base_backup.read_bytes()[: world.base_backup.stat().st_size * 7 // 10])
        substitutions["TRUNCATED"] = str(truncated)
        args = [substitutions.get(a, a) for a in make_args(world)]
    if case == "not a base backup":
        garbage.write_bytes(b"\x1f\x8b" + os.urandom(4096))
    before = siblings(world)
    inode = world.sandbox.env("staging").data_dir.stat().st_ino
    archive = sorted(os.listdir(world.sandbox.wal_archive))
    done = world.restore(*args, env=env)
    assert done.exit_code == 2, done.output
    assert message in done.stderr
    assert "Traceback" not in done.output
    assert siblings(world) == before
    assert world.sandbox.env("staging").data_dir.stat().st_ino == inode
    assert sorted(os.listdir(world.sandbox.wal_archive)) == archive


def test_a_second_run_on_the_same_environment_is_refused(world: World, live_lock: None) -> None:
    before = siblings(world)
    done = world.restore("--target-time", world.target.isoformat())
    assert done.exit_code == 2 and "busy" in done.stderr and "other-run" in done.stderr
    assert siblings(world) == before


def test_production_is_refused_unless_named(world: World) -> None:
    done = run_drtui("restore", "pitr", "--target-time", world.target.isoformat(), config=world.sandbox.config_path,
                     env=CONFIRM)
    assert done.exit_code == 2 and "--env production" in done.stderr
    assert world.sandbox.server("production").state().value == "running"


def test_pitr_over_production_named_keeps_archiving_on_a_new_timeline(sandbox: Sandbox) -> None:
    config, prod = sandbox.config(), sandbox.env("production")
    backup.dump(config, prod, SystemClock())
    backup.base(config, prod, SystemClock())
    kept, lost, target = sandbox.rows_around_target()
    args = ("restore", "pitr", "--env", "production", "--target-time", target.isoformat())

    dry = run_drtui(*args, "--dry-run", config=sandbox.config_path)
    assert dry.exit_code == 0 and "Restore production" in dry.stdout and "--env production" in dry.stdout
    assert not list(prod.data_dir.parent.glob("data.pre_pitr_*"))

    done = run_drtui(*args, "--json", config=sandbox.config_path, env=CONFIRM)
    assert done.exit_code == 0, done.output
    ids = {row[0] for row in query(prod, "select id from bookings")}
    assert kept.id in ids and lost.id not in ids
    assert {c["name"]: c["outcome"] for c in json.loads(done.stdout)["checks"]}["wal_archiving"] == "passed"
    # The first checkpoint after promotion must not queue the source's segments (from the backup, or
    # prefetched) for archiving again: the archive_command refuses to overwrite, and archiving would stall.
    with connect(prod) as conn:
        conn.execute("checkpoint")
    queued = [n for n in os.listdir(prod.data_dir / "pg_wal" / "archive_status") if n.endswith(".ready")]
    assert not [n for n in queued if n.startswith("00000001") and ".partial" not in n], queued
    sandbox.switch_wal()
    assert (sandbox.wal_archive / "00000002.history").exists()


def test_report_flag_writes_the_pitr_record_with_the_measured_rpo(world: World) -> None:
    done = world.restore("--target-time", world.target.isoformat(), "--report", "--json",
                         env={"DRILL_OPERATOR": "Ada Oncall", "DRILL_REVIEWER": "Grace Review"})
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    gap = (world.target - world.before.committed_at).total_seconds()
    assert summary["rpo"]["source"] == "replay"
    assert gap <= summary["rpo_seconds"] <= gap + 1.0
    report = Path(summary["report"])
    assert report.parent == world.sandbox.root / "ops/drill-reports"
    text = report.read_text()
    assert "Primary operator: Ada Oncall" in text and "Secondary reviewer: Grace Review" in text
    assert f"RPO achieved (minutes): {summary['rpo_seconds'] / 60:.2f}" in text


def test_a_paused_target_moves_forward_then_to_the_end(world: World) -> None:
    done = world.restore("--recovery-target", "immediate", "--pause-at-target")
    assert done.exit_code == 0, done.output
    ids = world.staging_ids()
    assert world.before.id not in ids and world.after.id not in ids

    def advance(*args: str):
        return run_drtui("restore", "advance", "--env", "staging", *args, config=world.sandbox.config_path)

    moved = advance("--target-time", world.target.isoformat())
    assert moved.exit_code == 0, moved.output
    assert "staging: paused at time" in moved.stdout
    ids = world.staging_ids()
    assert world.before.id in ids and world.after.id not in ids
    assert query(world.sandbox.env("staging"), "select pg_is_in_recovery()") == [(True,)]

    backwards = advance("--target-time", (world.target - timedelta(minutes=5)).isoformat())
    assert backwards.exit_code == 2 and "a target only moves forward" in backwards.stderr
    assert advance().exit_code == 2

    to_the_end = advance("--recovery-target", "latest", "--json")
    assert to_the_end.exit_code == 0, to_the_end.output
    summary = json.loads(to_the_end.stdout)
    assert summary["ok"] is True and summary["paused"] is False
    events = read_events(Path(summary["journal"]))
    assert events[0].journey == "advance" and isinstance(events[-1], RunFinished) and events[-1].ok
    assert {world.before.id, world.after.id} <= world.staging_ids()
    assert query(world.sandbox.env("staging"), "select pg_is_in_recovery()") == [(False,)]


def test_a_setting_raised_on_production_after_the_backup_fails_the_restore_in_plain_words(sandbox: Sandbox) -> None:
    """Production raised max_connections after its base backup: replaying that change on a copy that still has
    the backup's lower value pauses PostgreSQL for good. The run says why and how to fix it, and puts staging's
    old data back."""
    config, prod = sandbox.config(), sandbox.env("production")
    backup.base(config, prod, SystemClock())
    query(prod, "alter system set max_connections = 60")
    sandbox.server("production").stop()
    sandbox.server("production").start()
    sandbox.insert("bookings")
    sandbox.switch_wal()
    staging = sandbox.env("staging")
    inode = staging.data_dir.stat().st_ino

    done = run_drtui("restore", "pitr", "--env", "staging", "--recovery-target", "latest",
                     config=sandbox.config_path, env=CONFIRM, timeout=120)

    assert done.exit_code == 1, done.output
    assert "insufficient parameter settings" in done.output  # PostgreSQL's own words, in the server log lines
    assert "a setting such as max_connections is lower here than on the primary" in done.output
    assert "raise the setting named in the server log" in done.output
    assert staging.data_dir.stat().st_ino == inode
    assert sandbox.server("staging").state().value == "running"


def test_a_wal_archive_postgres_cannot_read_is_refused_before_anything_moves(world: World, open_tmp: Path) -> None:
    """PostgreSQL would take the unreadable files for the end of the WAL and stop early without a word."""
    private = open_tmp / "private_archive"
    shutil.copytree(world.sandbox.wal_archive, private)
    private.chmod(0o700)
    before = siblings(world)
    inode = world.sandbox.env("staging").data_dir.stat().st_ino

    done = world.restore("--recovery-target", "latest", "--wal-archive", str(private))

    assert done.exit_code == 2, done.output  # the plan sees the segments postgres cannot read (mode 0600, root's)
    assert "unreadable by postgres" in done.output and "chmod o+r" in done.output
    assert siblings(world) == before and world.sandbox.env("staging").data_dir.stat().st_ino == inode
