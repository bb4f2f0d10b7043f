"""How a run ended: the frozen `RunSummary` every journey returns (PITR, staging restore, drill, rollback,
promote, advance), its steps the fold's `StepState` records, and its JSON: RunFinished's summary and `--json`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from drtui.core.events import CheckCompleted
from drtui.core.run_record import StepState


@dataclass(frozen=True)
class DrillFacts:
    """What a drill adds to its summary: its source, target, marker, the source's counts, the plan it made."""

    source: str
    target: datetime | None
    marker: dict[str, Any] | None
    counts: dict[str, Any]
    plan: dict[str, Any]
    report: Path


@dataclass(frozen=True)
class RollbackFacts:
    """What a rollback adds to its summary: what it put back, set aside, removed, and whether it started."""

    data_dir: Path  # a dump restore's rollback: the database's name
    put_back: Path | None
    set_aside: Path | None
    removed: tuple[Path, ...]
    interrupted_run: str | None
    started: bool


# A step's outcome as a summary says it (the fold's "done" and "pending"); the others are said as they are.
SUMMARY_OUTCOMES = {"done": "finished", "pending": "not run"}


def step_json(step: StepState) -> dict[str, Any]:
    """One step of a summary, as `--json` and RunFinished say it."""
    return {"name": step.name, "title": step.title, "outcome": SUMMARY_OUTCOMES.get(step.outcome, step.outcome),
            "seconds": step.seconds or 0.0, "error": step.error or None, "hint": step.hint or None}


@dataclass(frozen=True)
class RunSummary:
    """How a run ended: what every journey returns, and (as `to_json()`) RunFinished's summary and `--json`."""

    run_id: str
    ok: bool
    journal: Path
    environment: str
    journey: str
    rto_seconds: float | None = None
    recovered_to: datetime | None = None
    paused: bool = False
    preserved: Path | None = None
    error: str | None = None
    hint: str | None = None
    steps: tuple[StepState, ...] = ()
    checks: tuple[CheckCompleted, ...] = ()
    rpo: dict[str, Any] | None = None  # as measured (RpoMeasure.as_dict() or the dump's RPO)
    drill: DrillFacts | None = None
    rollback: RollbackFacts | None = None
    remedy: dict[str, Any] | None = None  # after a failure with the restored cluster up (remedy.Remedy.as_dict())

    def to_json(self) -> dict[str, Any]:
        """The `--json` summary and RunFinished's payload."""
        recovered_to = self.recovered_to.isoformat() if self.recovered_to else None
        preserved = str(self.preserved) if self.preserved else None
        steps = [step_json(s) for s in self.steps]
        if self.drill is None:
            return {"ok": self.ok, "run_id": self.run_id, "environment": self.environment, "journey": self.journey,
                    "rto_seconds": self.rto_seconds, "recovered_to": recovered_to, "paused_at_target": self.paused,
                    "preserved": preserved, "error": self.error, "hint": self.hint, "rpo": self.rpo,
                    "rpo_seconds": self.rpo.get("rpo_seconds") if self.rpo else None, "steps": steps,
                    "checks": [{"name": c.name, "outcome": c.outcome, "detail": c.detail} for c in self.checks],
                    "journal": str(self.journal), "remedy": self.remedy, **self._operation_json()}
        drill = self.drill
        return {"ok": self.ok, "run_id": self.run_id, "environment": self.environment, "journey": self.journey,
                "source": drill.source, "rto_seconds": self.rto_seconds, "recovered_to": recovered_to,
                "target": drill.target.isoformat() if drill.target else None, "paused_at_target": self.paused,
                "preserved": preserved, "error": self.error, "hint": self.hint, "steps": steps,
                "checks": [{"name": c.name, "outcome": c.outcome, "detail": c.detail,
                            "phase": c.data.get("phase", "post")} for c in self.checks],
                "marker": drill.marker, "counts": drill.counts, "rpo": self.rpo, "plan": drill.plan,
                "journal": str(self.journal), "report": str(drill.report), "remedy": self.remedy}

    def _operation_json(self) -> dict[str, Any]:
        """What an advance (where it paused) and a rollback (what it moved) add to the summary's keys."""
        if self.journey == "advance":
            return {"paused": self.paused,
                    "replayed_to": self.recovered_to.isoformat() if self.recovered_to else None}
        if (done := self.rollback) is None:
            return {}
        return {"data_dir": str(done.data_dir), "from": str(done.put_back) if done.put_back else None,
                "set_aside": str(done.set_aside) if done.set_aside else None,
                "removed": [str(p) for p in done.removed], "interrupted_run": done.interrupted_run,
                "started": done.started}
