"""The inventory: what can be recovered, and to when.

`scan` lists backup_dir (dumps, uploads, base backups, WAL tarballs, heartbeats, unknown files), reads every
base backup without extracting it, reads the WAL coverage of one source (the live archive folder by default,
or a folder / wal_archive_*.tar.gz given as `wal_source`) and computes one recoverable window per base backup.
Whatever cannot be read becomes a `Problem` with a plain sentence; only a backup_dir that cannot be listed at
all is an error. Reads are cached in state_dir/inventory-cache.json, keyed by (path, size, mtime).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from drtui.core.clock import Clock, SystemClock, isoformat
from drtui.core.config import Config, Environment
from drtui.core.errors import ConfigError, PlanError
from drtui.core.inventory.basebackup import InventoryError, first_segment_header, read_base_backup
from drtui.core.inventory.cache import CACHE_FILE, ReadCache
from drtui.core.inventory.labels import LabelError, parse_backup_label
from drtui.core.inventory.names import (
    WalHeader,
    backup_history_name,
    classify_artifact,
    parse_wal_header,
    work_in_progress,
)
from drtui.core.inventory.remote import (
    Listed,
    first_segment_header_of,
    list_prefix,
    read_remote_backup,
    scan_remote_wal,
    settings_for,
)
from drtui.core.inventory.wal import Reader, scan_wal
from drtui.core.inventory.windows import compute_windows
from drtui.core.models import (
    DEFAULT_SEGMENT_SIZE,
    Artifact,
    BaseBackup,
    Gap,
    Problem,
    WalCoverage,
    Window,
    format_lsn,
    segment_name,
)
from drtui.core.objectstore import BACKUPS, HEARTBEATS, ObjectStoreError, S3Settings, S3Url
from drtui.core.programs import pg_bin_for

__all__ = ["Inventory", "InventoryError", "compute_windows", "read_base_backup", "scan", "scan_wal"]


@dataclass
class Inventory:
    backup_dir: Path | S3Url  # or the S3 repository's backups/ prefix
    base_backups: list[BaseBackup] = field(default_factory=list)  # newest first
    dumps: list[Artifact] = field(default_factory=list)  # newest first, as every list below
    uploads: list[Artifact] = field(default_factory=list)
    wal_tarballs: list[Artifact] = field(default_factory=list)
    heartbeats: list[Artifact] = field(default_factory=list)
    unknown: list[Artifact] = field(default_factory=list)
    wal: WalCoverage | None = None  # of the chosen WAL source
    windows: list[Window] = field(default_factory=list)  # one per base backup, same order
    problems: list[Problem] = field(default_factory=list)
    scanned_at: datetime | None = None

    def window_for(self, base_backup: Path | S3Url) -> Window:
        wanted = base_backup if isinstance(base_backup, S3Url) else Path(base_backup)
        for window in self.windows:
            if window.base_backup == wanted:
                return window
        raise InventoryError(f"{base_backup}: not a base backup of this inventory",
                             f"pick one of the base backups in {self.backup_dir}")

    def as_json(self) -> dict[str, Any]:
        return {
            "backup_dir": str(self.backup_dir),
            "scanned_at": _time(self.scanned_at),
            "base_backups": [_backup_json(b) for b in self.base_backups],
            "dumps": [_artifact_json(a) for a in self.dumps],
            "uploads": [_artifact_json(a) for a in self.uploads],
            "wal_tarballs": [_artifact_json(a) for a in self.wal_tarballs],
            "heartbeats": [_artifact_json(a) for a in self.heartbeats],
            "unknown": [_artifact_json(a) for a in self.unknown],
            "wal": _wal_json(self.wal),
            "windows": [_window_json(w) for w in self.windows],
            "problems": [{"path": str(p.path), "message": p.message} for p in self.problems],
        }


def _time(moment: datetime | None) -> str | None:
    return isoformat(moment) if moment else None


def _artifact_json(a: Artifact) -> dict[str, Any]:
    return {"file": str(a.path), "kind": a.kind, "size_bytes": a.size_bytes, "name_time": _time(a.name_time)}


def _backup_json(b: BaseBackup) -> dict[str, Any]:
    return {
        "file": str(b.path), "layout": str(b.layout), "label": b.label, "start_time": _time(b.start_time),
        "stop_time": _time(b.stop_time), "start_wal": b.start_wal_file, "start_lsn": format_lsn(b.start_lsn),
        "stop_lsn": format_lsn(b.stop_lsn) if b.stop_lsn is not None else None,
        "checkpoint_lsn": format_lsn(b.checkpoint_lsn), "timeline": b.timeline, "pg_version": b.pg_version or None,
        "size_bytes": b.size_bytes, "file_size": b.file_size, "member_prefix": b.member_prefix,
        "name_time": _time(b.name_time),
        "incremental_from": format_lsn(b.incremental_from_lsn) if b.is_incremental else None,
    }


def _gap_json(g: Gap) -> dict[str, Any]:
    return {"timeline": g.timeline, "from": g.from_name, "to": g.to_name,
            "segments": g.last_missing - g.first_missing + 1, "damaged": list(g.damaged)}


def _wal_json(wal: WalCoverage | None) -> dict[str, Any] | None:
    if wal is None:
        return None
    firsts = [(t, s[0]) for t, s in wal.segments.items() if s]
    lasts = [(t, s[-1]) for t, s in wal.segments.items() if s]
    first = min(firsts, key=lambda p: (p[1], p[0]), default=None)
    last = max(lasts, key=lambda p: (p[1], p[0]), default=None)
    return {
        "source": str(wal.source), "kind": wal.kind, "segment_size": wal.segment_size,
        "timelines": [
            {"timeline": t, "segments": len(wal.segments.get(t, [])),
             "first": segment_name(t, wal.segments[t][0], wal.segment_size) if wal.segments.get(t) else None,
             "last": segment_name(t, wal.segments[t][-1], wal.segment_size) if wal.segments.get(t) else None,
             "parent": next((h.parent for h in wal.histories if h.timeline == t), None),
             "switch_lsn": next((format_lsn(h.switch_lsn) for h in wal.histories if h.timeline == t), None)}
            for t in wal.timelines],
        "segments": wal.segment_count,
        "first": segment_name(*first, wal.segment_size) if first else None,
        "last": segment_name(*last, wal.segment_size) if last else None,
        "gaps": [_gap_json(g) for g in wal.gaps],
        "history_files": [f"{h.timeline:08X}.history" for h in wal.histories],
        "backup_files": wal.backup_files,
        "partial_files": wal.partial_files,
    }


def _window_json(w: Window) -> dict[str, Any]:
    return {
        "base_backup": str(w.base_backup), "earliest": _time(w.earliest), "latest": _time(w.latest),
        "earliest_source": w.earliest_source, "latest_source": w.latest_source, "timeline": w.timeline,
        "last_segment": w.last_segment, "cut_by_gap": _gap_json(w.cut_by_gap) if w.cut_by_gap else None,
        "usable": w.usable, "reason": w.reason, "note": w.note,
    }


def _discover(inventory: Inventory) -> list[Path]:
    """Sort backup_dir's entries into the inventory's lists; returns the base backups to read."""
    backups = []
    try:
        entries = list(os.scandir(inventory.backup_dir))
    except FileNotFoundError:
        raise InventoryError(f"{inventory.backup_dir}: backup_dir does not exist",
                             "check backup_dir in the config, or take a first backup") from None
    except OSError as exc:
        raise InventoryError(f"{inventory.backup_dir}: cannot list backup_dir ({exc.strerror})",
                             "check the permissions of backup_dir") from None
    for entry in entries:
        if entry.name.startswith("."):  # work in progress of a backup being written (atomic_path, mkdtemp)
            _list_work_in_progress(inventory, entry)
            continue
        path = Path(entry.path)
        kind, name_time = classify_artifact(entry.name)
        try:
            is_dir = entry.is_dir()
            size = 0 if is_dir else entry.stat().st_size
        except OSError as exc:
            inventory.problems.append(Problem(path, f"cannot stat it ({exc.strerror})"))
            continue
        if is_dir and kind != "basebackup":
            kind = "unknown"
        if kind == "basebackup":
            backups.append(path)
            continue
        artifact = Artifact(path, kind, size, name_time)
        {"dump": inventory.dumps, "uploads": inventory.uploads, "wal_tarball": inventory.wal_tarballs,
         "heartbeat": inventory.heartbeats, "unknown": inventory.unknown}[kind].append(artifact)
    for items in (inventory.dumps, inventory.uploads, inventory.wal_tarballs):
        items.sort(key=lambda a: (a.name_time is not None, a.name_time, a.path.name), reverse=True)
    inventory.heartbeats.sort(key=lambda a: a.path.name)
    inventory.unknown.sort(key=lambda a: a.path.name)
    return backups


def folder_size(folder: Path) -> int:
    """The bytes of every file under a folder (links not followed)."""
    return sum(Path(root, name).lstat().st_size for root, _, files in os.walk(folder) for name in files)


def _list_work_in_progress(inventory: Inventory, entry: os.DirEntry) -> None:
    """A backup command's temporary file or folder: an unknown file, and a problem that says whose it is."""
    command = work_in_progress(entry.name)
    if command is None:
        return
    path = Path(entry.path)
    try:
        size = folder_size(path) if entry.is_dir() else entry.stat().st_size
    except OSError:  # the run just renamed or removed it
        return
    inventory.unknown.append(Artifact(path, "unknown", size, None))
    inventory.problems.append(Problem(path, f"unfinished work of `drtui backup {command}`: a run in progress, or "
                                            f"left by one that was killed (the next `drtui backup {command}` "
                                            "removes it); not a backup"))


def _with_stop(backup: BaseBackup, wal: WalCoverage | None, problems: list[Problem]) -> BaseBackup:
    """Stop LSN and time from the archive's `.backup` history file of this backup, when there is one."""
    if wal is None:
        return backup
    name = backup_history_name(backup.start_wal_file, backup.start_lsn, wal.segment_size)
    text = wal.backup_texts.get(name)
    if text is None:
        return backup
    try:
        info = parse_backup_label(text, near=backup.start_time)
    except LabelError as exc:
        where = wal.source.child(name) if isinstance(wal.source, S3Url) else wal.source / name
        problems.append(Problem(where, f"unreadable backup history file: {exc}"))
        return backup
    return dataclasses.replace(backup, stop_lsn=info.stop_lsn or backup.stop_lsn, stop_time=info.stop_time)


def _waldump_programs(config: Config, env: Environment | None, backups: list[BaseBackup]) -> Path | None:
    """The pg_bin whose pg_waldump reads the WAL: of the backups' major version when they share one (the WAL
    of PostgreSQL 17 is not read by 15's), else the environment's."""
    try:
        env = env or config.environment()
    except ConfigError:  # a read-only config: the runbook's PostgreSQL, when this host has it
        default = Environment.pg_bin
        return default if default.is_dir() else None
    versions = {b.pg_version for b in backups if b.pg_version}
    if len(versions) != 1:
        return env.pg_bin
    try:
        return pg_bin_for(config, env, versions.pop())
    except PlanError:  # no programs of that version: the windows say pg_waldump could not tell
        return env.pg_bin


def _restore_user(config: Config, env: Environment | None) -> str | None:
    """The OS user a restore's server reads WAL as: the environment's, else the default environment's."""
    if env is not None:
        return env.os_user
    try:
        return config.environment().os_user
    except ConfigError:
        return None


def _segment_size(source: Path, backups: list[BaseBackup],
                  problems: list[Problem]) -> tuple[int, list[BaseBackup]]:
    """The WAL segment size: from the header of a segment in the archive folder, else from the newest base
    backup's own WAL, else PostgreSQL's default of 16 MB. A backup that showed no WAL of its own (so it says
    the default) takes the archive's size."""
    header = parse_wal_header(first_segment_header(source) or b"") if source.is_dir() else None
    return _adjust_segment_size(header, backups, problems)


def _adjust_segment_size(header: WalHeader | None, backups: list[BaseBackup],
                         problems: list[Problem]) -> tuple[int, list[BaseBackup]]:
    newest = max(backups, key=lambda b: b.start_time, default=None)
    if header is None:
        return (newest.segment_size if newest else DEFAULT_SEGMENT_SIZE), backups
    adjusted = []
    for backup in backups:
        if backup.segment_size == DEFAULT_SEGMENT_SIZE != header.segment_size:
            backup = dataclasses.replace(backup, segment_size=header.segment_size)
        elif backup.segment_size != header.segment_size:
            problems.append(Problem(backup.path, f"its WAL segment size ({backup.segment_size} bytes) differs from "
                                                 f"the archive's ({header.segment_size} bytes)"))
        adjusted.append(backup)
    return header.segment_size, adjusted


def _discover_remote(inventory: Inventory, prefix: S3Url, settings: S3Settings) -> list[Listed]:
    """Sort a repository's backups/ objects into the inventory's lists (one listing); returns the base backups
    to read. Its heartbeats/ are listed too."""
    backups = []
    for obj in list_prefix(prefix, settings, "list the repository's backups"):
        kind, name_time = classify_artifact(obj.url.name)
        if kind == "basebackup":
            backups.append(obj)
        elif work_in_progress(obj.url.name) is None:
            {"dump": inventory.dumps, "uploads": inventory.uploads, "wal_tarball": inventory.wal_tarballs,
             "heartbeat": inventory.heartbeats, "unknown": inventory.unknown}[kind].append(
                Artifact(obj.url, kind, obj.size, name_time))
    heartbeats = prefix.as_prefix().key.removesuffix(BACKUPS) + HEARTBEATS
    inventory.heartbeats += [Artifact(obj.url, "heartbeat", obj.size, None)
                             for obj in list_prefix(S3Url(prefix.bucket, heartbeats), settings,
                                                    "list the repository's heartbeats")]
    for items in (inventory.dumps, inventory.uploads, inventory.wal_tarballs):
        items.sort(key=lambda a: (a.name_time is not None, a.name_time, a.path.name), reverse=True)
    inventory.heartbeats.sort(key=lambda a: a.path.name)
    inventory.unknown.sort(key=lambda a: a.path.name)
    return backups


def _read_backups(inventory: Inventory, config: Config, cache: ReadCache) -> list[BaseBackup]:
    backups = []
    if config.repository is not None:
        settings = config.repository.settings
        for obj in _discover_remote(inventory, config.repository.backups, settings):
            try:
                backups.append(read_remote_backup(obj, settings, cache))
            except (InventoryError, ObjectStoreError) as exc:
                inventory.problems.append(Problem(obj.url, f"{exc.title.removeprefix(f'{obj.url}: ')} ({exc.hint})"))
        return backups
    for path in _discover(inventory):
        try:
            backups.append(read_base_backup(path, cache))
        except InventoryError as exc:
            inventory.problems.append(Problem(path, f"{exc.title.removeprefix(f'{path}: ')} ({exc.hint})"))
    return backups


def scan(config: Config, wal_source: Path | S3Url | None = None, env: Environment | None = None,
         clock: Clock | None = None) -> Inventory:
    """Everything recoverable from backup_dir (or the config's S3 repository) and one WAL source, and to when.
    A repository that cannot be listed is an ObjectStoreError, as a backup_dir that cannot be."""
    clock = clock or SystemClock()
    repository = config.repository
    inventory = Inventory(backup_dir=repository.backups if repository else config.backup_dir,
                          scanned_at=clock.now())
    cache = ReadCache(config.state_dir / CACHE_FILE)
    backups = _read_backups(inventory, config, cache)
    source = wal_source or (repository.wal if repository else config.wal_archive)
    reader = Reader.of(_restore_user(config, env))
    if isinstance(source, S3Url):
        _scan_remote_wal(inventory, source, settings_for(config, source), backups)
    else:
        _scan_local_wal(inventory, cache, reader, source, wal_source is None, backups)
    backups = [_with_stop(b, inventory.wal, inventory.problems) for b in inventory.base_backups]
    backups.sort(key=lambda b: (b.start_time, b.path.name), reverse=True)
    inventory.base_backups = backups
    inventory.windows = compute_windows(backups, inventory.wal, _waldump_programs(config, env, backups), cache, reader,
                                        settings_for(config, source) if isinstance(source, S3Url) else None)
    cache.save()
    return inventory


def _scan_local_wal(inventory: Inventory, cache: ReadCache, reader: Reader | None, source: Path, default: bool,
                    backups: list[BaseBackup]) -> None:
    if default and not source.exists() and inventory.wal_tarballs:
        inventory.problems.append(Problem(source, "the live WAL archive folder does not exist; "
                                          f"using the newest WAL tarball {inventory.wal_tarballs[0].path.name}"))
        source = inventory.wal_tarballs[0].path
    segment_size, inventory.base_backups = _segment_size(source, backups, inventory.problems)
    try:
        inventory.wal = scan_wal(source, segment_size, cache, reader)
    except InventoryError as exc:
        inventory.problems.append(Problem(source, f"{exc.title.removeprefix(f'{source}: ')} ({exc.hint})"))


def _scan_remote_wal(inventory: Inventory, source: S3Url, settings: S3Settings, backups: list[BaseBackup]) -> None:
    """An S3 WAL prefix: one listing; the segment size from the first segment's header (a ranged GET)."""
    listing = list_prefix(source, settings, "list the WAL")
    header = parse_wal_header(first_segment_header_of(listing, settings) or b"")
    segment_size, inventory.base_backups = _adjust_segment_size(header, backups, inventory.problems)
    inventory.wal = scan_remote_wal(source, settings, segment_size, listing)
