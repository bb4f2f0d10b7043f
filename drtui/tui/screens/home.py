from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from drtui.core.status import InRecovery, environments_in_recovery
from drtui.tui.format import in_wizard_words, state_markup
from drtui.tui.heartbeats import heartbeat_rows
from drtui.tui.messages import StatusRefreshed
from drtui.tui.run_state import RunView, runs_in_progress

JOURNEYS = [
    ("pitr", "Point-in-time recovery", "base backup + WAL, to a moment"),
    ("staging", "Staging restore from a dump", "the newest dump into staging"),
    ("drill", "Automated drill", "into staging, proven, reported"),
    ("status", "Status", "heartbeats, refreshing itself"),
]


@dataclass
class RecoveryRead(Message):
    """The environments found in the middle of a recovery (paused, replaying, or down)."""

    found: list[InRecovery]
    error: str = ""


class HomeScreen(Screen[None]):
    """Where every journey starts: a run in progress first, then the journeys, environments and heartbeats.
    It reads them again every `refresh_seconds` and whenever it is shown again (after a run, a drill)."""

    refresh_seconds: ClassVar[float] = 5.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "app.pitr", "PITR"),
        Binding("d", "app.drill", "Drill"),
        Binding("s", "app.status", "Status"),
        Binding("a", "reattach", "Re-attach"),
        Binding("ctrl+r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.in_progress: list[RunView] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="in-progress", classes="banner")
        with Horizontal(id="home-body"):
            with Vertical(id="journeys-box"):
                yield Static("[b]journeys[/]", classes="section")
                yield OptionList(*[Option(f"{title}\n[dim]{note}[/]", id=key)
                                   for key, title, note in JOURNEYS], id="journeys")
            with Vertical(id="home-side"):
                yield Static(id="environments", classes="panel")
                yield Static("[dim]reading heartbeats…[/]", id="heartbeats", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#in-progress").display = False
        self.query_one("#environments", Static).update(self._environments())
        self.set_interval(self.refresh_seconds, self.action_refresh)

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def _environments(self, recovering: list[InRecovery] | None = None) -> str:
        config = self.app.config  # type: ignore[attr-defined]
        found = {r.environment: r for r in recovering or []}
        rows = ["[b]environments[/]"]
        for env in config.environments.values():
            tag = "[b red]▲ live[/]" if env.is_production else "[dim]○ copy[/]"
            rows.append(f"{env.name:<11} {tag}  [dim]:{env.port} {env.database}[/]")
            if env.name in found:
                mark = "⏸" if found[env.name].state == "paused" else "▲"
                rows += [f"  [b yellow]{mark} {found[env.name].detail}[/]",
                         f"  [dim]{in_wizard_words(found[env.name].next)}[/]"]
        return "\n".join(rows)

    def action_refresh(self) -> None:
        self.in_progress = runs_in_progress(self.app.config)  # type: ignore[attr-defined]
        banner = self.query_one("#in-progress", Static)
        if self.in_progress:
            run = self.in_progress[0]
            banner.update(f"[b yellow]● run in progress[/] {run.journey} of {run.environment} · run {run.run_id} "
                          f"(pid {run.pid})  — press [b]a[/] to re-attach")
        banner.display = bool(self.in_progress)
        self._read_heartbeats()
        self._read_recovery()

    @work(thread=True, group="home-recovery", exclusive=True, exit_on_error=False,
          description="look for environments in recovery")
    def _read_recovery(self) -> None:
        try:
            found = environments_in_recovery(self.app.config)  # type: ignore[attr-defined]
        except Exception as exc:  # shown in the panel, never a crash of the home screen
            self.post_message(RecoveryRead([], error=str(exc)))
        else:
            self.post_message(RecoveryRead(found))

    @on(RecoveryRead)
    def _recovery_read(self, message: RecoveryRead) -> None:
        text = self._environments(message.found)
        if message.error:
            text += f"\n[red]✘ cannot tell which are in recovery[/] {message.error}"
        self.query_one("#environments", Static).update(text)

    @work(thread=True, group="home", exclusive=True, exit_on_error=False, description="read heartbeats")
    def _read_heartbeats(self) -> None:
        try:
            rows, summary = heartbeat_rows(self.app.config, self.app.clock)  # type: ignore[attr-defined]
        except Exception as exc:  # any failure is shown, never a crash of the home screen
            self.post_message(StatusRefreshed([], error=str(exc)))
        else:
            self.post_message(StatusRefreshed(rows, summary))

    @on(StatusRefreshed)
    def _heartbeats_read(self, message: StatusRefreshed) -> None:
        lines = ["[b]heartbeats[/]"]
        if message.error:
            lines.append(f"[red]✘ unreadable[/] {message.error}")
        lines += [f"{state_markup(state, f'{state:<7}')} {name:<11} [dim]{age}[/]"
                  for state, name, age, _limit, _detail in message.rows]
        self.query_one("#heartbeats", Static).update("\n".join(lines))

    @on(OptionList.OptionSelected, "#journeys")
    def _journey_chosen(self, event: OptionList.OptionSelected) -> None:
        key = event.option.id
        if key == "pitr":
            self.app.action_pitr()  # type: ignore[attr-defined]
        elif key == "status":
            self.app.action_status()  # type: ignore[attr-defined]
        elif key == "staging":
            self.app.action_staging()  # type: ignore[attr-defined]
        elif key == "drill":
            self.app.action_drill()  # type: ignore[attr-defined]

    def action_reattach(self) -> None:
        if self.in_progress:
            self.app.action_reattach(self.in_progress[0].journal)  # type: ignore[attr-defined]
        else:
            self.app.action_reattach()  # type: ignore[attr-defined]
