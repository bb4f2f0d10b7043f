"""Rollback: put the newest preserved data directory (`<data_dir>.pre_pitr_<stamp>`) back in place. The data
directory it replaces is kept aside as `<data_dir>.failed_<stamp>`; nothing is ever deleted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drtui.core.backends import backend_for
from drtui.core.clock import Clock, stamp
from drtui.core.config import Config, Environment
from drtui.core.dump_rollback import roll_back_dump
from drtui.core.errors import DrError
from drtui.core.events import Event, StepLogged
from drtui.core.lock import EnvLock
from drtui.core.runner import operation_run


class NothingToRollBack(DrError):
    exit_code = 2


@dataclass(frozen=True)
class RollbackResult:
    environment: str
    restored: Path
    from_preserved: Path
    set_aside: Path | None
    started: bool
    journal: Path

    def as_dict(self) -> dict:
        return {"ok": True, "environment": self.environment, "data_dir": str(self.restored),
                "from": str(self.from_preserved), "set_aside": str(self.set_aside) if self.set_aside else None,
                "started": self.started, "journal": str(self.journal)}


def roll_back(config: Config, env: Environment, clock: Clock,
              listener: Callable[[Event], None] | None = None) -> RollbackResult:
    """Stop the server, set the current data directory aside, rename the newest preserved one back, start.
    The run has a journal of its own (journey "rollback"); a refusal leaves none."""
    backend = backend_for(env, config.state_dir)
    preserved = backend.preserved()
    if dumped := roll_back_dump(config, env, clock, preserved, listener):
        return dumped
    if not preserved:
        data_dir = backend.data_dir
        raise NothingToRollBack(f"no preserved data directory beside {data_dir} ({data_dir.name}.pre_pitr_*)",
                                "there is nothing to roll back to")
    lock = EnvLock(config.state_dir, env.name)
    lock.acquire(f"rollback-{stamp(clock.now())}", clock)
    try:
        with operation_run(config.state_dir, "rollback", "Put the preserved data directory back", env.name, clock,
                           listener) as run:
            def log(line: str) -> None:
                run.emit(StepLogged(clock.now(), "rollback", [line]))

            newest = preserved[-1]
            if backend.server_running():
                backend.stop_server()
                log(f"stopped PostgreSQL on {backend.data_dir}")
            aside = backend.set_aside(backend.free_stamp(clock.now()))
            if aside:
                log(f"{backend.data_dir} → {aside} (kept, never deleted)")
            backend.put_in_place(newest)
            log(f"{newest} → {backend.data_dir}")
            backend.start_server()
            log("started PostgreSQL")
            result = RollbackResult(env.name, backend.data_dir, newest, aside, True, run.journal.path)
            run.summary = result.as_dict()
        return result
    finally:
        lock.release()
