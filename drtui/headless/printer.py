"""Events as the headless face shows them: plain progress on a terminal, one line per event otherwise (progress
and the RTO clock at most once per step or every 10 s there, for cron mail), and the final summary (plain, or
the `--json` document)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, TextIO

import humanize

from drtui.core.clock import format_duration
from drtui.core.events import (
    CheckCompleted,
    Event,
    RtoTicked,
    RunFinished,
    RunStarted,
    StepFailed,
    StepFinished,
    StepLogged,
    StepProgressed,
    StepStarted,
)
from drtui.core.promote import pause_hint
from drtui.core.secrets import redact
from drtui.core.status import InterruptedRun

QUIET_SECONDS = 10.0  # off a terminal: at most one progress (or RTO clock) line this often within a step


def _amount(value: float, unit: str) -> str:
    return humanize.naturalsize(value, binary=True) if unit in ("bytes", "lsn") else f"{value:.0f} {unit}"


def progress_text(event: StepProgressed) -> str:
    done = _amount(event.done, event.unit)
    text = f"{done} of {_amount(event.total, event.unit)}" if event.total else done
    if event.total:
        text += f" ({100 * event.done / event.total:.0f}%)"
    detail = event.detail
    if detail.get("replay_lsn"):
        text += f", replayed to {detail['replay_lsn']}"
    if detail.get("replay_time"):
        text += f", last transaction {detail['replay_time']}"
    if detail.get("bytes_per_second"):
        text += f", {humanize.naturalsize(detail['bytes_per_second'], binary=True)}/s"
    if detail.get("eta_seconds") is not None:
        text += f", about {format_duration(detail['eta_seconds'])} left"
    return text


def event_line(event: Event) -> str:
    """One line for one event (the non-terminal form)."""
    at = event.at.strftime("%H:%M:%S")
    match event:
        case RunStarted():
            return f"{at} run {event.run_id}: {event.journey} of {event.environment} ({len(event.steps)} steps)"
        case StepStarted():
            return f"{at} {event.step}: started"
        case StepProgressed():
            return f"{at} {event.step}: {progress_text(event)}"
        case StepLogged():
            prefix = "server" if event.source == "server" else event.step
            return "\n".join(f"{at} {prefix}: {line}" for line in event.lines)
        case StepFinished() if event.skipped:
            return f"{at} {event.step}: skipped"
        case StepFinished():
            return f"{at} {event.step}: done in {format_duration(event.seconds)}"
        case StepFailed():
            return f"{at} {event.step}: FAILED after {format_duration(event.seconds)}: {event.error}" + (
                f"\n{at} {event.step}: hint: {event.hint}" if event.hint else "")
        case CheckCompleted():
            return f"{at} check {event.name}: {event.outcome}" + (f" ({event.detail})" if event.detail else "")
        case RtoTicked():
            return f"{at} RTO clock: {format_duration(event.elapsed_seconds)}"
        case RunFinished():
            return f"{at} run finished: {'ok' if event.ok else 'FAILED'}"
    return f"{at} {event.kind}"


class EventPrinter:
    """Writes events to a stream: on a terminal, progress rewrites one line; elsewhere one line per event."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self._open_progress = False
        self._shown: dict[str, tuple[str, datetime]] = {}  # kind -> (step, time) of the last line shown

    def _quiet(self, event: Event) -> bool:
        """Whether to leave out a progress or RTO clock line: one was shown for this step less than
        QUIET_SECONDS ago (by the events' own times, so a journal read back is thinned the same way)."""
        if isinstance(event, StepProgressed):
            kind, step = "progress", event.step
        elif isinstance(event, RtoTicked):
            kind, step = "rto", ""
        else:
            return False
        last = self._shown.get(kind)
        if last and last[0] == step and (event.at - last[1]).total_seconds() < QUIET_SECONDS:
            return True
        self._shown[kind] = (step, event.at)
        return False

    def _write(self, text: str) -> None:
        self.stream.write(redact(text))
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        if not self.tty:
            if not self._quiet(event):
                self._write(event_line(event) + "\n")
            return
        if isinstance(event, RtoTicked):
            return
        if isinstance(event, StepProgressed):
            self._write(f"\r\033[K  {progress_text(event)}")
            self._open_progress = True
            return
        if self._open_progress:
            self._write("\n")
            self._open_progress = False
        match event:
            case StepStarted():
                self._write(f"▶ {event.title or event.step}\n")
            case StepFinished() if event.skipped:
                self._write(f"– {event.step} skipped\n")
            case StepFinished():
                self._write(f"✓ {event.step} ({format_duration(event.seconds)})\n")
            case StepFailed():
                self._write(f"✗ {event.step}: {event.error}\n" + (f"  hint: {event.hint}\n" if event.hint else ""))
            case StepLogged():
                mark = "│ " if event.source == "server" else "  "
                self._write("".join(f"{mark}{line}\n" for line in event.lines))
            case _:
                self._write(event_line(event).split(" ", 1)[1] + "\n")


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The final summary in words."""
    lines = [f"{summary['journey']} of {summary['environment']}: {'OK' if summary['ok'] else 'FAILED'}"]
    if summary.get("recovered_to"):
        lines.append(f"  recovered to  {summary['recovered_to']}")
    if summary.get("paused_at_target"):
        lines.append(f"  paused at the target: {pause_hint(summary['environment'])}")
    if summary.get("rto_seconds") is not None:
        lines.append(f"  RTO           {format_duration(summary['rto_seconds'])}")
    if summary.get("rpo_seconds") is not None:
        lines.append(f"  RPO           {format_duration(summary['rpo_seconds'])}")
    if summary.get("preserved"):
        lines.append(f"  old data kept {summary['preserved']}")
    for step in summary["steps"]:
        lines.append(f"  {step['outcome']:<9} {step['name']:<16} {format_duration(step['seconds'])}")
    counts: dict[str, int] = {}
    for check in summary.get("checks", []):
        counts[check["outcome"]] = counts.get(check["outcome"], 0) + 1
    if counts:
        lines.append("  checks        " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    if summary.get("error"):
        lines.append(f"  error         {summary['error']}")
    if summary.get("hint"):
        lines.append(f"  next          {summary['hint']}")
    lines.append(f"  journal       {summary['journal']}")
    if summary.get("report"):
        lines.append(f"  report        {summary['report']}")
    return lines


def drill_lines(summary: dict[str, Any]) -> list[str]:
    """A drill's summary in words."""
    lines = [f"drill of {summary['environment']} from {summary['source']}: {'PASS' if summary['ok'] else 'FAIL'}"]
    if summary.get("target"):
        lines.append(f"  target        {summary['target']}")
    if summary.get("rto_seconds") is not None:
        lines.append(f"  RTO           {format_duration(summary['rto_seconds'])}")
    rpo = summary.get("rpo") or {}
    if rpo.get("rpo_seconds") is not None:
        lines.append(f"  RPO           {format_duration(rpo['rpo_seconds'])} (last commit {rpo.get('last_commit')})")
    for step in summary["steps"]:
        lines.append(f"  {step['outcome']:<9} {step['name']:<16} {format_duration(step['seconds'])}")
    failed = [c for c in summary["checks"] if c["outcome"] == "failed" and c["phase"] != "pre"]
    for check in failed:
        lines.append(f"  FAILED check  {check['name']}: {check['detail']}")
    if summary.get("error"):
        lines.append(f"  error         {summary['error']}")
    if summary.get("hint"):
        lines.append(f"  next          {summary['hint']}")
    lines.append(f"  journal       {summary['journal']}")
    lines.append(f"  report        {summary['report']}")
    return lines


def interrupted_lines(runs: list[InterruptedRun]) -> list[str]:
    """`drtui status`'s section on runs that were killed before their end: what happened, what to do."""
    lines = []
    for run in runs:
        lines += ["", f"Interrupted run ({run.environment})", *(f"  {line}" for line in run.describe()),
                  f"  next: {run.what_to_do()}"]
    return lines
