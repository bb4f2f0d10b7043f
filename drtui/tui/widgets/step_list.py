from __future__ import annotations

import textwrap
from datetime import datetime

from rich.markup import escape
from textual.widgets import Static

from drtui.core.clock import format_duration
from drtui.tui.format import DONE, PENDING, RUNNING, SKIPPED, state_markup
from drtui.tui.run_state import RunView

STATE, TOOK = 9, 7  # "● running", "12m 05s"
CHROME = 14  # the run screen's lines around the steps: header, head, borders, the failure, a small log, footer


class StepList(Static):
    """The run's steps as a checklist: symbol, word and duration per step. A title longer than its column wraps
    inside it (never cut); when the steps are taller than the terminal leaves them, the first finished ones (then
    the last pending ones) are folded into one counted line, so the running or failed step is always in view."""

    DEFAULT_CSS = """
    StepList { height: auto; padding: 0 1; }
    """

    def show(self, view: RunView, now: datetime) -> None:
        if not view.steps:
            self.update("[dim]waiting for the run to start…[/]")
            return
        width = max(10, self.content_size.width - STATE - TOOK - 2)
        blocks: list[tuple[str, list[str]]] = []
        for step in view.steps.values():
            seconds = step.seconds
            if step.outcome == RUNNING and step.started_at is not None:
                seconds = max((now - step.started_at).total_seconds(), 0)
            took = format_duration(seconds) if seconds is not None else ""
            first, *rest = textwrap.wrap(view.title(step), width) or [""]
            lines = [f"{state_markup(step.outcome, f'{step.outcome:<7}')} {escape(first.ljust(width))} "
                     f"[dim]{took:>{TOOK}}[/]"]
            blocks.append((step.outcome, lines + [" " * (STATE + 1) + escape(line) for line in rest]))
        self.update("\n".join(fold(blocks, max(6, self.app.size.height - CHROME))))


def fold(blocks: list[tuple[str, list[str]]], limit: int) -> list[str]:
    """The steps' lines within `limit`: leading finished steps, then trailing pending ones, folded and counted."""
    head = 0
    while sum(len(lines) for _, lines in blocks[head:]) + (head > 0) > limit and head < len(blocks) - 1 \
            and blocks[head][0] in (DONE, SKIPPED):
        head += 1
    tail = len(blocks)
    while sum(len(lines) for _, lines in blocks[head:tail]) + (head > 0) + (tail < len(blocks)) > limit \
            and tail - 1 > head and blocks[tail - 1][0] == PENDING:
        tail -= 1
    out = [state_markup(DONE, f"{head} step{'s' * (head != 1)} done before")] if head else []
    out += [line for _, lines in blocks[head:tail] for line in lines]
    if tail < len(blocks):
        out.append(state_markup(PENDING, f"{len(blocks) - tail} more to come"))
    return out
