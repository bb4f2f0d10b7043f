"""PostgreSQL 17+ incremental base backups: the chain each one needs, and its rebuild by pg_combinebackup.

An incremental backup (`pg_basebackup --incremental=MANIFEST`) holds only the blocks changed since the backup
it builds on; its backup_label names that backup by start LSN and timeline (`INCREMENTAL FROM LSN/TLI`).
Restoring it takes the whole chain, full backup first: each member is extracted into a private folder beside
the data directory, then pg_combinebackup writes the one data directory recovery starts from.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

from drtui.core.errors import DrError
from drtui.core.models import BaseBackup, format_lsn
from drtui.core.postgres import run_as

COMBINE_TIMEOUT = 6 * 3600
FIRST_VERSION = 17  # pg_basebackup --incremental and pg_combinebackup


class ChainError(DrError):
    """An incremental backup whose chain back to a full backup is not all there."""


def chain_of(backup: BaseBackup, backups: Sequence[BaseBackup]) -> tuple[BaseBackup, ...]:
    """The backups `backup` needs, full backup first and `backup` last (just `backup` when it is full)."""
    chain = [backup]
    while chain[0].is_incremental:
        child = chain[0]
        if child.pg_version < FIRST_VERSION:  # 0: unknown, as a label without PG_VERSION reads
            raise ChainError(
                f"base backup {child.path.name} says it is incremental, but it is PostgreSQL "
                f"{child.pg_version or 'of an unknown version'}: incremental backups exist from PostgreSQL "
                f"{FIRST_VERSION} on", "check its backup_label and PG_VERSION, or choose a full base backup")
        parents = [b for b in backups if b.start_lsn == child.incremental_from_lsn
                   and b.timeline == (child.incremental_from_tli or b.timeline)]
        if not parents:
            raise ChainError(
                f"base backup {child.path.name} is incremental: it builds on a backup started at "
                f"{format_lsn(child.incremental_from_lsn or 0)} (timeline {child.incremental_from_tli}), "
                "which the backup folder does not hold",
                "put that backup back, or choose a full base backup (or one whose chain is complete)")
        if len(chain) > 64 or parents[0] in chain:
            raise ChainError(f"base backup {child.path.name}: its incremental chain loops or is too long",
                             "choose a full base backup")
        if parents[0].pg_version != child.pg_version:
            raise ChainError(f"base backup {child.path.name} (PostgreSQL {child.pg_version}) builds on "
                             f"{parents[0].path.name}, which is PostgreSQL {parents[0].pg_version}",
                             "a chain is of one major version: choose a full base backup")
        chain.insert(0, parents[0])
    return tuple(chain)


def combine(chain: Sequence[BaseBackup], dest: Path, pg_bin: Path, os_user: str, extract_one,
            cancel: threading.Event) -> None:
    """Extract every member of `chain` beside `dest` (by `extract_one(backup, folder)`), then rebuild `dest`
    with pg_combinebackup, run as the cluster's OS user. The members' folders are removed either way."""
    work = dest.parent / f".{dest.name}.members"
    work.mkdir(mode=0o700)
    try:
        folders = []
        for index, member in enumerate(chain):
            folder = work / str(index)
            extract_one(member, folder)
            folders.append(str(folder))
            if cancel.is_set():
                return
        shutil.chown(work, os_user)
        combined = work / "combined"  # made by pg_combinebackup as os_user, then moved into place
        done = run_as(os_user, [str(pg_bin / "pg_combinebackup"), "-o", str(combined), *folders],
                      check=False, timeout=COMBINE_TIMEOUT)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            raise ChainError(f"pg_combinebackup could not rebuild {chain[-1].path.name}: "
                             f"{lines[-1] if lines else f'exit {done.returncode}'}",
                             "check each member of the chain with pg_verifybackup; a full base backup can be "
                             "restored instead")
        if dest.exists():
            dest.rmdir()  # an empty folder made for the restore
        combined.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
