"""The local backend: PostgreSQL on a data directory of this host, driven with pg_ctl as `os_user`, and the
application stopped and started by the environment's optional commands."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from drtui.core.backends.base import STALE_FILES, Backend, RecoveryStatus
from drtui.core.config import Environment
from drtui.core.errors import DrError
from drtui.core.files import fsync_dir
from drtui.core.models import BaseBackup, parse_lsn
from drtui.core.postgres import LocalServer, ServerState, chown_to
from drtui.core.recovery_conf import install_fetcher, restore_command

APP_COMMAND_TIMEOUT = 600


class BackendError(DrError):
    """The backend could not do what a step asked."""


def quote(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("'", "''") + "'"


class LocalBackend(Backend):
    def __init__(self, env: Environment, state_dir: Path) -> None:
        self.env = env
        self._log = env.server_log or state_dir / "logs" / f"{env.name}-postgresql.log"
        self.server = LocalServer.for_environment(env, self._log)

    @property
    def data_dir(self) -> Path:
        return self.env.data_dir

    def server_log(self) -> Path:
        return self._log

    def _app(self, command: str | None, what: str) -> str | None:
        if not command:
            return None
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=APP_COMMAND_TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise BackendError(f"{what} command failed (exit {done.returncode}): "
                               f"{detail[-1] if detail else 'no output'}",
                               f"run it by hand to see why: {command}")
        return command

    def stop_app(self) -> str | None:
        return self._app(self.env.stop_app_command, "stop_app")

    def start_app(self) -> str | None:
        return self._app(self.env.start_app_command, "start_app")

    def server_running(self) -> bool:
        return self.server.state() is ServerState.RUNNING

    def server_alive(self) -> bool:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop_server(self) -> None:
        self.server.stop()

    def start_server(self, wait: bool = True) -> None:
        self.server.start(wait=wait)

    def _rename(self, source: Path, dest: Path) -> None:
        if dest.exists():
            raise BackendError(f"{dest} already exists", "move it away first; drtui never overwrites data")
        os.rename(source, dest)
        fsync_dir(dest.parent)

    def preserve(self, stamp: str) -> Path | None:
        if not self.data_dir.exists():
            return None
        dest = self.sibling("pre_pitr", stamp)
        self._rename(self.data_dir, dest)
        return dest

    def put_in_place(self, restored: Path) -> None:
        self._rename(restored, self.data_dir)

    def set_aside(self, stamp: str, kind: str = "failed") -> Path | None:
        if not self.data_dir.exists():
            return None
        dest = self.sibling(kind, stamp)
        self._rename(self.data_dir, dest)
        return dest

    def restore_command(self, data_dir: Path, folder: Path, backup: BaseBackup) -> str:
        install_fetcher(data_dir, self.env.os_user)
        return restore_command(folder, backup.segment_size, backup.pg_version)

    def write_recovery(self, data_dir: Path, settings: Mapping[str, str], signal: str) -> None:
        for name in STALE_FILES:
            (data_dir / name).unlink(missing_ok=True)
        auto = data_dir / "postgresql.auto.conf"
        lines = ["", "# drtui restore: recovery settings and overrides of what the backup carried over"]
        lines += [f"{key} = {quote(value)}" for key, value in settings.items()]
        with auto.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        chown_to(auto, self.env.os_user)
        marker = data_dir / signal
        marker.touch()
        chown_to(marker, self.env.os_user)

    def recovery_status(self) -> RecoveryStatus | None:
        import psycopg  # not at module level: see drtui.core.postgres

        try:
            with psycopg.connect(**self.server.conninfo("postgres", self.env.user, self.env.password()),
                                 autocommit=True) as conn:
                row = conn.execute("select pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                                   "pg_last_xact_replay_timestamp(), "
                                   "case when pg_is_in_recovery() then pg_get_wal_replay_pause_state() "
                                   "else 'not paused' end").fetchone()
        except psycopg.Error:
            return None
        assert row
        return RecoveryStatus(bool(row[0]), parse_lsn(row[1]) if row[1] else None, row[2], row[3] != "not paused")

    def promote(self, wait: bool = True) -> None:
        self.server.run("pg_ctl", "promote", "-D", str(self.data_dir), *(("-w", "-t", "120") if wait else ("-W",)),
                        timeout=150)
