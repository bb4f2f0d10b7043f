"""A restore that paused at its target (--pause-at-target): once the operator has inspected the data read-only,
either move the target forward (recovery replays on to the new target and pauses there again) or promote
(recovery ends, the server leaves recovery, the app starts and the checks run)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from drtui.core.backends import backend_for
from drtui.core.backends.base import Backend, RecoveryStatus
from drtui.core.clock import Clock
from drtui.core.config import Config, Environment
from drtui.core.errors import DrError, UsageError
from drtui.core.events import Event, StepLogged
from drtui.core.lock import EnvLock
from drtui.core.models import format_lsn
from drtui.core.planning import Target, TargetKind
from drtui.core.runner import operation_run

PROMOTE_TIMEOUT = 120.0


class NotPaused(DrError):
    """There is no recovery waiting for a promotion."""

    exit_code = 2


# Every recovery_target_* setting, blanked before a new target is written, so two kinds never clash.
TARGET_SETTINGS = ("recovery_target", "recovery_target_time", "recovery_target_lsn", "recovery_target_xid",
                   "recovery_target_name")


def _paused_status(backend: Backend, env: Environment, verb: str) -> RecoveryStatus:
    status = backend.recovery_status()
    if status is None or not status.in_recovery:
        raise NotPaused(f"PostgreSQL of {env.name!r} is not in recovery: there is nothing to {verb}",
                        f"{verb} only after `drtui restore pitr --pause-at-target`")
    return status


def advance(config: Config, env: Environment, target: Target, clock: Clock,
            emit: Callable[[Event], None]) -> dict[str, Any]:
    """Move the target of a paused recovery forward: restart the server with the new target, replay on to it,
    and pause there again. A target can only move forward; to go back, restore again."""
    backend = backend_for(env, config.state_dir)
    status = _paused_status(backend, env, "advance")
    if target.kind is TargetKind.IMMEDIATE:
        raise UsageError("immediate is where a recovery starts: it cannot be a later target",
                         "give a later time, LSN, XID, restore point, or latest")
    if target.kind is TargetKind.TIME and status.replay_time and target.time <= status.replay_time:
        raise UsageError(f"recovery has already replayed up to {status.replay_time.isoformat()}; "
                         f"{target.describe()} is not later", "a target only moves forward; to go back, restore again")
    if target.kind is TargetKind.LSN and status.replay_lsn is not None and target.lsn <= status.replay_lsn:
        raise UsageError(f"recovery has already replayed up to {format_lsn(status.replay_lsn)}; "
                         f"{target.describe()} is not later", "a target only moves forward; to go back, restore again")
    lock = EnvLock(config.state_dir, env.name)
    lock.acquire("advance", clock)
    try:
        with operation_run(config.state_dir, "advance", "Move the paused target forward", env.name, clock,
                           emit) as run:
            new = target.settings() | {"recovery_target_action": "pause"}
            # blanks first: a blank target setting unsets whichever target is set, so the new one must come last
            settings = {key: "" for key in TARGET_SETTINGS if key not in new} | new
            run.emit(StepLogged(clock.now(), "advance", [f"moving the target forward to {target.describe()}"]))
            backend.stop_server()
            backend.write_recovery(backend.data_dir, settings, "recovery.signal")
            backend.start_server()  # returns once the standby accepts read-only connections
            deadline = time.monotonic() + PROMOTE_TIMEOUT
            while True:
                status = backend.recovery_status()
                if status is not None and (status.paused or not status.in_recovery):
                    break
                if time.monotonic() > deadline or (status is None and not backend.server_alive()):
                    raise DrError(f"PostgreSQL of {env.name!r} did not reach {target.describe()}",
                                  f"read the server log ({backend.server_log()}); the data directory is intact: "
                                  "restart it with an earlier target, or restore again")
                time.sleep(0.1)
            where = status.replay_time.isoformat() if status.replay_time else "unknown"
            run.emit(StepLogged(clock.now(), "advance", [f"paused again; last replayed transaction {where}"]))
            run.summary = {"paused": status.paused and status.in_recovery,
                           "replayed_to": status.replay_time.isoformat() if status.replay_time else None}
        return run.summary
    finally:
        lock.release()


def promote(config: Config, env: Environment, clock: Clock, emit: Callable[[Event], None]) -> dict[str, Any]:
    """Promote a paused recovery, start the app and verify; returns the run's summary (ok, checks, journal).
    Like advance, the run has a journal of its own; a refusal (nothing paused) leaves none."""
    backend = backend_for(env, config.state_dir)
    _paused_status(backend, env, "promote")
    lock = EnvLock(config.state_dir, env.name)
    lock.acquire("promote", clock)
    try:
        with operation_run(config.state_dir, "promote", "Promote the paused recovery", env.name, clock,
                           emit) as run:
            backend.promote()
            deadline = time.monotonic() + PROMOTE_TIMEOUT
            while (status := backend.recovery_status()) is None or status.in_recovery:
                if time.monotonic() > deadline:
                    raise DrError(f"PostgreSQL of {env.name!r} did not leave recovery after promote",
                                  f"read the server log ({backend.server_log()})")
                time.sleep(0.1)
            from drtui.core.recovery_conf import clear_prefetch

            clear_prefetch(backend.data_dir)
            backend.start_app()
            from drtui.core.checks import run_checks

            checks = run_checks(config, env, recovered_to=status.replay_time, emit=run.emit, clock=clock,
                                wait_ready_seconds=60)
            run.ok = all(c.outcome != "failed" for c in checks)
            run.summary = {"checks": [{"name": c.name, "outcome": c.outcome, "detail": c.detail} for c in checks]}
        return run.summary
    finally:
        lock.release()
