"""The screens around a dump restore and a paused recovery, fed by the journals of real runs in a sandbox: a dump
restore shows only what it does and its RPO is the dump's age; Home shows staging paused in recovery and what
to do; the run ids carry the journey once."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from textual.widgets import Input

from drtui.core import backup
from drtui.core.clock import FrozenClock, SystemClock
from drtui.core.postgres import query
from drtui.core.runner import new_run_id
from drtui.sandbox import Sandbox
from drtui.tui.app import DrApp
from drtui.tui.screens.home import HomeScreen
from drtui.tui.screens.result import AdvanceTarget, ResultScreen
from tests.conftest import run_drtui
from tests.textdump import screen_text
from tests.tui.conftest import Notifications, open_result, run_ended, until


@pytest.fixture(scope="module")
def world() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        config, prod = sandbox.config(), sandbox.env("production")
        backup.dump(config, prod, SystemClock())
        backup.base(config, prod, SystemClock())
        sandbox.insert("bookings")
        sandbox.switch_wal()
        yield sandbox


def test_a_dump_restore_shows_only_what_it_does_and_its_rpo_is_the_dumps_age(world: Sandbox) -> None:
    done = run_drtui("restore", "staging", "--yes", "--json", config=world.config_path,
                     env={"TARGET_ENV": "staging"})
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    journal = Path(summary["journal"])
    started = datetime.fromisoformat(json.loads(journal.read_text().splitlines()[0])["at"])
    dump_time = datetime.fromisoformat(summary["recovered_to"])
    assert summary["rpo_seconds"] == pytest.approx((started - dump_time).total_seconds(), abs=0.01)
    assert summary["rpo"]["source"] == "dump_time"
    run_id = summary["run_id"]
    assert run_id.count("staging") == 1 and "-staging-" in run_id  # the journey once, then its suffix

    async def scenario() -> None:
        app = DrApp(world.config(), SystemClock(), start=journal)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await run_ended(pilot)
            assert not screen.query_one("#replay-label").display and not screen.query_one("#replay-bar").display
            text = screen_text(app)
            assert "WAL replay" not in text and "extract" not in text
            assert "restore " in screen.query_one("#extract-label").render().plain
            await open_result(pilot)
            text = screen_text(app)
            assert "recovered to the dump taken at" in text
            rpo_line = next((line for line in text.splitlines() if "RPO " in line and " of " in line), text)
            assert "within" in rpo_line and "not measured" not in rpo_line
            assert "the dump's age at the restore" in text

    asyncio.run(scenario())


def test_home_shows_staging_paused_in_recovery_and_the_result_names_promote_and_advance(world: Sandbox) -> None:
    done = run_drtui("restore", "pitr", "--env", "staging", "--recovery-target", "immediate", "--pause-at-target",
                     "--json", config=world.config_path, env={"CONFIRM_PITR_RESTORE": "YES"})
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["paused_at_target"] is True
    counted = {t["table"]: t for t in summary["comparison"]["tables"]}  # look before you leap, in --json too
    assert counted["public.bookings"]["candidate"] is not None and summary["comparison"]["production"] == "production"

    async def scenario() -> None:
        app = DrApp(world.config(), SystemClock())
        notes = Notifications()
        async with app.run_test(size=(140, 40), message_hook=notes.hook) as pilot:
            await until(pilot, lambda: isinstance(app.screen, HomeScreen) and "paused in recovery" in screen_text(app),
                        30)
            panel = str(app.screen.query_one("#environments").render())
            staging = panel[panel.index("staging"):]
            assert "⏸ running, paused in recovery at LSN" in staging
            assert "open its run (a) and its result (r): p promotes it, a replays on to a later target" in staging
            assert "drtui restore" not in staging  # the wizard does it itself
            assert "recovery" not in panel[:panel.index("staging")]  # production is not in recovery
            app.action_reattach(Path(summary["journal"]))
            await run_ended(pilot)
            await open_result(pilot)
            text = screen_text(app)
            assert "paused at the target" in text
            assert "p to promote it" in text and "a to replay on to a later target" in text
            assert "drtui restore" not in text  # one key away, not a command to type elsewhere
            await until(pilot, lambda: "Rows per table in staging, paused at the target against production"
                         in screen_text(app))  # look before you leap: counted in a worker
            assert re.search(r"public\.bookings\s+\d+\s+production \d+", screen_text(app))
            await pilot.press("a")  # a target that is not later is refused by the advance itself, and said
            await until(pilot, lambda: isinstance(app.screen, AdvanceTarget))
            app.screen.query_one("#advance-value", Input).value = "2001-01-01 00:00:00 UTC"
            await pilot.press("enter")
            await until(pilot, lambda: "the advance stopped before it began (exit 2)" in notes.said())
            assert "nothing was touched" in notes.said() and isinstance(app.screen, ResultScreen), notes.said()
            assert "started in its own process" not in notes.said()  # a refused command never started
            await pilot.press("p")
            promoted = await run_ended(pilot)
            assert promoted.view.journey == "promote" and promoted.view.ok, screen_text(app)
            assert re.search(r"promote \S+-promote-staging-\S+ started in its own process", notes.said()), notes.said()

    asyncio.run(scenario())
    assert query(world.env("staging"), "select pg_is_in_recovery()")[0][0] is False


def test_run_ids_made_in_one_second_by_one_process_differ() -> None:
    clock = FrozenClock(datetime.fromisoformat("2026-01-25T14:30:00+00:00"))
    ids = {new_run_id("staging", "staging", clock) for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("20260125T143000Z-staging-") and i.count("staging") == 1 for i in ids)
    assert new_run_id("pitr", "staging", clock).startswith("20260125T143000Z-pitr-staging-")
