from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Checkbox, Collapsible, Footer, Header, Input, Select, Static

from drtui.core.errors import DrError
from drtui.core.incident import Change
from drtui.core.planning import BackupChoice, InventoryView, Target, TargetError, TargetKind, check_target
from drtui.tui.format import short_time, utc, utc_and_local
from drtui.tui.screens.events import open_events, with_what_it_did
from drtui.tui.widgets.coverage_timeline import CoverageTimeline

KINDS = [("time", "time"), ("immediate (end of the backup)", "immediate"), ("latest (end of the WAL)", "latest"),
         ("advanced: LSN", "lsn"), ("advanced: transaction id", "xid"), ("advanced: restore point", "name")]
PLACEHOLDERS = {"time": "2026-01-25 14:30:00 UTC, ISO-8601, or '15 minutes ago'", "lsn": "0/3000060",
                "xid": "7421", "name": "before_migration"}


class ChooseTargetScreen(Screen[Target | None]):
    """Step 2: where recovery stops. The timeline and the time field fill each other; every keystroke is
    checked against the chosen backup's window. It returns the target."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next", "Next", priority=True),
        Binding("ctrl+t", "events", "What happened here", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, inventory: InventoryView, chosen: BackupChoice) -> None:
        super().__init__()
        self.inventory = inventory
        self.chosen = chosen
        self.target: Target | None = None
        self.events_seen: list[Change] = []  # what "what happened here" found: marked, and named in the target

    def compose(self) -> ComposeResult:
        window = self.chosen.window
        chosen_index = next((i for i, b in enumerate(self.inventory.base_backups) if b == self.chosen.backup),
                            -1)
        yield Header()
        yield Static(f"[b]2 of 3 · choose the target[/] · the chosen backup reaches "
                     f"{short_time(window.earliest)} → {short_time(window.latest)} UTC", classes="step-head")
        yield CoverageTimeline(self.inventory.wal, list(self.inventory.base_backups), list(self.inventory.windows),
                               now=self.app.clock.now(), chosen=chosen_index, id="timeline")  # type: ignore[attr-defined]
        with Horizontal(id="target-row"):
            yield Select(KINDS, value="time", allow_blank=False, id="kind")
            yield Input(placeholder=PLACEHOLDERS["time"], id="value")
        yield Static(id="verdict", classes="hint")
        with Collapsible(title="advanced: inclusive/exclusive, timeline", collapsed=True, id="advanced"), \
                Horizontal():
            yield Checkbox("stop just before the target (exclusive)", id="exclusive")
            yield Input(value="latest", placeholder="latest, current or a number", id="timeline-id")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#value", Input).focus()
        self._validate()

    @on(CoverageTimeline.TimeChosen)
    def _time_chosen(self, event: CoverageTimeline.TimeChosen) -> None:
        self.query_one("#kind", Select).value = "time"
        value = self.query_one("#value", Input)
        value.value = utc(event.at.replace(microsecond=0))
        value.focus()

    @on(CoverageTimeline.CursorMoved)
    def _cursor_moved(self, event: CoverageTimeline.CursorMoved) -> None:
        self.query_one("#timeline", CoverageTimeline).refresh()

    @on(Select.Changed, "#kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        value = self.query_one("#value", Input)
        kind = str(event.value)
        value.disabled = kind in ("immediate", "latest")
        value.placeholder = PLACEHOLDERS.get(kind, "")
        self._validate()

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _changed(self) -> None:
        self._validate()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_next()

    def _build(self) -> Target:
        kind = str(self.query_one("#kind", Select).value)
        text = self.query_one("#value", Input).value.strip()
        if kind in PLACEHOLDERS and not text:
            raise ValueError(f"type a {kind}: {PLACEHOLDERS[kind]}")
        try:
            return Target.parse(kind, text, self.app.clock,  # type: ignore[attr-defined]
                                inclusive=not self.query_one("#exclusive", Checkbox).value,
                                timeline=self.query_one("#timeline-id", Input).value or "latest")
        except TargetError as exc:
            field = "in the timeline field (advanced)" if exc.part == "timeline" else "or pick another kind in the list"
            raise TargetError(exc.title, f"{exc.hint} {field}", part=exc.part) from None

    def _validate(self) -> None:
        verdict = self.query_one("#verdict", Static)
        self.target = None
        try:
            target = self._build()
            check_target(target, self.chosen.backup, self.chosen.window, self.inventory)
            target = with_what_it_did(target, self.events_seen)
        except ValueError as exc:
            verdict.update(f"[dim]○ {exc}[/]")
            return
        except DrError as exc:
            verdict.update(f"[red]✘ {exc.title}[/]" + (f"\n  [dim]{exc.hint}[/]" if exc.hint else ""))
            return
        self.target = target
        line = f"[green]✔ reachable[/] {target.describe()}"
        if target.kind is TargetKind.TIME and target.time:
            line += f"\n  {utc_and_local(target.time)}"
            self.query_one("#timeline", CoverageTimeline).set_cursor(target.time)
        verdict.update(line)

    def action_next(self) -> None:
        self._validate()
        if self.target is None:
            self.notify("the target is not valid yet; see the line under the field", severity="warning")
            return
        self.dismiss(self.target)

    def action_events(self) -> None:
        open_events(self)

    def action_back(self) -> None:
        self.dismiss(None)
