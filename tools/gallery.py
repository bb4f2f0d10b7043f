"""`make screens`: an SVG of every screen, taken from the app driven against a fresh sandbox.

    python tools/gallery.py [FOLDER]   (default: screens/)

A dev tool: it lives outside the package, so the wheel does not ship it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input

from drtui.sandbox import Sandbox
from drtui.sandbox.recipes import make_recoverable
from drtui.tui.app import DrApp
from drtui.tui.screens.choose_target import ChooseTargetScreen
from drtui.tui.screens.drill import DrillScreen
from drtui.tui.screens.events import EventsModal
from drtui.tui.screens.pick_backup import PickBackupScreen
from drtui.tui.screens.result import RecordNames, ResultScreen
from drtui.tui.screens.review import ReviewScreen
from drtui.tui.screens.run import RunScreen
from drtui.tui.screens.status import StatusScreen

SIZE = (100, 32)
SMALL = (80, 24)


async def _until(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gallery got stuck on {pilot.app.screen}")
        await pilot.pause(0.1)


async def _shoot(pilot: Pilot, folder: Path, name: str) -> None:
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    pilot.app.clear_notifications()
    await pilot.pause(0.3)
    pilot.app.save_screenshot(f"{name}.svg", str(folder))
    print(f"  {folder / name}.svg")


async def _shoot_small(pilot: Pilot, folder: Path, name: str) -> None:
    """The same screen at 80×24, a first-class size."""
    await pilot.resize_terminal(*SMALL)
    await pilot.pause(0.3)
    await _shoot(pilot, folder, name)
    await pilot.resize_terminal(*SIZE)
    await pilot.pause(0.3)


async def _walk(world: Sandbox, folder: Path, target: datetime) -> None:
    app = DrApp(world.config())
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: any(word in str(app.screen.query_one("#heartbeats").render())
                                        for word in ("ago", "never", "unreadable")))
        await _shoot(pilot, folder, "01-home")
        await pilot.press("s")
        await _until(pilot, lambda: isinstance(app.screen, StatusScreen)
                     and bool(app.screen.checks))
        await _shoot(pilot, folder, "02-status")
        await pilot.press("escape", "p")
        await _until(pilot, lambda: isinstance(app.screen, PickBackupScreen))
        await _shoot(pilot, folder, "03-pick-backup")
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, ChooseTargetScreen))
        field = app.screen.query_one("#value", Input)
        field.value = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S UTC")
        await _shoot(pilot, folder, "04-choose-target-refused")
        field.value = target.strftime("%Y-%m-%d %H:%M:%S UTC")
        await _shoot(pilot, folder, "05-choose-target")
        await pilot.press("ctrl+t")
        await _until(pilot, lambda: isinstance(app.screen, EventsModal) and not app.screen.reading)
        await _shoot(pilot, folder, "05b-what-happened-here")
        await pilot.press("escape")
        await pilot.press("ctrl+n")
        await _until(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.plan is not None)
        app.screen.query_one("#typed-name", Input).value = "production"
        await _shoot(pilot, folder, "06-review")
        await _shoot_small(pilot, folder, "06-review-80x24")
        await pilot.press("ctrl+g")
        await _until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view.log_lines > 0)
        await _shoot(pilot, folder, "07-run")
        run = app.screen
        await _until(pilot, lambda: run.view.finished is not None)
        await _shoot(pilot, folder, "08-run-finished")
        await _shoot_small(pilot, folder, "08-run-finished-80x24")
        await pilot.press("r")
        await _until(pilot, lambda: isinstance(app.screen, ResultScreen))
        await _shoot(pilot, folder, "09-result")
        await pilot.press("w")
        await _until(pilot, lambda: isinstance(app.screen, RecordNames))
        await _shoot(pilot, folder, "10-write-record")
        await pilot.press("escape", "h", "d")
        await _until(pilot, lambda: isinstance(app.screen, DrillScreen))
        await _shoot(pilot, folder, "11-drill")
        await pilot.press("ctrl+g")
        await _until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view.log_lines > 0)
        drill = app.screen
        await _until(pilot, lambda: drill.view.finished is not None)
        await _shoot(pilot, folder, "12-drill-finished")
        await pilot.press("r")
        await _until(pilot, lambda: isinstance(app.screen, ResultScreen))
        await _shoot(pilot, folder, "13-drill-result")


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "screens").absolute()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"building a sandbox and driving the wizard; SVGs go to {folder}")
    with Sandbox() as world:
        make_recoverable(world)
        before = world.insert("bookings")
        target = (before.committed_at + timedelta(seconds=1)).replace(microsecond=0)
        while datetime.now(UTC) < target + timedelta(milliseconds=300):
            time.sleep(0.05)
        world.insert("bookings")
        world.switch_wal()
        asyncio.run(_walk(world, folder, target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
