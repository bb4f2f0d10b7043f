"""RunSummary.to_json keeps the `--json` shapes of a restore and of a drill (RunFinished's summary)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from drtui.core.events import CheckCompleted
from drtui.core.runner import DrillFacts, RunSummary, StepLedger, StepRecord

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
STEPS = (StepRecord("preflight", "Preflight", "finished", 1.5), StepRecord("extract", "Extract", "failed", 2.0,
                                                                         "broken", "pick another"))
CHECKS = (CheckCompleted(AT, "readyz", "passed", "200", {"phase": "post"}),
          CheckCompleted(AT, "connect", "passed", "ok", {"phase": "pre"}))


def test_a_restore_summary_has_the_keys_and_values_of_the_json_output() -> None:
    summary = RunSummary("r1", False, Path("/j/r1.jsonl"), "staging", "pitr", 12.5, AT, False, Path("/old"),
                         "broken", "pick another", STEPS, CHECKS, {"rpo_seconds": 3.0})
    data = summary.to_json()
    assert list(data) == ["ok", "run_id", "environment", "journey", "rto_seconds", "recovered_to",
                          "paused_at_target", "preserved", "error", "hint", "rpo", "rpo_seconds", "steps", "checks",
                          "journal", "remedy"]
    assert data["recovered_to"] == AT.isoformat() and data["preserved"] == "/old" and data["rpo_seconds"] == 3.0
    assert data["steps"][1] == {"name": "extract", "title": "Extract", "outcome": "failed", "seconds": 2.0,
                                "error": "broken", "hint": "pick another"}
    assert data["checks"][0] == {"name": "readyz", "outcome": "passed", "detail": "200"}


def test_a_drill_summary_adds_its_facts_and_each_checks_phase() -> None:
    facts = DrillFacts("production", AT, {"drill_id": "r2"}, {"source": {"orders": 3}, "exact": True, "basis": "x"},
                       {"journey": "drill"}, Path("/reports/pitr_drill_x.md"))
    data = RunSummary("r2", True, Path("/j/r2.jsonl"), "staging", "drill", checks=CHECKS,
                      rpo={"rpo_seconds": 0.5}, drill=facts).to_json()
    assert list(data) == ["ok", "run_id", "environment", "journey", "source", "rto_seconds", "recovered_to", "target",
                          "paused_at_target", "preserved", "error", "hint", "steps", "checks", "marker", "counts",
                          "rpo", "plan", "journal", "report", "remedy"]
    assert data["target"] == AT.isoformat() and data["report"] == "/reports/pitr_drill_x.md"
    assert [c["phase"] for c in data["checks"]] == ["post", "pre"]


def test_undo_marks_only_a_finished_step_undone() -> None:
    ledger = StepLedger()
    ledger.steps = list(STEPS)
    ledger.mark_undone("preflight")
    ledger.mark_undone("extract")
    assert [s.outcome for s in ledger.steps] == ["undone", "failed"]
