"""A restore that paused at its target (--pause-at-target): once the operator has inspected the data read-only,
either move the target forward (recovery replays on to the new target and pauses there again) or promote
(recovery ends, the server leaves recovery, the app starts and the checks run).

Neither may strand the server. Both first tell apart where the server is (`recovery_state`): running and paused,
still replaying, not in recovery, starting, or down in the middle of a recovery (stopped, or crashed), and
refuse with what to do unless it is paused. An advance checks the new target against the window of the backup
and WAL the paused restore used before it touches anything. PostgreSQL cannot replay backwards, so when
recovery still ends before the new target (WAL that went missing after the check), the server is started
again paused at the furthest record it replayed, or with its previous target settings when it had not
moved past them: it is never left down.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from drtui.core.backends import backend_for
from drtui.core.backends.base import Backend, RecoveryStatus
from drtui.core.clock import Clock, isoformat
from drtui.core.config import Config, Environment
from drtui.core.errors import DrError, UsageError
from drtui.core.events import Event, from_json
from drtui.core.journal import list_runs
from drtui.core.models import format_lsn, parse_lsn, segment_name
from drtui.core.planning import (
    Plan,
    PlanError,
    Target,
    TargetKind,
    check_target,
    plan_from_json,
)
from drtui.core.programs import with_programs_of_data
from drtui.core.promote import next_step, paused_status, position, recovery_state
from drtui.core.run_summary import RunSummary
from drtui.core.runner import is_operation, run_operation
from drtui.core.steps import Step, StepContext
from drtui.core.steps.pitr import StartApp, Verify
from drtui.core.steps.recovery import end_replay_tuning

PROMOTE_TIMEOUT = 120.0
# The server log's words for WAL it could not read, which an advance's failed start is then blamed on.
_WAL_TROUBLE = re.compile(r"could not (?:restore|open|read|find|locate)|invalid (?:record|checkpoint|magic)|"
                          r"requested WAL segment|checkpoint record")
# Every recovery_target_* setting, blanked before a new target is written, so two kinds never clash.
TARGET_SETTINGS = ("recovery_target", "recovery_target_time", "recovery_target_lsn", "recovery_target_xid",
                   "recovery_target_name")
# What a paused server's target is made of: read from the running server, written back if an advance fails.
RESTORABLE_SETTINGS = (*TARGET_SETTINGS, "recovery_target_inclusive", "recovery_target_timeline",
                       "recovery_target_action")


def _restore_plan(config: Config, env: Environment) -> Plan | None:
    """The plan of the newest restore into `env`: the base backup and WAL source a paused recovery uses."""
    for journal in list_runs(config.state_dir):
        if is_operation(journal):
            continue
        with journal.open(encoding="utf-8") as handle:
            first = handle.readline()
        try:
            plan = getattr(from_json(first), "plan", None) if first.endswith("\n") else None
            restored = plan_from_json(plan) if plan and plan.get("environment") == env.name else None
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(restored, Plan):
            return restored
    return None


def check_advance_target(config: Config, env: Environment, target: Target, clock: Clock) -> str:
    """Refuse (PlanError) a new target the paused restore's base backup and WAL cannot reach; say what was
    checked."""
    plan = _restore_plan(config, env)
    if plan is None or (isinstance(plan.wal_source, Path) and not plan.wal_source.exists()):
        missing = "no restore run of it in the journals" if plan is None else f"{plan.wal_source} is gone"
        return f"the new target could not be checked against a window ({missing})"
    from drtui.core.inventory import compute_windows, scan

    inventory = scan(config, wal_source=plan.wal_source, env=env, clock=clock)

    def resolved(location: Any) -> Any:  # a path, or an s3:// object (that is already whole)
        return location.resolve() if isinstance(location, Path) else location

    wanted = resolved(plan.base_backup.path)
    pairs = [(b, w) for b, w in zip(inventory.base_backups, inventory.windows, strict=False)
             if resolved(b.path) == wanted]
    backup, window = pairs[0] if pairs else (plan.base_backup,
                                             compute_windows([plan.base_backup], inventory.wal, env.pg_bin)[0])
    check_target(target, backup, window, inventory)
    return (f"{target.describe()} is inside the window of {backup.path.name} with the WAL of {plan.wal_source} "
            f"({isoformat(window.earliest) if window.earliest else 'unknown'} → "
            f"{isoformat(window.latest) if window.latest else 'unknown'})")


def _current_target(env: Environment) -> dict[str, str]:
    """The paused server's target settings, its WAL segment size and the timeline it replays."""
    from drtui.core.postgres import query

    rows = query(env, "select name, setting from pg_settings where name = any(%s) union all "
                 "select 'timeline', timeline_id::text from pg_control_checkpoint()",
                 ([*RESTORABLE_SETTINGS, "wal_segment_size"],))
    return dict(rows)


def _target_settings(new: dict[str, str]) -> dict[str, str]:
    # blanks first: a blank target setting unsets whichever target is set, so the new one must come last
    return {key: "" for key in TARGET_SETTINGS if not new.get(key)} | {k: v for k, v in new.items() if v}


def _missing_segment(redo_done: int, timeline: int, segment_size: int) -> str:
    """The segment after the one holding the last record replayed: the one recovery could not read."""
    return segment_name(timeline, redo_done // segment_size + 1, segment_size)


def _wait_for_pause(backend: Backend) -> RecoveryStatus | None:
    """Until recovery pauses or ends (the status), or the server is down (None)."""
    deadline = time.monotonic() + PROMOTE_TIMEOUT
    while True:
        status = backend.recovery_status()
        if status is not None and (status.paused or not status.in_recovery):
            return status
        if status is None and not backend.server_alive():
            return None
        if time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def _restart(backend: Backend) -> RecoveryStatus | None:
    try:
        backend.start_server()  # returns once the standby accepts read-only connections
    except DrError:
        return None  # it went down before it accepted connections: the status says so
    return _wait_for_pause(backend)


def advance(config: Config, env: Environment, target: Target, clock: Clock,
            emit: Callable[[Event], None], run_id: str | None = None) -> RunSummary:
    """Move the target of a paused recovery forward: restart the server with the new target, replay on to it,
    and pause there again. A target can only move forward; to go back, restore again."""
    env = with_programs_of_data(config, env, backend_for(env, config.state_dir).runs_host_programs)
    backend = backend_for(env, config.state_dir)
    before = paused_status(backend, env, "advance")
    if target.kind is TargetKind.IMMEDIATE:
        raise UsageError("immediate is where a recovery starts: it cannot be a later target",
                         "give a later time, LSN, XID, restore point, or latest")
    if target.kind is TargetKind.TIME and before.replay_time and target.time <= before.replay_time:
        raise UsageError(f"recovery has already replayed up to {before.replay_time.isoformat()}; "
                         f"{target.describe()} is not later", "a target only moves forward; to go back, restore again")
    if target.kind is TargetKind.LSN and before.replay_lsn is not None and target.lsn <= before.replay_lsn:
        raise UsageError(f"recovery has already replayed up to {format_lsn(before.replay_lsn)}; "
                         f"{target.describe()} is not later", "a target only moves forward; to go back, restore again")
    try:
        checked = check_advance_target(config, env, target, clock)
    except PlanError as exc:
        raise PlanError(exc.title, f"{exc.hint}; nothing was touched: {env.name} is still paused at "
                                   f"{position(before)}") from None
    return run_operation("advance", env, [MoveTarget(target, checked, before, _current_target(env))], config, clock,
                         emit, run_id)


class MoveTarget(Step):
    """Restart the paused server with the new target and wait until it pauses there again (or, past the end of
    the WAL, promotes); when recovery ends short of it, bring the server back paused where it stopped."""

    name, title = "advance", "Move the paused target forward"

    def __init__(self, target: Target, checked: str, before: RecoveryStatus, previous: dict[str, str]) -> None:
        self.target, self.checked, self.before, self.previous = target, checked, before, previous

    def run(self, ctx: StepContext) -> None:
        backend, env, target = ctx.backend, ctx.env, self.target
        ctx.log(self.name, self.checked, f"moving the target forward to {target.describe()}")
        new = _target_settings(target.settings() | {"recovery_target_action": "pause"})
        backend.stop_server()
        backend.write_recovery(backend.data_dir, new, "recovery.signal")
        log = backend.server_log()
        offset = log.stat().st_size if log.exists() else 0
        status = _restart(backend)
        if status is None:
            _pause_where_it_stopped(ctx, target, self.before, self.previous, _log_since(log, offset))
        if not (status.paused or not status.in_recovery):
            raise DrError(f"PostgreSQL of {env.name!r} did not reach {target.describe()} in "
                          f"{PROMOTE_TIMEOUT:.0f} s; it is {recovery_state(backend).describe()}",
                          f"read the server log ({log}); it goes on replaying: advance or promote once it "
                          "has paused")
        where = status.replay_time.isoformat() if status.replay_time else "unknown"
        ctx.log(self.name, f"paused again; last replayed transaction {where}" if status.in_recovery else
                f"recovered to the end of the WAL and promoted; last replayed transaction {where}")
        ctx.paused, ctx.recovered_to = status.paused and status.in_recovery, status.replay_time
        if not status.in_recovery:
            end_replay_tuning(ctx, self.name)


def _log_since(log: Path, offset: int) -> str:
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _pause_where_it_stopped(ctx: StepContext, target: Target, before: RecoveryStatus, previous: dict[str, str],
                            log_text: str) -> NoReturn:
    """Recovery ended before the new target (or the server did not come up): start it again paused at the
    last record it replayed, or with its previous target when it had not moved past it. Always raises: the
    advance failed, and the error says where the server is now."""
    backend, env = ctx.backend, ctx.env
    done = re.findall(r"redo done at ([0-9A-F]+/[0-9A-F]+)", log_text)
    redo_done = parse_lsn(done[-1]) if done else None
    # target settings only: the size and timeline read with them are not settings to write back
    back = {key: value for key, value in previous.items() if key in RESTORABLE_SETTINGS}
    there = "its previous target"
    missing = "the WAL ran out"
    if redo_done is not None and before.replay_lsn is not None and redo_done >= before.replay_lsn:
        back = {"recovery_target_lsn": format_lsn(redo_done), "recovery_target_inclusive": "on",
                "recovery_target_timeline": previous.get("recovery_target_timeline", "latest"),
                "recovery_target_action": "pause"}
        there = f"the last record it replayed (LSN {format_lsn(redo_done)})"
    if redo_done is not None and previous.get("timeline") and previous.get("wal_segment_size"):
        segment = _missing_segment(redo_done, int(previous["timeline"]), int(previous["wal_segment_size"]))
        missing = f"the WAL ran out after LSN {format_lsn(redo_done)}: segment {segment} could not be restored"
    fatal = re.findall(r"FATAL:\s+(.+)", log_text)
    ran_out = "recovery ended before configured recovery target was reached" in log_text
    # It stopped before replaying anything, on an error of its own (a setting, its programs): not missing WAL.
    startup_error = not ran_out and redo_done is None and bool(fatal) and not _WAL_TROUBLE.search(log_text)
    why = (f"recovery ended before {target.describe()} was reached: {missing}" if ran_out
           else f"PostgreSQL of {env.name!r} did not come up with {target.describe()}"
           + (f" ({fatal[-1].strip()})" if startup_error else
              f" ({fatal[-1].strip()}; {missing})" if fatal else f" ({missing})"))
    fix = ("fix what the server log's FATAL line names" if startup_error else
           "PostgreSQL replays forward only, and the WAL up to there is gone: put the missing WAL back in the WAL "
           "source")
    ctx.log(MoveTarget.name, f"{why}; starting it again paused at {there}")
    backend.stop_server()
    backend.write_recovery(backend.data_dir, _target_settings(back), "recovery.signal")
    status = _restart(backend)
    if status is None or not status.paused or not status.in_recovery:
        state = recovery_state(backend)
        raise DrError(f"{why}; it could not be brought back paused at {there} either: it is {state.describe()}",
                      f"{fix}, then {next_step(state, env, backend, 'advance')} "
                      f"(the server log: {backend.server_log()})")
    unchanged = " (no transaction after the previous target)" if status.replay_time == before.replay_time else ""
    if startup_error:
        raise DrError(why, f"{env.name} is back, paused at {position(status)}{unchanged}; nothing was lost. Fix what "
                           f"the server log names ({backend.server_log()}), then advance again; or promote here")
    raise DrError(why, f"{env.name} is back, paused at {position(status)}{unchanged}; nothing was lost. Put the "
                       "missing WAL back in the WAL source (or sync the archive), or pick a target inside the WAL, "
                       "then advance again; or promote here")


def promote(config: Config, env: Environment, clock: Clock, emit: Callable[[Event], None],
            run_id: str | None = None) -> RunSummary:
    """Promote a paused recovery, start the app and verify. Like advance, the run has a journal of its own; a
    refusal (nothing paused) leaves none."""
    env = with_programs_of_data(config, env, backend_for(env, config.state_dir).runs_host_programs)
    paused_status(backend_for(env, config.state_dir), env, "promote")
    return run_operation("promote", env, [EndRecovery(), StartApp(), Verify()], config, clock, emit, run_id)


class EndRecovery(Step):
    name, title = "promote", "Promote the paused recovery"

    def run(self, ctx: StepContext) -> None:
        backend = ctx.backend
        backend.promote()
        deadline = time.monotonic() + PROMOTE_TIMEOUT
        while (status := backend.recovery_status()) is None or status.in_recovery:
            if time.monotonic() > deadline:
                raise DrError(f"PostgreSQL of {ctx.env.name!r} did not leave recovery after promote",
                              f"read the server log ({backend.server_log()})")
            time.sleep(0.1)
        from drtui.core.recovery_conf import clear_prefetch

        clear_prefetch(backend.data_dir)
        end_replay_tuning(ctx, self.name)
        ctx.recovered_to = status.replay_time
