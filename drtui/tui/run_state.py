"""A run as the screens see it: the journal's events folded into steps, progress, log and result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from drtui.core import events as ev
from drtui.core.config import Config
from drtui.core.journal import read_events
from drtui.core.runner import rto_objective
from drtui.tui.format import DONE, FAILED, PENDING, RUNNING


@dataclass
class StepView:
    name: str
    title: str
    state: str = PENDING
    started: datetime | None = None
    seconds: float | None = None
    error: str = ""
    hint: str = ""


@dataclass
class Progress:
    done: float
    total: float | None
    unit: str
    start: float = 0.0  # where the bar begins: WAL replay counts from the backup's start LSN


@dataclass
class RunView:
    journal: Path
    run_id: str = ""
    journey: str = ""
    environment: str = ""
    pid: int = 0
    plan: dict = field(default_factory=dict)
    started: datetime | None = None
    steps: dict[str, StepView] = field(default_factory=dict)
    extraction: Progress | None = None
    replay: Progress | None = None
    checks: list[ev.CheckCompleted] = field(default_factory=list)
    objective_seconds: float | None = None
    finished: ev.RunFinished | None = None
    log_lines: int = 0

    def apply(self, event: ev.Event) -> list[str]:
        """Fold one event in; return the log lines it carries (already prefixed for the log panel)."""
        match event:
            case ev.RunStarted():
                self.run_id, self.journey, self.environment = event.run_id, event.journey, event.environment
                self.pid, self.plan, self.started = event.pid, dict(event.plan), event.at
                for name in event.steps:
                    self.steps.setdefault(name, StepView(name, name.replace("_", " ")))
                if self.objective_seconds is None:
                    self.objective_seconds = _number(event.plan.get("rto_objective_seconds"))
            case ev.StepStarted():
                step = self.steps.setdefault(event.step, StepView(event.step, event.step.replace("_", " ")))
                step.title = event.title or step.title
                step.state, step.started = RUNNING, event.at
            case ev.StepFinished():
                step = self.steps.setdefault(event.step, StepView(event.step, event.step))
                step.state, step.seconds = DONE, event.seconds
            case ev.StepFailed():
                step = self.steps.setdefault(event.step, StepView(event.step, event.step))
                step.state, step.seconds, step.error, step.hint = FAILED, event.seconds, event.error, event.hint
                return [f"✘ {event.step}: {event.error}"] + ([f"  hint: {event.hint}"] if event.hint else [])
            case ev.StepProgressed():
                progress = Progress(event.done, event.total, event.unit)
                if event.unit == "lsn":
                    first = _number(event.detail.get("start"))
                    progress.start = first if first is not None else (self.replay.start if self.replay
                                                                      else event.done)
                    self.replay = progress
                elif event.unit == "bytes":
                    self.extraction = progress
            case ev.StepLogged():
                self.log_lines += len(event.lines)
                prefix = "pg │ " if event.source == "server" else ""
                return [prefix + line for line in event.lines]
            case ev.CheckCompleted():
                self.checks.append(event)
            case ev.RtoTicked():
                if event.objective_seconds is not None:
                    self.objective_seconds = event.objective_seconds
            case ev.RunFinished():
                self.finished = event
        return []

    def objective(self, config: Config | None) -> float | None:
        if self.objective_seconds is not None or config is None:
            return self.objective_seconds
        return rto_objective(config.objectives, self.journey == "staging")

    def elapsed(self, now: datetime) -> float:
        if self.started is None:
            return 0.0
        if self.finished is not None:
            if self.finished.rto_seconds is not None:
                return self.finished.rto_seconds
            return (self.finished.at - self.started).total_seconds()
        return max((now - self.started).total_seconds(), 0.0)

    def projected_finish(self, now: datetime) -> datetime | None:
        """The plan's prediction if it has one, else the pace of the steps done so far."""
        if self.started is None or self.finished is not None:
            return None
        predicted = _number(self.plan.get("predicted_seconds"))
        elapsed = self.elapsed(now)
        if predicted is not None:
            return self.started + timedelta(seconds=max(predicted, elapsed))
        total = len(self.steps)
        done = sum(1 for s in self.steps.values() if s.state == DONE)
        if not total or not done:
            return None
        return self.started + timedelta(seconds=elapsed * total / done)

    @property
    def is_dump(self) -> bool:
        """A dump restore: no base backup to extract, no WAL to replay."""
        return "dump_file" in self.plan

    @property
    def ok(self) -> bool | None:
        return None if self.finished is None else self.finished.ok

    @property
    def failed_step(self) -> StepView | None:
        return next((s for s in self.steps.values() if s.state == FAILED), None)

    @property
    def rpo_seconds(self) -> float | None:
        if self.finished is not None:
            summary = self.finished.summary
            measured = summary.get("rpo") if isinstance(summary.get("rpo"), dict) else {}
            for value in (summary.get("rpo_seconds"), measured.get("rpo_seconds")):  # a drill nests it in "rpo"
                if (rpo := _number(value)) is not None:
                    return rpo
        return next((_number(c.data["rpo_seconds"]) for c in self.checks if "rpo_seconds" in c.data), None)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def load_run(journal: Path) -> tuple[RunView, list[str]]:
    """A run's state and whole log, read from its journal now."""
    view = RunView(journal)
    lines: list[str] = []
    for event in read_events(journal):
        lines.extend(view.apply(event))
    return view, lines


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def runs_in_progress(config: Config) -> list[RunView]:
    """Restores and drills on this host whose journal has no end and whose process still lives."""
    from drtui.core.journal import list_runs
    from drtui.core.runner import is_operation

    found = []
    for path in [p for p in list_runs(config.state_dir) if not is_operation(p)][:20]:
        try:
            view, _ = load_run(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if view.finished is None and pid_alive(view.pid):
            found.append(view)
    return found
