from __future__ import annotations

from datetime import datetime

from textual.widgets import Static

from drtui.tui.format import RUNNING, duration, state_markup
from drtui.tui.run_state import RunView


class StepList(Static):
    """The run's steps as a checklist: symbol, word and duration per step."""

    DEFAULT_CSS = """
    StepList { height: auto; padding: 0 1; }
    """

    def show(self, view: RunView, now: datetime) -> None:
        if not view.steps:
            self.update("[dim]waiting for the run to start…[/]")
            return
        title_width = max(10, self.content_size.width - 18)
        rows = []
        for step in view.steps.values():
            seconds = step.seconds
            if step.outcome == RUNNING and step.started_at is not None:
                seconds = max((now - step.started_at).total_seconds(), 0)
            took = duration(seconds) if seconds is not None else ""
            title = step.title if len(step.title) <= title_width else step.title[:title_width - 1] + "…"
            title = title.ljust(title_width)
            rows.append(f"{state_markup(step.outcome, f'{step.outcome:<7}')} {title} [dim]{took:>6}[/]")
        self.update("\n".join(rows))
