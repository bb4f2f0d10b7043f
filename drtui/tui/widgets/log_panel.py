from __future__ import annotations

from textual import events
from textual.widgets import Log


class LogPanel(Log):
    """The engine's and the server's lines, appended in batches and capped so memory stays flat."""

    DEFAULT_CSS = """
    LogPanel { border: round $primary 50%; border-title-color: $text-muted; }
    """

    def __init__(self, max_lines: int = 100_000, **kwargs: object) -> None:
        super().__init__(max_lines=max_lines, highlight=False, auto_scroll=True, **kwargs)  # type: ignore[arg-type]
        self.border_title = "log"

    def on_resize(self, event: events.Resize) -> None:
        """Still at the end when the panel shrinks (the step list above it grows as the journal is read)."""
        if self.auto_scroll:
            self.scroll_end(animate=False)
