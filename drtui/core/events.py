"""The facts a run reports, in the order they happen. Steps emit them; the journal stores them as JSON
lines; the TUI, the headless printer and the reports all read the same ones.

Progress may be coalesced by a face; log lines never are, they come batched in one event.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: ClassVar[str] = "event"

    def to_json(self) -> str:
        data = {"type": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = value.isoformat() if isinstance(value, datetime) else value
        return json.dumps(data, default=str)


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: str
    journey: str  # "pitr", "staging", "drill", "verify", "rollback"
    environment: str
    steps: list[str] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    pid: int = 0
    kind: ClassVar[str] = "run_started"


@dataclass(frozen=True)
class StepStarted(Event):
    step: str
    title: str = ""
    kind: ClassVar[str] = "step_started"


@dataclass(frozen=True)
class StepLogged(Event):
    step: str
    lines: list[str]
    source: str = "engine"  # or "server"
    kind: ClassVar[str] = "step_logged"


@dataclass(frozen=True)
class StepProgressed(Event):
    step: str
    done: float
    total: float | None
    unit: str  # "bytes", "lsn", "segments"
    detail: dict[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "step_progressed"


@dataclass(frozen=True)
class StepFinished(Event):
    step: str
    seconds: float
    skipped: str = ""  # why the step did nothing (it then ends skipped, never done); empty: it did its work
    kind: ClassVar[str] = "step_finished"


@dataclass(frozen=True)
class StepFailed(Event):
    step: str
    seconds: float
    error: str
    hint: str = ""
    kind: ClassVar[str] = "step_failed"


@dataclass(frozen=True)
class CheckCompleted(Event):
    name: str
    outcome: str  # "passed", "failed", "skipped"
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "check_completed"


@dataclass(frozen=True)
class RtoTicked(Event):
    elapsed_seconds: float
    objective_seconds: float | None
    kind: ClassVar[str] = "rto_ticked"


@dataclass(frozen=True)
class RunFinished(Event):
    ok: bool
    rto_seconds: float | None = None
    recovered_to: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "run_finished"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls for cls in (RunStarted, StepStarted, StepLogged, StepProgressed, StepFinished, StepFailed,
                              CheckCompleted, RtoTicked, RunFinished)
}


def from_json(line: str) -> Event:
    data = json.loads(line)
    cls = EVENT_TYPES[data.pop("type")]
    data["at"] = datetime.fromisoformat(data["at"])
    return cls(**data)
