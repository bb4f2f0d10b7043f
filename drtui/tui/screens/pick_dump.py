from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from drtui.core.models import Artifact
from drtui.tui.format import age, short_time, size


class PickDumpScreen(Screen[Path | None]):
    """Step 1 of the staging restore: the dumps, newest first."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "pick", "Use this dump", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, dumps: list[Artifact], environment: str) -> None:
        super().__init__()
        self.dumps = dumps
        self.environment = environment

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"[b]1 of 2 · pick a dump[/] to load into {self.environment}", classes="step-head")
        yield DataTable(id="dumps", cursor_type="row", zebra_stripes=True)
        yield Static(id="dump-note", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("dump", "taken (UTC)", "age", "size")
        now = self.app.clock.now()  # type: ignore[attr-defined]
        for index, dump in enumerate(self.dumps):
            table.add_row(dump.path.name, short_time(dump.name_time), age(dump.name_time, now),
                          size(dump.size_bytes), key=str(index))
        note = ("[red]✘ no dumps[/] in the backup folder: take one with `drtui backup dump`" if not self.dumps else
                "the staging database is replaced; a pre_restore dump of it is kept first")
        self.query_one("#dump-note", Static).update(note)
        table.focus()

    def action_pick(self) -> None:
        if self.dumps:
            self.dismiss(self.dumps[self.query_one(DataTable).cursor_row].path)

    def action_back(self) -> None:
        self.dismiss(None)
