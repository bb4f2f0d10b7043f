"""One run per environment: an flock(2) on `<state_dir>/locks/<env>.lock`, which also holds the holder's run
id, pid, process start time and start, for the messages.

The kernel releases the lock when its holder's process ends, however it ends (kill -9 included), so a crashed
run never blocks the next one and taking over its lock cannot race. The descriptor is not inherited by the
commands a run starts (PostgreSQL's postmaster among them), so a server left running does not keep it held.
A holder removes the file while it still holds it; a waiter that opened the old file sees that its file is
no longer the one at the path, and tries again.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from drtui.core.clock import Clock, isoformat
from drtui.core.errors import DrError, ErrorKind


class LockBusy(DrError):
    """Another run holds the environment."""

    kind = ErrorKind.REFUSED


class LockDenied(DrError):
    """The lock file cannot be created or opened (permissions); nothing was touched."""

    kind = ErrorKind.REFUSED


@dataclass(frozen=True)
class LockInfo:
    pid: int
    proc_start: str
    run_id: str
    started_at: str

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid}, started {self.started_at})"


UNKNOWN_HOLDER = LockInfo(0, "", "(a run that is starting)", "just now")


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
        self._fd: int | None = None

    def read(self) -> LockInfo | None:
        """What the file says about its (last) holder; None when there is no file or it says nothing."""
        try:
            return LockInfo(**json.loads(self.path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def holder(self) -> LockInfo | None:
        """The live holder of the lock, or None when it is free (a dead holder's lock is free)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self.read() or UNKNOWN_HOLDER
        finally:
            os.close(fd)
        return None

    def acquire(self, run_id: str, clock: Clock) -> LockInfo:
        """Take the lock for this process; LockBusy if a live run holds it, LockDenied if it cannot be written."""
        pid = os.getpid()
        info = LockInfo(pid, process_start(pid) or "", run_id, isoformat(clock.now()))
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                live = self.read() or UNKNOWN_HOLDER
                raise LockBusy(f"environment {self.env_name!r} is busy: {live.describe()} is running",
                               f"wait for it, follow it with `drtui attach {live.run_id}`, or "
                               f"stop that process first") from None
            if self._is_current(fd):
                break
            os.close(fd)  # the holder removed this file as it released it: take the one at the path now
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(info)).encode(), 0)
        self._fd = fd
        return info

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError as exc:
            raise LockDenied(f"{exc.filename or self.path}: permission denied (the lock of {self.env_name!r})",
                             "run drtui as the user that owns state_dir (root, or the os_user), "
                             "or point state_dir in drtui.toml at a folder you can write") from None

    def _is_current(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Drop the lock if this process holds it (the file goes first, while it is still held)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
