"""Issue 14's numbers: one duration rule, a target resolved once, skipped steps, remedies (no server)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from drtui.core.clock import FrozenClock, format_duration
from drtui.core.events import RunFinished, RunStarted, StepFinished, StepStarted
from drtui.core.gates import ApprovedPlan, Confirmation, Facts, approve, evaluate, evaluate_journey
from drtui.core.journal import Journal, read_events
from drtui.core.planning import Plan, Target, TargetError, make_plan
from drtui.core.remedy import RECHECK, ROLLBACK, remedy_after_commit
from drtui.core.report import _rollback_advice
from drtui.core.run_record import RunRecord
from drtui.core.steps.pitr import StartApp, StopApp
from drtui.headless.printer import EventPrinter, event_line
from tests.core.test_planning import world


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (0, "0.0s"), (0.6, "0.6s"), (9.96, "10s"), (45.4, "45s"), (59.6, "1m 00s"), (185, "3m 05s"),
    (3725, "1h 02m"), (2 * 86400 + 3 * 3600, "2d 03h"), (-1, "0.0s")])
def test_format_duration_one_rule(seconds, text):
    assert format_duration(seconds) == text


# -- a target is resolved once ---------------------------------------------------------------------------
def test_a_relative_target_is_one_instant_in_the_plan_the_plan_file_and_the_journal(tmp_path: Path) -> None:
    clock = FrozenClock(datetime(2026, 1, 25, 14, 50, tzinfo=UTC))
    target = Target.parse("time", "3 minutes ago", clock)
    shown = target.time
    assert shown == datetime(2026, 1, 25, 14, 47, tzinfo=UTC) and target.typed == "3 minutes ago"

    clock.advance(60)  # the operator reads the review for a minute
    config, env, inventory = world()
    plan = make_plan(config, env, target, clock=clock, inventory=inventory, pg_version=15, free_bytes=10**9)
    approved = approve(plan, evaluate(plan, Facts("staging", "staging", False)), Confirmation(True), clock)
    journal = Journal(tmp_path / "run.jsonl")
    journal.append(RunStarted(clock.now(), "run", "pitr", "staging", [], plan.to_json()))
    journal.close()

    assert plan.target.time == shown and "2026-01-25T14:47:00Z" in plan.target.describe()
    assert ApprovedPlan.from_json(approved.to_json()).plan.target.time == shown
    assert recovery_settings_time(plan) == "2026-01-25 14:47:00.000000+00"
    started = read_events(tmp_path / "run.jsonl")[0]
    assert datetime.fromisoformat(started.plan["target"]["time"]) == shown


def recovery_settings_time(plan: Plan) -> str:
    return plan.target.settings()["recovery_target_time"]


@pytest.mark.parametrize(("text", "expected"), [
    ("14:30", datetime(2026, 1, 25, 14, 30, tzinfo=UTC)),  # earlier today
    ("14:30:15 UTC", datetime(2026, 1, 25, 14, 30, 15, tzinfo=UTC)),
    ("16:00", datetime(2026, 1, 24, 16, 0, tzinfo=UTC)),  # later than now: yesterday's
])
def test_a_time_of_day_is_the_last_such_moment(text: str, expected: datetime) -> None:
    assert Target.parse("time", text, FrozenClock(datetime(2026, 1, 25, 15, 0, tzinfo=UTC))).time == expected


def test_a_time_of_day_that_is_none_is_refused_with_the_forms() -> None:
    with pytest.raises(TargetError) as caught:
        Target.parse("time", "25:99", FrozenClock())
    assert "'25:99'" in caught.value.title and "'14:30'" in caught.value.hint


# -- a step that did nothing is skipped -----------------------------------------------------------------
def test_a_skipped_step_is_skipped_in_the_record_and_the_printer() -> None:
    at = datetime(2026, 1, 25, 14, 30, tzinfo=UTC)
    record = RunRecord()
    for event in (RunStarted(at, "r", "pitr", "production", ["stop_app", "stop_postgres"]),
                  StepStarted(at, "stop_app", "Stop the application"),
                  StepFinished(at, "stop_app", 0.0, "no stop_app_command configured"),
                  StepStarted(at, "stop_postgres", "Stop PostgreSQL"), StepFinished(at, "stop_postgres", 1.2)):
        record.apply(event)
    assert [s.outcome for s in record.steps] == ["skipped", "done"]
    assert event_line(StepFinished(at, "stop_app", 0.0, "no stop_app_command configured")) == \
        "14:30:00 stop_app: skipped"
    stream = io.StringIO()
    EventPrinter(stream, tty=True)(StepFinished(at, "stop_app", 0.0, "no stop_app_command configured"))
    assert stream.getvalue() == "– stop_app skipped\n"


def test_stop_and_start_app_without_commands_say_why_they_did_nothing() -> None:
    class NoApp:
        def stop_app(self) -> None:
            return None

        start_app = stop_app

    ctx = SimpleNamespace(backend=NoApp(), app_stopped=None)
    assert StopApp().run(ctx).startswith("no application configured to stop (stop_app_command") and \
        ctx.app_stopped is False
    assert StartApp().run(ctx).startswith("no application configured to start (start_app_command")


# -- every hint fits its failure ------------------------------------------------------------------------
def test_a_health_failure_is_rechecked_never_rolled_back() -> None:
    remedy = remedy_after_commit("production", "verify", ["readyz", "healthz_backup"], "/srv/data.pre_pitr_x",
                                 "2026-01-25T14:47:00+00:00")
    assert remedy.kind == RECHECK and "rollback" not in remedy.text
    assert "do not roll back" in remedy.text and "/readyz (are the migrations current?" in remedy.text
    assert remedy.text.endswith("`drtui verify --env production --target-time 2026-01-25T14:47:00+00:00`")
    assert remedy_after_commit("production", "start_app", []).kind == RECHECK
    assert remedy_after_commit("staging", "smoke", ["smoke_tests"]).kind == RECHECK


@pytest.mark.parametrize(("step", "checks"), [("verify", ["readyz", "data_timestamp"]),
                                              ("verify", ["postgres_connect"]), ("integrity", [])])
def test_wrong_or_unusable_data_offers_the_rollback(step: str, checks: list[str]) -> None:
    remedy = remedy_after_commit("production", step, checks, "/srv/data.pre_pitr_x")
    assert remedy.kind == ROLLBACK
    assert "`drtui rollback --env production`" in remedy.text and "/srv/data.pre_pitr_x" in remedy.text


def test_the_record_and_the_report_follow_the_remedy() -> None:
    at = datetime(2026, 1, 25, 14, 30, tzinfo=UTC)
    remedy = remedy_after_commit("production", "verify", ["readyz"])
    record = RunRecord()
    record.apply(RunStarted(at, "r", "pitr", "production", ["verify"], {"data_dir": "/srv/data"}))
    record.apply(RunFinished(at, False, summary={"remedy": remedy.as_dict(), "preserved": "/srv/data.pre",
                                                 "hint": remedy.text}))
    assert record.remedy == {"kind": RECHECK, "text": remedy.text}
    assert _rollback_advice(record, None) == []


# -- the gates say facts --------------------------------------------------------------------------------
@pytest.mark.parametrize(("app_env", "production", "passed", "message"), [
    ("prod", True, True, "env file says APP_ENV=prod: this is a production host (type its name to confirm)"),
    ("staging", False, True, "env file says APP_ENV=staging: not a production host"),
    (None, False, True, "env file sets no APP_ENV: not a production host"),
    ("prod", False, False, "the env file of 'production' says APP_ENV=prod: this host is production"),
])
def test_the_app_env_gate_says_what_the_host_is(app_env, production, passed, message) -> None:
    gate = next(r for r in evaluate_journey("pitr", "production", Facts("production", app_env, production))
                if r.name == "app_env")
    assert gate.passed is passed and gate.message.startswith(message)
