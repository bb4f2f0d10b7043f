"""The whole wizard against a real sandbox: pick a backup, move the timeline cursor, type a time between two
known inserts, confirm the gates, follow the detached run, and find the restored rows and the checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.events import RunStarted
from drtui.core.journal import list_runs, read_events
from drtui.core.postgres import connect
from drtui.sandbox import Sandbox
from drtui.tui.app import DrApp
from drtui.tui.run_state import pid_alive
from drtui.tui.screens.choose_target import ChooseTargetScreen
from drtui.tui.screens.home import HomeScreen
from drtui.tui.screens.pick_backup import PickBackupScreen
from drtui.tui.screens.result import ConfirmOperation
from drtui.tui.screens.review import ReviewScreen
from drtui.tui.widgets.coverage_timeline import CoverageTimeline
from tests.textdump import screen_text
from tests.tui.conftest import open_result, run_ended, until, walk_to_result
from tests.writer import Writer


def stop_runs(world: Sandbox) -> None:
    """A detached run left behind by a failing test is stopped, and waited for (its undo writes into the
    world), before the world goes."""
    for journal in list_runs(world.config().state_dir):
        with contextlib.suppress(OSError, ValueError):
            for event in read_events(journal):
                if isinstance(event, RunStarted) and pid_alive(event.pid):
                    os.killpg(event.pid, signal.SIGTERM)
                    deadline = time.monotonic() + 60
                    while pid_alive(event.pid) and time.monotonic() < deadline:
                        time.sleep(0.1)
                    if pid_alive(event.pid):
                        os.killpg(event.pid, signal.SIGKILL)


@pytest.fixture
def recoverable(sandbox: Sandbox) -> Iterator[dict]:
    """A world with a dump and a base backup, then one booking before a known second and one after it."""
    config = sandbox.config()
    backup.dump(config, sandbox.env("production"), SystemClock())  # the app's /healthz/backup wants one
    backup.base(config, sandbox.env("production"), SystemClock())
    before = sandbox.insert("bookings")
    target = (before.committed_at + timedelta(seconds=1)).replace(microsecond=0)
    while datetime.now(UTC) < target + timedelta(milliseconds=300):
        time.sleep(0.05)
    after = sandbox.insert("bookings")
    sandbox.switch_wal()
    try:
        yield {"world": sandbox, "config": config, "before": before, "after": after, "target": target}
    finally:
        stop_runs(sandbox)


async def _to_the_run(pilot, target: datetime) -> str:
    """From home through pick, target (the cursor moved, then `target` typed) and review, with production's
    name typed: the run is one ctrl+g away. Returns the review's text."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, HomeScreen))
    await pilot.press("p")
    await until(pilot, lambda: isinstance(app.screen, PickBackupScreen))
    await until(pilot, lambda: "✔ usable" in screen_text(app), timeout=30)  # once it is drawn
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, ChooseTargetScreen))
    timeline = app.screen.query_one(CoverageTimeline)
    timeline.focus()
    await pilot.pause()
    first = timeline.cursor
    await pilot.press("left", "left", "shift+left")
    assert timeline.cursor is not None and first is not None and timeline.cursor < first
    await pilot.press("enter")  # the cursor's time fills the target field
    assert app.screen.query_one("#value").value.endswith("UTC")
    app.screen.query_one("#value").value = target.strftime("%Y-%m-%d %H:%M:%S UTC")
    await pilot.pause()
    assert "✔ reachable" in screen_text(app)
    await pilot.press("ctrl+n")
    await until(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.plan is not None)
    review = screen_text(app)
    await pilot.press("ctrl+g")  # refused: production needs its name typed
    await pilot.pause()
    assert isinstance(app.screen, ReviewScreen)
    app.screen.query_one("#typed-name").value = "production"
    return review


@contextlib.contextmanager
def writing(world: Sandbox) -> Iterator[Writer]:
    """A writer inserting into production all along, before, during and after the promotion (issue 14)."""
    writer = Writer(world)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        yield writer
    finally:
        writer.stop.set()
        thread.join(10)


def test_the_wizard_walks_a_point_in_time_recovery_end_to_end(recoverable: dict) -> None:
    """The checks judge the data as recovered, so with the writer on the run is recovered and its checks pass."""
    world, config, target = recoverable["world"], recoverable["config"], recoverable["target"]

    async def scenario() -> tuple[str, str]:
        app = DrApp(config)
        async with app.run_test(size=(100, 34)) as pilot:
            review = await _to_the_run(pilot, target)
            await walk_to_result(pilot)
            return review, screen_text(app)

    with writing(world) as writer:
        review, result = asyncio.run(scenario())
        promoted_writes = len(writer.committed)
        time.sleep(0.5)
    assert "✔ pass" in review and "the old" in review
    assert "✔ recovered" in result and "✔ passed" in result and "✘ failed" not in result
    with connect(world.env("production")) as conn:
        ids = {row[0] for row in conn.execute("select id from bookings where service <> 'writer'").fetchall()}
        written_after = conn.execute("select count(*) from bookings where service = 'writer' and created_at > %s",
                                     (target + timedelta(seconds=1),)).fetchone()[0]
    assert recoverable["before"].id in ids
    assert recoverable["after"].id not in ids
    assert written_after > 0 and len(writer.committed) > promoted_writes  # it wrote on after the promotion


def test_the_same_run_recovering_past_its_target_fails_the_data_checks(recoverable: dict) -> None:
    """The same journey and writer, but the restored copy recovers to the wrong moment, `latest` instead of the
    target: production's stop command (run after the recovery settings are written, before the old cluster
    stops) drops the copy's recovery_target_time, as a target lost on the way would. The data checks catch it:
    the run fails, and rollback, the way back from wrong data, is offered."""
    world, target = recoverable["world"], recoverable["target"]
    restoring = world.root / "production" / "data.restoring_*" / "postgresql.auto.conf"
    drop_target = f"runuser -u {world.os_user} -- sed -i '/^recovery_target_time = /d' {restoring}"
    text = world.config_path.read_text().replace(
        'server_log = "logs/production.log"\n',
        f'server_log = "logs/production.log"\nstop_app_command = {json.dumps(drop_target)}\n')
    world.config_path.write_text(text)

    async def scenario() -> tuple[str, set[int], str]:
        app = DrApp(world.config())
        async with app.run_test(size=(100, 50)) as pilot:
            await _to_the_run(pilot, target)
            await pilot.press("ctrl+g")
            run = await run_ended(pilot)
            assert not run.view.ok
            await open_result(pilot)
            result = screen_text(app)
            ids = ids_in_production()
            await pilot.press("x")  # the way back, from the screen itself: production's name typed first
            await until(pilot, lambda: isinstance(app.screen, ConfirmOperation))
            app.screen.query_one("#typed-env").value = "prod"
            await pilot.press("enter")
            assert isinstance(app.screen, ConfirmOperation) and "type production" in screen_text(app)
            app.screen.query_one("#typed-env").value = "production"
            await pilot.press("enter")
            rollback = await run_ended(pilot)
            assert rollback.view.journey == "rollback" and rollback.view.ok, screen_text(app)
            return result, ids, screen_text(app)

    def ids_in_production() -> set[int]:
        with connect(world.env("production")) as conn:
            return {row[0] for row in conn.execute("select id from bookings where service <> 'writer'")}

    with writing(world):
        result, restored_ids, rolled_back = asyncio.run(scenario())
    assert "✘ failed" in result and "✔ recovered" not in result, result
    assert "data_timestamp" in result and "later than the recovery target" in result, result
    assert "x rolls back" in result and "drtui rollback" not in result, result
    assert recoverable["after"].id in restored_ids  # the copy did go past the target: the check told the truth
    assert "✔" in rolled_back and "finished" in rolled_back, rolled_back
    preserved = list((world.root / "production").glob("data.pre_pitr_*"))
    assert preserved == [], preserved  # put back in place: production runs on its data from before the restore
    assert {recoverable["before"].id, recoverable["after"].id} <= ids_in_production()


def test_the_wizard_loads_a_dump_into_staging(sandbox: Sandbox) -> None:
    from textual.widgets import OptionList

    from drtui.tui.screens.pick_dump import PickDumpScreen

    config = sandbox.config()
    backup.dump(config, sandbox.env("production"), SystemClock())
    production = sandbox.counts("production")
    sandbox.insert("bookings", env="staging")
    assert sandbox.counts("staging") != production

    async def scenario() -> str:
        app = DrApp(config)
        async with app.run_test(size=(100, 34)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            journeys = app.screen.query_one("#journeys", OptionList)
            journeys.focus()
            journeys.highlighted = 1
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, PickDumpScreen))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.plan is not None)
            assert "✔ pass  target_env" in screen_text(app)
            await walk_to_result(pilot)
            return screen_text(app)

    try:
        result = asyncio.run(scenario())
    finally:
        stop_runs(sandbox)
    assert "✔ recovered staging" in result
    assert sandbox.counts("staging") == production
