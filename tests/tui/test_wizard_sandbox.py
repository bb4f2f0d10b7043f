"""The whole wizard against a real sandbox: pick a backup, move the timeline cursor, type a time between two
known inserts, confirm the gates, follow the detached run, and find the restored rows and the checks."""

from __future__ import annotations

import asyncio
import contextlib
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
from drtui.tui.screens.review import ReviewScreen
from drtui.tui.widgets.coverage_timeline import CoverageTimeline
from tests.textdump import screen_text
from tests.tui.conftest import until, walk_to_result
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


def test_the_wizard_walks_a_point_in_time_recovery_end_to_end(recoverable: dict) -> None:
    """With a writer inserting into production all along, before, during and after the promotion (issue 14):
    the checks judge the data as recovered, so the run is recovered and its checks pass."""
    world, config, target = recoverable["world"], recoverable["config"], recoverable["target"]
    writer = Writer(world)
    writing = threading.Thread(target=writer.run, daemon=True)
    writing.start()

    async def scenario() -> tuple[str, str]:
        app = DrApp(config)
        async with app.run_test(size=(100, 34)) as pilot:
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
            await walk_to_result(pilot)
            return review, screen_text(app)

    try:
        review, result = asyncio.run(scenario())
        promoted_writes = len(writer.committed)
        time.sleep(0.5)
    finally:
        writer.stop.set()
        writing.join(10)
    assert "✔ pass" in review and "the old" in review
    assert "✔ recovered" in result and "✔ passed" in result and "✘ failed" not in result
    with connect(world.env("production")) as conn:
        ids = {row[0] for row in conn.execute("select id from bookings where service <> 'writer'").fetchall()}
        written_after = conn.execute("select count(*) from bookings where service = 'writer' and created_at > %s",
                                     (target + timedelta(seconds=1),)).fetchone()[0]
    assert recoverable["before"].id in ids
    assert recoverable["after"].id not in ids
    assert written_after > 0 and len(writer.committed) > promoted_writes  # it wrote on after the promotion


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
