"""Rollback: put the newest preserved data directory (`<data_dir>.pre_pitr_<stamp>`) back in place. The data
directory it replaces is kept aside as `<data_dir>.failed_<stamp>`; nothing is ever deleted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drtui.core.backends import backend_for
from drtui.core.clock import Clock, stamp
from drtui.core.config import Config, Environment
from drtui.core.errors import DrError
from drtui.core.lock import EnvLock


class NothingToRollBack(DrError):
    exit_code = 2


@dataclass(frozen=True)
class RollbackResult:
    environment: str
    restored: Path
    from_preserved: Path
    set_aside: Path | None
    started: bool

    def as_dict(self) -> dict:
        return {"ok": True, "environment": self.environment, "data_dir": str(self.restored),
                "from": str(self.from_preserved), "set_aside": str(self.set_aside) if self.set_aside else None,
                "started": self.started}


def roll_back(config: Config, env: Environment, clock: Clock) -> RollbackResult:
    """Stop the server, set the current data directory aside, rename the newest preserved one back, start."""
    backend = backend_for(env, config.state_dir)
    preserved = backend.preserved()
    if not preserved:
        data_dir = backend.data_dir
        raise NothingToRollBack(f"no preserved data directory beside {data_dir} ({data_dir.name}.pre_pitr_*)",
                                "there is nothing to roll back to")
    lock = EnvLock(config.state_dir, env.name)
    lock.acquire(f"rollback-{stamp(clock.now())}", clock)
    try:
        newest = preserved[-1]
        if backend.server_running():
            backend.stop_server()
        aside = backend.set_aside(backend.free_stamp(clock.now()))
        backend.put_in_place(newest)
        backend.start_server()
        return RollbackResult(env.name, backend.data_dir, newest, aside, True)
    finally:
        lock.release()
