"""PostgreSQL control for a local data directory: start, stop, status, readiness, SQL, and running a server
binary as the cluster's OS user.

PostgreSQL refuses to run as root, so every server command runs as `os_user`: directly when we already are
that user, through `runuser -u USER --` when we are root, and otherwise not at all (a clear error).

psycopg is imported where a connection is made, here and in the modules a restore runs: importing it takes
0.2-0.4 s, and a restore needs its first connection only once the restored server is replaying WAL.
"""

from __future__ import annotations

import enum
import os
import pwd
import re
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drtui.core.config import Environment, pg_bin_missing
from drtui.core.errors import PostgresError

if TYPE_CHECKING:
    import psycopg


def current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def as_user(os_user: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs `argv` as `os_user` from the current user."""
    me = current_user()
    if me == os_user:
        return list(argv)
    if os.geteuid() == 0:
        return ["runuser", "-u", os_user, "--", *argv]
    raise PostgresError(
        f"cannot run {Path(argv[0]).name} as {os_user!r}: drtui runs as {me!r}",
        f"run drtui as root or as {os_user}, or set os_user = {me!r} in the environment",
    )


def run_as(os_user: str, argv: Sequence[str], *, check: bool = True, timeout: float | None = None,
           env: Mapping[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command as `os_user`, capturing its output; a failure raises PostgresError with its stderr."""
    if os.path.isabs(argv[0]) and not os.path.exists(argv[0]):  # runuser would only say exit 127
        raise PostgresError(*pg_bin_missing(argv[0]))
    full = as_user(os_user, argv)
    try:
        done = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                              env=None if env is None else {**os.environ, **env}, cwd=cwd or "/", check=False)
    except FileNotFoundError as exc:
        raise PostgresError(f"{argv[0]}: not found", "check pg_bin in the environment's config") from exc
    except subprocess.TimeoutExpired as exc:
        raise PostgresError(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s",
                            "look at the server log") from exc
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise PostgresError(f"{Path(argv[0]).name} failed (exit {done.returncode}): "
                            f"{detail[-1] if detail else 'no output'}", "look at the server log")
    return done


class ServerState(enum.Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    NO_DATA = "no data directory"


@dataclass(frozen=True)
class LocalServer:
    """One cluster on a data directory, driven with pg_ctl as its OS user."""

    data_dir: Path
    pg_bin: Path
    os_user: str
    host: str
    port: int
    log_file: Path | None = None

    @classmethod
    def for_environment(cls, env: Environment, log_file: Path | None = None) -> LocalServer:
        return cls(env.data_dir, env.pg_bin, env.os_user, env.host, env.port, env.server_log or log_file)

    def binary(self, name: str) -> str:
        return str(self.pg_bin / name)

    def run(self, name: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a server binary from pg_bin as the cluster's OS user."""
        return run_as(self.os_user, [self.binary(name), *args], **kwargs)

    def state(self) -> ServerState:
        if not (self.data_dir / "PG_VERSION").exists():
            return ServerState.NO_DATA
        done = self.run("pg_ctl", "status", "-D", str(self.data_dir), check=False, timeout=30)
        return ServerState.RUNNING if done.returncode == 0 else ServerState.STOPPED

    def start(self, settings: Mapping[str, str] | None = None, timeout: float = 120, wait: bool = True) -> None:
        """Start the server on the configured port and socket; `settings` are extra `-c name=value`."""
        options = [f"-p {self.port}"]
        if self.host.startswith("/"):
            options.append(f"-k {shlex.quote(self.host)}")
        options += [f"-c {shlex.quote(f'{k}={v}')}" for k, v in (settings or {}).items()]
        args = ["start", "-D", str(self.data_dir), "-o", " ".join(options), "-t", str(int(timeout))]
        args += ["-w"] if wait else ["-W"]
        if self.log_file:
            self._prepare_log()
            args += ["-l", str(self.log_file)]
        offset = self.log_file.stat().st_size if self.log_file else 0
        done = self.run("pg_ctl", *args, check=False, timeout=timeout + 30)
        if done.returncode != 0:
            raise self._start_error(offset, done.stderr.strip())
        if not wait:
            self._wait_listening(offset, timeout)

    def _wait_listening(self, offset: int, timeout: float) -> None:
        """pg_ctl -W returns before the server runs: wait until the postmaster has bound its sockets (it then
        writes its status line into postmaster.pid, typically within 0.1 s) or has exited, so that a start that
        fails (a port in use, a bad setting) is reported at once and in full."""
        deadline = time.monotonic() + timeout
        seen = False
        while time.monotonic() < deadline:
            pid, listening = self._postmaster()
            alive = pid is not None and pid_alive(pid)
            if alive and listening:
                return
            seen = seen or alive
            if not alive and (seen or _errors(self._log_since(offset))[0]):
                raise self._start_error(offset, "the server exited while starting")
            time.sleep(0.02)
        raise PostgresError(f"PostgreSQL on {self.data_dir} did not open port {self.port} within {timeout:.0f} s",
                            f"read the server log{f' ({self.log_file})' if self.log_file else ''}")

    def _postmaster(self) -> tuple[int | None, bool]:
        """The pid in postmaster.pid, and whether its status line is there (written once the sockets are open)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[0]), len(lines) >= PID_FILE_STATUS_LINE and bool(lines[PID_FILE_STATUS_LINE - 1].strip())
        except (OSError, ValueError, IndexError):
            return None, False

    def _log_since(self, offset: int) -> list[str]:
        if not self.log_file:
            return []
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode(errors="replace").splitlines()
        except OSError:
            return []

    def _start_error(self, offset: int, fallback: str) -> PostgresError:
        """The server's own reasons for not starting, whole (the bind error, not only the FATAL after it)."""
        lines = self._log_since(offset)
        errors, hints = _errors(lines)
        log = f" ({self.log_file})" if self.log_file else ""
        if any("already in use" in e or "lock file" in e for e in errors):
            hint = (f"port {self.port} is taken by another program: find it (ss -ltnp 'sport = :{self.port}'), "
                    f"stop it or give the environment another port, then try again")
        else:
            hint = f"{' '.join(hints) + ' ' if hints else ''}read the server log{log}".strip()
        reason = "; ".join(errors) or (lines[-1].strip() if lines else "") or fallback or "no output"
        return PostgresError(f"PostgreSQL on {self.data_dir} did not start: {reason}", hint)

    def stop(self, timeout: float = 60) -> None:
        """Fast shutdown; if it does not finish in time, immediate."""
        if self.state() is not ServerState.RUNNING:
            return
        fast = self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(int(timeout)),
                        check=False, timeout=timeout + 30)
        if fast.returncode != 0 and self.state() is ServerState.RUNNING:
            self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "60",
                     timeout=90)

    def conninfo(self, dbname: str = "postgres", user: str = "postgres", password: str | None = None) -> dict:
        info: dict[str, Any] = {"host": self.host, "port": self.port, "dbname": dbname, "user": user,
                                "connect_timeout": 5}
        if password:
            info["password"] = password
        return info

    def wait_ready(self, timeout: float = 60, dbname: str = "postgres", user: str = "postgres",
                   password: str | None = None) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(**self.conninfo(dbname, user, password)):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresError(f"PostgreSQL on {self.host}:{self.port} is not accepting connections: "
                                        f"{str(exc).strip().splitlines()[-1]}", "look at the server log") from exc
                time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_file or not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def _prepare_log(self) -> None:
        assert self.log_file
        if not self.log_file.parent.exists():  # drtui's folders are closed to others: the cluster's user owns this one
            self.log_file.parent.mkdir(parents=True)
            chown_to(self.log_file.parent, self.os_user)
        self.log_file.touch(exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.os_user)
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)


PID_FILE_STATUS_LINE = 8  # postmaster.pid: "starting", "standby", "ready" (LOCK_FILE_LINE_PM_STATUS)
_MESSAGE = re.compile(r"\b(LOG|WARNING|FATAL|PANIC|HINT):\s+(.*)$")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _errors(lines: Sequence[str]) -> tuple[list[str], list[str]]:
    """From server log lines: why it could not start (bind errors, FATAL, PANIC), and PostgreSQL's hints."""
    errors: list[str] = []
    hints: list[str] = []
    for line in lines:
        found = _MESSAGE.search(line)
        if not found:
            continue
        level, text = found.groups()
        if level == "HINT":
            hints.append(text.strip())
        elif (level in ("FATAL", "PANIC") or text.startswith("could not bind")) and text.strip() not in errors:
            errors.append(text.strip())
    return errors, hints


def connect(env: Environment, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection:
    """A psycopg connection to an environment's database (autocommit), with a clear error when it fails."""
    import psycopg

    try:
        return psycopg.connect(host=env.host, port=env.port, dbname=dbname or env.database, user=env.user,
                               password=env.password(), connect_timeout=5, autocommit=True, **kwargs)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no answer"
        raise PostgresError(f"cannot connect to {env.name} ({env.host}:{env.port}/{dbname or env.database}): "
                            f"{reason}", "is the server running? check host, port, user in the config") from exc


def query(env: Environment, sql: str, params: Sequence[Any] | None = None, dbname: str | None = None) -> list[tuple]:
    with connect(env, dbname) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def chown_to(path: Path, os_user: str) -> None:
    """Hand a path over to the cluster's OS user (a no-op unless we are root)."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(os_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
