"""The run screen and the result screen, fed only by a journal."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

from drtui.core import events as ev
from drtui.core.journal import Journal, journal_path
from drtui.tui.app import DrApp
from drtui.tui.messages import JournalRead
from drtui.tui.widgets.log_panel import LogPanel
from tests.textdump import screen_text
from tests.tui.conftest import T0, open_result, run_ended, write_run


def test_run_screen_keeps_up_with_thousands_of_lines_and_stays_responsive(config, clock) -> None:
    path = journal_path(config.state_dir, "busy")
    journal = Journal(path)
    journal.append(ev.RunStarted(T0, "busy", "pitr", "production", steps=["follow_recovery"]))
    journal.append(ev.StepStarted(T0, "follow_recovery", "Follow recovery"))
    events_written = 2
    lines_total = 50_000
    started = threading.Event()

    def writer() -> None:
        nonlocal events_written
        started.wait()
        for block in range(lines_total // 10):
            journal.append(ev.StepLogged(T0, "follow_recovery", [f"line {block * 10 + i}" for i in range(10)],
                                         source="server"))
            events_written += 1
        journal.append(ev.StepFinished(T0 + timedelta(seconds=60), "follow_recovery", 60.0))
        journal.append(ev.RunFinished(T0 + timedelta(seconds=60), True, 60.0))
        events_written += 2
        journal.close()

    batches: dict[int, JournalRead] = {}  # the hook sees a message more than once; keyed by identity

    def hook(message: object) -> None:
        if isinstance(message, JournalRead):
            batches[id(message)] = message

    async def scenario() -> None:
        app = DrApp(config, clock, start=path)
        async with app.run_test(size=(100, 30), message_hook=hook) as pilot:
            thread = threading.Thread(target=writer)
            thread.start()
            started.set()
            await pilot.pause()
            await pilot.press("f")  # a key handled while the stream pours in
            screen = await run_ended(pilot)
            thread.join()
            log = screen.query_one(LogPanel)
            assert screen.view.log_lines == lines_total
            assert log.line_count == lines_total
            assert log.lines[-1] == f"pg │ line {lines_total - 1}"
            assert log.auto_scroll is False
            assert "✔ done" in screen_text(app)

    asyncio.run(scenario())
    assert sum(len(m.events) for m in batches.values()) == events_written
    assert len(batches) < events_written / 10, "events arrive batched, not one message each"


def test_result_screen_of_a_good_run_shows_checks_objectives_and_records(config, clock) -> None:
    path = write_run(config, ok=True)

    async def scenario() -> str:
        app = DrApp(config, clock, start=path)
        async with app.run_test(size=(100, 40)) as pilot:
            await run_ended(pilot)
            await open_result(pilot)
            return screen_text(app)

    text = asyncio.run(scenario())
    assert "✔ recovered" in text
    assert "✔ passed  readyz" in text and "– skipped uploads" in text
    assert "RTO  " in text and "within" in text
    assert "RPO       53s" in text
    assert str(path) in text and "pitr-20260125T143000Z.md" in text


def test_result_screen_of_a_failed_run_says_how_back_and_where_to_look(config, clock) -> None:
    path = write_run(config, "failed-run", ok=False)

    async def scenario() -> tuple[str, str]:
        app = DrApp(config, clock, start=path)
        async with app.run_test(size=(100, 40)) as pilot:
            await run_ended(pilot)
            run_text = screen_text(app)
            await open_result(pilot)
            return run_text, screen_text(app)

    run_text, text = asyncio.run(scenario())
    assert "✘ failed" in run_text and "✘ failed  Replay WAL until the target" in run_text
    assert "✘ Replay WAL until the target: recovery ended before the target time" in run_text  # whole, not cut
    assert "✘ failed" in text
    assert "recovery ended before the target time" in text
    assert "x rolls back: puts back the data directory kept at" in text and "main.pre_pitr_20260125T143000Z" in text
    assert "drtui rollback" not in text  # the screen does it itself: x
    assert "/readyz" in text and "migrations" in text
    assert "logs/production.log" in text
