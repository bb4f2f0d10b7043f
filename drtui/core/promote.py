"""Promoting a restore that paused at its target (--pause-at-target): once the operator has inspected the
data read-only, recovery ends, the server leaves recovery, the app starts and the checks run."""

from __future__ import annotations

import time
from collections.abc import Callable

from drtui.core.backends import backend_for
from drtui.core.checks import run_checks
from drtui.core.clock import Clock
from drtui.core.config import Config, Environment
from drtui.core.errors import DrError
from drtui.core.events import CheckCompleted, Event
from drtui.core.lock import EnvLock

PROMOTE_TIMEOUT = 120.0


class NotPaused(DrError):
    """There is no recovery waiting for a promotion."""

    exit_code = 2


def promote(config: Config, env: Environment, clock: Clock, emit: Callable[[Event], None]) -> list[CheckCompleted]:
    """Promote a paused recovery, start the app and verify; returns the checks."""
    backend = backend_for(env, config.state_dir)
    status = backend.recovery_status()
    if status is None or not status.in_recovery:
        raise NotPaused(f"PostgreSQL of {env.name!r} is not in recovery: there is nothing to promote",
                        "promote only after `drtui restore pitr --pause-at-target`")
    lock = EnvLock(config.state_dir, env.name)
    lock.acquire("promote", clock)
    try:
        backend.promote()
        deadline = time.monotonic() + PROMOTE_TIMEOUT
        while (status := backend.recovery_status()) is None or status.in_recovery:
            if time.monotonic() > deadline:
                raise DrError(f"PostgreSQL of {env.name!r} did not leave recovery after promote",
                              f"read the server log ({backend.server_log()})")
            time.sleep(0.1)
        from drtui.core.extract import clear_prefetch

        clear_prefetch(backend.data_dir)
        backend.start_app()
        return run_checks(config, env, recovered_to=status.replay_time, emit=emit, clock=clock,
                          wait_ready_seconds=60)
    finally:
        lock.release()
