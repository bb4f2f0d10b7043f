from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from drtui.tui.format import FAILED, duration, state_markup, utc
from drtui.tui.run_state import RunView


class ResultScreen(Screen[None]):
    """What the run achieved: checks, RTO and RPO against the objectives, where the records are,
    and on failure the way back and what to look at."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back to the run"),
        Binding("h", "home", "Home"),
    ]

    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="result"):
            yield Static(self._verdict(), id="verdict")
            yield Static(self._objectives(), id="objectives", classes="panel")
            yield Static(self._checks(), id="checks", classes="panel")
            if not self.view.ok:
                yield Static(self._failure(), id="failure", classes="panel")
            yield Static(self._records(), id="records", classes="panel")
        yield Footer()

    def _verdict(self) -> str:
        view = self.view
        recovered = view.finished.recovered_to if view.finished else None
        if view.ok:
            return (f"[b green]✔ recovered[/] {view.environment} · run {view.run_id}"
                    + (f"\nrecovered to {recovered}" if recovered else ""))
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

        return ("[b]objectives[/]\n"
                f"RTO  {duration(rto):>8} of {duration(rto_goal):>8}  {verdict(rto, rto_goal)}\n"
                f"RPO  {duration(rpo):>8} of {duration(rpo_goal):>8}  {verdict(rpo, rpo_goal)}")

    def _checks(self) -> str:
        if not self.view.checks:
            return "[b]checks[/]\n[dim]– no checks ran[/]"
        rows = [f"{state_markup(c.outcome, f'{c.outcome:<7}')} {c.name:<22} [dim]{c.detail}[/]"
                for c in self.view.checks]
        return "[b]checks[/]\n" + "\n".join(rows)

    def _failure(self) -> str:
        view = self.view
        env = self.app.config.environments.get(view.environment)  # type: ignore[attr-defined]
        step = view.failed_step
        lines = ["[b red]what went wrong[/]"]
        if step is not None:
            lines.append(f"✘ step {step.title}: {step.error}")
            if step.hint:
                lines.append(f"  hint: {step.hint}")
        summary = view.finished.summary if view.finished else {}
        preserved = summary.get("preserved")
        lines += ["", "[b]the way back[/]",
                  f"  drtui rollback --env {view.environment}"
                  + (f"   (puts back the data directory kept at {preserved})" if preserved else ""),
                  "", "[b]what to look at[/]",
                  "  /readyz of the app: is the database reachable, are migrations current?",
                  f"  the server log: {env.server_log if env and env.server_log else 'the PostgreSQL log'}",
                  f"  the whole journal: drtui attach {view.run_id}"]
        return "\n".join(lines)

    def _records(self) -> str:
        summary = self.view.finished.summary if self.view.finished else {}
        report = summary.get("report") or summary.get("report_path") or "—"
        finished = utc(self.view.finished.at) if self.view.finished else "—"
        return (f"[b]records[/]\njournal  {self.view.journal}\nreport   {report}\n"
                f"started  {utc(self.view.started)}\nfinished {finished}")

    def action_home(self) -> None:
        self.app.action_home()  # type: ignore[attr-defined]
