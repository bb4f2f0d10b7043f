"""The wizard's screens hand back typed results (the chosen backup with its window, the target) and the target
field says its errors in the wizard's own words; no server needed."""

from __future__ import annotations

import asyncio

from textual.widgets import Input, Select

from drtui.core.planning import BackupChoice, Target, TargetKind, backup_choices
from drtui.tui.app import DrApp
from drtui.tui.screens.choose_target import ChooseTargetScreen
from drtui.tui.screens.home import HomeScreen
from drtui.tui.screens.pick_backup import PickBackupScreen
from tests.textdump import screen_text


async def _home(pilot, app: DrApp) -> None:
    while not isinstance(app.screen, HomeScreen):
        await pilot.pause(0.05)


def test_the_pick_screen_returns_the_backup_with_its_window(config, clock, inventory) -> None:
    async def scenario() -> list[BackupChoice | None]:
        app, picked = DrApp(config, clock), []
        async with app.run_test(size=(100, 30)) as pilot:
            await _home(pilot, app)
            await app.push_screen(PickBackupScreen(inventory, "production"), callback=picked.append)
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
        return picked

    usable = next(c for c in backup_choices(inventory) if c.window.usable)
    assert asyncio.run(scenario()) == [usable]


def test_a_target_the_core_cannot_read_is_told_in_the_wizard_s_words(config, clock, inventory) -> None:
    async def scenario() -> tuple[str, Target | None, list[Target | None]]:
        app, chosen = DrApp(config, clock), []
        async with app.run_test(size=(100, 30)) as pilot:
            await _home(pilot, app)
            screen = ChooseTargetScreen(inventory, backup_choices(inventory)[0])
            await app.push_screen(screen, callback=chosen.append)
            await pilot.pause()
            screen.query_one("#kind", Select).value = "lsn"
            screen.query_one("#value", Input).value = "nope"
            await pilot.pause()
            text, target = screen_text(app), screen.target
            await pilot.press("ctrl+n")  # not valid: the screen stays
            await pilot.pause()
            screen.query_one("#kind", Select).value = "immediate"
            await pilot.pause()
            await pilot.press("ctrl+n")
            await pilot.pause()
        return text, target, chosen

    text, target, chosen = asyncio.run(scenario())
    assert "target LSN 'nope' is not an LSN" in text and "pick another kind in the list" in text
    assert "--target" not in text
    assert target is None
    assert [t.kind for t in chosen if t] == [TargetKind.IMMEDIATE] and len(chosen) == 1
