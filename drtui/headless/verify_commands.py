"""`drtui verify` (the runbook's `pitr_verify.sh` and validation checklist), `drtui report` (the record of a
finished run) and `drtui drills` (the history of drill records, and whether the quarterly drill is overdue)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

import click
import humanize

from drtui.core import checks as core
from drtui.core.clock import SystemClock, isoformat
from drtui.core.errors import DrError, UsageError
from drtui.core.events import CheckCompleted
from drtui.core.journal import journal_damage, journal_path, list_runs, read_events
from drtui.core.planning import parse_target_time, target_time_option
from drtui.core.postgres import current_user
from drtui.core.report import DrillEntry, drill_history, record_from_events, write_report
from drtui.core.runner import is_operation
from drtui.headless.common import env_option, handle_errors, json_option, pass_context, record_options
from drtui.headless.drill_commands import drill_trend, trend_lines
from drtui.headless.output import ExitCode, err, out, out_json

WORDS = {core.PASSED: "PASS", core.FAILED: "FAIL", core.SKIPPED: "SKIP"}


def _print_check(check: CheckCompleted) -> None:
    out(f"{WORDS[check.outcome]:<5} {check.data.get('title', check.name):<31} {check.detail}")
    if check.outcome == core.FAILED and check.data.get("hint"):
        out(f"{'':<5} {'':<31} hint: {check.data['hint']}")


@click.command()
@env_option
@click.option("--target-time", envvar="TARGET_TIME", default=None, metavar="TIME",
              help="The recovery target (TARGET_TIME): max(created_at) must not be later; RPO is measured against it.")
@click.option("--failure-time", default=None, metavar="TIME",
              help="When the incident happened: RPO is measured against it instead of the target.")
@click.option("--wait", "wait_seconds", type=click.FloatRange(min=0), default=0, show_default=True, metavar="SECONDS",
              help="Wait up to this long for /readyz to become healthy before checking.")
@json_option
@pass_context
@handle_errors
def verify(ctx, env_name: str | None, target_time: str | None, failure_time: str | None, wait_seconds: float,
           as_json: bool) -> None:
    """Check a restored (or any) environment: PostgreSQL, WAL archiving, /healthz, /readyz, /healthz/backup,
    sample queries, data timestamps, uploads. Exit 0 when no check failed, 1 when one did."""
    clock = SystemClock()
    config = ctx.config(env_name)
    env = config.environment(env_name)
    target_time = target_time_option(target_time, os.environ)
    target = parse_target_time(target_time, clock) if target_time is not None else None
    failure = parse_target_time(failure_time, clock) if failure_time else None
    results = core.run_checks(config, env, recovered_to=target, emit=lambda e: None if as_json else _print_check(e),
                              clock=clock, wait_ready_seconds=wait_seconds)
    rpo = None
    if target or failure:
        try:
            rpo = core.measure_rpo(env, target, failure)
        except DrError:
            rpo = None  # the database is down: its checks already failed and say why
    counts = core.summarize(results)
    ok = counts[core.FAILED] == 0
    if as_json:
        out_json({"ok": ok, "environment": env.name, "summary": counts,
                  "checks": [{"name": c.name, "title": c.data.get("title"), "outcome": c.outcome, "detail": c.detail,
                              "at": c.at.isoformat(), "data": c.data} for c in results],
                  "rpo": rpo.as_dict() if rpo else None})
    else:
        if rpo and rpo.rpo_seconds is not None:
            against = "the time of failure" if rpo.against == "failure_time" else "the target"
            out(f"RPO   {rpo.rpo_seconds / 60:.1f} min against {against} (last commit "
                f"{isoformat(rpo.last_commit) if rpo.last_commit else '?'}, from {rpo.source})")
        out(f"{counts[core.PASSED]} passed, {counts[core.FAILED]} failed, {counts[core.SKIPPED]} skipped")
    sys.exit(ExitCode.OK if ok else ExitCode.FAILED)


def _minutes(seconds: float | None) -> str:
    return f"{seconds / 60:.1f} min" if seconds is not None else "-"


def _row(entry: DrillEntry) -> str:
    date = entry.date.strftime("%Y-%m-%d %H:%M UTC") if entry.date else "unknown date"
    return f"{date:<21} {entry.result:<7} {_minutes(entry.rto_seconds):>10} {_minutes(entry.rpo_seconds):>10}  " \
           f"{entry.path.name}"


@click.command()
@click.option("--check", is_flag=True, help="Monitoring plugin mode: one line first; exit 0 OK, 1 WARNING when the "
              "drill is overdue (objectives.drill_max_age), 3 UNKNOWN on an error.")
@json_option
@pass_context
@handle_errors
def drills(ctx, check: bool, as_json: bool) -> None:
    """List past drill records in report_dir and flag a quarterly drill that is overdue."""
    config = ctx.config()
    now = SystemClock().now()
    history = drill_history(config.report_dir, now)
    if check:
        from drtui.core.monitoring import Overrides, drill_check

        verdict = drill_check(config, now, history.last_pass, Overrides())
        out(f"DRTUI {verdict.level.name} - {verdict.text}" + (f" | {p}" if (p := verdict.perfdata()) else ""))
        if verdict.todo:
            out(f"  {verdict.todo}")
        sys.exit(int(verdict.level))
    trend = drill_trend(config)
    if as_json:
        out_json(history.as_json() | {"report_dir": str(config.report_dir), "trend": [t.as_json() for t in trend]})
        return
    if not history.entries:
        out(f"no drill records in {config.report_dir}")
    else:
        out(f"{'DATE':<21} {'RESULT':<7} {'RTO':>10} {'RPO':>10}  REPORT")
        for entry in history.entries:
            out(_row(entry))
    for line in trend_lines(trend):
        out(line)
    last = history.last_pass
    if last and last.date:
        out(f"last passing drill: {last.date.date()} ({_age(now, last.date)} ago)")
    if history.overdue:
        out("OVERDUE: " + ("no passing drill on record" if last is None else
                           "the last passing drill is older than a quarter (92 days)")
            + "; run `drtui drill` on staging")


def _age(now: datetime, then: datetime) -> str:
    return humanize.naturaldelta(now - then)


@click.command("report")
@click.argument("run", required=False)
@record_options
@click.option("--template", default=None, metavar="NAME",
              help="Template to render instead of the run's own (e.g. pitr_drill_report.md.j2).")
@click.option("--templates-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A folder of templates that override the packaged ones (config: templates_dir).")
@json_option
@pass_context
@handle_errors
def report(ctx, run: str | None, operator: str | None, reviewer: str, template: str | None, templates_dir: Path | None,
           as_json: bool) -> None:
    """Write the record of a finished run into report_dir (DRILL_REPORT_DIR): the runbook's DR drill record for
    a dump restore, its PITR DR drill record for a PITR, the automated drill report for a drill. RUN is a run id
    or a journal file; default: the newest run."""
    config = ctx.config()
    path = _journal(config.state_dir, run)
    for damage in journal_damage(path):
        err(f"drtui: {damage}")
    record = record_from_events(read_events(path))
    if record.ok is None:
        raise UsageError(f"run {record.run_id} has not finished: its record would be incomplete",
                         f"wait for it (`drtui attach {record.run_id}`), then write the record")
    written = write_report(config, path, operator=operator or current_user(), reviewer=reviewer, template=template,
                           templates_dir=templates_dir)
    if as_json:
        out_json({"report": str(written), "sidecar": str(written.with_suffix(".json")), "run_id": record.run_id,
                  "result": "PASS" if record.passed else "FAIL"})
    else:
        out(str(written))


def _journal(state_dir: Path, run: str | None) -> Path:
    if run is None:
        runs = [path for path in list_runs(state_dir) if not is_operation(path)]
        if not runs:
            raise UsageError(f"no restore or drill runs in {state_dir}", "run a restore first, or name a journal file")
        return runs[0]
    path = Path(run) if run.endswith(".jsonl") else journal_path(state_dir, run)
    if not path.is_file():
        raise UsageError(f"no run {run!r} (looked for {path})", "name a run id from the state folder's runs/, "
                         "or a journal file")
    return path
