"""The headless printer: one line per event off a terminal, a rewritten progress line on one."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from drtui.core.events import (
    CheckCompleted,
    RtoTicked,
    RunStarted,
    StepFailed,
    StepFinished,
    StepLogged,
    StepProgressed,
    StepStarted,
)
from drtui.headless.printer import EventPrinter, summary_lines

AT = datetime(2026, 1, 25, 14, 30, tzinfo=UTC)
EVENTS = [
    RunStarted(AT, "r1", "pitr", "staging", ["extract", "follow_recovery"]),
    StepStarted(AT, "extract", "Extract the base backup"),
    StepProgressed(AT, "extract", 512 * 1024 * 1024, 1024 * 1024 * 1024, "bytes"),
    StepProgressed(AT, "extract", 1024 * 1024 * 1024, 1024 * 1024 * 1024, "bytes"),
    StepFinished(AT, "extract", 2.5),
    StepLogged(AT, "follow_recovery", ["LOG:  redo starts at 0/2000028"], source="server"),
    StepProgressed(AT, "follow_recovery", 16 * 1024 * 1024, 32 * 1024 * 1024, "lsn",
                   {"replay_lsn": "0/3000000", "bytes_per_second": 8 * 1024 * 1024, "eta_seconds": 2.0}),
    StepFailed(AT, "follow_recovery", 3.0, "recovery failed: the restore_command fails", "check the WAL source"),
    CheckCompleted(AT, "readyz", "skipped", "no api_base_url"),
]


def test_one_line_per_event_off_a_terminal() -> None:
    stream = io.StringIO()
    printer = EventPrinter(stream, tty=False)
    for event in EVENTS:
        printer(event)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "14:30:00 run r1: pitr of staging (2 steps)"
    assert "14:30:00 extract: 512.0 MiB of 1.0 GiB (50%)" in lines
    assert "14:30:00 server: LOG:  redo starts at 0/2000028" in lines
    assert any("replayed to 0/3000000" in line and "8.0 MiB/s" in line and "about 2.0s left" in line
               for line in lines)
    assert "14:30:00 follow_recovery: hint: check the WAL source" in lines
    assert lines[-1] == "14:30:00 check readyz: skipped (no api_base_url)"


def test_a_terminal_rewrites_the_progress_line() -> None:
    stream = io.StringIO()
    printer = EventPrinter(stream, tty=True)
    for event in EVENTS[1:5]:
        printer(event)
    text = stream.getvalue()
    assert text.startswith("▶ Extract the base backup\n\r\x1b[K  512.0 MiB of 1.0 GiB (50%)\r\x1b[K  1.0 GiB")
    assert text.endswith("\n✓ extract (2.5s)\n")


def test_summary_lines_name_the_outcome_steps_and_next_step() -> None:
    lines = summary_lines({"ok": False, "journey": "pitr", "environment": "staging", "journal": "/j.jsonl",
                           "steps": [{"name": "extract", "outcome": "failed", "seconds": 1.0}],
                           "checks": [], "error": "boom", "hint": "do this", "rto_seconds": None})
    assert lines[0] == "pitr of staging: FAILED" and "  next          do this" in lines


def test_off_a_terminal_progress_is_one_line_per_step_or_every_ten_seconds() -> None:
    stream = io.StringIO()
    printer = EventPrinter(stream, tty=False)
    printer(StepStarted(AT, "extract", "Extract"))
    for tick in range(120):  # 30 s of progress, four times a second
        printer(StepProgressed(AT + timedelta(seconds=tick / 4), "extract", tick, 120, "bytes"))
        if tick % 20 == 0:
            printer(RtoTicked(AT + timedelta(seconds=tick / 4), tick / 4, 7200.0))
    printer(StepStarted(AT + timedelta(seconds=30), "stage_wal", "Stage"))
    printer(StepProgressed(AT + timedelta(seconds=30.1), "stage_wal", 1, 2, "bytes"))
    lines = stream.getvalue().splitlines()
    progress = [line for line in lines if "extract: " in line and "of" in line]
    assert [line.split()[0] for line in progress] == ["14:30:00", "14:30:10", "14:30:20"]
    assert sum("RTO clock" in line for line in lines) == 3  # at 0, 10 and 20 s (ticks come every 5 s)
    assert lines[-1] == "14:30:30 stage_wal: 1 Byte of 2 Bytes (50%)"  # a new step shows at once


def test_a_rollback_and_a_drill_are_said_from_the_runners_summary() -> None:
    from pathlib import Path

    from drtui.core.run_record import StepState
    from drtui.core.run_summary import DrillFacts, RunSummary
    from drtui.headless.printer import drill_lines

    steps = (StepState("rollback", "Put the data back", outcome="done", seconds=1.0),
             StepState("start_postgres", "Start PostgreSQL", outcome="failed", seconds=0.5, error="no server"))
    lines = summary_lines(RunSummary("r1", False, Path("/j/r1.jsonl"), "staging", "rollback", steps=steps,
                                     error="no server", hint="read the server log").to_json())
    assert lines[0] == "rollback of staging: FAILED"
    assert "  finished  rollback         1.0s" in lines and "  failed    start_postgres   0.5s" in lines
    assert "  next          read the server log" in lines
    failed = CheckCompleted(AT, "smoke_tests", "failed", "exit 3", {"phase": "post"})
    facts = DrillFacts("production", AT, None, {}, {}, Path("/r/pitr_drill.md"))
    lines = drill_lines(RunSummary("r2", False, Path("/j/r2.jsonl"), "staging", "drill", 12.0, checks=(failed,),
                                   rpo={"rpo_seconds": 0.25, "last_commit": "t"}, drill=facts).to_json())
    assert lines[0] == "drill of staging from production: FAIL"
    assert "  RPO           0.2s (last commit t)" in lines and "  FAILED check  smoke_tests: exit 3" in lines
    assert lines[-1] == "  report        /r/pitr_drill.md"
