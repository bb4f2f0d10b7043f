"""One run per environment: a lock file in `<state_dir>/locks/<env>.lock` holding the owner's pid, the
process start time (so a reused pid is not mistaken for the owner) and the run id.

A lock whose process is gone is stale, which is how a crashed run is detected: the next run takes it over.
The file is created with link(2), which is atomic, so two runs starting together cannot both win.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from drtui.core.clock import Clock, isoformat
from drtui.core.errors import DrError


class LockBusy(DrError):
    """Another run holds the environment."""

    exit_code = 2


@dataclass(frozen=True)
class LockInfo:
    pid: int
    proc_start: str
    run_id: str
    started_at: str

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid}, started {self.started_at})"


def process_start(pid: int) -> str | None:
    """The kernel's start time of a process (clock ticks since boot), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class EnvLock:
    def __init__(self, state_dir: Path, env_name: str) -> None:
        self.path = state_dir / "locks" / f"{env_name}.lock"
        self.env_name = env_name
        self._mine: LockInfo | None = None

    def read(self) -> LockInfo | None:
        try:
            return LockInfo(**json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            return LockInfo(0, "", "unreadable lock file", "")

    def holder(self) -> LockInfo | None:
        """The live holder of the lock, or None when it is free or stale."""
        info = self.read()
        if info is None or info.pid == 0:
            return None
        return info if process_start(info.pid) == info.proc_start else None

    def acquire(self, run_id: str, clock: Clock) -> LockInfo:
        """Take the lock for this process (taking over a stale one); LockBusy if a live run holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        info = LockInfo(pid, process_start(pid) or "", run_id, isoformat(clock.now()))
        tmp = self.path.with_name(f".{self.path.name}.{pid}")
        tmp.write_text(json.dumps(asdict(info)))
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                    self._mine = info
                    return info
                except FileExistsError:
                    live = self.holder()
                    if live:
                        raise LockBusy(f"environment {self.env_name!r} is busy: {live.describe()} is running",
                                       f"wait for it, follow it with `drtui attach {live.run_id}`, or "
                                       f"stop that process first") from None
                    stale = self.path.with_name(f"{self.path.name}.stale.{pid}")
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(self.path, stale)
                        stale.unlink()
            raise LockBusy(f"could not take the lock {self.path}", "another run is starting; try again")
        finally:
            tmp.unlink(missing_ok=True)

    def release(self) -> None:
        """Drop the lock if this process still holds it."""
        if self._mine and self.read() == self._mine:
            self.path.unlink(missing_ok=True)
        self._mine = None
