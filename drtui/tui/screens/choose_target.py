from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Checkbox, Collapsible, Footer, Header, Input, Select, Static

from drtui.core.errors import DrError
from drtui.core.incident import Change
from drtui.core.planning import (
    BackupChoice,
    InventoryView,
    Target,
    TargetError,
    TargetKind,
    backup_choices,
    check_target,
)
from drtui.tui.format import in_wizard_words, short_time, utc, utc_and_local
from drtui.tui.screens.events import open_events, with_what_it_did
from drtui.tui.widgets.coverage_timeline import CoverageTimeline
from drtui.tui.widgets.on_off import OnOff

KINDS = [("time", "time"), ("immediate (end of the backup)", "immediate"), ("latest (end of the WAL)", "latest"),
         ("advanced: LSN", "lsn"), ("advanced: transaction id", "xid"), ("advanced: restore point", "name")]
PLACEHOLDERS = {"time": "2026-01-25 14:30:00 UTC, ISO-8601, or '15 minutes ago'", "lsn": "0/3000060",
                "xid": "7421", "name": "before_migration"}


@dataclass(frozen=True)
class TargetEntry:
    """What the operator typed and chose on the target screen, and the one instant it was resolved to: going
    back to the screen shows it again, and an entry left unchanged keeps that instant."""

    kind: str = "time"
    text: str = ""
    inclusive: bool = True
    timeline: str = "latest"
    target: Target | None = None


class ChooseTargetScreen(Screen[Target | None]):
    """Step 2: where recovery stops. The timeline and the time field fill each other; every keystroke is
    checked against the chosen backup's window, and a target another backup reaches is one key (ctrl+b) away.
    It returns the target as shown ("15 minutes ago" is resolved while typing and never again); `chosen` and
    `entry` say which backup it is for and what was typed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next", "Next", priority=True),
        Binding("ctrl+t", "events", "What happened here", priority=True),
        Binding("ctrl+b", "switch_backup", "Use the backup that reaches it", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, inventory: InventoryView, chosen: BackupChoice, entry: TargetEntry | None = None) -> None:
        super().__init__()
        self.inventory = inventory
        self.chosen = chosen
        self.entry = entry or TargetEntry()
        self.target: Target | None = None
        self.events_seen: list[Change] = []  # what "what happened here" found: marked, and named in the target
        self.verdict = ""  # the verdict line as plain text
        self.reaching: BackupChoice | None = None
        """Another usable backup whose window reaches the target the chosen one cannot (ctrl+b switches)."""

    def compose(self) -> ComposeResult:
        entry = self.entry
        yield Header()
        yield Static(self._head(), id="target-head", classes="step-head")
        yield CoverageTimeline(self.inventory.wal, list(self.inventory.base_backups), list(self.inventory.windows),
                               now=self.app.clock.now(), chosen=self._chosen_index(), id="timeline")  # type: ignore[attr-defined]
        with Horizontal(id="target-row"):
            yield Select(KINDS, value=entry.kind, allow_blank=False, id="kind")
            yield Input(entry.text, placeholder=PLACEHOLDERS.get(entry.kind, ""), id="value",
                        disabled=entry.kind in ("immediate", "latest"))
        yield Static(id="verdict", classes="hint")
        with Collapsible(title="advanced: inclusive/exclusive, timeline", collapsed=True, id="advanced"), \
                Horizontal():
            yield OnOff("stop just before the target (exclusive)", not entry.inclusive, id="exclusive")
            yield Input(value=entry.timeline, placeholder="latest, current or a number", id="timeline-id")
        yield Footer()

    def _head(self) -> str:
        window = self.chosen.window
        return (f"[b]2 of 3 · choose the target[/] · {self.chosen.backup.path.name} reaches "
                f"{short_time(window.earliest)} → {short_time(window.latest)} UTC")

    def _chosen_index(self) -> int:
        return next((i for i, b in enumerate(self.inventory.base_backups) if b == self.chosen.backup), -1)

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

    def _typed(self) -> TargetEntry:
        return TargetEntry(str(self.query_one("#kind", Select).value), self.query_one("#value", Input).value.strip(),
                           not self.query_one("#exclusive", Checkbox).value,
                           self.query_one("#timeline-id", Input).value or "latest")

    def _build(self, typed: TargetEntry) -> Target:
        """The target typed, resolved now; unless it is the entry already resolved, which keeps its instant."""
        if self.entry.target is not None and self._unchanged(typed):
            return self.entry.target
        if typed.kind in PLACEHOLDERS and not typed.text:
            raise ValueError(f"type a {typed.kind}: {PLACEHOLDERS[typed.kind]}")
        try:
            return Target.parse(typed.kind, typed.text, self.app.clock,  # type: ignore[attr-defined]
                                inclusive=typed.inclusive, timeline=typed.timeline)
        except TargetError as exc:
            field = "in the timeline field (advanced)" if exc.part == "timeline" else "or pick another kind in the list"
            raise TargetError(exc.title, f"{exc.hint} {field}", part=exc.part) from None

    def _unchanged(self, typed: TargetEntry) -> bool:
        return typed == replace(self.entry, target=None)

    def _validate(self) -> None:
        self._judge()
        self.refresh_bindings()  # ctrl+b shows only while another backup reaches the target

    def _judge(self) -> None:
        typed = self._typed()
        self.target, self.reaching = None, None
        try:
            target = self._build(typed)
        except ValueError as exc:
            self.entry = typed
            self._say("[dim]○[/]", f"[dim]{exc}[/]")
            return
        except DrError as exc:
            self.entry = typed
            self._say("[red]✘[/]", f"[red]{exc.title}[/]", f"[dim]{exc.hint}[/]")
            return
        self.entry = replace(typed, target=target)
        try:
            check_target(target, self.chosen.backup, self.chosen.window, self.inventory)
        except DrError as exc:
            self.reaching = self._reaching(target)
            hint = (f"[b]ctrl+b[/] uses base backup {self.reaching.backup.path.name}, whose window "
                    f"{short_time(self.reaching.window.earliest)} → {short_time(self.reaching.window.latest)} UTC "
                    "reaches it" if self.reaching else f"[dim]{in_wizard_words(exc.hint)}[/]")
            self._say("[red]✘[/]", f"[red]{in_wizard_words(exc.title)}[/]", hint)
            return
        target = with_what_it_did(target, self.events_seen)
        self.target = target
        lines = [f"[green]reachable[/] {target.describe()}"]
        if target.kind is TargetKind.TIME and target.time:
            lines.append(utc_and_local(target.time))
            self.query_one("#timeline", CoverageTimeline).set_cursor(target.time)
        self._say("[green]✔[/]", *lines)

    def _say(self, symbol: str, *lines: str) -> None:
        """The verdict under the field: its lines wrap beside the symbol, never under it."""
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1)
        for index, line in enumerate(line for line in lines if line):
            table.add_row(Text.from_markup(symbol if index == 0 else ""), Text.from_markup(line))
        self.verdict = Text.from_markup(symbol).plain + " " + "\n".join(
            Text.from_markup(line).plain for line in lines if line)
        self.query_one("#verdict", Static).update(table)

    def _reaching(self, target: Target) -> BackupChoice | None:
        """The newest other usable backup whose window reaches the target."""
        for choice in backup_choices(self.inventory):
            if choice.backup == self.chosen.backup or not choice.window.usable:
                continue
            try:
                check_target(target, choice.backup, choice.window, self.inventory)
            except DrError:
                continue
            return choice
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.reaching is not None if action == "switch_backup" else True

    def action_switch_backup(self) -> None:
        if self.reaching is None:
            return
        self.chosen = self.reaching
        self.query_one("#target-head", Static).update(self._head())
        self.query_one("#timeline", CoverageTimeline).choose_backup(self._chosen_index())
        self._validate()
        self.notify(f"base backup {self.chosen.backup.path.name} chosen: its window reaches the target")

    def action_next(self) -> None:
        """The target as the verdict line shows it: re-read from the fields only if they changed since."""
        if not self._unchanged(self._typed()):
            self._validate()
        if self.target is None:  # the line under the field says why; a toast would cover it at 80×24
            self.app.bell()
            return
        self.dismiss(self.target)

    def action_events(self) -> None:
        open_events(self)

    def action_back(self) -> None:
        self.dismiss(None)
