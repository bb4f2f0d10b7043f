"""`drtui restore pitr`, `drtui rollback`, `drtui attach` and the hidden `drtui _run PLANFILE`: the runbook's
`pitr_restore.sh` and its rollback, on the same engine the wizard uses."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import click

from drtui.core.clock import SystemClock
from drtui.core.compare import Comparison
from drtui.core.config import Config, Environment
from drtui.core.errors import UsageError
from drtui.core.gates import ApprovedPlan, GateRefused, approve, confirmation_from_environ, evaluate, gather_facts
from drtui.core.journal import Journal, follow, journal_damage, journal_path, list_runs, read_events
from drtui.core.lock import process_start
from drtui.core.new_timeline import fresh_backup_note
from drtui.core.paused import advance, promote
from drtui.core.planning import (
    DumpPlan,
    Plan,
    make_dump_plan,
    make_plan,
    parse_target_time,
    target_time_option,
)
from drtui.core.postgres import current_user
from drtui.core.rollback import is_production_like, plan_rollback, roll_back
from drtui.core.run_record import RunRecord
from drtui.core.run_summary import RunSummary
from drtui.core.runner import execute, new_run_id
from drtui.core.status import interrupted_run
from drtui.core.steps.dump import check_inputs as check_dump_inputs
from drtui.core.tablespaces import parse_mapping
from drtui.headless.common import (
    LOCATION,
    env_option,
    handle_errors,
    json_option,
    pass_context,
    record_options,
    run_id_option,
)
from drtui.headless.compare_output import paused_comparison, paused_lines
from drtui.headless.events_command import before_change
from drtui.headless.output import ExitCode, err, out, out_json
from drtui.headless.printer import EventPrinter, summary_lines
from drtui.headless.targets import make_target


@click.group()
def restore() -> None:
    """Restore an environment (the runbook's restore scripts)."""


@restore.command("pitr")
@click.option("--target-time", envvar="TARGET_TIME", default=None,
              help="Recover to this time (TARGET_TIME): ISO-8601, '2026-01-25 14:30:00 UTC' or '15 minutes ago'.")
@click.option("--recovery-target", envvar="RECOVERY_TARGET", default=None,
              type=click.Choice(["immediate", "latest"], case_sensitive=False),
              help="immediate (end of the base backup) or latest (end of the WAL) (RECOVERY_TARGET).")
@click.option("--target-lsn", default=None, help="Recover to this LSN, e.g. 0/3000060.")
@click.option("--target-xid", default=None, help="Recover to this transaction id.")
@click.option("--before-xid", default=None, metavar="XID",
              help="Recover to just before this transaction (one `drtui events` lists), without it.")
@click.option("--target-name", default=None, help="Recover to this restore point (pg_create_restore_point).")
@click.option("--exclusive", is_flag=True, help="Stop just before the target instead of just after it.")
@click.option("--target-timeline", default=None, help="latest (default), current, or a timeline number.")
@click.option("--base-backup", envvar="BASE_BACKUP", type=LOCATION, default=None,
              help="Base backup to restore (BASE_BACKUP); default: the newest that reaches the target.")
@click.option("--wal-archive", envvar="WAL_ARCHIVE", type=LOCATION, default=None,
              help="WAL folder or wal_archive_*.tar.gz (WAL_ARCHIVE); default: the live archive.")
@click.option("--tablespace-mapping", "tablespace_mapping", multiple=True, metavar="OLD=NEW",
              help="Restore the tablespace that was at OLD into NEW (repeat for each; overrides the config's).")
@click.option("--incident-start", default=None, help="When the incident began: the RTO clock starts there.")
@click.option("--pause-at-target", is_flag=True, help="Pause at the target (read-only) instead of promoting.")
@click.option("--then-backup", is_flag=True,
              help="After a restore over production, take a fresh base backup of its new timeline at once.")
@click.option("--dry-run", is_flag=True, help="Print the plan and stop.")
@click.option("--yes", is_flag=True, help="Confirm, like CONFIRM_PITR_RESTORE=YES.")
@click.option("--report", "write_record", is_flag=True, help="Write the run's PITR DR drill record to report_dir.")
@record_options
@env_option
@json_option
@pass_context
@handle_errors
def pitr(ctx, target_time, recovery_target, target_lsn, target_xid, before_xid, target_name, exclusive,
         target_timeline, base_backup, wal_archive, tablespace_mapping, incident_start, pause_at_target, then_backup,
         dry_run, yes, write_record, operator, reviewer, env_name, as_json) -> None:
    """Point-in-time recovery of an environment (pitr_restore.sh)."""
    clock = SystemClock()
    config = ctx.config(env_name)
    env = config.environment(env_name)
    target = make_target(recovery_target, target_time_option(target_time, os.environ), target_lsn, target_xid,
                         target_name, exclusive=exclusive, timeline=target_timeline, clock=clock,
                         before_xid=before_xid)
    if before_xid:
        target = before_change(config, target)
    if then_backup and (not env.is_production or pause_at_target):
        paused = env.is_production
        raise UsageError(f"--then-backup is for a restore that promotes production, not {env.name}"
                         + (" paused at its target" if paused else ""),
                         "drop --then-backup" + ("; after `drtui restore promote`, take one with `drtui backup base`"
                                                 if paused else " (a fresh backup follows a restore of production)"))
    incident = parse_target_time(incident_start, clock) if incident_start else None
    plan = make_plan(config, env, target, clock=clock, base_backup=base_backup, wal_source=wal_archive,
                     pause_at_target=pause_at_target, incident_start=incident,
                     tablespace_mapping=[parse_mapping(text) for text in tablespace_mapping])
    sys.exit(print_or_run(plan, "pitr", config, env, env_name, dry_run=dry_run, yes=yes, as_json=as_json,
                          record=Record(operator or current_user(), reviewer) if write_record else None,
                          then_backup=then_backup))


@restore.command("staging")
@click.option("--backup-file", envvar="BACKUP_FILE", type=LOCATION, default=None,
              help="The cleaning_*.sql.gz dump to restore (BACKUP_FILE); default: the newest.")
@click.option("--uploads-archive", envvar="UPLOADS_ARCHIVE", type=LOCATION, default=None,
              help="The uploads_*.tar.gz to restore (UPLOADS_ARCHIVE); default: the newest.")
@click.option("--incident-start", default=None, help="When the incident began: the RTO clock starts there.")
@click.option("--source-database", default=None, help="Allow a dump of this other database (named on purpose).")
@click.option("--terminate-sessions", is_flag=True, help="End the sessions on the database (journaled by pid).")
@click.option("--dry-run", is_flag=True, help="Print the plan and stop.")
@click.option("--yes", is_flag=True, help="Confirm, like CONFIRM_STAGING_RESTORE=YES.")
@click.option("--report", "write_record", is_flag=True, help="Write the run's DR drill record to report_dir.")
@record_options
@env_option
@json_option
@pass_context
@handle_errors
def staging(ctx, backup_file, uploads_archive, incident_start, source_database, terminate_sessions, dry_run, yes,
            write_record, operator, reviewer, env_name, as_json) -> None:
    """Restore a dump and uploads archive into staging (restore_to_staging.sh)."""
    clock = SystemClock()
    config = ctx.config(env_name)
    env = config.environment(env_name)
    incident = parse_target_time(incident_start, clock) if incident_start else None
    plan = dataclasses.replace(make_dump_plan(config, env, clock=clock, dump_file=backup_file,
                                              uploads_archive=uploads_archive, incident_start=incident),
                               source_database=source_database, terminate_sessions=terminate_sessions)
    if not dry_run:
        check_dump_inputs(plan, env)
    sys.exit(print_or_run(plan, "staging", config, env, env_name, dry_run=dry_run, yes=yes, as_json=as_json,
                          record=Record(operator or current_user(), reviewer) if write_record else None))


@restore.command("advance")
@click.option("--target-time", envvar="TARGET_TIME", default=None, help="Replay on to this later time.")
@click.option("--recovery-target", type=click.Choice(["latest"]), default=None,
              help="latest: replay all archived WAL (the server then promotes at its end).")
@click.option("--target-lsn", default=None, help="Replay on to this later LSN.")
@click.option("--target-xid", default=None, help="Replay on to this transaction id.")
@click.option("--target-name", default=None, help="Replay on to this restore point.")
@click.option("--exclusive", is_flag=True, help="Stop just before the target instead of just after it.")
@env_option
@json_option
@run_id_option
@pass_context
@handle_errors
def advance_command(ctx, target_time, recovery_target, target_lsn, target_xid, target_name, exclusive,
                    env_name: str | None, as_json: bool, run_id: str | None) -> None:
    """Move the target of a recovery paused at its target (after --pause-at-target) forward, and pause there."""
    clock = SystemClock()
    config = ctx.config(env_name)
    env = config.environment(env_name)
    if env.is_production and env_name != env.name:
        raise UsageError("moving production's recovery target needs the environment named", "pass --env production")
    if not any((target_time, recovery_target, target_lsn, target_xid, target_name)):
        raise UsageError("no new target given",
                         "pass --target-time, --target-lsn, --target-xid, --target-name or --recovery-target latest")
    target = make_target(recovery_target, target_time, target_lsn, target_xid, target_name, exclusive=exclusive,
                         clock=clock)
    printer = EventPrinter(sys.stderr if as_json else sys.stdout, tty=False if as_json else None)
    summary = advance(config, env, target, clock, printer, run_id)
    if as_json:
        out_json(summary.to_json())
    elif summary.ok:
        replayed = summary.recovered_to.isoformat() if summary.recovered_to else "unknown"
        out(f"{env.name}: {'paused at' if summary.paused else 'recovered past the end of the WAL and promoted at'} "
            f"{target.describe()} (last replayed transaction {replayed})")
        for line in paused_lines(config, env.name) if summary.paused else []:
            out(line)
    sys.exit(exit_code_of(summary))


@restore.command("promote")
@env_option
@json_option
@run_id_option
@pass_context
@handle_errors
def promote_command(ctx, env_name: str | None, as_json: bool, run_id: str | None) -> None:
    """End a recovery paused at its target (after --pause-at-target), start the app and verify."""
    config = ctx.config(env_name)
    env = config.environment(env_name)
    if env.is_production and env_name != env.name:
        raise UsageError("promoting production needs the environment named", "pass --env production")
    printer = EventPrinter(sys.stderr if as_json else sys.stdout, tty=False if as_json else None)
    summary = promote(config, env, SystemClock(), printer, run_id)
    if as_json:
        out_json(summary.to_json())
    elif summary.ok or summary.steps[0].outcome == "done":  # promoted: the app or a check failed after it
        out(f"{env.name}: promoted; checks {'passed' if summary.ok else 'FAILED'}")
    sys.exit(exit_code_of(summary))


def exit_code_of(summary: RunSummary) -> ExitCode:
    """A rollback's, promote's or advance's exit code; a failure is said on stderr, as a refusal is."""
    if summary.ok:
        return ExitCode.OK
    err(f"drtui: {summary.error}")
    if summary.hint:
        err(f"  hint: {summary.hint}")
    return ExitCode.FAILED


@dataclass(frozen=True)
class Record:
    """Who operated and reviewed a run whose record (report) is to be written."""

    operator: str
    reviewer: str


def print_or_run(plan: Plan | DumpPlan, journey: str, config: Config, env: Environment, env_name: str | None, *,
                 dry_run: bool, yes: bool, as_json: bool, record: Record | None, then_backup: bool = False) -> int:
    """--dry-run prints the plan; otherwise the gates and the confirmation approve it and it runs here."""
    if dry_run:
        if as_json:
            out_json({"ok": True, "dry_run": True, "plan": plan.to_json(), "description": plan.describe()})
        else:
            for line in plan.describe():
                out(line)
        return ExitCode.OK
    clock = SystemClock()
    approved = approve(plan, evaluate(plan, gather_facts(config, env, env_name)),
                       confirmation_from_environ(journey, os.environ, yes, env_name), clock)
    return run_foreground(approved, config, as_json, record=record, then_backup=then_backup)


def run_foreground(approved: ApprovedPlan, config: Config, as_json: bool, run_id: str | None = None,
                   record: Record | None = None, then_backup: bool = False) -> int:
    """Execute in this process, printing events as they come, then write the run's record if asked;
    returns the exit code."""
    clock = SystemClock()
    plan = approved.plan
    run_id = run_id or new_run_id(plan.journey, plan.environment, clock)
    journal = Journal(journal_path(config.state_dir, run_id))
    printer = EventPrinter(sys.stderr if as_json else sys.stdout, tty=False if as_json else None)
    try:
        result = execute(approved, journal, clock, threading.Event(), config=config, listener=printer)
    finally:
        journal.close()
    summary = result.to_json()
    if record:
        from drtui.core.report import write_report

        summary["report"] = str(write_report(config, journal.path, operator=record.operator,
                                             reviewer=record.reviewer))
    note = fresh_backup_note(config, plan.environment, plan.journey, result.ok, result.paused)
    fresh = fresh_backup(config, plan.environment) if note and then_backup else None
    if note:
        summary["new_timeline"] = note
    if fresh is not None:
        summary["then_backup"] = fresh
    compared = paused_comparison(config, plan.environment) if result.paused else None
    if compared is not None:
        summary["comparison"] = compared.as_json() if isinstance(compared, Comparison) else {"error": compared}
    with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP); the journal has it all
        if as_json:
            out_json(summary)
        else:
            for line in summary_lines(summary) + (paused_lines(config, plan.environment, compared) if compared else []):
                out(line)
            if note:
                out(f"  next          {note}")
            if fresh is not None:
                out(f"  fresh backup  {fresh.get('error') or ', '.join(a['path'] for a in fresh['artifacts'])}")
    return ExitCode.OK if result.ok and not (fresh or {}).get("error") else ExitCode.FAILED


def fresh_backup(config: Config, env_name: str) -> dict:
    """`drtui backup base` of the environment, as its --json says (or the error and its hint)."""
    from drtui.core import backup
    from drtui.core.errors import DrError

    try:
        return backup.base(config, config.environment(env_name), SystemClock()).as_dict()
    except DrError as exc:
        return {"error": f"the fresh base backup failed: {exc.title}", "hint": exc.hint}


@click.command("_run", hidden=True)
@click.argument("plan_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@pass_context
@handle_errors
def run_plan(ctx, plan_file: Path) -> None:
    """Execute an approved plan file (what a detached run does)."""
    approved = ApprovedPlan.from_json(json.loads(plan_file.read_text()))
    config = ctx.config(approved.plan.environment)
    sys.exit(run_foreground(approved, config, as_json=False, run_id=plan_file.stem))


@click.command()
@click.option("--yes", is_flag=True, help="Confirm, like CONFIRM_ROLLBACK=YES (needed for production).")
@env_option
@json_option
@run_id_option
@pass_context
@handle_errors
def rollback(ctx, yes: bool, env_name: str | None, as_json: bool, run_id: str | None) -> None:
    """Put the data from before the last restore back (the copy in place is kept aside, never deleted); after
    a run that was killed, undo that run."""
    config = ctx.config(env_name)
    env = config.environment(env_name)
    plan = plan_rollback(config, env)
    say = err if as_json else out
    if is_production_like(env):
        what = "production" if env.is_production else f"{env.name!r} (its env file says APP_ENV=prod)"
        if env_name != env.name:
            raise GateRefused(f"refused: rolling back {what} needs the environment named",
                              f"pass --env {env.name} (or TARGET_ENV={env.name})")
        if not (yes or os.environ.get("CONFIRM_ROLLBACK") == "YES"):
            raise GateRefused(f"refused: rolling back {what} needs a confirmation; it would "
                              + "; ".join(plan.describe()), "set CONFIRM_ROLLBACK=YES (or pass --yes) to confirm")
    for line in plan.describe():
        say(f"will {line}")
    summary = roll_back(config, env, SystemClock(), run_id=run_id)
    done = summary.rollback
    if as_json:
        out_json(summary.to_json())
    elif done:
        if done.put_back:
            out(f"{done.put_back} → {done.data_dir}")
        if done.set_aside:
            out(f"the data directory it replaced is kept at {done.set_aside}")
        for path in done.removed:
            out(f"removed {path}")
        if done.started:
            out(f"PostgreSQL of {summary.environment} started; journal {summary.journal}")
    sys.exit(exit_code_of(summary))


@click.command()
@click.argument("run", required=False)
@json_option
@pass_context
@handle_errors
def attach(ctx, run: str | None, as_json: bool) -> None:
    """Print a run's journal (default: the newest) and follow it while it runs."""
    config = ctx.config()
    path = _journal_for(config, run)
    now = RunRecord()  # the run as its journal has it now
    for event in read_events(path):
        now.apply(event)
    started, shown = now.started, RunRecord()  # shown: the run as printed so far
    printer = EventPrinter(sys.stderr if as_json else sys.stdout, tty=False)
    stop = threading.Event()
    if now.finished is None and started is not None:
        watcher = threading.Thread(target=_stop_when_gone, args=(started.pid, stop), daemon=True)
        watcher.start()
    else:
        stop.set()
    seen = 0
    try:
        for event in follow(path, stop) if not stop.is_set() else read_events(path):
            printer(event)
            shown.apply(event)
            seen += 1
    except KeyboardInterrupt:  # detaching: the run is another process and goes on
        going_on = started is not None and shown.finished is None and not stop.is_set()
        err(f"\ndetached from run {path.stem}" + (f": it goes on (pid {started.pid}); follow it again with "
                                                  f"`drtui attach {path.stem}`" if going_on else ""))
        sys.exit(ExitCode.OK)
    if stop.is_set() and shown.finished is None:
        for event in read_events(path)[seen:]:
            printer(event)
            shown.apply(event)
    for damage in journal_damage(path):
        err(f"drtui: {damage}")
    if shown.finished is None:
        found = interrupted_run(config, config.environment(started.environment)) if started else None
        if found and found.run_id == started.run_id:
            for line in [*found.describe(), f"next: {found.what_to_do()}"]:
                out(line)
        else:
            out(f"the run in {path} ended without finishing (its process is gone); "
                "inspect the data directory, and `drtui rollback` if needed")
        sys.exit(ExitCode.FAILED)
    if as_json:
        out_json(shown.summary or {"ok": shown.ok, "journal": str(path)})
    else:
        for line in summary_lines(shown.summary) if shown.summary.get("steps") is not None else []:
            out(line)
    sys.exit(ExitCode.OK if shown.ok else ExitCode.FAILED)


def _journal_for(config: Config, run: str | None) -> Path:
    if run and Path(run).is_file():
        return Path(run)
    if run:
        path = journal_path(config.state_dir, run)
        if not path.exists():
            raise UsageError(f"no run {run!r} in {path.parent}", "list runs in the state folder, or omit RUN")
        return path
    runs = list_runs(config.state_dir)
    if not runs:
        raise UsageError(f"no runs in {config.state_dir / 'runs'}", "start one with `drtui restore pitr`")
    return runs[0]


def _stop_when_gone(pid: int, stop: threading.Event) -> None:
    start = process_start(pid)
    while not stop.wait(0.5):
        if start is None or process_start(pid) != start:
            stop.set()

