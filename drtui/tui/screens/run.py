from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, ProgressBar, Static
from textual.worker import get_current_worker

from drtui.core.journal import follow_batches
from drtui.core.models import format_lsn
from drtui.tui.format import in_wizard_words, size
from drtui.tui.messages import JournalFailed, JournalRead
from drtui.tui.run_state import Progress, RunView
from drtui.tui.widgets.log_panel import LogPanel
from drtui.tui.widgets.rto_timer import RtoTimer
from drtui.tui.widgets.step_list import StepList

JOURNEYS = {"pitr": "Point-in-time recovery", "staging": "Staging restore", "drill": "Automated drill",
            "rollback": "Rollback", "verify": "Verify"}


class RunScreen(Screen[None]):
    """A run followed live from its journal: the journal is the only source, so a re-attach shows the same."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "result", "Result"),
        Binding("f", "toggle_follow", "Follow log"),
        Binding("escape", "leave", "Home"),
    ]

    def __init__(self, journal: Path) -> None:
        super().__init__()
        self.journal = journal
        self.view = RunView(journal)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="run-head")
        with Horizontal(id="run-top"):
            yield StepList(id="steps")
            with Vertical(id="run-gauges"):
                yield RtoTimer(id="rto")
                yield Static("extract  [dim]○ pending[/]", id="extract-label")
                yield ProgressBar(total=100, show_eta=False, id="extract-bar")
                yield Static("WAL replay  [dim]○ pending[/]", id="replay-label")
                yield ProgressBar(total=100, show_eta=False, id="replay-bar")
        yield Static(id="run-failure")
        yield LogPanel(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.journal)
        self._refresh_view()
        self.set_interval(1.0, self._refresh_clock)
        self._follow_journal()

    @work(thread=True, group="journal", exclusive=True, exit_on_error=False, description="follow the run journal")
    def _follow_journal(self) -> None:
        worker = get_current_worker()
        try:
            for batch in follow_batches(self.journal, worker.cancelled_event):
                self.post_message(JournalRead(self.journal, batch))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.post_message(JournalFailed(self.journal, str(exc)))

    @on(JournalRead)
    def _journal_read(self, message: JournalRead) -> None:
        lines: list[str] = []
        for event in message.events:
            lines.extend(self.view.apply(event))
        if lines:
            self.query_one(LogPanel).write_lines(lines)
        self._refresh_view()

    @on(JournalFailed)
    def _journal_failed(self, message: JournalFailed) -> None:
        self.notify(f"cannot follow {message.journal}: {message.error}", severity="error", timeout=30)

    def _refresh_clock(self) -> None:
        if self.view.finished is None:
            self._refresh_view()

    def _refresh_view(self) -> None:
        view, now = self.view, self.app.clock.now()  # type: ignore[attr-defined]
        journey = JOURNEYS.get(view.journey, view.journey or "run")
        # the state first and the head wraps: a narrow terminal never cuts the word that matters
        state = ("[dim]● starting[/]" if view.finished is None and not view.run_id else
                 "[yellow]● running[/]" if view.finished is None else
                 "[b green]✔ finished[/] · r: the result" if view.finished.ok else "[b red]✘ failed[/] · r: the result")
        self.query_one("#run-head", Static).update(
            f"{state}  [b]{journey}[/] · {view.environment or '—'} · run {view.run_id or '—'}")
        self.query_one(StepList).show(view, now)
        self.query_one(RtoTimer).show(view.elapsed(now), view.objective(self.app.config),  # type: ignore[attr-defined]
                                      view.projected_finish(now), view.finished is not None, ok=view.ok)
        failure = self.query_one("#run-failure", Static)
        failed = view.failed_step
        failure.display = failed is not None
        if failed is not None:  # the line that says why, whole (the log panel cuts long lines)
            failure.update(f"[b red]✘ {escape(view.title(failed))}:[/] {escape(failed.error)}"
                           + (f"\n  [b]hint:[/] {escape(in_wizard_words(failed.hint))}" if failed.hint else ""))
        # a dump restore reads its dump (bytes) and replays no WAL: only what it does is shown
        for key in ("#replay-label", "#replay-bar"):
            self.query_one(key).display = not view.is_dump
        label = "restore" if view.is_dump else "extract"
        self._show_progress("extract", label, view.extraction, size, f"{label}  [dim]○ pending[/]")
        self._show_progress("replay", "replay", view.replay, lambda n: format_lsn(int(n)),
                            "WAL replay  [dim]○ pending[/]")

    def _show_progress(self, key: str, label: str, progress: Progress | None,
                       fmt: Callable[[float], str], pending: str) -> None:
        if progress is None:
            self.query_one(f"#{key}-label", Static).update(pending)
            return
        bar = self.query_one(f"#{key}-bar", ProgressBar)
        text = f"{label} {fmt(progress.done)}"
        if self.view.step_done(progress):  # its step is done: the bar is full, whatever the last count said
            bar.update(total=1, progress=1)
            text += " [green]✔ done[/]"
        elif progress.total and progress.done <= progress.total:
            bar.update(total=max(progress.total - progress.start, 1), progress=max(progress.done - progress.start, 0))
            text += f" of {fmt(progress.total)}"
        elif progress.total:
            bar.update(total=1, progress=1)
        self.query_one(f"#{key}-label", Static).update(text)

    def action_result(self) -> None:
        from drtui.tui.screens.result import ResultScreen

        if self.view.finished is None:
            self.notify("the run is still going; its result comes when it ends", severity="warning")
            return
        self.app.push_screen(ResultScreen(self.view))

    def action_toggle_follow(self) -> None:
        log = self.query_one(LogPanel)
        log.auto_scroll = not log.auto_scroll
        self.notify("following the log" if log.auto_scroll else "log paused (the run goes on)")

    def action_leave(self) -> None:
        if self.view.finished is None:
            self.notify("the run goes on in its own process; re-attach from Home (a)")
        self.dismiss()
