"""Issue 12 (one runner): the drill is one run of the runner, which takes the environment's lock and looks for
an interrupted run before any step, so a drill over what a killed run left is refused before it touches
anything (it used to insert its marker and take a backup first, then fail at the restore)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import psycopg

from drtui.core.events import RunStarted, StepFinished, StepStarted
from drtui.core.journal import Journal, journal_path, list_runs
from drtui.core.postgres import connect
from tests.faults.conftest import FaultWorld, assert_message, leftovers

DRILL = {"TARGET_ENV": "staging", "CONFIRM_DRILL": "YES"}


def dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def killed_restore(world: FaultWorld) -> str:
    """The journal of a restore of staging killed after it stopped the app (so there is something to undo)."""
    at = datetime.now(UTC)
    run_id = "20260101T000000Z-pitr-staging-dead0001"
    journal = Journal(journal_path(world.sandbox.config().state_dir, run_id))
    journal.append(RunStarted(at, run_id, "pitr", "staging", ["preflight", "stop_app", "start_app"], {}, dead_pid()))
    for step in ("preflight", "stop_app"):
        journal.append(StepStarted(at, step, step))
        journal.append(StepFinished(at, step, 0.1))
    journal.close()
    return run_id


def markers(world: FaultWorld) -> int:
    with connect(world.sandbox.env("production")) as conn:
        try:
            return conn.execute("select count(*) from dr_drill_markers").fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0


def test_a_drill_over_a_killed_runs_leftovers_is_refused_before_its_marker_or_backup(fault_world: FaultWorld) -> None:
    world = fault_world
    killed = killed_restore(world)
    runs_before = list_runs(world.sandbox.config().state_dir)
    markers_before = markers(world)
    world.before()
    report_dir = world.sandbox.root / "drill-reports"

    result = world.drtui("drill", env={**DRILL, "DRILL_REPORT_DIR": str(report_dir)})

    assert_message(result, killed, "drtui rollback --env staging", code=2)
    assert markers(world) == markers_before  # no marker in the source
    world.unchanged()  # no fresh backup, nothing read into the WAL archive
    assert list_runs(world.sandbox.config().state_dir) == runs_before  # no journal of the drill
    assert not report_dir.exists() or not any(report_dir.iterdir())
    assert world.sentinel.present()
    assert leftovers(world.sandbox) == []
