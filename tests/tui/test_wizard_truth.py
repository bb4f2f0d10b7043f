"""The wizard tells the truth under pressure (issue 14), on a fixed inventory built from the models and a frozen
clock: a relative target is resolved once and is the instant the run is given, going back keeps what was typed
and chosen, a target another backup reaches is one key away, and no screen sends the operator to a CLI flag."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path

from textual.widgets import DataTable, Input

import drtui.tui.app as app_module
from drtui.core.clock import FrozenClock
from drtui.core.config import Config
from drtui.core.events import RunStarted
from drtui.core.journal import list_runs, read_events
from drtui.core.planning import Target, backup_choices
from drtui.tui.app import DrApp
from drtui.tui.format import in_wizard_words
from drtui.tui.screens.choose_target import ChooseTargetScreen
from drtui.tui.screens.home import HomeScreen
from drtui.tui.screens.pick_backup import PickBackupScreen
from drtui.tui.screens.review import ReviewScreen
from drtui.tui.screens.run import RunScreen
from tests.textdump import screen_text
from tests.tui.conftest import FixedInventory, fixed_inventory, until

PROBES = {"pg_version": 15, "free_bytes": 50 * 1024**3}
CLI_WORDS = ("pass --", "--env", "--base-backup", "--target", "run `drtui", "drtui inventory")


class FixedWizard(DrApp):
    """The wizard over a fixed inventory (the backups and WAL are models, no server and no archive to scan)."""

    CSS_PATH = str(Path(app_module.__file__).with_name("app.tcss"))

    def __init__(self, config: Config, clock: FrozenClock, inventory: FixedInventory) -> None:
        super().__init__(config, clock, env_name="production", plan_probes=PROBES)  # type: ignore[arg-type]
        self.fixed = inventory

    def _scan(self) -> FixedInventory:  # type: ignore[override]
        return self.fixed


def _verdict(app: DrApp) -> str:
    return app.screen.verdict


def _plan(app: DrApp) -> str:
    return screen_text(app) if getattr(app.screen, "plan", None) is not None else ""


def _journal_target(config: Config, timeout: float = 60) -> Target:
    """The target in the run's journal: what the detached run was given (it fails fast here: no server)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in list_runs(config.state_dir):
            started = [e for e in read_events(path) if isinstance(e, RunStarted)] if path.exists() else []
            if started:
                return Target.from_json(started[0].plan["target"])
        time.sleep(0.1)
    raise AssertionError(f"no run journal in {config.state_dir}")


def test_a_relative_target_is_the_instant_shown_however_long_the_operator_waits(config, clock, open_tmp) -> None:
    """'20 minutes ago' is checked on the target screen as one instant; a minute passes before the review, esc
    goes back (to the target, then to the backups) and forward again, another minute passes before the start:
    the review, the plan and the journal all hold that first instant, and the typed text and the backup stay."""
    inventory = fixed_inventory(open_tmp)

    async def scenario() -> dict:
        app, seen = FixedWizard(config, clock, inventory), {}
        async with app.run_test(size=(100, 34)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, PickBackupScreen))
            await pilot.press("down", "enter")  # the second backup, not the preselected newest
            await until(pilot, lambda: isinstance(app.screen, ChooseTargetScreen))
            app.screen.query_one("#value", Input).value = "20 minutes ago"  # as typed, without a key per letter
            await pilot.pause()
            seen["shown"] = _verdict(app)
            clock.advance(60)
            await pilot.press("ctrl+n")
            await until(pilot, lambda: isinstance(app.screen, ReviewScreen) and "target    time" in _plan(app))
            seen["review"] = _plan(app)
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, ChooseTargetScreen))
            await pilot.pause()
            seen["back_text"] = app.screen.query_one("#value", Input).value
            seen["back_verdict"] = _verdict(app)
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, PickBackupScreen))
            await pilot.pause()
            seen["back_row"] = app.screen.query_one(DataTable).cursor_row
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ChooseTargetScreen))
            await pilot.pause()
            seen["again_verdict"] = _verdict(app)
            await pilot.press("ctrl+n")
            await until(pilot, lambda: isinstance(app.screen, ReviewScreen) and "target    time" in _plan(app))
            clock.advance(60)
            app.screen.query_one("#typed-name", Input).value = "production"
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunScreen))
        return seen

    seen = asyncio.run(scenario())
    instant = clock.now() - timedelta(minutes=22)  # typed 20 minutes before a clock since moved on two minutes
    shown = f"{instant:%Y-%m-%dT%H:%M:%SZ}"
    assert shown in seen["shown"] and "✔ reachable" in seen["shown"], seen["shown"]
    assert f"target    time {shown}" in seen["review"], seen["review"]
    assert seen["back_text"] == "20 minutes ago"
    assert seen["back_verdict"] == seen["shown"] == seen["again_verdict"]
    assert seen["back_row"] == 1
    recorded = _journal_target(config)
    assert recorded.time is not None and recorded.time.replace(microsecond=0) == instant.replace(microsecond=0)
    assert recorded.time == datetime.fromisoformat(recorded.time.isoformat())


def test_a_target_another_backup_reaches_is_one_key_away(config, clock, open_tmp) -> None:
    """3 hours ago lies before the newest backup but inside the second one's window: the target screen says so,
    ctrl+b switches to it, and back on the pick screen that backup is preselected."""
    inventory = fixed_inventory(open_tmp)

    async def scenario() -> dict:
        app, seen = FixedWizard(config, clock, inventory), {}
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, PickBackupScreen))
            seen["first_row"] = app.screen.query_one(DataTable).cursor_row
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ChooseTargetScreen))
            app.screen.query_one("#value", Input).value = "3 hours ago"
            await until(pilot, lambda: "ctrl+b uses base backup" in screen_text(app), timeout=30)  # drawn
            seen["refused"] = screen_text(app)
            await pilot.press("ctrl+b")
            await until(pilot, lambda: "✔ reachable" in screen_text(app), timeout=30)
            seen["switched"] = screen_text(app)
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, PickBackupScreen))
            await pilot.pause()
            seen["back_row"] = app.screen.query_one(DataTable).cursor_row
        return seen

    seen = asyncio.run(scenario())
    second = inventory.base_backups[1].path.name
    assert seen["first_row"] == 0
    assert "✘ target" in seen["refused"] and f"ctrl+b uses base backup {second}" in seen["refused"], seen["refused"]
    assert "✔ reachable" in seen["switched"] and second in seen["switched"], seen["switched"]
    for text in (seen["refused"], seen["switched"]):
        assert not any(words in text for words in CLI_WORDS), text
    assert seen["back_row"] == 1


def test_a_target_given_before_preselects_the_backup_that_reaches_it(config, clock, open_tmp) -> None:
    inventory = fixed_inventory(open_tmp)
    target = Target.parse("time", "3 hours ago", clock)

    async def scenario() -> int:
        app = DrApp(config, clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            await app.push_screen(PickBackupScreen(inventory, "production", target=target))
            await pilot.pause()
            return app.screen.query_one(DataTable).cursor_row

    assert asyncio.run(scenario()) == 1


def test_the_core_s_cli_words_are_said_in_the_wizard_s_words() -> None:
    """Every hint of the core the wizard shows that names a CLI flag or command for something it does itself."""
    from drtui.core.monitoring import WHAT_TO_DO  # the status screen's "what to do"

    hints = [
        "base backup b.tar.gz reaches it (window 10:00 → 11:00): pass --base-backup",
        "no base backup at hand reaches it; pick a time inside a window shown by `drtui inventory`",
        "choose another base backup with --base-backup, or take a new one",
        "choose an older base backup with --base-backup, or a later LSN",
        "restore to a time before the gap explicitly (--target-time), or find the missing WAL",
        "restore to a time or LSN before the gap (--target-time, --target-lsn), or find the missing WAL",
        "restoring over production: the environment must be named (--env production)",
        "give a time inside the backups' windows (see `drtui inventory`)",
        "set TARGET_ENV=staging (or --env staging)",
        "wait for it to finish, or follow it with `drtui attach`",
        WHAT_TO_DO["drill_age"], "run `drtui inventory` to see why",
    ]
    for hint in hints:
        said = in_wizard_words(hint)
        assert not any(words in said for words in CLI_WORDS), (hint, said)
    assert in_wizard_words(hints[6]) == "restoring over production: the environment must be named (typed on this " \
                                        "screen)"


def test_a_refused_confirmation_is_said_beside_the_gates_not_in_a_toast_over_them(config, clock, open_tmp) -> None:
    """At 80×24 the gates and the confirmation are on screen together; a wrong name is said there."""
    from tests.tui.conftest import Notifications

    inventory = fixed_inventory(open_tmp)
    notes = Notifications()

    async def scenario() -> str:
        app = DrApp(config, clock, plan_probes=PROBES)
        async with app.run_test(size=(80, 24), message_hook=notes.hook) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            chosen = backup_choices(inventory)[0]
            target = Target.parse("time", "20 minutes ago", clock)
            await app.push_screen(ReviewScreen.pitr(app, inventory, chosen, target, config.environment("production")))
            await until(pilot, lambda: app.screen.plan is not None)
            app.screen.query_one("#typed-name", Input).value = "prod"
            await pilot.press("enter")
            await pilot.pause()
            return screen_text(app)

    text = asyncio.run(scenario())
    assert "safety gates" in text and "✔ pass  lock" in text and "Start the restore" in text, text
    assert "✘" in text.split("safety gates")[1] and "production" in text.split("safety gates")[1], text
    assert not [n for n in notes if n.severity == "error"], notes.said()
