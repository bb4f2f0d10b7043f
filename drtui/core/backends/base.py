"""The backend interface the restore steps talk to, so no step knows about pg_ctl, paths or Docker.

Data directories are named by the backend: the restore is extracted beside the live one
(`<data_dir>.restoring_<stamp>`), the live one is preserved by a rename (`<data_dir>.pre_pitr_<stamp>`,
never copied, never deleted), and a failed restore is kept aside (`<data_dir>.failed_<stamp>`).
"""

from __future__ import annotations

import shutil
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from drtui.core.clock import stamp
from drtui.core.config import Environment
from drtui.core.models import BaseBackup

# Files a base backup may carry that must not reach the restored server.
STALE_FILES = ("postmaster.pid", "postmaster.opts", "recovery.conf", "recovery.done", "standby.signal",
               "recovery.signal")


class ToolFailed(Exception):
    """A backup tool (pg_dump, pg_basebackup) exited non-zero; core/backup.py puts its stderr in plain words."""

    def __init__(self, tool: str, stderr: bytes | str) -> None:
        super().__init__(tool)
        self.tool, self.stderr = tool, stderr


@dataclass(frozen=True)
class RecoveryStatus:
    in_recovery: bool
    replay_lsn: int | None
    replay_time: datetime | None
    paused: bool


class Backend(ABC):
    env: Environment

    @property
    @abstractmethod
    def data_dir(self) -> Path: ...

    def sibling(self, kind: str, stamp: str) -> Path:
        """`<data_dir>.<kind>_<stamp>`: a restore in progress, preserved data, a failed restore, staged WAL."""
        return self.data_dir.with_name(f"{self.data_dir.name}.{kind}_{stamp}")

    def free_stamp(self, moment: datetime) -> str:
        """A `YYYYMMDDTHHMMSSZ` stamp at or after `moment` that no sibling of the data directory uses yet."""
        while True:
            candidate = stamp(moment)
            if not any(self.data_dir.parent.glob(f"{self.data_dir.name}.*_{candidate}")):
                return candidate
            moment += timedelta(seconds=1)

    def preserved(self) -> list[Path]:
        """Preserved data directories, oldest first."""
        return sorted(self.data_dir.parent.glob(f"{self.data_dir.name}.pre_pitr_*"))

    def discard(self, path: Path) -> None:
        """Remove a folder this run created itself (a partial extraction, staged WAL); never user data."""
        shutil.rmtree(path, ignore_errors=True)

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the environment's PostgreSQL lives, in words (`data_dir /srv/pg`)."""

    @property
    def restores_tablespaces(self) -> bool:
        """Whether a restore can put tablespaces in folders of this host (and link them from pg_tblspc)."""
        return False

    @property
    def server_uses_host_memory(self) -> bool:
        """Whether the server runs on this host's memory with no limit of its own (a container's), so that a
        restore may size its shared_buffers to the host."""
        return False

    @property
    def runs_host_programs(self) -> bool:
        """Whether the server runs programs of this host (any version's folder can serve); else its own."""
        return False

    @property
    def server_reads_host_wal(self) -> bool:
        """Whether the server itself reads a WAL folder of this host (as os_user) during a restore."""
        return True

    def services(self) -> dict[str, str] | None:
        """Each service's state ("running", "exited", ... or "missing"); None: the backend runs no services."""
        return None

    # -- what a backup reads: core/backup.py owns the sequence (names, artifacts, verification, heartbeats)
    @abstractmethod
    def dump_to(self, sink: IO[bytes]) -> None:
        """Write pg_dump's SQL of the environment's database into `sink` (ToolFailed when pg_dump fails)."""

    @abstractmethod
    def base_backup_to(self, sink: IO[bytes], workdir: Path, label: str) -> None:
        """Write a base backup of the server, with its WAL, into `sink` as one tar stream, backup_label first
        (ToolFailed when pg_basebackup fails); `workdir` is an empty scratch folder beside the artifact."""

    def plain_base_backup(self, workdir: Path, label: str, incremental: Path | None = None) -> Path:
        """A base backup in plain format (a data directory, with WAL and manifest, checked) inside `workdir`;
        with `incremental` (the previous backup's backup_manifest) an incremental one (PostgreSQL 17+)."""
        from drtui.core.errors import BackupError

        raise BackupError(f"the {self.env.backend} backend takes full base backups only (as one tar stream)",
                          "take incremental backups of an environment with backend = \"local\"")

    def archived_wal(self) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]] | None:
        """The WAL archive's files (their tar headers and contents) when the backend keeps the archive itself;
        None: the archive is the host folder `wal_archive` of the config."""
        return None

    @property
    def has_app_commands(self) -> bool:
        return bool(self.env.stop_app_command or self.env.start_app_command)

    @abstractmethod
    def stop_app(self) -> str | None:
        """Stop the application; returns what was done (None: nothing configured)."""

    @abstractmethod
    def start_app(self) -> str | None: ...

    @abstractmethod
    def server_running(self) -> bool: ...

    @abstractmethod
    def server_alive(self) -> bool:
        """Whether a postmaster is running on the data directory (cheap: no connection)."""

    @abstractmethod
    def stop_server(self) -> None: ...

    @abstractmethod
    def start_server(self, wait: bool = True) -> None: ...

    @abstractmethod
    def preserve(self, stamp: str) -> Path | None:
        """Rename the data directory aside; None when there was none."""

    @abstractmethod
    def put_in_place(self, restored: Path) -> None:
        """Rename a restored data directory onto the (now free) data directory path."""

    @abstractmethod
    def set_aside(self, stamp: str, kind: str = "failed") -> Path | None:
        """Rename the current data directory to `.<kind>_<stamp>` (kept, never deleted)."""

    @abstractmethod
    def restore_command(self, data_dir: Path, folder: Path, backup: BaseBackup) -> str:
        """The restore_command with which the server on the (stopped) `data_dir` fetches the WAL of `backup`
        from the host folder `folder`; what the command needs is put into `data_dir`."""

    @abstractmethod
    def write_recovery(self, data_dir: Path, settings: Mapping[str, str], signal: str) -> None:
        """Write recovery settings (and the signal file, recovery.signal or standby.signal) into a stopped
        data directory."""

    @abstractmethod
    def recovery_status(self) -> RecoveryStatus | None:
        """Where recovery is; None while the server does not accept connections."""

    @abstractmethod
    def server_log(self) -> Path: ...

    def promote(self, wait: bool = True) -> None:
        """Ask a server in recovery to promote (pg_ctl promote); with `wait`, until it is out of recovery.
        Fails while the server is not running in recovery yet."""
        raise NotImplementedError(f"promote is not supported by the {self.env.backend} backend")
