"""RunSummary.to_json keeps the `--json` shapes of a restore, a drill, an advance and a rollback (RunFinished's
summary); its steps are the fold's StepState records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from drtui.core.events import CheckCompleted, RunStarted, StepFinished, StepStarted
from drtui.core.run_record import RunRecord, StepState
from drtui.core.run_summary import DrillFacts, RollbackFacts, RunSummary

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
STEPS = (StepState("preflight", "Preflight", outcome="done", seconds=1.5),
         StepState("extract", "Extract", outcome="failed", seconds=2.0, error="broken", hint="pick another"),
         StepState("swap_in", "Swap in"))
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
    assert data["steps"][0]["outcome"] == "finished" and data["steps"][0]["error"] is None
    assert data["steps"][2] == {"name": "swap_in", "title": "Swap in", "outcome": "not run", "seconds": 0.0,
                                "error": None, "hint": None}
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


def test_an_advance_says_where_it_paused_and_a_rollback_what_it_moved() -> None:
    advanced = RunSummary("r3", True, Path("/j/r3.jsonl"), "staging", "advance", recovered_to=AT, paused=True)
    data = advanced.to_json()
    assert data["paused"] is True and data["replayed_to"] == AT.isoformat() and data["journey"] == "advance"
    facts = RollbackFacts(Path("/s/data"), Path("/s/data.pre_pitr_x"), Path("/s/data.replaced_y"),
                          (Path("/s/data.extract_z"),), "run-z", True)
    data = RunSummary("r4", True, Path("/j/r4.jsonl"), "staging", "rollback", rollback=facts).to_json()
    assert {k: data[k] for k in ("data_dir", "from", "set_aside", "removed", "interrupted_run", "started")} == {
        "data_dir": "/s/data", "from": "/s/data.pre_pitr_x", "set_aside": "/s/data.replaced_y",
        "removed": ["/s/data.extract_z"], "interrupted_run": "run-z", "started": True}
    assert "paused" not in data and "from" not in RunSummary("r5", True, Path("/j"), "staging", "pitr").to_json()


def test_the_fold_marks_only_a_finished_step_undone_and_a_skipped_one_skipped() -> None:
    record = RunRecord()
    for event in (RunStarted(AT, "r1", "pitr", "staging", ["preflight", "extract", "verify"], {}, 1),
                  StepStarted(AT, "preflight", "Preflight"), StepFinished(AT, "preflight", 1.0),
                  StepStarted(AT, "extract", "Extract")):
        record.apply(event)
    record.mark_undone("preflight")
    record.mark_undone("extract")  # running, not finished: stays as it is
    record.mark_skipped("verify")
    assert [s.outcome for s in record.all_steps.values()] == ["undone", "running", "skipped"]
