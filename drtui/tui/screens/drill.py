"""The automated drill's one screen: its gates, its options and an explicit confirm. The drill itself runs
detached (`drtui drill`), like a restore; this screen only decides whether it may start and with what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.console import Group
from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Header, Input, Static

from drtui.core.drill import DRILL_STEPS, JOURNEY, MARKER_TABLE
from drtui.core.errors import DrError
from drtui.core.gates import GateResult, evaluate_journey, gather_facts
from drtui.core.planning import parse_target_time
from drtui.core.postgres import current_user
from drtui.tui.format import gate_rows, in_wizard_words, labelled
from drtui.tui.widgets.on_off import OnOff

TARGET_ENV = "staging"  # the drill always restores into staging


@dataclass(frozen=True)
class DrillChoice:
    """What the operator confirmed: the `drtui drill` options the wizard launches it with."""

    target_time: str | None
    skip_backup: bool
    operator: str
    reviewer: str


class DrillScreen(Screen[DrillChoice | None]):
    """The drill's gates (TARGET_ENV=staging, no APP_ENV=prod in staging's env file, no run on staging), its
    options and the confirm. Nothing is touched before the confirm."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+g", "confirm", "Start the drill", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.gates: list[GateResult] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"[b]automated drill[/] · production's backups restored into {TARGET_ENV}, then proven",
                     classes="step-head")
        with VerticalScroll(id="drill"):
            yield Static(self._what(), id="drill-what", classes="panel")
            yield Static(id="gates", classes="panel")
            with Horizontal(classes="drill-option"):
                yield Static("target time", classes="drill-label")
                yield Input(placeholder="empty: a moment after the marker (exact counts)", id="target-time")
            with Horizontal(classes="drill-option"):
                yield Static("", classes="drill-label")
                yield OnOff("skip the fresh base backup (use the newest that reaches the target)",
                            id="skip-backup")
            with Horizontal(classes="drill-option"):
                yield Static("operator", classes="drill-label")
                yield Input(current_user(), placeholder="who runs the drill", id="operator")
            with Horizontal(classes="drill-option"):
                yield Static("reviewer", classes="drill-label")
                yield Input(placeholder="empty: not recorded", id="reviewer")
        yield Static(id="confirm-note", classes="hint")
        with Horizontal(id="confirm-row"):
            yield Button("Start the drill", variant="error", id="start", disabled=True)
        yield Footer()

    def on_mount(self) -> None:
        self._evaluate()

    def _what(self) -> Group:
        config = self.app.config  # type: ignore[attr-defined]
        staging = config.environments.get(TARGET_ENV)
        data_dir = staging.data_dir if staging else "—"
        steps = " → ".join(name for name, _ in DRILL_STEPS) + " → restore → integrity → smoke → report"
        return labelled("[b]the drill[/]", [
            f"steps     {steps}",
            f"marker    a row in {MARKER_TABLE} of production, found again in {TARGET_ENV}",
            f"replaces  {TARGET_ENV}'s data directory {data_dir} (kept aside first)",
            f"report    into {config.report_dir}",
        ])

    def _evaluate(self) -> None:
        config = self.app.config  # type: ignore[attr-defined]
        if TARGET_ENV not in config.environments:
            self.gates = [GateResult("target_env", False, f"no {TARGET_ENV!r} environment in the config",
                                     f"add [environments.{TARGET_ENV}] to the config")]
        else:
            env = config.environment(TARGET_ENV)
            self.gates = evaluate_journey(JOURNEY, env.name, gather_facts(config, env, TARGET_ENV))
        self.query_one("#gates", Static).update(gate_rows(self.gates))
        refused = any(not g.passed for g in self.gates)
        self.query_one("#confirm-note", Static).update(
            "[red]✘ a gate refused: the drill cannot start until it passes[/]" if refused else
            f"press ctrl+g (or the button) to start: {TARGET_ENV} is replaced by a restore of production's backups")
        self.query_one("#start", Button).disabled = refused

    @on(Button.Pressed, "#start")
    def _pressed(self) -> None:
        self.action_confirm()

    def action_confirm(self) -> None:
        self._evaluate()  # the gates again, read now: the lock or the env file may have changed
        refused = [g for g in self.gates if not g.passed]
        if refused:
            return  # the gates and the note under them say why
        target = self.query_one("#target-time", Input).value.strip() or None
        if target is not None:
            clock = self.app.clock  # type: ignore[attr-defined]
            try:
                when = parse_target_time(target, clock)
            except DrError as exc:
                self._refuse(f"{in_wizard_words(exc.title)}: {in_wizard_words(exc.hint)}")
                return
            if when > clock.now():
                self._refuse("the target time is in the future: give a past time, or leave it empty")
                return
            target = when.isoformat()
        self.dismiss(DrillChoice(
            target_time=target, skip_backup=self.query_one("#skip-backup", Checkbox).value,
            operator=self.query_one("#operator", Input).value.strip() or current_user(),
            reviewer=self.query_one("#reviewer", Input).value.strip() or "not recorded"))

    def _refuse(self, why: str) -> None:
        """Said in the note above the button, where a toast would cover the options at 80×24."""
        self.query_one("#confirm-note", Static).update(f"[red]✘ target time:[/] {escape(why)}")

    def action_back(self) -> None:
        self.dismiss(None)
