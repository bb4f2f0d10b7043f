"""How the wizard writes numbers, times and states: humanize lives here, never in core."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import humanize
from rich.console import Group
from rich.table import Table
from rich.text import Text

from drtui.core.clock import isoformat

DONE, FAILED, RUNNING, PENDING, SKIPPED = "done", "failed", "running", "pending", "skipped"

SYMBOLS = {DONE: "✔", FAILED: "✘", RUNNING: "●", PENDING: "○", SKIPPED: "–",
           "passed": "✔", "ok": "✔", "warning": "▲", "stale": "▲", "missing": "✘", "refused": "✘",
           "unreadable": "?", "unknown": "?"}
STYLES = {DONE: "green", "passed": "green", "ok": "green", FAILED: "red", "refused": "red", "missing": "red",
          "unreadable": "red", RUNNING: "yellow", "warning": "yellow", "stale": "yellow",
          PENDING: "dim", SKIPPED: "dim"}


# The core's hints are written for every face; where one names a CLI flag or command for something the wizard
# does itself, the wizard says it in its own words.
WIZARD_WORDS = [
    (re.compile(r"\s*\(--env \w+\)"), " (typed on this screen)"),
    (re.compile(r"\s*\(or --env \w+\)"), ""),
    (re.compile(r"\s*\(TARGET_TIME, --target-time\)"), ""),
    (re.compile(r"\s*\(see `drtui inventory`\)"), " (see the timeline)"),
    (re.compile(r" shown by `drtui inventory`"), " on the timeline, or go back (esc) to another backup"),
    (re.compile(r" with --base-backup"), " (esc: back to the backups)"),
    (re.compile(r": pass --base-backup"), ": go back (esc) and pick it"),
    (re.compile(r"\s*\(--target-time\)"), " (kind: time)"),
    (re.compile(r"\s*\(--target-time, --target-lsn\)"), " (kind: time or LSN)"),
    (re.compile(r"run `drtui drill` on staging"), "start the drill (d on Home)"),
    (re.compile(r"run `drtui inventory` to see why"), "open the recovery (p on Home) to see why"),
    (re.compile(r"follow it with `drtui attach`"), "follow it from Home (a)"),
    (re.compile(r"`drtui rollback --env [\w-]+`"), "x on the result screen (r)"),
    (re.compile(r"then `drtui restore promote --env [\w-]+` to end recovery, or `drtui restore advance --env [\w-]+ "
                r"--target-time T` to replay on to a later target"),
     "then open its run (a) and its result (r): p promotes it, a replays on to a later target"),
]


def in_wizard_words(text: str) -> str:
    for pattern, words in WIZARD_WORDS:
        text = pattern.sub(words, text)
    return text


def state_markup(state: str, label: str | None = None) -> str:
    """A state as symbol and word, coloured: readable without colour too."""
    symbol = SYMBOLS.get(state, "?")
    style = STYLES.get(state, "")
    text = f"{symbol} {label if label is not None else state}"
    return f"[{style}]{text}[/]" if style else text


def elide(text: str, width: int) -> str:
    """Cut to `width` with an ellipsis that says so; the whole text is shown elsewhere, one key away."""
    return text if len(text) <= width else text[:width - 1] + "…"


def size(n: float | None) -> str:
    return "—" if n is None else humanize.naturalsize(n, binary=True, format="%.1f")


def age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "—"
    return humanize.naturaldelta(now - moment) + " ago"


def utc(moment: datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def utc_and_local(moment: datetime | None) -> str:
    """`2026-01-25 14:30:00 UTC (15:30:00 CET)`: the operator thinks in local time, the server in UTC."""
    if moment is None:
        return "—"
    return f"{utc(moment)} ({moment.astimezone().strftime('%H:%M:%S %Z')} local)"


def short_time(moment: datetime | None) -> str:
    return "—" if moment is None else isoformat(moment)[5:16].replace("T", " ")


def labelled(title: str, lines: list[str], label_width: int = 10) -> Group:
    """A titled panel of `label    value` lines: a long value wraps inside its column, never to column 0."""
    table = Table.grid(padding=(0, 0), expand=True)
    table.add_column(width=label_width, no_wrap=True)
    table.add_column(ratio=1, overflow="fold")
    for line in lines:
        table.add_row(Text.from_markup(line[:label_width]), Text.from_markup(line[label_width:]))
    return Group(Text.from_markup(title), table)


def gate_rows(gates: list) -> Group:
    """The safety gates, one row each (state, name, what it found; how to fix a refused one), wrapped in columns."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, min_width=10)
    table.add_column(ratio=1, overflow="fold")
    for gate in gates:
        state = state_markup("passed", "pass") if gate.passed else state_markup("refused", "refused")
        table.add_row(Text.from_markup(state + " "), gate.name, gate.message)
        if not gate.passed and gate.hint:
            table.add_row("", Text.from_markup("[b]fix:[/]"), in_wizard_words(gate.hint))
    return Group(Text.from_markup("[b]safety gates[/]"), table)
