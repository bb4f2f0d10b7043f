"""The automated drill started from Home and followed to its result, and a run's record written from the
result screen of a real restore: both against a real sandbox, the drill and the restore detached."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.drill import MARKER_TABLE
from drtui.core.postgres import query
from drtui.sandbox import Sandbox
from drtui.tui.app import DrApp
from drtui.tui.screens.drill import DrillScreen
from drtui.tui.screens.home import HomeScreen
from drtui.tui.screens.pick_dump import PickDumpScreen
from drtui.tui.screens.result import RecordNames
from drtui.tui.screens.review import ReviewScreen
from drtui.tui.screens.run import RunScreen
from tests.textdump import screen_text
from tests.tui.conftest import Notifications, until, walk_to_result
from tests.tui.test_wizard_sandbox import stop_runs


@pytest.fixture(scope="module")
def world() -> Iterator[Sandbox]:
    """One world for the three cases that need a server (a sandbox costs 5-7 s on a busy 2-core machine): the
    drill backs production up, marks it and restores staging, the refusal only reads staging (its env file is
    put back), the record's run restores a dump into staging; each leaves both environments working."""
    with Sandbox() as world:
        yield world


def test_the_automated_drill_runs_from_home_to_its_report(world: Sandbox) -> None:
    config = world.config()
    backup.dump(config, world.env("production"), SystemClock())  # the app's /healthz/backup wants one

    async def scenario() -> tuple[str, str, str]:
        app = DrApp(config)
        async with app.run_test(size=(110, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DrillScreen))
            gates = screen_text(app)
            app.screen.query_one("#operator", Input).value = "Ada Operator"
            run, result = await walk_to_result(pilot)
            await until(pilot, lambda: result.report is not None and result.report.exists())
            records = str(result.query_one("#records").render())
            return gates, screen_text(app) + records, run.view.run_id

    try:
        gates, result, run_id = asyncio.run(scenario())
    finally:
        stop_runs(world)
    assert "✔ pass  target_env" in gates and "✔ pass  app_env" in gates
    assert "✔ PASS" in result, result
    [report] = sorted(config.report_dir.glob("pitr_drill_*.md"))
    assert str(report.name) in result
    text = report.read_text()
    assert "**Result: PASS**" in text and "Ada Operator" in text
    assert query(world.env("staging"), f"select count(*) from {MARKER_TABLE} where drill_id = %s",
                 (run_id,))[0][0] == 1


def test_drill_is_refused_when_staging_says_it_is_production(world: Sandbox) -> None:
    config = world.config()
    env_file = config.environment("staging").env_file
    assert env_file is not None
    original = env_file.read_text()
    journals = set(config.state_dir.glob("**/*drill*.jsonl"))  # the module's drill left its own
    env_file.write_text(original.replace("APP_ENV=", "OLD_APP_ENV=") + "APP_ENV=prod\n")

    async def scenario() -> tuple[str, bool]:
        app = DrApp(config)
        async with app.run_test(size=(110, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DrillScreen))
            await pilot.press("ctrl+g")
            await pilot.pause(0.2)
            return screen_text(app), isinstance(app.screen, DrillScreen)

    try:
        text, stayed = asyncio.run(scenario())
    finally:
        env_file.write_text(original)
    assert stayed and "✘ refused  app_env" in text and "fix:" in text
    assert set(config.state_dir.glob("**/*drill*.jsonl")) == journals  # a refusal adds none


def test_a_record_is_written_from_the_result_of_a_restore(world: Sandbox) -> None:
    config = world.config()
    backup.dump(config, world.env("production"), SystemClock())

    async def scenario() -> tuple[Path | None, str, str]:
        app = DrApp(config)
        notes = Notifications()
        async with app.run_test(size=(110, 40), message_hook=notes.hook) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            app.action_staging()
            await until(pilot, lambda: isinstance(app.screen, PickDumpScreen))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.plan is not None)
            _, result = await walk_to_result(pilot)
            assert result.report is None and "press w" in screen_text(app)
            await pilot.press("w")
            await until(pilot, lambda: isinstance(app.screen, RecordNames))
            app.screen.query_one("#record-operator", Input).value = "Grace Operator"
            app.screen.query_one("#record-operator", Input).focus()
            await pilot.press("enter")
            await until(pilot, lambda: result.report is not None)
            written = str(result.query_one("#records").render())
            notes.clear()
            await pilot.press("w")
            await until(pilot, lambda: "already written" in notes.said(), 10)
            said = notes.said()
            return result.report, written, said + ("modal" if isinstance(app.screen, RecordNames) else "")

    try:
        report, written, again = asyncio.run(scenario())
    finally:
        stop_runs(world)
    assert report is not None and report.exists()
    assert report.name in written
    assert "already written" in again and "modal" not in again
    text = report.read_text()
    assert "Grace Operator" in text and "not recorded" in text


def test_a_drill_that_stops_before_its_journal_is_said_out_loud(config) -> None:
    """The detached drill cannot read its config (gone after the screen read it): it exits 2 without a journal,
    and the wizard says so and leaves the run screen instead of waiting for ever."""
    assert config.path is not None

    async def scenario() -> tuple[str, bool]:
        app = DrApp(config)
        notes = Notifications()
        async with app.run_test(size=(110, 40), message_hook=notes.hook) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DrillScreen))
            config.path.unlink()
            await pilot.press("ctrl+g")
            await until(pilot, lambda: "before it began" in notes.said(), 60)
            await until(pilot, lambda: not isinstance(app.screen, RunScreen), 10)
            return notes.said(), isinstance(app.screen, HomeScreen)

    said, home = asyncio.run(scenario())
    assert "exit 2" in said and "drtui.toml" in said, said
    assert home
    assert not list(config.state_dir.glob("**/*.jsonl"))
