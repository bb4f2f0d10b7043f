from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Checkbox, DataTable, Footer, Input, Select, Static

from drtui.core import incident
from drtui.core.config import PRODUCTION, Config
from drtui.core.errors import DrError
from drtui.core.models import WalCoverage
from drtui.core.planning import Target, TargetKind
from drtui.tui.format import short_time
from drtui.tui.widgets.coverage_timeline import CoverageTimeline

if TYPE_CHECKING:
    from drtui.tui.screens.choose_target import ChooseTargetScreen

SPAN = timedelta(minutes=30)


@dataclass(frozen=True)
class EventsSeen:
    """What the modal found (for the timeline's marks) and the change chosen to restore to just before."""

    changes: list[incident.Change]
    chosen: incident.Change | None = None


@dataclass
class ChangesRead(Message):
    changes: list[incident.Change] = field(default_factory=list)
    error: str = ""
    hint: str = ""


class EventsModal(ModalScreen[EventsSeen]):
    """What happened around a moment: the destructive transactions in production's WAL, read with pg_waldump in
    a worker; enter sets the target to just before the one under the cursor."""

    DEFAULT_CSS = """
    EventsModal { align: center middle; }
    #events-panel { width: 96%; max-width: 120; height: auto; max-height: 90%; background: $surface;
                    border: round $accent; padding: 0 1; }
    #events-table { height: auto; max-height: 16; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,b", "before", "Restore to just before it", priority=True),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, config: Config, coverage: WalCoverage | None, around: datetime, span: timedelta = SPAN,
                 changes: list[incident.Change] | None = None) -> None:
        super().__init__()
        self.config, self.coverage, self.around, self.span = config, coverage, around, span
        self.changes: list[incident.Change] = changes or []
        self.reading = changes is None

    def compose(self) -> ComposeResult:
        with Vertical(id="events-panel"):
            yield Static(f"[b]what happened around {short_time(self.around)} UTC[/] (± {self.span}) · "
                         "destructive transactions in production's WAL", id="events-head")
            yield DataTable(id="events-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="events-note", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("committed (UTC)", "xid", "what")
        if self.reading:
            self.query_one("#events-note", Static).update("[dim]reading the WAL with pg_waldump…[/]")
            self._read()
        else:
            self._show(ChangesRead(self.changes))

    @work(thread=True, group="events", exit_on_error=False)
    def _read(self) -> None:
        env = self.config.environment(PRODUCTION)
        if self.coverage is None:
            self.post_message(ChangesRead(error="no WAL archive was found to read",
                                          hint=f"check wal_archive in the config ({self.config.wal_archive})"))
            return
        try:
            names, _ = incident.read_names(self.config.state_dir, env)
            found = incident.read_changes(self.coverage, env.pg_bin, self.around, self.span, names)
            incident.remember_changes(self.config.state_dir, env.name, found)
        except DrError as exc:
            self.post_message(ChangesRead(error=exc.title, hint=exc.hint))
            return
        except OSError as exc:
            self.post_message(ChangesRead(error=f"the WAL could not be read: {exc}", hint="check the WAL archive"))
            return
        self.post_message(ChangesRead(found))

    @on(ChangesRead)
    def _show(self, event: ChangesRead) -> None:
        self.reading = False
        self.changes = event.changes
        note = self.query_one("#events-note", Static)
        if event.error:
            note.update(f"[red]✘ {event.error}[/]" + (f"\n  [dim]{event.hint}[/]" if event.hint else ""))
            return
        table = self.query_one(DataTable)
        for index, change in enumerate(self.changes):
            table.add_row(change.committed_at.strftime("%H:%M:%S.%f")[:-3], str(change.xid), change.describe(),
                          key=str(index))
        note.update("enter: restore to just before the transaction under the cursor (recovery_target_xid, "
                    "exclusive)" if self.changes else
                    f"no destructive transaction within {self.span} of this moment; move the timeline's cursor "
                    "and look again")
        table.focus()

    def action_before(self) -> None:
        if self.changes:
            self.dismiss(EventsSeen(self.changes, self.changes[self.query_one(DataTable).cursor_row]))

    def action_close(self) -> None:
        self.dismiss(EventsSeen(self.changes))


def open_events(screen: ChooseTargetScreen, changes: list[incident.Change] | None = None) -> None:
    """The target screen's key: the events around the timeline's cursor (read from the WAL unless given); they
    are marked on the timeline, and the one chosen fills the target fields with its xid, exclusive."""
    timeline = screen.query_one("#timeline", CoverageTimeline)
    around = timeline.cursor or screen.app.clock.now()  # type: ignore[attr-defined]

    def chosen(seen: EventsSeen | None) -> None:
        if seen is None:
            return
        screen.events_seen = seen.changes
        timeline.set_marks([(c.committed_at, "✕") for c in seen.changes])
        if seen.chosen is not None:
            screen.query_one("#kind", Select).value = "xid"
            screen.query_one("#exclusive", Checkbox).value = True
            screen.query_one("#value", Input).value = str(seen.chosen.xid)

    modal = EventsModal(screen.app.config, screen.inventory.wal, around, changes=changes)  # type: ignore[attr-defined]
    screen.app.push_screen(modal, chosen)


def with_what_it_did(target: Target, seen: list[incident.Change]) -> Target:
    """An exclusive xid target with what its transaction did, when the events shown found it."""
    change = next((c for c in seen if c.xid == target.xid), None)
    if target.kind is not TargetKind.XID or target.inclusive or change is None:
        return target
    return replace(target, about=change.about())
