"""The one fold of a run's events: `RunRecord.apply` takes them one at a time (the TUI's run view as they come,
`drtui attach` as it follows a journal), `record_from_events` a whole journal (the records). It imports neither
psycopg nor jinja2, so that a face can fold a run without loading either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drtui.core.errors import DrError
from drtui.core.events import (
    CheckCompleted,
    Event,
    RtoTicked,
    RunFinished,
    RunStarted,
    StepFailed,
    StepFinished,
    StepLogged,
    StepStarted,
)

FAILED = "failed"  # a check's outcome (drtui.core.checks.FAILED)


class ReportError(DrError):
    """A record could not be rendered or written."""


@dataclass
class StepState:
    """One step as the run's events tell it so far; the runner's summary holds the same records as the run ended."""

    name: str
    title: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seconds: float | None = None
    # "pending" (not started), "running", "done", "skipped" (did nothing), "failed"; the runner adds "undone"
    outcome: str = "pending"
    error: str = ""
    hint: str = ""
    log: list[str] = field(default_factory=list)


@dataclass
class RunRecord:
    """A run folded from its events, one `apply` at a time: what the records, the TUI's run view, the headless
    printer and `drtui attach` know about it."""

    run_id: str = ""
    journey: str = ""
    environment: str = ""
    pid: int = 0
    started: RunStarted | None = None
    finished: RunFinished | None = None
    all_steps: dict[str, StepState] = field(default_factory=dict)  # the declared ones first, as RunStarted lists
    checks: list[CheckCompleted] = field(default_factory=list)
    check_steps: list[str | None] = field(default_factory=list)  # the step each check ran in (same order)
    objective_seconds: float | None = None  # the RTO objective the runner holds the run to
    _current: str | None = None

    def apply(self, event: Event) -> None:
        """Fold one more event in."""
        if isinstance(event, RunStarted):
            self.started, self.run_id, self.journey = event, event.run_id, event.journey
            self.environment, self.pid = event.environment, event.pid
            for name in event.steps:
                self.all_steps.setdefault(name, StepState(name, name.replace("_", " ")))
            if self.objective_seconds is None:
                self.objective_seconds = _number(event.plan.get("rto_objective_seconds"))
        elif isinstance(event, StepStarted):
            step = self._step(event.step)
            step.title = event.title or step.title
            step.outcome, step.started_at = "running", event.at
            self._current = event.step
        elif isinstance(event, StepLogged) and event.step in self.all_steps:
            self.all_steps[event.step].log.extend(event.lines)
        elif isinstance(event, StepFinished | StepFailed):
            step = self._step(event.step)
            step.finished_at, step.seconds = event.at, event.seconds
            step.outcome = "failed" if isinstance(event, StepFailed) else "skipped" if event.skipped else "done"
            if isinstance(event, StepFailed):
                step.error, step.hint = event.error, event.hint
            self._current = None if self._current == event.step else self._current
        elif isinstance(event, CheckCompleted):
            self.checks.append(event)
            self.check_steps.append(self._current)
        elif isinstance(event, RtoTicked) and event.objective_seconds is not None:
            self.objective_seconds = event.objective_seconds
        elif isinstance(event, RunFinished):
            self.finished = event

    def mark_undone(self, name: str) -> None:
        """The runner undid a finished step (the journal says so only in a log line)."""
        if (step := self.all_steps.get(name)) and step.outcome == "done":
            step.outcome = "undone"

    def mark_skipped(self, name: str) -> None:
        """The runner skipped a step (recovery paused at its target)."""
        self._step(name).outcome = "skipped"

    def _step(self, name: str) -> StepState:
        return self.all_steps.setdefault(name, StepState(name, name))

    @property
    def steps(self) -> list[StepState]:
        """The steps that started, in order."""
        return [step for step in self.all_steps.values() if step.started_at is not None]

    @property
    def plan(self) -> dict[str, Any]:
        return _plan(self.started, self.finished) if self.started else {}

    @property
    def started_at(self) -> datetime:
        assert self.started, "no run_started event folded in"
        return self.started.at

    @property
    def finished_at(self) -> datetime | None:
        return self.finished.at if self.finished else None

    @property
    def ok(self) -> bool | None:
        """None: the run has not finished."""
        return self.finished.ok if self.finished else None

    @property
    def summary(self) -> dict[str, Any]:
        """RunFinished's summary (the runner's RunSummary as JSON); empty until the run finished."""
        return self.finished.summary if self.finished else {}

    @property
    def recovered_to(self) -> datetime | None:
        return as_datetime(self.finished.recovered_to) if self.finished else None

    @property
    def rto_seconds(self) -> float | None:
        """The runner's RTO; for a run that ended without one, from the first healthy check."""
        if self.finished and self.finished.rto_seconds is not None:
            return self.finished.rto_seconds
        from drtui.core.checks import healthy_at  # with psycopg: only for a run that ended without an RTO

        healthy = healthy_at(self.checks)
        clock_start = as_datetime(self.plan.get("incident_start")) or self.started_at
        return (healthy - clock_start).total_seconds() if healthy else None

    @property
    def rpo_seconds(self) -> float | None:
        """The RPO the run measured (the summary's `rpo`, a drill's and a restore's alike), else a check's."""
        measured = self.summary.get("rpo")
        if isinstance(measured, dict) and (rpo := _number(measured.get("rpo_seconds"))) is not None:
            return rpo
        return next((_number(c.data["rpo_seconds"]) for c in self.checks if "rpo_seconds" in c.data), None)

    @property
    def remedy(self) -> dict[str, Any] | None:
        """After a failure with the restored cluster up, the one next step (drtui.core.remedy): its kind
        ("rollback" only when the restored data is wrong or unusable, else "recheck") and text."""
        found = self.summary.get("remedy")
        return found if isinstance(found, dict) else None

    @property
    def failed_step(self) -> StepState | None:
        return next((step for step in self.all_steps.values() if step.outcome == "failed"), None)

    @property
    def failed_checks(self) -> list[CheckCompleted]:
        """Failed checks of the result; a pre-restore health check only describes where the run started."""
        return [check for check in self.phase_checks("post") if check.outcome == FAILED]

    @property
    def passed(self) -> bool:
        """The run finished well and no check of its result failed."""
        return self.ok is True and not self.failed_checks

    def phase_checks(self, phase: str) -> list[CheckCompleted]:
        """Checks before the restore touched anything ("pre") or after it ("post")."""
        return [check for check, step in zip(self.checks, self.check_steps, strict=True)
                if _phase(check, step) == phase]


def _phase(check: CheckCompleted, step: str | None) -> str:
    if check.data.get("phase") in ("pre", "post"):
        return check.data["phase"]
    return "pre" if step and step.startswith("pre") and step != "preserve" else "post"


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def record_from_events(events: Sequence[Event]) -> RunRecord:
    """Fold a journal's events into a RunRecord."""
    record = RunRecord()
    for event in events:
        record.apply(event)
    if record.started is None:
        raise ReportError("the journal has no run_started event", "is this a drtui run journal?")
    return record


def _plan(started: RunStarted, finished: RunFinished | None) -> dict[str, Any]:
    """The run's plan; a run that plans after it starts (a drill) completes it in RunFinished's summary."""
    late = finished.summary.get("plan") if finished else None
    return {**started.plan, **late} if isinstance(late, dict) else started.plan


def as_datetime(value: Any) -> datetime | None:
    """A time as the journal writes it (ISO text), or None."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None
