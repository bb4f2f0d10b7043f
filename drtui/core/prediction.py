"""How long a restore will take on this host, from this host's own finished restores and drills.

Every PITR journal holds its plan (the base backup's bytes, the WAL bytes it would replay) and each step's
seconds; a drill's holds the plan it made in its summary, and its restore's steps among its own. From the runs
that finished, three numbers are measured: the bytes per second the extraction wrote, the WAL bytes per second
the replay went through, and the seconds everything else of the restore took (stopping, starting, verifying).
The median of each predicts the next plan; with no run on record, the built-in rates (this machine class,
research/perf-baseline.md) do, and the plan says which basis it used. The same journals give the trend of
predicted against achieved that `drtui drills` lists.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drtui.core.events import RunFinished, RunStarted, StepFinished
from drtui.core.journal import list_runs, read_events

BUILT_IN_EXTRACT_BYTES_PER_SECOND = 250e6
BUILT_IN_REPLAY_BYTES_PER_SECOND = 150e6
BUILT_IN_FIXED_SECONDS = 8.0
MIN_SECONDS = 0.05  # a step shorter than this says nothing about a rate
JOURNEYS = ("pitr", "drill")


@dataclass(frozen=True)
class Rates:
    extract_bytes_per_second: float
    replay_bytes_per_second: float
    fixed_seconds: float
    runs: int = 0  # how many finished runs the rates come from (0: built in)
    since: datetime | None = None  # the oldest of them

    def predict(self, backup_bytes: int, wal_bytes: int) -> float:
        """Seconds from the run's start to its end (verified)."""
        return (self.fixed_seconds + backup_bytes / self.extract_bytes_per_second
                + wal_bytes / self.replay_bytes_per_second)

    def basis(self) -> str:
        if not self.runs:
            return "built-in rates (no finished restore on this host yet)"
        runs = "1 run" if self.runs == 1 else f"{self.runs} runs"
        since = f" since {self.since:%Y-%m-%d}" if self.since else ""
        return f"from {runs} on this host{since}"


def short_basis(basis: str) -> str:
    """A plan's prediction basis in a few words, for a screen: 'built-in rates', or '3 runs here'."""
    if not basis or basis.startswith("built-in"):
        return "built-in rates"
    return basis.split(" on this host", 1)[0].removeprefix("from ") + " here"


BUILT_IN = Rates(BUILT_IN_EXTRACT_BYTES_PER_SECOND, BUILT_IN_REPLAY_BYTES_PER_SECOND, BUILT_IN_FIXED_SECONDS)


@dataclass(frozen=True)
class Outcome:
    """One finished run: what its plan predicted, what it achieved, and the rates it measured."""

    run_id: str
    journey: str
    started: datetime
    ok: bool
    predicted_seconds: float | None
    basis: str
    achieved_seconds: float
    extract_rate: float | None
    replay_rate: float | None
    fixed_seconds: float

    def as_json(self) -> dict:
        return {"run_id": self.run_id, "journey": self.journey, "started": self.started.isoformat(), "ok": self.ok,
                "predicted_seconds": self.predicted_seconds, "basis": self.basis,
                "achieved_seconds": self.achieved_seconds}


def achieved_seconds(journey: str, plan: dict, step_seconds: dict[str, float], total: float) -> float:
    """The part of a run its plan's prediction is about: the whole run of a restore; the restore's own steps of
    a drill (its marker, backup and checks come before and after the plan)."""
    if journey != "drill":
        return total
    return sum(step_seconds.get(name, 0.0) for name in plan.get("steps") or ())


def _measure(path: Path) -> Outcome | None:
    """One finished run's outcome and rates, or None when the journal holds no run of a restore."""
    events = read_events(path, damage=[])
    start = next((e for e in events if isinstance(e, RunStarted)), None)
    end = next((e for e in events if isinstance(e, RunFinished)), None)
    if start is None or end is None or start.journey not in JOURNEYS:
        return None
    plan = (end.summary.get("plan") if start.journey == "drill" else None) or start.plan
    seconds = {e.step: e.seconds for e in events if isinstance(e, StepFinished)}
    backup_bytes = (plan.get("base_backup") or {}).get("size_bytes") or 0
    wal_bytes = max(0, (plan.get("required_bytes") or 0) - backup_bytes)
    extract, replay = seconds.get("extract"), seconds.get("follow_recovery")
    if extract is None or replay is None:
        return None
    achieved = achieved_seconds(start.journey, plan, seconds, (end.at - start.at).total_seconds())
    return Outcome(start.run_id, start.journey, start.at, end.ok, plan.get("predicted_seconds"),
                   plan.get("prediction_basis") or "", achieved,
                   backup_bytes / extract if backup_bytes and extract >= MIN_SECONDS else None,
                   wal_bytes / replay if wal_bytes and replay >= MIN_SECONDS else None,
                   max(0.0, achieved - extract - replay))


def outcomes(state_dir: Path, journeys: tuple[str, ...] = JOURNEYS, limit: int = 20) -> list[Outcome]:
    """The newest `limit` finished restores and drills on this host (failed ones too), newest first."""
    found = (m for path in list_runs(state_dir)[: limit * 3] if (m := _measure(path)))
    return [m for m in found if m.journey in journeys][:limit]


def measured_rates(state_dir: Path, limit: int = 20) -> Rates:
    """The median rates of the newest `limit` finished restores on this host, or the built-in ones."""
    runs = [m for m in outcomes(state_dir, limit=limit * 2) if m.ok][:limit]
    if not runs:
        return BUILT_IN
    extract = [m.extract_rate for m in runs if m.extract_rate]
    replay = [m.replay_rate for m in runs if m.replay_rate]
    return Rates(statistics.median(extract) if extract else BUILT_IN.extract_bytes_per_second,
                 statistics.median(replay) if replay else BUILT_IN.replay_bytes_per_second,
                 statistics.median(m.fixed_seconds for m in runs), len(runs), min(m.started for m in runs))
