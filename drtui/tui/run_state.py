"""A run as the screens see it: the journal's events folded into steps, progress, log and result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from drtui.core import events as ev
from drtui.core.config import Config
from drtui.core.drill import AFTER_STEPS, DRILL_STEPS
from drtui.core.journal import read_events
from drtui.core.report import RunRecord, StepState
from drtui.core.runner import DUMP_STEPS, PITR_STEPS, rto_objective
from drtui.tui.format import DONE, PENDING

# A step not started yet is known by its name only: it is shown by the title it will start with.
TITLES = {"dump": {step.name: step.title for step in DUMP_STEPS},
          "pitr": {step.name: step.title for step in PITR_STEPS} | dict(DRILL_STEPS + AFTER_STEPS)}


@dataclass
class Progress:
    done: float
    total: float | None
    unit: str
    start: float = 0.0  # where the bar begins: WAL replay counts from the backup's start LSN
    step: str = ""


@dataclass
class RunView:
    """The core's RunRecord of a run, plus what only a screen shows: the progress bars and the log's length."""

    journal: Path
    record: RunRecord = field(default_factory=RunRecord)
    extraction: Progress | None = None
    replay: Progress | None = None
    log_lines: int = 0

    def apply(self, event: ev.Event) -> list[str]:
        """Fold one event in; return the log lines it carries (already prefixed for the log panel)."""
        self.record.apply(event)
        match event:
            case ev.StepFailed():
                return [f"✘ {event.step}: {event.error}"] + ([f"  hint: {event.hint}"] if event.hint else [])
            case ev.StepProgressed():
                progress = Progress(event.done, event.total, event.unit, step=event.step)
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
        return []

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def journey(self) -> str:
        return self.record.journey

    @property
    def environment(self) -> str:
        return self.record.environment

    @property
    def pid(self) -> int:
        return self.record.pid

    @property
    def plan(self) -> dict:
        return dict(self.record.started.plan) if self.record.started else {}

    @property
    def started(self) -> datetime | None:
        return self.record.started.at if self.record.started else None

    @property
    def steps(self) -> dict[str, StepState]:
        return self.record.all_steps

    @property
    def checks(self) -> list[ev.CheckCompleted]:
        return self.record.checks

    @property
    def finished(self) -> ev.RunFinished | None:
        return self.record.finished

    def title(self, step: StepState) -> str:
        """A step's one label, pending or finished."""
        if step.outcome != PENDING:
            return step.title
        return TITLES["dump" if self.is_dump else "pitr"].get(step.name, step.title)

    def step_done(self, progress: Progress) -> bool:
        step = self.steps.get(progress.step)
        return step is not None and step.outcome == DONE

    def objective(self, config: Config | None) -> float | None:
        if self.record.objective_seconds is not None or config is None:
            return self.record.objective_seconds
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
        done = sum(1 for s in self.steps.values() if s.outcome == DONE)
        if not total or not done:
            return None
        return self.started + timedelta(seconds=elapsed * total / done)

    @property
    def is_dump(self) -> bool:
        """A dump restore: no base backup to extract, no WAL to replay."""
        return "dump_file" in self.plan

    @property
    def ok(self) -> bool | None:
        return self.record.ok

    @property
    def failed_step(self) -> StepState | None:
        return self.record.failed_step

    @property
    def rpo_seconds(self) -> float | None:
        return self.record.rpo_seconds


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
