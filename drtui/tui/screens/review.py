from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group
from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Static

from drtui.core.clock import format_duration
from drtui.core.config import Environment
from drtui.core.errors import DrError
from drtui.core.gates import ApprovedPlan, Confirmation, GateResult, approve, evaluate, gather_facts
from drtui.core.planning import BackupChoice, DumpPlan, InventoryView, Plan, Target, make_dump_plan, make_plan
from drtui.core.prediction import short_basis
from drtui.tui.format import gate_rows, in_wizard_words, labelled, size, state_markup, utc

if TYPE_CHECKING:
    from drtui.tui.wizard import Journeys


@dataclass
class PlanMade(Message):
    plan: Plan | DumpPlan
    gates: list[GateResult]


@dataclass
class PlanRefused(Message):
    title: str
    hint: str


class ReviewScreen(Screen[ApprovedPlan | None]):
    """Step 3: the plan in words and every safety gate. Nothing runs before this screen is confirmed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+g", "confirm", "Start the restore", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, env: Environment, build: Callable[[], Plan | DumpPlan], heading: str) -> None:
        super().__init__()
        self.env = env
        self.build = build
        self.heading = heading
        self.plan: Plan | DumpPlan | None = None
        self.gates: list[GateResult] = []

    @classmethod
    def pitr(cls, app: Journeys, inventory: InventoryView, chosen: BackupChoice, target: Target,
             env: Environment) -> ReviewScreen:
        """The point-in-time recovery's last step: the plan from the chosen backup to the target."""
        def build() -> Plan:
            return make_plan(app.config, env, target, clock=app.clock, inventory=inventory, base_backup=chosen,
                             **app.plan_probes)
        return cls(env, build, "3 of 3 · review and confirm")

    @classmethod
    def dump(cls, app: Journeys, dump_file: Path, env: Environment) -> ReviewScreen:
        """The staging restore's last step: the plan to load a dump (and the uploads) into staging."""
        def build() -> DumpPlan:
            return make_dump_plan(app.config, env, clock=app.clock, dump_file=dump_file)
        return cls(env, build, "2 of 2 · review and confirm")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"[b]{self.heading}[/] · restore {self.env.name}", classes="step-head")
        with VerticalScroll(id="review"):  # the plan scrolls; the gates stay beside the confirmation
            yield Static("[dim]● making the plan…[/]", id="plan", classes="panel")
        yield Static(id="gates", classes="panel")
        yield Static(id="confirm-note", classes="hint")
        with Horizontal(id="confirm-row"):
            yield Input(placeholder=f"type {self.env.name} to confirm", id="typed-name")
            yield Button("Start the restore", variant="error", id="start", disabled=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#typed-name").display = self.env.is_production
        self._make_plan()

    @work(thread=True, group="plan", exclusive=True, exit_on_error=False, description="make the plan")
    def _make_plan(self) -> None:
        try:
            plan = self.build()
            gates = evaluate(plan, gather_facts(self.app.config, self.env, self.env.name))  # type: ignore[attr-defined]
        except DrError as exc:
            self.post_message(PlanRefused(exc.title, exc.hint))
        else:
            self.post_message(PlanMade(plan, gates))

    @on(PlanRefused)
    def _refused(self, message: PlanRefused) -> None:
        self.query_one("#plan", Static).update(
            f"[b red]✘ refused: no plan[/]\n{in_wizard_words(message.title)}\n"
            f"[b]how to fix:[/] {in_wizard_words(message.hint) or '—'}")
        self.query_one("#typed-name").display = False
        self.query_one("#confirm-note", Static).update("go back (esc) and choose another backup or target")

    @on(PlanMade)
    def _made(self, message: PlanMade) -> None:
        self.plan, self.gates = message.plan, message.gates
        self.query_one("#plan", Static).update(self._words(message.plan))
        self.query_one("#gates", Static).update(gate_rows(message.gates))
        refused = [g for g in message.gates if not g.passed]
        note = ("[red]✘ a gate refused: nothing can start until it passes[/]" if refused else
                f"type [b]{self.env.name}[/] and press enter: this replaces production's data directory"
                if self.env.is_production else "press ctrl+g (or the button) to start")
        self.query_one("#confirm-note", Static).update(note)
        self.query_one("#start", Button).disabled = bool(refused)
        if self.env.is_production and not refused:
            self.query_one("#typed-name", Input).focus()

    def _words(self, plan: Plan | DumpPlan) -> Group:
        if isinstance(plan, DumpPlan):
            return self._dump_words(plan)
        config = self.app.config  # type: ignore[attr-defined]
        objective = config.objectives.pitr_rto.total_seconds()
        share = plan.predicted_seconds / objective if objective else 0
        backup = plan.base_backup
        app = "the app (stop_app_command), then " if self.env.stop_app_command else ""
        return labelled("[b]the plan[/]", [
            f"target    {plan.target.describe()}",
            f"stop      {app}PostgreSQL of {plan.environment}",
            f"keep      the old {plan.data_dir}, renamed {plan.data_dir.name}.pre_pitr_<stamp>",
            f"extract   {backup.path.name} (data size {size(backup.size_bytes)}, {backup.layout.value})",
            f"replay    WAL from {plan.wal_source} ({plan.wal_kind}) up to the target",
            "start     PostgreSQL" + (", the app" if self.env.start_app_command else "") + ", then the checks",
            f"disk      needs {size(plan.required_bytes)}, {size(plan.free_bytes)} free {self._disk(plan)}",
            f"duration  about {format_duration(plan.predicted_seconds)} of the {format_duration(objective)} RTO "
            f"({share:.0%}; "
            f"{short_basis(plan.prediction_basis)})" + (" [yellow]▲ longer than the RTO[/]" if share > 1 else ""),
        ] + [f"note      [dim]{in_wizard_words(n)}[/]" for n in plan.notes])

    def _dump_words(self, plan: DumpPlan) -> Group:
        objective = self.app.config.objectives.staging_rto.total_seconds()  # type: ignore[attr-defined]
        app = "the app (stop_app_command), " if self.env.stop_app_command else ""
        return labelled("[b]the plan[/]", [
            f"restore   the dump {plan.dump_file.name} (taken {utc(plan.dump_time)})",
            f"into      {plan.environment}: its database is replaced",
            f"stop      {app}then a pre_restore dump of the current database is kept",
            f"uploads   {plan.uploads_archive.name if plan.uploads_archive else 'not restored (none found)'}"
            + (" (the current folder is renamed aside)" if plan.uploads_archive else ""),
            "start     " + ("the app, " if self.env.start_app_command else "") + "then the checks",
            f"objective RTO {format_duration(objective)}",
        ])

    @staticmethod
    def _disk(plan: Plan) -> str:
        return state_markup("passed", "enough") if plan.free_bytes >= plan.required_bytes else \
            state_markup("refused", "short")

    @on(Button.Pressed, "#start")
    @on(Input.Submitted, "#typed-name")
    def _pressed(self) -> None:
        self.action_confirm()

    def action_confirm(self) -> None:
        if self.plan is None:
            self.notify("there is no plan to start", severity="warning")
            return
        typed = self.query_one("#typed-name", Input).value.strip() or None
        try:
            approved = approve(self.plan, self.gates, Confirmation(True, typed, face="wizard"),
                               self.app.clock)  # type: ignore[attr-defined]
        except DrError as exc:  # said beside the field and the gates, never in a toast over them
            self.query_one("#confirm-note", Static).update(
                f"[red]✘ {escape(exc.title)}[/] {escape(in_wizard_words(exc.hint))}")
            return
        self.dismiss(approved)

    def action_back(self) -> None:
        self.dismiss(None)
