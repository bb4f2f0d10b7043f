from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Header, Input, Static

from drtui.core.clock import format_duration
from drtui.core.errors import DrError
from drtui.core.postgres import current_user
from drtui.core.report import write_report
from drtui.core.rollback import is_production_like
from drtui.core.runner import OPERATION_JOURNEYS
from drtui.tui.format import FAILED, in_wizard_words, state_markup, utc
from drtui.tui.run_state import RunView
from drtui.tui.widgets.after_run import after_run_panels, take_fresh_backup

NOT_RECORDED = "not recorded"


@dataclass
class RecordWritten(Message):
    path: Path | None
    error: str = ""


class RecordNames(ModalScreen[tuple[str, str] | None]):
    """Who ran the run and who reviewed it, for its record."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="record-names", classes="panel"):
            yield Static("[b]write the run's record[/]")
            with Horizontal(classes="drill-option"):
                yield Static("operator", classes="drill-label")
                yield Input(current_user(), placeholder="who ran it", id="record-operator")
            with Horizontal(classes="drill-option"):
                yield Static("reviewer", classes="drill-label")
                yield Input(placeholder=f"empty: {NOT_RECORDED}", id="record-reviewer")
            yield Button("Write the record", variant="primary", id="record-write")

    @on(Button.Pressed, "#record-write")
    @on(Input.Submitted)
    def _write(self) -> None:
        operator = self.query_one("#record-operator", Input).value.strip() or current_user()
        reviewer = self.query_one("#record-reviewer", Input).value.strip() or NOT_RECORDED
        self.dismiss((operator, reviewer))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmOperation(ModalScreen[bool]):
    """Yes or no to a rollback, with the environment's name typed first where the CLI needs it named."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, env_name: str, what: str, typed: bool) -> None:
        super().__init__()
        self.env_name, self.what, self.typed = env_name, what, typed

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-operation", classes="panel"):
            yield Static(f"[b]{self.what}[/]")
            if self.typed:
                yield Input(placeholder=f"type {self.env_name} to confirm", id="typed-env")
            yield Static("", id="confirm-refused")
            yield Button("Roll back", variant="error", id="confirm-go")

    @on(Button.Pressed, "#confirm-go")
    @on(Input.Submitted)
    def _go(self) -> None:
        if self.typed and self.query_one("#typed-env", Input).value.strip() != self.env_name:
            self.query_one("#confirm-refused", Static).update(f"[red]type {self.env_name} to confirm[/]")
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class AdvanceTarget(ModalScreen[str | None]):
    """The later target a paused recovery replays on to: a time, or latest."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="advance-target", classes="panel"):
            yield Static("[b]replay on to a later target[/] and pause there again")
            yield Input(placeholder="a later time (2026-12-01 14:31:05 UTC), or latest", id="advance-value")
            yield Button("Advance", variant="primary", id="advance-go")

    @on(Button.Pressed, "#advance-go")
    @on(Input.Submitted)
    def _go(self) -> None:
        value = self.query_one("#advance-value", Input).value.strip()
        if value:
            self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ResultScreen(Screen[None]):
    """What the run achieved: checks, RTO and RPO against the objectives, where the records are,
    and on failure the way back and what to look at."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "The run"),
        Binding("h", "home", "Home"),
        Binding("w", "write_record", "Record"),
        Binding("b", "fresh_backup", "Fresh base backup", show=False),
        Binding("x", "roll_back", "Roll back"),
        Binding("p", "promote", "Promote"),
        Binding("a", "advance", "Advance"),
    ]

    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view
        summary = view.finished.summary if view.finished else {}
        found = summary.get("report") or summary.get("report_path")
        self.report: Path | None = Path(found) if found else None
        """The run's record: written by the run itself (a drill, headless --report) or here with w."""

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="result"):
            yield Static(self._verdict(), id="verdict")
            yield Static(self._objectives(), id="objectives", classes="panel")
            yield Static(self._checks(), id="checks", classes="panel")
            yield from after_run_panels(self.view, self.app.config)  # type: ignore[attr-defined]
            if not self.view.ok:
                yield Static(self._failure(), id="failure", classes="panel")
            yield Static(self._records(), id="records", classes="panel")
        yield Footer()

    def _verdict(self) -> str:
        view = self.view
        recovered = view.finished.recovered_to if view.finished else None
        if view.journey == "drill":
            verdict = "[b green]✔ PASS[/]" if view.ok else "[b red]✘ FAIL[/]"
            return (f"{verdict} drill of {view.environment} · run {view.run_id}"
                    + (f"\nrecovered to {recovered}" if recovered else ""))
        if view.ok and view.finished and view.finished.summary.get("paused_at_target"):
            return (f"[b yellow]⏸ paused at the target[/] {view.environment} · run {view.run_id}"
                    + (f"\nlast replayed transaction {recovered}" if recovered else "")
                    + "\ninspect it read-only, then [b]p[/] to promote it (end recovery, start the app, verify), "
                      "or [b]a[/] to replay on to a later target")
        if view.ok:
            reached = f"the dump taken at {recovered}" if view.is_dump else recovered
            return (f"[b green]✔ recovered[/] {view.environment} · run {view.run_id}"
                    + (f"\nrecovered to {reached}" if recovered else ""))
        return f"[b red]✘ failed[/] {view.environment} · run {view.run_id}"

    def _objectives(self) -> str:
        view, config = self.view, self.app.config  # type: ignore[attr-defined]
        rto = view.elapsed(view.finished.at if view.finished else self.app.clock.now())  # type: ignore[attr-defined]
        rto_goal = view.objective(config)
        rpo = view.rpo_seconds
        rpo_goal = (config.objectives.staging_rpo if view.journey == "staging"
                    else config.objectives.pitr_rpo).total_seconds()

        def verdict(value: float | None, goal: float | None) -> str:
            if not view.ok:
                return state_markup(FAILED, "not restored")
            if value is None or goal is None:
                return state_markup("skipped", "not measured")
            return state_markup("passed", "within") if value <= goal else state_markup(FAILED, "missed")

        basis = ("\n[dim]RPO: the dump's age at the restore (what was committed after it is lost)[/]"
                 if view.is_dump else "")
        return ("[b]objectives[/]\n"
                f"RTO  {format_duration(rto):>8} of {format_duration(rto_goal):>8}  {verdict(rto, rto_goal)}\n"
                f"RPO  {format_duration(rpo):>8} of {format_duration(rpo_goal):>8}  {verdict(rpo, rpo_goal)}{basis}")

    def _checks(self) -> str | Group:
        # Checks of the starting point (a drill's pre_health) do not decide the verdict: counted, not listed.
        before = [c for c in self.view.checks if c.data.get("phase") == "pre"]
        after = [c for c in self.view.checks if c.data.get("phase") != "pre"]
        if not after and not before:
            return "[b]checks[/]\n[dim]– no checks ran[/]"
        table = Table.grid(padding=(0, 1), expand=True)  # a long detail wraps inside its column
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1, overflow="fold", style="dim")
        for check in after:
            table.add_row(Text.from_markup(state_markup(check.outcome, f"{check.outcome:<7}")), check.name,
                          check.detail)
        parts: list[str | Table] = ["[b]checks[/]", table]
        if before:
            failed = sum(c.outcome == FAILED for c in before)
            parts.append(f"[dim]before the restore: {len(before)} checks of the starting point, {failed} failed "
                         "(not in the verdict)[/]")
        return Group(*[Text.from_markup(p) if isinstance(p, str) else p for p in parts])

    def _failure(self) -> str:
        view = self.view
        env = self.app.config.environments.get(view.environment)  # type: ignore[attr-defined]
        step = view.failed_step
        lines = ["[b red]what went wrong[/]"]
        if step is not None:
            lines.append(f"✘ step {view.title(step)}: {step.error}")
            if step.hint:
                lines.append(f"  hint: {in_wizard_words(step.hint)}")
        summary = view.finished.summary if view.finished else {}
        preserved = summary.get("preserved")
        remedy = view.record.remedy
        if not self._offers_rollback():
            lines += ["", "[b]next[/]", f"  {remedy['text']}"] if remedy else []
        else:
            lines += ["", "[b]the way back[/]",
                      "  [b]x[/] rolls back: " + (f"puts back the data directory kept at {preserved}" if preserved
                                                  else "puts back the data from before the restore")]
        lines += ["", "[b]what to look at[/]",
                  "  /readyz of the app: is the database reachable, are migrations current?",
                  f"  the server log: {env.server_log if env and env.server_log else 'the PostgreSQL log'}",
                  "  the whole log: esc, back to the run"]
        return "\n".join(lines)

    def _records(self) -> str:
        report = self.report or "— [dim](press w to write it)[/]"
        finished = utc(self.view.finished.at) if self.view.finished else "—"
        return (f"[b]records[/]\njournal  {self.view.journal}\nreport   {report}\n"
                f"started  {utc(self.view.started)}\nfinished {finished}")

    def action_write_record(self) -> None:
        if self.report is not None:
            self.notify(f"the record is already written: {self.report}")
            return
        if self.view.finished is None:
            self.notify("the run has not finished: its record comes when it ends", severity="warning")
            return
        self.app.push_screen(RecordNames(), self._names_given)

    def _names_given(self, names: tuple[str, str] | None) -> None:
        if names is not None:
            self._write_record(*names)

    @work(thread=True, group="record", exclusive=True, exit_on_error=False, description="write the record")
    def _write_record(self, operator: str, reviewer: str) -> None:
        try:
            path = write_report(self.app.config, self.view.journal,  # type: ignore[attr-defined]
                                operator=operator, reviewer=reviewer)
        except (DrError, OSError) as exc:
            self.post_message(RecordWritten(None, f"{getattr(exc, 'title', exc)}\n{getattr(exc, 'hint', '')}"))
        else:
            self.post_message(RecordWritten(path))

    @on(RecordWritten)
    def _record_written(self, message: RecordWritten) -> None:
        if message.path is None:
            self.notify(message.error.strip(), title="the record was not written", severity="error", timeout=15)
            return
        self.report = message.path
        self.query_one("#records", Static).update(self._records())
        self.notify(f"record written: {message.path}")

    def _offers_rollback(self) -> bool:
        """A failed restore whose data is wrong or unusable (its remedy is a rollback, or none was found)."""
        remedy = self.view.record.remedy
        return (not self.view.ok and self.view.journey not in OPERATION_JOURNEYS
                and (not remedy or remedy.get("kind") == "rollback"))

    def _paused(self) -> bool:
        view = self.view
        return bool(view.ok and view.finished and view.finished.summary.get("paused_at_target"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "roll_back":
            return self._offers_rollback()
        if action in ("promote", "advance"):
            return self._paused()
        return True

    @work(exclusive=True, group="confirm")
    async def action_roll_back(self) -> None:
        env = self.view.environment
        config = self.app.config  # type: ignore[attr-defined]
        typed = is_production_like(config.environments[env]) if env in config.environments else True
        if await self.app.push_screen_wait(ConfirmOperation(env, f"roll back {env}: put back the data from "
                                                                 "before this restore", typed)):
            self.app.start_operation("rollback", env)  # type: ignore[attr-defined]

    def action_promote(self) -> None:
        self.app.start_operation("promote", self.view.environment)  # type: ignore[attr-defined]

    @work(exclusive=True, group="confirm")
    async def action_advance(self) -> None:
        value = await self.app.push_screen_wait(AdvanceTarget())
        if value:
            extra = ("--recovery-target", "latest") if value.lower() == "latest" else ("--target-time", value)
            self.app.start_operation("advance", self.view.environment, *extra)  # type: ignore[attr-defined]

    def action_fresh_backup(self) -> None:
        take_fresh_backup(self)

    def action_home(self) -> None:
        self.app.action_home()  # type: ignore[attr-defined]
