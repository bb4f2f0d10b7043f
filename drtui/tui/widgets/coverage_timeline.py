from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from drtui.core.models import BaseBackup, WalCoverage, Window
from drtui.tui.format import utc_and_local

LABEL = 7
FINE, COARSE = 1, 10


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime


def covered_spans(coverage: WalCoverage | None) -> dict[int, tuple[list[Span], list[Span]]]:
    """Per timeline, the spans the archive covers and the gaps between them, by archive time."""
    result: dict[int, tuple[list[Span], list[Span]]] = {}
    if coverage is None:
        return result
    for timeline, segnos in coverage.segments.items():
        times = [datetime.fromtimestamp(t, UTC) for t in coverage.archived_at.get(timeline, [])]
        if not segnos or len(times) != len(segnos):
            continue
        covered, gaps = [], []
        run_start = times[0]
        for i in range(1, len(segnos)):
            if segnos[i] != segnos[i - 1] + 1:
                covered.append(Span(run_start, times[i - 1]))
                gaps.append(Span(times[i - 1], times[i]))
                run_start = times[i]
        covered.append(Span(run_start, times[-1]))
        result[timeline] = (covered, gaps)
    return result


def axis_format(start: datetime, end: datetime, labels: int) -> str:
    """How the axis writes a moment: with the date when the range crosses a day, with seconds when the labels
    would otherwise read the same (a short window)."""
    if end - start >= timedelta(days=1) or start.date() != end.date():
        return "%m-%d %H:%M"
    if (end - start) / max(labels - 1, 1) < timedelta(minutes=2):
        return "%H:%M:%S"
    return "%H:%M"


class CoverageTimeline(Widget, can_focus=True):
    """The WAL archive over time, up to now: covered spans per timeline, gaps, base backups as marks, the
    chosen backup's reach, and a cursor moved by keys (fine and coarse, home and end) or the mouse. `marks`
    (moment, symbol) are drawn on a row of their own (events around the target, say)."""

    DEFAULT_CSS = """
    CoverageTimeline { height: auto; border: round $primary 40%; padding: 0 1; }
    CoverageTimeline:focus { border: round $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1)", "◀ fine", show=False),
        Binding("right", "move(1)", "fine ▶", show=False),
        Binding("shift+left,pageup", "move(-10)", "◀◀ coarse"),
        Binding("shift+right,pagedown", "move(10)", "coarse ▶▶"),
        Binding("home", "edge(0)", "start", show=False),
        Binding("end", "edge(1)", "end", show=False),
        Binding("enter", "choose", "Use this time"),
    ]

    cursor: reactive[datetime | None] = reactive(None)

    @dataclass
    class CursorMoved(Message):
        timeline: CoverageTimeline
        at: datetime
        reachable: bool

        @property
        def control(self) -> CoverageTimeline:
            return self.timeline

    @dataclass
    class TimeChosen(Message):
        timeline: CoverageTimeline
        at: datetime

        @property
        def control(self) -> CoverageTimeline:
            return self.timeline

    def __init__(self, coverage: WalCoverage | None, backups: list[BaseBackup], windows: list[Window],
                 now: datetime, chosen: int = 0, marks: list[tuple[datetime, str]] | None = None,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.coverage = coverage
        self.marks = marks or []  # (moment, symbol) to point out: the destructive transactions found around here
        self.backups = backups
        self.windows = windows
        self.chosen = chosen
        self.spans = covered_spans(coverage)
        moments = [b.start_time for b in backups]
        for covered, gaps in self.spans.values():
            moments += [s.start for s in covered + gaps] + [s.end for s in covered + gaps]
        for window in windows:
            moments += [m for m in (window.earliest, window.latest) if m is not None]
        self.start = min(moments, default=now - timedelta(hours=1))
        self.end = max([*moments, now])  # up to now: a window that lags behind shows it
        if self.end - self.start < timedelta(minutes=1):
            self.end = self.start + timedelta(minutes=1)
        self.border_title = "WAL coverage"
        self.border_subtitle = "█ covered ▒ gap ◆ chosen backup ◇ backup ━ reach"
        window = self.window
        self.set_reactive(CoverageTimeline.cursor, (window.latest if window and window.latest else self.end))

    @property
    def window(self) -> Window | None:
        return self.windows[self.chosen] if 0 <= self.chosen < len(self.windows) else None

    def reachable(self, moment: datetime) -> bool:
        window = self.window
        return bool(window and window.contains(moment))

    @property
    def columns(self) -> int:
        return max(self.content_size.width - LABEL, 10)

    def _time_at(self, column: int) -> datetime:
        span = self.end - self.start
        return self.start + span * (min(max(column, 0), self.columns - 1) / max(self.columns - 1, 1))

    def _column_of(self, moment: datetime) -> int:
        span = (self.end - self.start).total_seconds()
        share = (moment - self.start).total_seconds() / span if span else 0
        return round(min(max(share, 0.0), 1.0) * (self.columns - 1))

    def set_cursor(self, moment: datetime) -> None:
        self.cursor = min(max(moment, self.start), self.end)
        self.post_message(self.CursorMoved(self, self.cursor, self.reachable(self.cursor)))

    def set_marks(self, marks: list[tuple[datetime, str]]) -> None:
        self.marks = marks
        self.border_subtitle = self.border_subtitle.removesuffix(" ✕ event") + (" ✕ event" if marks else "")
        self.refresh(layout=True)

    def choose_backup(self, index: int) -> None:
        self.chosen = index
        if self.cursor is not None:
            self.post_message(self.CursorMoved(self, self.cursor, self.reachable(self.cursor)))
        self.refresh()

    def action_move(self, steps: int) -> None:
        """From column to column: columns - 1 presses cross the whole range."""
        column = self._column_of(self.cursor or self.end) + steps
        self.set_cursor(self._time_at(min(max(column, 0), self.columns - 1)))

    def action_edge(self, which: int) -> None:
        self.set_cursor(self.start if which == 0 else self.end)

    def action_choose(self) -> None:
        if self.cursor is not None:
            self.post_message(self.TimeChosen(self, self.cursor))

    def on_click(self, event: events.Click) -> None:
        column = event.x - self.gutter.left - LABEL
        if 0 <= column < self.columns:
            self.set_cursor(self._time_at(column))

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        return 4 + max(len(self.spans), 1) + bool(self.marks)

    def render(self) -> Text:
        cols = self.columns
        cursor_col = self._column_of(self.cursor) if self.cursor else -1
        text = Text(no_wrap=True, overflow="crop")

        text.append(" " * LABEL + self.axis() + "\n", style="dim")

        text.append("base".ljust(LABEL), style="dim")
        marks = [" "] * cols
        for index, backup in enumerate(self.backups):
            marks[self._column_of(backup.start_time)] = "◆" if index == self.chosen else "◇"
        self._row(text, ["bold magenta" if c == "◆" else "" for c in marks], marks, cursor_col)

        rows = sorted(self.spans) or [0]
        for timeline in rows:
            covered, gaps = self.spans.get(timeline, ([], []))
            cells, styles = [], []
            for col in range(cols):
                moment = self._time_at(col)
                if any(g.start < moment < g.end for g in gaps):
                    cells.append("▒")
                    styles.append("bold yellow")
                elif any(s.start <= moment <= s.end for s in covered):
                    cells.append("█")
                    styles.append("green")
                else:
                    cells.append("·")
                    styles.append("dim")
            text.append(f"TL {timeline}".ljust(LABEL) if len(rows) > 1 or timeline else "WAL".ljust(LABEL),
                        style="dim")
            self._row(text, styles, cells, cursor_col)

        if self.marks:
            cells = [" "] * cols
            for moment, symbol in self.marks:
                if self.start <= moment <= self.end:
                    cells[self._column_of(moment)] = symbol[:1]
            text.append("events".ljust(LABEL), style="dim")
            self._row(text, ["bold red" if c != " " else "" for c in cells], cells, cursor_col)

        window = self.window
        reach = [" "] * cols
        if window and window.earliest and window.latest:
            for col in range(self._column_of(window.earliest), self._column_of(window.latest) + 1):
                reach[col] = "━"
        text.append("reach".ljust(LABEL), style="dim")
        self._row(text, ["cyan"] * cols, reach, cursor_col)

        if self.cursor is not None:
            ok = self.reachable(self.cursor)
            text.append(f"cursor {utc_and_local(self.cursor)} ", style="bold")
            text.append("✔ reachable" if ok else "✘ not reachable", style="green" if ok else "red")
        return text

    def axis(self) -> str:
        """Evenly spaced labels, as many as fit, each one distinct."""
        cols = self.columns
        width = len(self._time_at(0).strftime(axis_format(self.start, self.end, 5)))
        count = min(5, max(2, cols // (width + 4)))
        fmt = axis_format(self.start, self.end, count)
        axis = [" "] * cols
        for index in range(count):
            col = round(index * (cols - 1) / (count - 1))
            label = self._time_at(col).strftime(fmt)
            at = min(max(col - len(label) // 2, 0), cols - len(label))
            axis[at:at + len(label)] = label
        return "".join(axis)

    @staticmethod
    def _row(text: Text, styles: list[str], cells: list[str], cursor_col: int) -> None:
        for col, (cell, style) in enumerate(zip(cells, styles, strict=True)):
            text.append(cell if col != cursor_col or cell.strip() else "│", style=f"{style} reverse".strip()
                        if col == cursor_col else style)
        text.append("\n")
