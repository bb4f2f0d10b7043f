"""The runbook's backup scripts as functions: `backup_now.sh` (dump), `backup_verify.sh` (verify),
`backup_basebackup.sh` (base) and `wal_archive_sync.sh` (wal-sync).

Every artifact is written under a temporary name and renamed only when whole (a dump and its uploads archive
together, or neither), and each heartbeat is written last, only on success, so a failed backup never makes
monitoring, `verify` or a restore believe a good one exists. Each command holds a lock of its own while it
runs, and removes what a killed run of the same command left behind.

This module owns that sequence for every backend; a backend only hands it streams (`Backend.dump_to`,
`base_backup_to`, `archived_wal`).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import lz4.frame
import zstandard

from drtui.core.backends import Backend, backend_for
from drtui.core.backends.base import ToolFailed
from drtui.core.clock import Clock, stamp
from drtui.core.config import PRODUCTION, Config, Environment
from drtui.core.errors import BackupError, ErrorKind
from drtui.core.files import atomic_path, atomic_paths, make_dirs, write_heartbeat
from drtui.core.inventory.names import work_in_progress
from drtui.core.lock import EnvLock, LockBusy

CHUNK = 1 << 20
GZIP_LEVEL = 6
# `backup base --compress METHOD[:LEVEL]`: the base backup's name, and its levels (default, lowest, highest)
BASE_SUFFIXES = {"gzip": ".tar.gz", "zstd": ".tar.zst", "lz4": ".tar.lz4", "none": ".tar"}
BASE_LEVELS = {"gzip": (GZIP_LEVEL, 1, 9), "zstd": (3, 1, 19), "lz4": (0, 0, 16), "none": (0, 0, 0)}
DUMP_COMPLETE = b"-- PostgreSQL database dump complete"
LAST_SUCCESS = "LAST_SUCCESS.txt"
LAST_BASEBACKUP = "LAST_BASEBACKUP.txt"
STDERR_LINES = 5  # of a failing tool's stderr, shown whole
# A failing tool's words, and what to do about them (checked in order, on its last lines).
CAUSE_HINTS = (
    ("no space left on device", "free space on the filesystem of backup_dir ({folder}), then run the backup again"),
    ("permission denied", "grant the permission named above: to the database user, or to the OS user drtui runs "
                          "as on backup_dir ({folder})"),
    ("disk quota exceeded", "raise the quota of the user drtui runs as, or free space in backup_dir ({folder})"),
    ("read-only file system", "backup_dir ({folder}) is on a read-only filesystem: remount it or pick another"),
)


class BackupRefused(BackupError):
    """A backup that was not started: bad input, or the same command already running; nothing was touched."""

    kind = ErrorKind.REFUSED


@dataclass
class Artifact:
    path: Path
    size_bytes: int


@dataclass
class BackupResult:
    kind: str
    artifacts: list[Artifact] = field(default_factory=list)
    heartbeat: Path | None = None
    seconds: float = 0.0
    removed: list[Path] = field(default_factory=list)  # what a killed earlier run had left behind

    def as_dict(self) -> dict:
        return {"kind": self.kind, "ok": True, "seconds": round(self.seconds, 3),
                "heartbeat": str(self.heartbeat) if self.heartbeat else None,
                "removed_leftovers": [str(p) for p in self.removed],
                "artifacts": [{"path": str(a.path), "size_bytes": a.size_bytes} for a in self.artifacts]}


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise BackupError(f"{path}: already exists, and a backup is never overwritten",
                          "wait a second and run the backup again")


def prepare_dir(folder: Path, group: int | None = None) -> None:
    try:
        make_dirs(folder, group)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".drtui-probe-"):
            pass
    except OSError as exc:
        raise BackupError(f"{folder}: cannot write there ({exc.strerror})",
                          "check backup_dir in the config, the free space and the permissions") from exc


def _failure(name: str, env: Environment, stderr: bytes | str, folder: Path) -> BackupError:
    """A failing tool's last stderr lines, whole, and the hint for the cause they name."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()][-STDERR_LINES:]
    said = "\n  ".join(lines) if lines else "no output"
    hint = next((hint.format(folder=folder) for words, hint in CAUSE_HINTS if words in said.lower()),
                f"is PostgreSQL of {env.name!r} running and reachable at {env.host}:{env.port}?")
    return BackupError(f"{name} of {env.name} failed:\n  {said}", hint)


def _write_failure(exc: OSError, folder: Path) -> BackupError:
    """An OSError while a backup was written or read (a full disk, a file it may not read) in plain words."""
    where = exc.filename or folder
    hint = next((hint.format(folder=folder) for words, hint in CAUSE_HINTS if words in (exc.strerror or "").lower()),
                "look at the file named above, then run the backup again")
    return BackupError(f"{where}: {exc.strerror or exc}; the backup was not kept", hint)


def _remove_work_of(command: str, folder: Path) -> list[Path]:
    """Remove what a killed run of `command` left in a folder (only called while holding its lock, so no live
    run of it is writing there)."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if work_in_progress(entry.name) != command:
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return sorted(removed)


@contextlib.contextmanager
def _exclusive(config: Config, command: str, clock: Clock, *folders: Path) -> Iterator[list[Path]]:
    """Hold the lock of one backup command (a second run of it is refused), yield the leftovers of a killed run
    it removed from `folders`, and turn an OSError (a full disk) into a plain BackupError."""
    lock = EnvLock(config.state_dir, f"backup-{command}")
    try:
        lock.acquire(f"backup-{command}-{os.getpid()}", clock)
    except LockBusy:
        holder = lock.holder()
        running = f"pid {holder.pid}, started {holder.started_at}" if holder else "it is just starting"
        raise BackupRefused(f"another `drtui backup {command}` is running ({running}); {lock.path} is its lock",
                            "wait for it to finish: this run did nothing, and the next scheduled one will "
                            "pick up what is new") from None
    try:
        yield [path for folder in folders for path in _remove_work_of(command, folder)]
    except OSError as exc:
        raise _write_failure(exc, config.backup_dir) from exc
    finally:
        lock.release()


def dump(config: Config, env: Environment, clock: Clock) -> BackupResult:
    """pg_dump into `<database>_<stamp>.sql.gz`, the uploads folder into `uploads_<stamp>.tar.gz` (the two
    appear together or not at all), then LAST_SUCCESS.txt."""
    return _one_at_a_time("dump", config, env, clock, _dump)


def _one_at_a_time(kind: str, config: Config, env: Environment, clock: Clock,
                   backup: Callable[[Config, Environment, Backend, Clock], BackupResult]) -> BackupResult:
    """A backup under its command's own lock, after the leftovers of a killed run of it are removed; a tool's
    failure is told with its stderr and what to do."""
    with _exclusive(config, kind, clock, config.backup_dir) as removed:
        try:
            result = backup(config, env, backend_for(env, config.state_dir), clock)
        except ToolFailed as exc:
            raise _failure(exc.tool, env, exc.stderr, config.backup_dir) from None
    result.removed = removed
    return result


def _dump(config: Config, env: Environment, backend: Backend, clock: Clock) -> BackupResult:
    started = clock.monotonic()
    now = clock.now()
    if env.uploads_dir and not env.uploads_dir.is_dir():
        raise BackupRefused(f"{env.uploads_dir}: the uploads folder does not exist",
                            f"fix uploads_dir of environment {env.name!r}, or remove the key")
    prepare_dir(config.backup_dir, config.backup_group)
    dump_path = config.backup_dir / f"{env.database}_{stamp(now)}.sql.gz"
    uploads_path = config.backup_dir / f"uploads_{stamp(now)}.tar.gz"
    finals = [dump_path, uploads_path] if env.uploads_dir else [dump_path]
    for path in finals:
        _refuse_existing(path)
    with atomic_paths(*finals, group=config.backup_group) as tmps:
        with gzip.open(tmps[0], "wb", compresslevel=GZIP_LEVEL) as gz:
            backend.dump_to(gz)
        if env.uploads_dir:
            with tarfile.open(tmps[1], "w:gz", compresslevel=GZIP_LEVEL) as tar:
                tar.add(env.uploads_dir, arcname="uploads")
    result = BackupResult("dump", [Artifact(path, path.stat().st_size) for path in finals])
    result.heartbeat = config.backup_dir / LAST_SUCCESS
    write_heartbeat(result.heartbeat, clock.now(), config.backup_group)
    result.seconds = clock.monotonic() - started
    return result


def base(config: Config, env: Environment, clock: Clock, compress: str = "gzip") -> BackupResult:
    """The backend's base backup (with WAL; on the local backend checked by pg_verifybackup first) as
    `basebackup_<stamp>.tar.gz` with backup_label first (`.tar.zst`, `.tar.lz4` or `.tar` with another
    `compress`, METHOD[:LEVEL]), then LAST_BASEBACKUP.txt."""
    method, level = parse_compress(compress)
    return _one_at_a_time("base", config, env, clock,
                          lambda config, env, backend, clock: _base(config, env, backend, clock, method, level))


def parse_compress(text: str) -> tuple[str, int]:
    """`gzip`, `zstd`, `lz4` or `none`, with an optional `:LEVEL`, as (method, level)."""
    method, _, level_text = text.strip().lower().partition(":")
    if method not in BASE_LEVELS:
        raise BackupRefused(f"--compress {text}: no such compression",
                            "use zstd (recommended), lz4, gzip or none, with an optional level: zstd:9, gzip:6")
    default, lowest, highest = BASE_LEVELS[method]
    if not level_text:
        return method, default
    if not level_text.isdigit() or not lowest <= int(level_text) <= highest or method == "none":
        raise BackupRefused(f"--compress {text}: {level_text!r} is not a level of {method}",
                            f"{method} levels go from {lowest} to {highest}" if method != "none"
                            else "none takes no level")
    return method, int(level_text)


@contextlib.contextmanager
def _compressing(path: Path, method: str, level: int) -> Iterator[IO[bytes]]:
    """A file writing `path` compressed (zstd on every core)."""
    if method == "gzip":
        with gzip.open(path, "wb", compresslevel=level) as out:
            yield out
    elif method == "zstd":
        with path.open("wb") as raw, zstandard.ZstdCompressor(level=level, threads=-1).stream_writer(raw) as out:
            yield out  # type: ignore[misc]
    elif method == "lz4":
        with lz4.frame.open(path, "wb", compression_level=level) as out:
            yield out  # type: ignore[misc]
    else:
        with path.open("wb") as out:
            yield out


def _base(config: Config, env: Environment, backend: Backend, clock: Clock, method: str = "gzip",
          level: int = GZIP_LEVEL) -> BackupResult:
    started = clock.monotonic()
    now = clock.now()
    prepare_dir(config.backup_dir, config.backup_group)
    final = config.backup_dir / f"basebackup_{stamp(now)}{BASE_SUFFIXES[method]}"
    _refuse_existing(final)
    workdir = Path(tempfile.mkdtemp(prefix=".basebackup-", dir=config.backup_dir))
    try:
        with atomic_path(final, group=config.backup_group) as tmp, _compressing(tmp, method, level) as sink:
            backend.base_backup_to(sink, workdir, f"drtui {stamp(now)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = BackupResult("base", [Artifact(final, final.stat().st_size)], config.backup_dir / LAST_BASEBACKUP)
    write_heartbeat(result.heartbeat, clock.now(), config.backup_group)
    result.seconds = clock.monotonic() - started
    return result


def wal_sync(config: Config, clock: Clock, target: str | Path | None = None) -> BackupResult:
    """Pack the live WAL archive into `wal_archive_<stamp>.tar.gz` in backup_dir (and copy it to a
    `WAL_SYNC_TARGET` folder), then the WAL sync heartbeat. The live archive is the folder wal_archive, or the
    one production's backend keeps itself (the compose backend's WAL volume)."""
    production = config.environments.get(PRODUCTION)
    folder = check_sync_target(target)
    folders = [config.backup_dir, folder] if folder else [config.backup_dir]
    with _exclusive(config, "wal-sync", clock, *folders) as removed:
        result = _wal_sync(config, clock, folder, production)
    result.removed = removed
    return result


def _wal_sync(config: Config, clock: Clock, target: Path | None, production: Environment | None) -> BackupResult:
    started = clock.monotonic()
    kept = backend_for(production, config.state_dir).archived_wal() if production else None
    source = config.wal_archive
    if kept is None and not source.is_dir():
        raise BackupError(f"{source}: the WAL archive folder does not exist",
                          "check wal_archive in the config")
    prepare_dir(config.backup_dir, config.backup_group)
    final = config.backup_dir / f"wal_archive_{stamp(clock.now())}.tar.gz"
    _refuse_existing(final)
    with atomic_path(final, group=config.backup_group) as tmp, \
            tarfile.open(tmp, "w:gz", compresslevel=GZIP_LEVEL) as tar:
        for member, contents in kept if kept is not None else _folder_files(source, tar):
            tar.addfile(member, contents)
    return _finish_wal_sync(config, clock, started, final, target)


def _folder_files(folder: Path, tar: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """The files at the top of a host WAL folder (hidden ones aside), in name order, as `tar.add` takes them."""
    names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file() and not entry.name.startswith("."))
    for name in names:
        member = tar.gettarinfo(folder / name, arcname=name)
        if not member.isreg():
            yield member, None
            continue
        with open(folder / name, "rb") as contents:
            yield member, contents


def check_sync_target(target: str | Path | None) -> Path | None:
    """The WAL_SYNC_TARGET folder, refused before any work when drtui cannot write there: a URL or a remote
    `host:/path` (drtui copies to a mounted folder only), or a folder that does not exist (an unmounted
    offsite disk must not silently become a local folder)."""
    if target is None or str(target) == "":
        return None
    text = str(target)
    if text.lower().startswith("s3:"):
        raise BackupRefused(f"WAL_SYNC_TARGET={text}: S3 targets are not supported yet",
                            "sync to a mounted folder, or leave WAL_SYNC_TARGET unset")
    head = text.split("/", 1)[0]
    if ":" in head:
        raise BackupRefused(f"WAL_SYNC_TARGET={text}: a URL or a remote host:path, not a folder",
                            "drtui copies to a mounted folder only: mount the remote place and name its "
                            "folder, or copy the tarball with your own tool (rsync, scp)")
    folder = Path(text).absolute()
    if not folder.is_dir():
        raise BackupRefused(f"WAL_SYNC_TARGET={text}: no such folder" if not folder.exists()
                            else f"WAL_SYNC_TARGET={text}: not a folder",
                            "create or mount it first (drtui does not create a sync target, so that an "
                            "unmounted disk is noticed), or leave WAL_SYNC_TARGET unset")
    return folder


def _finish_wal_sync(config: Config, clock: Clock, started: float, final: Path, target: Path | None) -> BackupResult:
    """Copy a packed WAL tarball to the sync target folder, then write the WAL sync heartbeat."""
    result = BackupResult("wal-sync", [Artifact(final, final.stat().st_size)], config.wal_sync_heartbeat)
    if target:
        prepare_dir(target)
        copy = target / final.name
        with atomic_path(copy, group=config.backup_group) as tmp:
            shutil.copyfile(final, tmp)
        result.artifacts.append(Artifact(copy, copy.stat().st_size))
    write_heartbeat(config.wal_sync_heartbeat, clock.now(), config.backup_group)
    result.seconds = clock.monotonic() - started
    return result


def newest(folder: Path, prefix: str, suffix: str) -> Path | None:
    """The newest `<prefix><stamp><suffix>` in a folder, by the stamp in its name."""
    found = sorted(p for p in folder.glob(f"{prefix}*{suffix}") if len(p.name) == len(prefix) + 16 + len(suffix))
    return found[-1] if found else None


def uploads_of(dump_path: Path) -> Path:
    """The uploads archive written together with a dump: `uploads_<the same stamp>.tar.gz` beside it (a dump
    named without a stamp has none: a name that cannot exist, so its absence is reported)."""
    found = re.search(r"\d{8}T\d{6}Z", dump_path.name)
    return dump_path.with_name(f"uploads_{found.group(0) if found else 'of-' + dump_path.name}.tar.gz")


def verify_dump(path: Path) -> int:
    """Read a `.sql.gz` dump to its end: the gzip stream must close and the SQL end with pg_dump's
    completion line. Returns the uncompressed size."""
    tail = b""
    size = 0
    try:
        with gzip.open(path, "rb") as gz:
            while chunk := gz.read(CHUNK):
                size += len(chunk)
                tail = (tail + chunk)[-4096:]
    except FileNotFoundError:
        raise BackupError(f"{path}: no such dump", "check BACKUP_FILE or backup_dir") from None
    except EOFError:
        raise BackupError(f"{path}: the dump is truncated (the gzip stream ends early)",
                          "do not restore from it; take a new dump with `drtui backup dump`") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise BackupError(f"{path}: not a readable gzip file ({exc})",
                          "do not restore from it; take a new dump with `drtui backup dump`") from None
    if DUMP_COMPLETE not in tail:
        raise BackupError(f"{path}: the SQL dump is incomplete (no '{DUMP_COMPLETE.decode()}' line at its end)",
                          "pg_dump did not finish; take a new dump with `drtui backup dump`")
    return size


def verify_tarball(path: Path) -> int:
    """Read every member of a `.tar.gz` to its end. Returns the number of members."""
    members = 0
    try:
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                members += 1
                if member.isfile():
                    handle = tar.extractfile(member)
                    assert handle
                    while handle.read(CHUNK):
                        pass
    except FileNotFoundError:
        raise BackupError(f"{path}: no such archive", "check UPLOADS_ARCHIVE or backup_dir") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"{path}: the archive is truncated or damaged ({exc})",
                          "do not restore from it; take a new backup") from None
    return members
