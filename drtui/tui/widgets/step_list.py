from __future__ import annotations

import textwrap
from datetime import datetime

from rich.markup import escape
from textual.widgets import Static

from drtui.tui.format import RUNNING, duration, state_markup
from drtui.tui.run_state import RunView

STATE, TOOK = 9, 7  # "✔ running", "12m 05s"


class StepList(Static):
    """The run's steps as a checklist: symbol, word and duration per step. A title longer than its column wraps
    inside it (never cut); `current_line` is where the running or failed step begins, to scroll it into view."""

    DEFAULT_CSS = """
    StepList { height: auto; padding: 0 1; }
    """

    current_line = 0

    def show(self, view: RunView, now: datetime) -> None:
        if not view.steps:
            self.update("[dim]waiting for the run to start…[/]")
            return
        width = max(10, self.content_size.width - STATE - TOOK - 2)
        rows: list[str] = []
        for step in view.steps.values():
            seconds = step.seconds
            if step.outcome == RUNNING and step.started_at is not None:
                seconds = max((now - step.started_at).total_seconds(), 0)
            took = duration(seconds) if seconds is not None else ""
            if step.outcome in (RUNNING, "failed"):
                self.current_line = len(rows)
            first, *rest = textwrap.wrap(view.title(step), width) or [""]
            rows.append(f"{state_markup(step.outcome, f'{step.outcome:<7}')} {escape(first.ljust(width))} "
                        f"[dim]{took:>{TOOK}}[/]")
            rows += [" " * (STATE + 1) + escape(line) for line in rest]
        self.update("\n".join(rows))
