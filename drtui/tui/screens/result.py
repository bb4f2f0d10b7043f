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
from drtui.core.promote import pause_hint
from drtui.core.report import write_report
from drtui.tui.format import FAILED, state_markup, utc
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


class ResultScreen(Screen[None]):
    """What the run achieved: checks, RTO and RPO against the objectives, where the records are,
    and on failure the way back and what to look at."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back to the run"),
        Binding("h", "home", "Home"),
        Binding("w", "write_record", "Write the record"),
        Binding("b", "fresh_backup", "Fresh base backup", show=False),
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
                    + f"\n{pause_hint(view.environment)}")
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
                lines.append(f"  hint: {step.hint}")
        summary = view.finished.summary if view.finished else {}
        preserved = summary.get("preserved")
        remedy = view.record.remedy
        if remedy and remedy.get("kind") != "rollback":
            lines += ["", "[b]next[/]", f"  {remedy['text']}"]
        else:
            lines += ["", "[b]the way back[/]",
                      f"  drtui rollback --env {view.environment}"
                      + (f"   (puts back the data directory kept at {preserved})" if preserved else "")]
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

    def action_fresh_backup(self) -> None:
        take_fresh_backup(self)

    def action_home(self) -> None:
        self.app.action_home()  # type: ignore[attr-defined]
