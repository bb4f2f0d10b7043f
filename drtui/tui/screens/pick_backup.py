from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from drtui.core.errors import DrError
from drtui.core.planning import BackupChoice, InventoryView, Target, backup_choices, check_target
from drtui.tui.format import age, elide, short_time, size, state_markup


class PickBackupScreen(Screen[BackupChoice | None]):
    """Step 1 of the recovery: the base backups, newest first; unusable ones say why (in full in the detail
    panel under the highlighted row). The cursor starts on the
    backup chosen before, else the newest whose window reaches the target typed before, else the newest usable.
    It returns the chosen backup with its window."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "pick", "Use this backup", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, inventory: InventoryView, environment: str, chosen: BackupChoice | None = None,
                 target: Target | None = None) -> None:
        super().__init__()
        self.inventory = inventory
        self.choices = backup_choices(inventory)
        self.environment = environment
        self.chosen = chosen
        self.target = target

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"[b]1 of 3 · pick a base backup[/] to restore {self.environment} from", classes="step-head")
        yield DataTable(id="backups", cursor_type="row", zebra_stripes=True)
        yield Static(id="backup-detail", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("", "taken (UTC)", "age", "data size", "layout", "TL", "reaches up to")
        now = self.app.clock.now()  # type: ignore[attr-defined]
        for index, choice in enumerate(self.choices):
            backup, window = choice.backup, choice.window
            state = state_markup("ok", "usable") if window.usable else state_markup("refused", "unusable")
            reach = short_time(window.latest) if window.usable else elide(window.reason or "", 24)
            table.add_row(state, short_time(backup.start_time), age(backup.start_time, now),
                          size(backup.size_bytes), backup.layout.value, str(backup.timeline), reach, key=str(index))
        if not self.choices:
            self.query_one("#backup-detail", Static).update(
                "[red]✘ no base backups[/] in the backup folder. Take one with `drtui backup base`.")
        else:
            first = self._first()
            table.move_cursor(row=first)
            self._describe(first)
        table.focus()

    def _first(self) -> int:
        usable = [i for i, c in enumerate(self.choices) if c.window.usable]
        if self.chosen in self.choices and self.chosen.window.usable:
            return self.choices.index(self.chosen)
        if self.target is not None:
            for index in usable:
                try:
                    check_target(self.target, self.choices[index].backup, self.choices[index].window, self.inventory)
                except DrError:
                    continue
                return index
        return usable[0] if usable else 0

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._describe(event.cursor_row)

    def _describe(self, index: int) -> None:
        if not 0 <= index < len(self.choices):
            return
        backup, window = self.choices[index].backup, self.choices[index].window
        lines = [f"[b]{backup.path.name}[/]  PostgreSQL {backup.pg_version} · data size {size(backup.size_bytes)}"
                 f" · {size(backup.file_size)} on disk"]
        if window.usable:
            lines.append(f"window {short_time(window.earliest)} → {short_time(window.latest)} UTC"
                         f" [dim]({window.latest_source})[/]")
            if window.cut_by_gap:
                lines.append(f"[yellow]▲ cut by a WAL gap[/] {window.cut_by_gap.from_name} … "
                             f"{window.cut_by_gap.to_name}")
        else:
            lines.append(f"[red]✘ unusable:[/] {window.reason}")
        self.query_one("#backup-detail", Static).update("\n".join(lines))

    def action_pick(self) -> None:
        if not self.choices:
            return
        chosen = self.choices[self.query_one(DataTable).cursor_row]
        if not chosen.window.usable:
            self.notify(f"this backup cannot be restored: {chosen.window.reason}", severity="error")
            return
        self.dismiss(chosen)

    def action_back(self) -> None:
        self.dismiss(None)
