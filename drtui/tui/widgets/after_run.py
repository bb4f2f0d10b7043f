from __future__ import annotations

import re
from dataclasses import dataclass

from textual import on, work
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.compare import Comparison, compare_with_production
from drtui.core.config import Config
from drtui.core.errors import DrError
from drtui.core.new_timeline import fresh_backup_note
from drtui.tui.run_state import RunView


@dataclass
class CountsRead(Message):
    comparison: Comparison | None
    error: str = ""


@dataclass
class BackupTaken(Message):
    text: str
    ok: bool


class PausedCounts(Static):
    """A candidate paused at its target: its row counts per table next to production's, counted in a worker."""

    def __init__(self, config: Config, environment: str) -> None:
        super().__init__("[b]look before you leap[/]\n[dim]counting the rows of every table…[/]", id="paused-counts",
                         classes="panel")
        self.config, self.environment = config, environment

    def on_mount(self) -> None:
        self._count()

    @work(thread=True, group="compare", exit_on_error=False)
    def _count(self) -> None:
        try:
            comparison = compare_with_production(self.config, self.config.environment(self.environment))
        except DrError as exc:
            self.post_message(CountsRead(None, exc.title))
            return
        self.post_message(CountsRead(comparison))

    @on(CountsRead)
    def _counted(self, message: CountsRead) -> None:
        self.update(counts_markup(message.comparison, message.error))


def counts_markup(comparison: Comparison | None, error: str = "") -> str:
    if comparison is None:
        return f"[b]look before you leap[/]\n[red]✘ not counted: {error}[/]"
    lines = comparison.lines()
    return "[b]look before you leap[/]\n" + "\n".join(
        f"[red]{line}[/]" if "missing" in line or "only in" in line else line for line in lines)


class FreshBackup(Static):
    """After a restore over production: the old backups stop at the old timeline; b takes a fresh one."""

    def __init__(self, config: Config, environment: str, note: str) -> None:
        # the wizard takes it itself: its key instead of the command the headless note names
        note = re.sub(r"\s*\(`drtui backup base[^`]*`\)", "", note)
        super().__init__(f"[b]next: a fresh base backup[/] · [b]press b[/] to take it now\n[yellow]▲[/] {note}",
                         id="fresh-backup", classes="panel")
        self.config, self.environment, self.taking = config, environment, False

    def take(self) -> None:
        if not self.taking:
            self.taking = True
            self.update("[b]next: a fresh base backup[/]\n[dim]taking a base backup of the new timeline…[/]")
            self._backup()

    @work(thread=True, group="backup", exit_on_error=False)
    def _backup(self) -> None:
        try:
            made = backup.base(self.config, self.config.environment(self.environment), SystemClock())
        except DrError as exc:
            self.post_message(BackupTaken(f"{exc.title}\n  {exc.hint}", False))
            return
        self.post_message(BackupTaken(", ".join(str(a.path) for a in made.artifacts), True))

    @on(BackupTaken)
    def _taken(self, message: BackupTaken) -> None:
        self.taking = message.ok  # after a failure, b tries again
        mark = "[green]✔ fresh base backup[/]" if message.ok else "[red]✘ the base backup failed:[/]"
        self.update(f"[b]next: a fresh base backup[/]\n{mark} {message.text}")


def after_run_panels(view: RunView, config: Config) -> list[Widget]:
    """The result screen's panels for what comes after this run, if anything does."""
    summary = view.finished.summary if view.finished else {}
    paused = bool(summary.get("paused_at_target"))
    if view.ok and paused:
        return [PausedCounts(config, view.environment)]
    note = fresh_backup_note(config, view.environment, view.journey, view.ok, paused)
    return [FreshBackup(config, view.environment, note)] if note else []


def take_fresh_backup(screen: Widget) -> None:
    """The result screen's b: the fresh base backup its panel offers."""
    panels = screen.query(FreshBackup)
    if panels:
        panels.first().take()
    else:
        screen.notify("a fresh base backup is offered after a restore over production", severity="information")
