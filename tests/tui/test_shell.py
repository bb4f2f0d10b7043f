"""The app shell and the wizard's widgets without a server: palette, re-attach, timeline, target field."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pytest
from textual.command import CommandPalette

from drtui.core.models import WalCoverage
from drtui.core.planning import backup_choices
from drtui.tui.app import DrApp
from drtui.tui.screens.choose_target import ChooseTargetScreen
from drtui.tui.screens.home import HomeScreen
from drtui.tui.screens.run import RunScreen
from drtui.tui.screens.status import StatusScreen
from drtui.tui.widgets.coverage_timeline import CoverageTimeline, covered_spans
from tests.textdump import screen_text
from tests.tui.conftest import T0, until, write_run


def test_the_command_palette_opens_the_status_screen(config, clock) -> None:
    async def scenario() -> None:
        app = DrApp(config, clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            await pilot.press("ctrl+p")
            await until(pilot, lambda: isinstance(app.screen, CommandPalette))
            await pilot.press(*"Status")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, StatusScreen))

    asyncio.run(scenario())


def test_home_shows_a_run_in_progress_first_and_reattaches(config, clock) -> None:
    journal = write_run(config, "20260125T143000Z-pitr-production", ok=None, pid=os.getpid())

    async def scenario() -> str:
        app = DrApp(config, clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            home = screen_text(app)
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view.log_lines > 0)
            assert app.screen.journal == journal
            assert "● running" in screen_text(app)
            return home

    home = asyncio.run(scenario())
    assert home.splitlines()[1].startswith(" ● run in progress pitr of production")
    assert "press a to re-attach" in home


def test_a_finished_run_is_not_shown_as_in_progress(config, clock) -> None:
    write_run(config, ok=True, pid=os.getpid())

    async def scenario() -> str:
        app = DrApp(config, clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            return screen_text(app)

    assert "run in progress" not in asyncio.run(scenario())


def two_timelines() -> WalCoverage:
    base = T0.timestamp()
    return WalCoverage(Path("/wal"), "directory",
                       segments={1: [1, 2, 3, 6, 7], 2: [8, 9]},
                       archived_at={1: [base + i * 60 for i in (0, 1, 2, 5, 6)], 2: [base + 420, base + 480]})


def test_covered_spans_split_at_gaps_per_timeline() -> None:
    spans = covered_spans(two_timelines())
    covered, gaps = spans[1]
    assert [(s.start, s.end) for s in covered] == [(T0, T0 + timedelta(minutes=2)),
                                                   (T0 + timedelta(minutes=5), T0 + timedelta(minutes=6))]
    assert [(g.start, g.end) for g in gaps] == [(T0 + timedelta(minutes=2), T0 + timedelta(minutes=5))]
    assert spans[2] == ([spans[2][0][0]], [])


def test_the_timeline_cursor_moves_by_keys_and_mouse_and_fills_the_target(config, clock, inventory) -> None:
    async def scenario() -> None:
        app = DrApp(config, clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            await app.push_screen(ChooseTargetScreen(inventory, backup_choices(inventory)[0]))
            await pilot.pause()
            timeline = app.screen.query_one(CoverageTimeline)
            timeline.focus()
            await pilot.pause()
            start = timeline.cursor
            assert start == inventory.windows[0].latest
            await pilot.press("left")  # onto the column left of the cursor, then column by column
            first = timeline.cursor
            await pilot.press("left")
            fine = timeline.cursor
            await pilot.press("shift+left")
            coarse = timeline.cursor
            assert start > first > fine > coarse  # a coarse step is ten fine ones
            assert abs((fine - coarse) - 10 * (first - fine)) < timedelta(milliseconds=1)
            await pilot.click(CoverageTimeline, offset=(10, 3))
            assert timeline.cursor < coarse
            assert "✘ not reachable" in screen_text(app)  # far left: before the chosen backup
            await pilot.press("end")  # now: past the window's end (the archive lags), then back into it
            for _ in range(5):
                if timeline.reachable(timeline.cursor):
                    break
                await pilot.press("left")
            await pilot.press("enter")
            value = app.screen.query_one("#value").value
            assert value.endswith(" UTC")
            assert "✔ reachable" in screen_text(app)

    asyncio.run(scenario())


@pytest.mark.parametrize(("typed", "verdict"), [
    ("2026-01-25T13:45:00Z", "✔ reachable time 2026-01-25T13:45:00Z"),
    ("2026-01-25 13:45:00 UTC", "✔ reachable time 2026-01-25T13:45:00Z"),
    ("20 minutes ago", "✔ reachable time 2026-01-25T14:22:00Z"),
    ("3 hours ago", "✘ target 2026-01-25T11:42:00Z is before base backup"),
    ("2026-01-25 18:00:00 UTC", "✘ target 2026-01-25T18:00:00Z is after the last recoverable moment"),
    ("yesterday-ish", "✘ target time 'yesterday-ish' is not a time I can read"),
])
def test_the_target_field_is_checked_against_the_window_as_it_is_typed(config, clock, inventory, typed,
                                                                        verdict) -> None:
    async def scenario() -> tuple[str, object]:
        app = DrApp(config, clock)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            await app.push_screen(ChooseTargetScreen(inventory, backup_choices(inventory)[0]))
            await pilot.pause()
            await pilot.press(*typed)
            await pilot.pause()
            return screen_text(app), app.screen.target

    text, target = asyncio.run(scenario())
    assert verdict in text
    assert (target is not None) == verdict.startswith("✔")


def test_immediate_and_latest_need_no_value(config, clock, inventory) -> None:
    async def scenario() -> object:
        app = DrApp(config, clock)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            screen = ChooseTargetScreen(inventory, backup_choices(inventory)[0])
            await app.push_screen(screen)
            await pilot.pause()
            screen.query_one("#kind").value = "latest"
            await pilot.pause()
            await pilot.press("ctrl+n")
            await pilot.pause()
            return screen.target

    target = asyncio.run(scenario())
    assert target is not None and target.kind.value == "latest"



@pytest.mark.parametrize(("elapsed", "css", "words"), [
    (60 * 60, "-ok", "✔ ok"), (100 * 60, "-warn", "▲ near the objective"), (130 * 60, "-over", "✘ over the objective"),
])
def test_the_rto_timer_turns_amber_past_75_and_red_past_100_percent(config, clock, elapsed, css, words) -> None:
    from drtui.tui.widgets.rto_timer import RtoTimer

    async def scenario() -> tuple[set[str], str]:
        app = DrApp(config, clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            timer = RtoTimer()
            await app.screen.mount(timer)
            timer.show(elapsed, 120 * 60, None, finished=False)
            await pilot.pause()
            return set(timer.classes), str(timer.render())

    classes, text = asyncio.run(scenario())
    assert css in classes and len(classes & {"-ok", "-warn", "-over"}) == 1
    assert words in text


def test_more_than_one_timeline_gets_a_row_each(config, clock, inventory) -> None:
    inventory.wal = two_timelines()

    async def scenario() -> str:
        app = DrApp(config, clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            await app.push_screen(ChooseTargetScreen(inventory, backup_choices(inventory)[0]))
            await pilot.pause()
            return screen_text(app)

    text = asyncio.run(scenario())
    assert "│ TL 1" in text and "│ TL 2" in text
