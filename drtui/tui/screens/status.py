"""The read-only status view: every check of `drtui status` as a row with a bar against its limit, the
recoverable window across all backups (each backup's own window on a small timeline) and what to do for each row
that is not OK. It reads everything again every few seconds."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from drtui.core.errors import DrError
from drtui.core.monitoring import EnvironmentStatus, Overrides, collect, usage_lines
from drtui.core.status import Level
from drtui.tui.format import in_wizard_words, short_time, size, utc
from drtui.tui.messages import StatusRefreshed

REFRESH_SECONDS = 5.0
BAR = 10
LEVEL_MARKUP = {Level.OK: "[green]✔ ok[/]", Level.WARNING: "[yellow]▲ warning[/]",
                Level.CRITICAL: "[red]✘ critical[/]", Level.UNKNOWN: "[magenta]? unknown[/]"}
LEVEL_STYLE = {Level.OK: "green", Level.WARNING: "yellow", Level.CRITICAL: "red", Level.UNKNOWN: "magenta"}


def bar(value: float | None, limit: float | None, level: Level) -> Text:
    """An age against its limit, ten cells wide; full (and red) past the limit, blank when it has no limit."""
    if value is None or not limit:
        return Text(" " * BAR)
    filled = min(BAR, round(BAR * value / limit))
    return Text("█" * filled, style=LEVEL_STYLE[level]) + Text("░" * (BAR - filled), style="dim")


def window_lines(status: EnvironmentStatus, inventory, now) -> list[str]:
    """The window across all backups, its lag, and each backup's own window as a line on a shared axis."""
    window = status.window
    if window is None or window.first is None or window.last is None:
        return ["recoverable window  [red]✘ none[/] (no usable base backup with its WAL)"]
    lines = [f"recoverable window  {short_time(window.first)} → {short_time(window.last)} UTC"]
    span = max((now - window.first).total_seconds(), 1.0)
    width = 30
    for backup, own in zip(inventory.base_backups, inventory.windows, strict=True):
        if not (own.usable and own.earliest and own.latest):
            lines.append(f"  {'':{width}}  {backup.path.name} [red]not usable[/]")
            continue
        start = round(width * (own.earliest - window.first).total_seconds() / span)
        end = max(start + 1, round(width * (own.latest - window.first).total_seconds() / span))
        cells = " " * start + "━" * (end - start) + " " * (width - end)
        lines.append(f"  [green]{cells}[/]  {backup.path.name}")
    return lines


class StatusScreen(Screen[None]):
    """Can I recover, and to when? Read-only; `drtui status --check` says the same to monitoring."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Back"),
        Binding("ctrl+r", "refresh", "Refresh now"),
    ]
    checks: ClassVar[list] = []  # the last checks shown (tests wait for them)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status-head")
        with VerticalScroll(id="status-body"):
            yield Static(id="check-table")
            yield Static("[dim]reading the inventory…[/]", id="status-recovery", classes="panel")
            yield Static(id="status-repository", classes="panel")
            yield Static(id="status-todo", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self.action_refresh)

    def action_refresh(self) -> None:
        self._read()

    @work(thread=True, group="status", exclusive=True, exit_on_error=False, description="read the status")
    def _read(self) -> None:
        from drtui.core.inventory import scan

        config, clock = self.app.config, self.app.clock  # type: ignore[attr-defined]
        try:
            try:
                inventory = scan(config, clock=clock)
            except DrError as exc:
                inventory, inventory_error = None, exc.title
            else:
                inventory_error = None
            status = collect(config, None if config.read_only else config.environment(), inventory, clock,
                             Overrides(), usage=True)
        except Exception as exc:  # shown on screen; the view keeps refreshing
            self.post_message(StatusRefreshed([], error=str(exc)))
            return
        recovery = (window_lines(status, inventory, clock.now()) if inventory is not None
                    else [f"[red]✘ inventory:[/] {inventory_error}"])
        self.post_message(StatusRefreshed([], recovery=recovery, status=status))

    @on(StatusRefreshed)
    def _refreshed(self, message: StatusRefreshed) -> None:
        now = self.app.clock.now()  # type: ignore[attr-defined]
        head = self.query_one("#status-head", Static)
        if message.error or message.status is None:
            head.update(f"[b]status[/] · read {utc(now)} · [red]✘ unreadable[/] {message.error}")
            return
        status = message.status
        head.update(f"[b]status of {status.name}[/] {LEVEL_MARKUP[status.level]} · read {now:%H:%M:%S} UTC · "
                    f"refreshes every {REFRESH_SECONDS:.0f} s")
        table = Table(box=None, expand=True, padding=(0, 1), show_edge=False)
        table.add_column("state", no_wrap=True)
        table.add_column("check", no_wrap=True)
        table.add_column("vs limit", no_wrap=True)
        table.add_column("now", ratio=1, overflow="fold")
        for check in status.checks:
            limit = check.threshold.critical if check.threshold and check.unit == "s" else None
            table.add_row(Text.from_markup(LEVEL_MARKUP[check.level]), check.name,
                          bar(check.value, limit, check.level), check.text)
        self.checks = status.checks
        self.query_one("#check-table", Static).update(table)
        self.query_one("#status-recovery", Static).update("\n".join(message.recovery or []))
        if status.repository is not None:  # plain text: "[retention]" is no markup
            self.query_one("#status-repository", Static).update(Text("\n".join(usage_lines(status.repository,
                                                                                            size))))
        todo = [f"[b]{c.name}[/]: {in_wizard_words(c.todo)}" for c in status.checks if c.level != Level.OK and c.todo]
        self.query_one("#status-todo", Static).update(
            ("[b]what to do[/]\n" + "\n".join(todo)) if todo else
            "[green]✔ nothing to do[/] [dim]· read-only: nothing here changes a server[/]")

    def action_leave(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.dismiss()
        else:
            self.app.exit()
