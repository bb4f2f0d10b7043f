"""Screens that stay true without a key pressed and read right in plain text (issue 14), no server needed:
Home refreshes itself, a checkbox says on or off in words, and the coverage timeline on a realistic archive (days,
several base backups, a gap, a second timeline, a window lagging now) stays readable with the whole range under
the cursor keys."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta
from pathlib import Path

from textual.widgets import Checkbox

from drtui.core import events as ev
from drtui.core.journal import Journal
from drtui.core.models import BaseBackup, Layout, WalCoverage, Window
from drtui.tui.app import DrApp
from drtui.tui.screens.home import HomeScreen
from drtui.tui.widgets.coverage_timeline import CoverageTimeline
from tests.textdump import screen_text
from tests.tui.conftest import T0, FixedInventory, until, write_run


def _heartbeats(app: DrApp) -> str:
    return str(app.screen.query_one("#heartbeats").render())


def test_home_refreshes_its_heartbeats_and_run_banner_by_itself(config, clock, monkeypatch) -> None:
    """A dump 4 s old reads "4.0s ago"; six minutes later (the injected clock) Home says so without a key, and a
    run that ends takes its banner away; with a slow timer, coming back to Home is enough."""
    beat = config.backup_dir / "LAST_SUCCESS.txt"
    beat.parent.mkdir(parents=True, exist_ok=True)
    beat.write_text(f"{clock.now() - timedelta(seconds=4):%Y-%m-%dT%H:%M:%SZ}\n")
    journal = write_run(config, "20260125T143000Z-pitr", ok=None, pid=os.getpid())

    async def scenario(refresh: float) -> dict:
        monkeypatch.setattr(HomeScreen, "refresh_seconds", refresh)
        app, seen = DrApp(config, clock), {}
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "4.0s ago" in _heartbeats(app), timeout=30)
            seen["banner"] = app.screen.query_one("#in-progress").display and "run in progress" in screen_text(app)
            clock.advance(360)
            if refresh > 60:  # no timer in this test's time: leave Home and come back
                app.action_status()
                await pilot.pause(0.2)
                app.pop_screen()
            await until(pilot, lambda: "6m 04s ago" in _heartbeats(app), timeout=30)
            ended = Journal(journal)
            ended.append(ev.RunFinished(clock.now(), True, 60.0, None, {}))
            ended.close()
            if refresh > 60:
                app.action_status()
                await pilot.pause(0.2)
                app.pop_screen()
            await until(pilot, lambda: not app.screen.query_one("#in-progress").display, timeout=30)
        return seen

    assert asyncio.run(scenario(0.2))["banner"]
    clock.advance(-360)
    beat.write_text(f"{clock.now() - timedelta(seconds=4):%Y-%m-%dT%H:%M:%SZ}\n")
    journal.unlink()
    journal = write_run(config, "20260125T143000Z-pitr", ok=None, pid=os.getpid())
    assert asyncio.run(scenario(3600))["banner"]


def test_a_checkbox_says_on_or_off_in_plain_text(config, clock) -> None:
    from drtui.tui.screens.drill import DrillScreen

    async def scenario() -> tuple[str, str, list]:
        app, chosen = DrApp(config, clock), []
        async with app.run_test(size=(100, 34)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            await app.push_screen(DrillScreen(), callback=chosen.append)
            await pilot.pause()
            off = screen_text(app)
            app.screen.query_one("#skip-backup", Checkbox).toggle()
            await pilot.pause()
            return off, screen_text(app), chosen

    off, on, _ = asyncio.run(scenario())
    assert "skip the fresh base backup (use the newest that reaches the target): off" in off, off
    assert "reaches the target): on" in on and "target): off" not in on, on


def realistic_inventory(folder: Path, now: datetime) -> FixedInventory:
    """Four days of archive: a base backup each night, a gap on the second day, a promotion to timeline 2 on the
    third, and the archive's end three hours behind now."""
    start = now - timedelta(days=4)
    gap = (start + timedelta(days=1, hours=10), start + timedelta(days=1, hours=16))
    promoted = start + timedelta(days=2, hours=12)
    end = now - timedelta(hours=3)
    backups, windows = [], []
    for day in (3, 2, 1, 0):  # newest first, as the inventory lists them
        taken = start + timedelta(days=day, hours=1)
        name = f"basebackup_{taken:%Y%m%dT%H%M%SZ}.tar.gz"
        timeline = 2 if taken >= promoted else 1
        backups.append(BaseBackup(folder / "backups" / name, Layout.TAR_STREAM, name, 0x3000028,
                                  "000000010000000000000003", 0x3000060, taken, timeline, 15, 3_000_000_000,
                                  1_000_000_000, stop_time=taken + timedelta(seconds=30)))
        windows.append(Window(backups[-1].path, taken + timedelta(seconds=30), gap[0] if taken < gap[0] else end,
                              "waldump", timeline))
    segments: dict[int, list[int]] = {1: [], 2: []}
    archived: dict[int, list[float]] = {1: [], 2: []}
    for n in range(4 * 24 * 4 - 12 + 1):  # one segment every 15 minutes, until three hours ago
        moment = start + timedelta(minutes=15 * n)
        if gap[0] < moment < gap[1]:
            continue
        timeline = 2 if moment >= promoted else 1
        segments[timeline].append(n + 1)
        archived[timeline].append(moment.timestamp())
    return FixedInventory(backups, windows, WalCoverage(folder / "wal_archive", "directory", segments=segments,
                                                        archived_at=archived))


NOW = T0 + timedelta(minutes=12)


def test_the_timeline_of_a_realistic_archive_is_readable_and_the_keys_cover_it(open_tmp) -> None:
    inventory = realistic_inventory(open_tmp, NOW)

    async def scenario() -> dict:
        from textual.app import App

        class One(App[None]):
            def compose(self):
                yield CoverageTimeline(inventory.wal, inventory.base_backups, inventory.windows, now=NOW, chosen=1)

        app, seen = One(), {}
        async with app.run_test(size=(80, 24)) as pilot:
            timeline = app.query_one(CoverageTimeline)
            timeline.focus()
            await pilot.pause()
            seen["text"] = screen_text(app)
            seen["axis"] = timeline.axis()
            await pilot.press("home")
            seen["start"] = timeline.cursor
            steps = 0
            while timeline.cursor < timeline.end and steps < 500:
                await pilot.press("right")
                steps += 1
            seen["steps"], seen["columns"], seen["reached"] = steps, timeline.columns, timeline.cursor
            await pilot.press("home", "pagedown")
            seen["coarse"] = timeline.cursor
            await pilot.press("end")
            seen["end"] = timeline.cursor
            seen["range"] = (timeline.start, timeline.end)
        return seen

    seen = asyncio.run(scenario())
    start, end = seen["range"]
    assert end == NOW and start == NOW - timedelta(days=4)  # up to now: the three hours of lag are on the axis
    labels = seen["axis"].split()
    dates = [f"{a} {b}" for a, b in zip(labels[::2], labels[1::2], strict=True)]
    assert len(dates) >= 3 and len(set(dates)) == len(dates), seen["axis"]  # distinct, with their dates
    assert all(d[:5].count("-") == 1 for d in dates), dates
    text = seen["text"]
    base = next(line for line in text.splitlines() if "│ base" in line)
    assert "TL 1" in text and "TL 2" in text and "▒" in text and base.count("◇") + base.count("◆") == 4, text
    assert seen["start"] == start and seen["reached"] == end and seen["end"] == end
    assert seen["steps"] == seen["columns"] - 1  # one column per key, the whole range
    assert start < seen["coarse"] < end


def test_steps_taller_than_the_terminal_fold_the_finished_ones_and_keep_the_running_one() -> None:
    from drtui.tui.widgets.step_list import fold

    blocks = [("done", [f"done {i}", "  wrapped"]) for i in range(5)] + [("running", ["running"])] + \
             [("pending", [f"pending {i}"]) for i in range(4)]
    lines = fold(blocks, 4)
    assert len(lines) <= 4 and "running" in lines, lines
    assert "5 steps done before" in lines[0] and "more to come" in lines[-1], lines
    assert fold(blocks, 100) == [line for _, block in blocks for line in block]
