"""`drtui drill`: the runbook's automated PITR drill (`pitr_restore_drill.sh`), with its variables."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click

from drtui.core.clock import SystemClock
from drtui.core.config import Config
from drtui.core.drill import DrillRequest, run_drill
from drtui.core.errors import UsageError
from drtui.core.planning import parse_target_time, target_time_option
from drtui.core.postgres import current_user
from drtui.core.prediction import Outcome, outcomes, short_basis
from drtui.headless.common import env_option, handle_errors, json_option, pass_context, record_options, run_id_option
from drtui.headless.output import ExitCode, out, out_json
from drtui.headless.printer import EventPrinter, drill_lines
from drtui.headless.targets import make_target


@click.command()
@click.option("--target-time", envvar="TARGET_TIME", default=None,
              help="Recover to this time (TARGET_TIME); default: a moment the drill picks after its marker, "
                   "with exact row counts.")
@click.option("--before-xid", envvar="BEFORE_XID", default=None, metavar="XID",
              help="Recover to just before this transaction (BEFORE_XID; one `drtui events` lists) and prove it: "
                   "the rows committed before it there, the transaction not.")
@click.option("--base-backup", envvar="BASE_BACKUP", type=click.Path(path_type=Path), default=None,
              help="Restore this base backup (BASE_BACKUP) instead of taking a fresh one.")
@click.option("--wal-archive", envvar="WAL_ARCHIVE", type=click.Path(path_type=Path), default=None,
              help="WAL folder or wal_archive_*.tar.gz (WAL_ARCHIVE); default: the live archive.")
@click.option("--skip-backup", envvar="SKIP_BACKUP", is_flag=True,
              help="Take no fresh base backup; use the newest that reaches the target (SKIP_BACKUP=true).")
@click.option("--random-target", envvar="RANDOM_TARGET", is_flag=True,
              help="Restore a random kept base backup to a moment picked uniformly inside its checked window "
                   "(RANDOM_TARGET=true), so that drills test the whole WAL chain.")
@click.option("--seed", envvar="RANDOM_SEED", type=int, default=None,
              help="The seed of the random pick (RANDOM_SEED), to repeat a drill; default: a fresh one, recorded.")
@record_options
@click.option("--yes", is_flag=True, help="Confirm, like CONFIRM_DRILL=YES.")
@run_id_option
@env_option
@json_option
@pass_context
@handle_errors
def drill(ctx, target_time, before_xid, base_backup, wal_archive, skip_backup, random_target, seed, operator,
          reviewer, yes, run_id, env_name, as_json) -> None:
    """Automated PITR drill into staging: marker, fresh base backup, restore, checks, report
    (pitr_restore_drill.sh). Needs TARGET_ENV=staging and CONFIRM_DRILL=YES."""
    clock = SystemClock()
    config = ctx.config(env_name)
    time_text = target_time_option(target_time, os.environ)
    if random_target and time_text is not None:
        raise UsageError(f"--random-target picks the target, and TARGET_TIME gives one ({time_text!r})",
                         "drop one of them: unset TARGET_TIME, or RANDOM_TARGET")
    if random_target and before_xid:
        raise UsageError(f"--random-target picks the target, and BEFORE_XID gives one ({before_xid!r})",
                         "drop one of them: unset BEFORE_XID, or RANDOM_TARGET")
    before = make_target(time_text=time_text, before_xid=before_xid, clock=clock) if before_xid else None
    request = DrillRequest(
        target_env=env_name, confirmed=yes or os.environ.get("CONFIRM_DRILL") == "YES",
        target_time=parse_target_time(time_text, clock) if time_text is not None else None,
        base_backup=base_backup.absolute() if base_backup else None,
        wal_archive=wal_archive.absolute() if wal_archive else None, skip_backup=skip_backup,
        operator=operator or current_user(), reviewer=reviewer, run_id=run_id, random_target=random_target,
        seed=seed, before_xid=before)
    cancel = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    printer = EventPrinter(sys.stderr if as_json else sys.stdout, tty=False if as_json else None)
    try:
        result = run_drill(config, request, clock, cancel, listener=printer)
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary = result.to_json()
    if as_json:
        out_json(summary)
    else:
        for line in drill_lines(summary):
            out(line)
        if (summary.get("plan") or {}).get("random_target"):
            out(f"  random target {summary['plan']['random_target']}")
        if (summary.get("plan") or {}).get("before_xid"):
            out(f"  just before transaction {summary['plan']['before_xid']}")
    sys.exit(ExitCode.OK if result.ok else ExitCode.FAILED)


def drill_trend(config: Config) -> list[Outcome]:
    """The drills on this host's journals, newest first: what each plan predicted and what its restore took."""
    return outcomes(config.state_dir, journeys=("drill",))


def trend_lines(trend: list[Outcome]) -> list[str]:
    """`drtui drills`' section on the predicted durations against the achieved ones."""
    if not trend:
        return []
    lines = ["", "Predicted against achieved (the restore part of each drill, from the run journals):"]
    for run in trend:
        predicted = f"{run.predicted_seconds:.0f} s" if run.predicted_seconds else "-"
        off = (f" ({(run.achieved_seconds - run.predicted_seconds) / run.predicted_seconds:+.0%})"
               if run.predicted_seconds and run.ok else "")
        achieved = f"{run.achieved_seconds:.0f} s{off}" if run.ok else "failed"
        lines.append(f"  {run.started:%Y-%m-%d %H:%M UTC}  predicted {predicted:>7}  achieved {achieved:<14} "
                     f"{short_basis(run.basis)}")
    return lines
