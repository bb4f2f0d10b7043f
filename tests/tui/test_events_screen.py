"""The target screen's "what happened around here": the modal listing the destructive transactions (built from
models), the timeline marking them, the target set to just before the one chosen; and the worker's path when
there is no WAL to read. Update the SVGs on purpose: `pytest tests/tui/test_events_screen.py --snapshot-update`."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from textual.widgets import Input

from drtui.core.clock import FrozenClock
from drtui.core.incident import Change
from drtui.core.planning import TargetKind, backup_choices
from drtui.tui.app import DrApp
from drtui.tui.screens.choose_target import ChooseTargetScreen
from drtui.tui.screens.events import EventsModal, open_events
from drtui.tui.widgets.coverage_timeline import CoverageTimeline
from tests.tui.conftest import T0, fixed_inventory, until, write_config
from tests.tui.test_snapshots import FOLDER, push, settle, world  # noqa: F401  (world: the snapshots' folder)

AROUND = T0 - timedelta(minutes=40)
CHANGES = [
    Change(7401, AROUND - timedelta(minutes=3, seconds=12.5), 0x5000A28, "DELETE", ("public.bookings",), 181),
    Change(7402, AROUND - timedelta(minutes=1, seconds=4.25), 0x5001F40, "TRUNCATE", ("public.invoices",), None),
    Change(7405, AROUND + timedelta(seconds=31.75), 0x50032B0, "DROP", ("public.scratch",), None,
           "name from an earlier reading of the catalog"),
]


def _target_screen(app) -> ChooseTargetScreen:
    inventory = fixed_inventory(FOLDER)
    return ChooseTargetScreen(inventory, backup_choices(inventory)[0])


async def _events_open(pilot) -> None:
    await push(_target_screen)(pilot)
    screen = pilot.app.screen
    screen.query_one("#value", Input).value = "2026-01-25 13:50:00 UTC"
    await pilot.pause(0.05)
    open_events(screen, CHANGES)
    await settle(pilot, lambda app: isinstance(app.screen, EventsModal) and app.screen.query_one("#events-table")
                 .row_count == len(CHANGES))
    await pilot.press("down")


def test_the_modal_lists_the_destructive_transactions(world, snap_compare) -> None:  # noqa: F811
    config, clock = world
    assert snap_compare(DrApp(config, clock), terminal_size=(110, 32), run_before=_events_open)


def test_enter_sets_the_target_just_before_and_the_timeline_marks_the_events(world, snap_compare) -> None:  # noqa: F811
    config, clock = world
    seen = {}

    async def chosen(pilot) -> None:
        await _events_open(pilot)
        await pilot.press("enter")
        await settle(pilot, lambda app: isinstance(app.screen, ChooseTargetScreen) and app.screen.target is not None
                     and app.screen.target.kind is TargetKind.XID)
        screen = pilot.app.screen
        seen["target"] = screen.target
        seen["marks"] = screen.query_one("#timeline", CoverageTimeline).marks
        seen["verdict"] = screen.verdict

    assert snap_compare(DrApp(config, clock), terminal_size=(110, 32), run_before=chosen)
    target = seen["target"]
    assert (target.xid, target.inclusive) == (7402, False)
    assert target.settings()["recovery_target_xid"] == "7402"
    assert target.settings()["recovery_target_inclusive"] == "off"
    assert target.describe() == ("just before transaction 7402 (committed at 2026-01-25T13:48:55.750000Z, "
                                 "TRUNCATE public.invoices)")
    assert "just before transaction 7402" in seen["verdict"]
    assert seen["marks"] == [(c.committed_at, "✕") for c in CHANGES]


def test_the_worker_says_when_there_is_no_wal_to_read(tmp_path) -> None:
    config = write_config(tmp_path)
    inventory = fixed_inventory(tmp_path)  # its WAL folder holds no segment

    async def scenario() -> None:
        app = DrApp(config, FrozenClock(T0))
        async with app.run_test(size=(110, 32)) as pilot:
            await until(pilot, lambda: app.screen.__class__.__name__ == "HomeScreen")
            app.push_screen(EventsModal(config, inventory.wal, AROUND))
            await until(pilot, lambda: isinstance(app.screen, EventsModal) and not app.screen.reading)
            note = str(app.screen.query_one("#events-note").render())
            assert "no destructive transaction within 0:30:00 of this moment" in note
            app.pop_screen()
            app.push_screen(EventsModal(config, None, AROUND))
            await until(pilot, lambda: isinstance(app.screen, EventsModal) and not app.screen.reading)
            assert "no WAL archive was found to read" in str(app.screen.query_one("#events-note").render())

    asyncio.run(scenario())


def test_after_a_restore_over_production_the_result_offers_a_fresh_backup_on_b(tmp_path) -> None:
    from drtui.tui.screens.result import ResultScreen
    from drtui.tui.screens.run import RunScreen
    from tests.textdump import screen_text
    from tests.tui.conftest import write_run

    config = write_config(tmp_path, production_host=str(tmp_path / "no-server"))
    journal = write_run(config, ok=True)  # a PITR of production that finished well

    async def scenario() -> None:
        app = DrApp(config, FrozenClock(T0), start=journal)
        async with app.run_test(size=(110, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view.finished is not None)
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, ResultScreen))
            assert "production is on a new timeline now" in screen_text(app)
            await pilot.press("b")  # the same core path as `drtui backup base`: here production does not answer
            await until(pilot, lambda: "the base backup failed" in screen_text(app))

    asyncio.run(scenario())
