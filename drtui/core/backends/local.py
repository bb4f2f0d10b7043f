"""The local backend: PostgreSQL on a data directory of this host, driven with pg_ctl as `os_user`, and the
application stopped and started by the environment's optional commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from drtui.core.backends.base import STALE_FILES, Backend, RecoveryStatus, ToolFailed
from drtui.core.config import Environment, pg_bin_missing
from drtui.core.errors import BackupError, DrError
from drtui.core.files import fsync_dir
from drtui.core.models import BaseBackup, parse_lsn
from drtui.core.postgres import LocalServer, ServerState, chown_to, pid_alive
from drtui.core.recovery_conf import install_fetcher, restore_command

APP_COMMAND_TIMEOUT = 600
CHUNK = 1 << 20
# backup_label first, so that a reader learns what the backup is from its first member.
LEADING_MEMBERS = ("backup_label", "PG_VERSION", "backup_manifest")


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

    @property
    def location(self) -> str:
        return f"data_dir {self.env.data_dir}"

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

    @property
    def server_uses_host_memory(self) -> bool:
        return True

    @property
    def restores_tablespaces(self) -> bool:
        return True

    @property
    def runs_host_programs(self) -> bool:
        return True

    def server_alive(self) -> bool:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        return pid_alive(pid)

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

    def _client(self, argv: Sequence[str], stdout: int | None = None) -> subprocess.Popen:
        """A PostgreSQL client of pg_bin connected to the environment's server (never asking for a password)."""
        extra = {"PGCONNECT_TIMEOUT": "10"}
        password = self.env.password()
        if password:
            extra["PGPASSWORD"] = password
        env = self.env
        try:
            return subprocess.Popen([str(env.pg_bin / argv[0]), "-h", env.host, "-p", str(env.port), "-U", env.user,
                                     "--no-password", *argv[1:]], stdout=stdout, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, env={**os.environ, **extra})
        except FileNotFoundError as exc:
            raise BackupError(*pg_bin_missing(str(env.pg_bin / argv[0]))) from exc

    def plain_base_backup(self, workdir: Path, label: str, incremental: Path | None = None) -> Path:
        target = workdir / "data"
        extra = [f"--incremental={incremental}"] if incremental else []
        proc = self._client(["pg_basebackup", "-D", str(target), "-Fp", "-X", "stream", "-c", "fast", "-l", label,
                             *extra])
        _, stderr = proc.communicate()
        if proc.returncode != 0:
            raise ToolFailed("pg_basebackup", stderr)
        verify = subprocess.run([str(self.env.pg_bin / "pg_verifybackup"), "-q", str(target)],
                                capture_output=True, text=True, check=False)
        if verify.returncode != 0:
            raise BackupError(f"pg_verifybackup rejected the new base backup: {verify.stderr.strip()}",
                              "the backup was not kept; look at the server log and retry")
        return target

    def dump_to(self, sink: IO[bytes]) -> None:
        proc = self._client(["pg_dump", "-d", self.env.database], stdout=subprocess.PIPE)
        assert proc.stdout and proc.stderr
        try:
            shutil.copyfileobj(proc.stdout, sink, CHUNK)
        except BaseException:  # the output could not be written: pg_dump must not outlive the backup
            proc.kill()
            proc.wait()
            raise
        stderr = proc.stderr.read()
        if proc.wait() != 0:
            raise ToolFailed("pg_dump", stderr)

    def base_backup_to(self, sink: IO[bytes], workdir: Path, label: str) -> None:
        """pg_basebackup (plain, with WAL and manifest) into `workdir`, checked by pg_verifybackup, then packed
        into `sink` with backup_label first."""
        target = self.plain_base_backup(workdir, label)
        with tarfile.open(fileobj=sink, mode="w|") as tar:
            for name in LEADING_MEMBERS:
                if (target / name).exists():
                    tar.add(target / name, arcname=name)
            for entry in sorted(target.iterdir()):
                if entry.name not in LEADING_MEMBERS:
                    tar.add(entry, arcname=entry.name)
