from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from drtui.core.errors import DrError
from drtui.tui.format import state_markup, utc
from drtui.tui.heartbeats import heartbeat_rows, recovery_summary
from drtui.tui.messages import StatusRefreshed

REFRESH_SECONDS = 5.0


class StatusScreen(Screen[None]):
    """The read-only heartbeat view; it reads the heartbeats again every few seconds."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Back"),
        Binding("ctrl+r", "refresh", "Refresh now"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status-head")
        yield DataTable(id="heartbeat-table", cursor_type="row", zebra_stripes=True)
        yield Static("[dim]reading the inventory…[/]", id="status-recovery", classes="panel")
        yield Static(id="status-note", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self.action_refresh)

    def action_refresh(self) -> None:
        self._read()

    @work(thread=True, group="status", exclusive=True, exit_on_error=False, description="read heartbeats")
    def _read(self) -> None:
        try:
            rows, summary = heartbeat_rows(self.app.config, self.app.clock)  # type: ignore[attr-defined]
            try:
                recovery = recovery_summary(self.app.config, self.app.clock)  # type: ignore[attr-defined]
            except DrError as exc:
                recovery = [f"[red]✘ inventory:[/] {exc.title}"]
        except Exception as exc:  # shown on screen; the view keeps refreshing
            self.post_message(StatusRefreshed([], error=str(exc)))
        else:
            self.post_message(StatusRefreshed(rows, summary, recovery=recovery))

    @on(StatusRefreshed)
    def _refreshed(self, message: StatusRefreshed) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns("state", "heartbeat", "last", "limit", "detail")
        for state, name, age, limit, detail in message.rows:
            table.add_row(Text.from_markup(state_markup(state)), name, age, limit, detail)
        now = self.app.clock.now()  # type: ignore[attr-defined]
        self.query_one("#status-head", Static).update(
            f"[b]status[/] · read {utc(now)} · refreshes every {REFRESH_SECONDS:.0f} s")
        note = f"[red]✘ unreadable[/] {message.error}" if message.error else (
            f"[b]{message.summary}[/]\n[dim]read-only: nothing here changes a server; "
            "`drtui status --check` gives the same states to cron.[/]")
        self.query_one("#status-note", Static).update(note)
        if message.recovery is not None:
            self.query_one("#status-recovery", Static).update("\n".join(message.recovery))

    def action_leave(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.dismiss()
        else:
            self.app.exit()
