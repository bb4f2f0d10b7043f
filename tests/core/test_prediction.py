"""The predicted duration comes from this host's finished restores (their journals), else built-in rates."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from drtui.core.clock import FrozenClock
from drtui.core.events import RunFinished, RunStarted, StepFinished
from drtui.core.journal import Journal, journal_path
from drtui.core.prediction import BUILT_IN, measured_rates, outcomes, short_basis

GB = 1_000_000_000


def write_run(state_dir: Path, clock: FrozenClock, run_id: str, *, backup_bytes: int, wal_bytes: int,
              extract: float, replay: float, other: float, ok: bool = True, journey: str = "pitr") -> float:
    """A finished restore's journal: its plan's sizes and each step's seconds; returns how long it took."""
    journal = Journal(journal_path(state_dir, run_id))
    start = clock.now()
    plan = {"base_backup": {"size_bytes": backup_bytes}, "required_bytes": backup_bytes + wal_bytes}
    journal.append(RunStarted(start, run_id, journey, "staging", ["extract", "follow_recovery"], plan))
    journal.append(StepFinished(start + timedelta(seconds=extract), "extract", extract))
    journal.append(StepFinished(start + timedelta(seconds=extract + replay), "follow_recovery", replay))
    total = extract + replay + other
    journal.append(RunFinished(start + timedelta(seconds=total), ok))
    journal.close()
    clock.advance(3600)
    return total


def test_no_run_means_the_built_in_rates(tmp_path: Path) -> None:
    rates = measured_rates(tmp_path)
    assert rates == BUILT_IN
    assert rates.basis() == "built-in rates (no finished restore on this host yet)"


def test_after_three_runs_the_next_is_predicted_within_30_percent(tmp_path: Path) -> None:
    clock = FrozenClock()
    first = clock.now()
    runs = [(30.0, 3.0, 4.0), (33.5, 2.5, 5.0), (31.6, 3.4, 4.4)]  # extract, replay, the rest; same backup
    for i, (extract, replay, other) in enumerate(runs):
        write_run(tmp_path, clock, f"run{i}-pitr-staging", backup_bytes=2 * GB, wal_bytes=GB // 2,
                  extract=extract, replay=replay, other=other)
    write_run(tmp_path, clock, "failed-pitr-staging", backup_bytes=2 * GB, wal_bytes=GB // 2, extract=1, replay=1,
              other=500, ok=False)  # a failed run says nothing about the rates
    write_run(tmp_path, clock, "dump-staging", backup_bytes=GB, wal_bytes=0, extract=1, replay=1, other=1,
              journey="staging")
    rates = measured_rates(tmp_path)
    assert rates.runs == 3 and rates.since == first
    assert rates.basis() == f"from 3 runs on this host since {first:%Y-%m-%d}"
    assert short_basis(rates.basis()) == "3 runs here" and short_basis(BUILT_IN.basis()) == "built-in rates"
    achieved = 31.9 + 3.1 + 4.6  # the fourth run on the same backup
    assert abs(rates.predict(2 * GB, GB // 2) - achieved) / achieved < 0.3
    assert abs(BUILT_IN.predict(2 * GB, GB // 2) - achieved) / achieved > 0.3  # the fixed rates were off
    bigger = rates.predict(4 * GB, GB)  # twice the data: the variable part doubles, the fixed part does not
    assert bigger > rates.predict(2 * GB, GB // 2) + 10


def write_drill(state_dir: Path, clock: FrozenClock, run_id: str, *, backup_bytes: int, wal_bytes: int,
                extract: float, replay: float, other: float, predicted: float | None) -> float:
    """A finished drill's journal: its own steps around the restore's, the plan it made in RunFinished's summary;
    returns how long its restore took."""
    journal = Journal(journal_path(state_dir, run_id))
    start = clock.now()
    restore = ["preflight", "extract", "follow_recovery", "verify"]
    seconds = {"marker": 1.0, "backup": 20.0, "preflight": other / 2, "extract": extract, "follow_recovery": replay,
               "verify": other / 2, "integrity": 2.0}
    journal.append(RunStarted(start, run_id, "drill", "staging", list(seconds), {"journey": "drill"}))
    at = start
    for step, took in seconds.items():
        at += timedelta(seconds=took)
        journal.append(StepFinished(at, step, took))
    plan = {"base_backup": {"size_bytes": backup_bytes}, "required_bytes": backup_bytes + wal_bytes,
            "steps": restore, "predicted_seconds": predicted, "prediction_basis": "built-in rates (no ...)"}
    journal.append(RunFinished(at, True, summary={"plan": plan}))
    journal.close()
    clock.advance(3600)
    return extract + replay + other


def test_drills_feed_the_prediction_and_their_trend_is_listed(tmp_path: Path) -> None:
    from drtui.headless.drill_commands import trend_lines

    clock = FrozenClock()
    runs = [(30.0, 3.0, 4.0, None), (33.5, 2.5, 5.0, 60.0), (31.6, 3.4, 4.4, 39.0)]
    achieved = [write_drill(tmp_path, clock, f"run{i}-drill-staging", backup_bytes=2 * GB, wal_bytes=GB // 2,
                            extract=e, replay=r, other=o, predicted=p) for i, (e, r, o, p) in enumerate(runs)]
    rates = measured_rates(tmp_path)
    assert rates.runs == 3  # the drill's marker, backup and checks are not counted as the restore's fixed costs
    assert abs(rates.fixed_seconds - 4.4) < 1e-9
    nxt = 31.9 + 3.1 + 4.6
    assert abs(rates.predict(2 * GB, GB // 2) - nxt) / nxt < 0.3
    trend = outcomes(tmp_path, journeys=("drill",))
    assert [(t.predicted_seconds, round(t.achieved_seconds, 6)) for t in trend] == [
        (39.0, round(achieved[2], 6)), (60.0, round(achieved[1], 6)), (None, round(achieved[0], 6))]
    text = trend_lines(trend)
    assert "Predicted against achieved" in text[1]
    assert "predicted    39 s  achieved 39 s (+1%)" in text[2] and "predicted    60 s  achieved 41 s (-32%)" in text[3]
    assert "predicted       -  achieved 37 s" in text[4]
