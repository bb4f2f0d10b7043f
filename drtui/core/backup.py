"""The runbook's backup scripts as functions: `backup_now.sh` (dump), `backup_verify.sh` (verify),
`backup_basebackup.sh` (base) and `wal_archive_sync.sh` (wal-sync).

With an S3 repository ([repository] in the config) base backups and dumps are streamed to its `backups/`
prefix and verified there (drtui.core.upload), wal-sync uploads the WAL files its `wal/` prefix lacks
(drtui.core.wal_push), and each heartbeat is also written to its `heartbeats/` prefix, after the upload.

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

from drtui.core import incident, retention, upload, wal_push
from drtui.core.backends import Backend, backend_for
from drtui.core.backends.base import ToolFailed
from drtui.core.clock import Clock, isoformat, stamp
from drtui.core.config import PRODUCTION, Config, Environment
from drtui.core.errors import BackupError, DrError, ErrorKind
from drtui.core.files import atomic_path, atomic_paths, fsync_dir, make_dirs, make_private, write_heartbeat
from drtui.core.inventory.names import classify_artifact, work_in_progress
from drtui.core.lock import EnvLock, LockBusy
from drtui.core.objectstore import S3Settings, S3Url, is_s3_url

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
    path: Path | S3Url
    size_bytes: int


@dataclass
class BackupResult:
    kind: str
    artifacts: list[Artifact] = field(default_factory=list)
    heartbeat: Path | None = None
    seconds: float = 0.0
    removed: list[Path] = field(default_factory=list)  # what a killed earlier run had left behind
    stored_heartbeat: S3Url | None = None  # the heartbeat's copy in the repository's heartbeats/ prefix
    already_stored: int | None = None  # wal-sync to S3: the WAL files the prefix already held

    def as_dict(self) -> dict:
        extra = {} if self.already_stored is None else {"already_stored": self.already_stored}
        return {"kind": self.kind, "ok": True, "seconds": round(self.seconds, 3),
                "heartbeat": str(self.heartbeat) if self.heartbeat else None,
                "stored_heartbeat": str(self.stored_heartbeat) if self.stored_heartbeat else None,
                "removed_leftovers": [str(p) for p in self.removed],
                "artifacts": [{"path": str(a.path), "size_bytes": a.size_bytes} for a in self.artifacts], **extra}


def _heartbeat(config: Config, result: BackupResult, path: Path, clock: Clock) -> None:
    """Write a heartbeat (last: only after every artifact is whole and verified), and its copy in the
    repository's heartbeats/ prefix so that another host can read it from the bucket."""
    moment = clock.now()
    result.heartbeat = path
    write_heartbeat(path, moment, config.backup_group)
    if config.repository:
        result.stored_heartbeat = config.repository.heartbeats.child(path.name)
        upload.put(result.stored_heartbeat, (isoformat(moment) + "\n").encode(), config.repository.settings,
                   overwrite=True)


def _refuse_stored(url: S3Url, settings: S3Settings) -> None:
    if upload.exists(url, settings, f"check that {url.name} is new"):
        raise BackupError(f"{url}: already exists, and a backup is never overwritten",
                          "wait a second and run the backup again")


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
    incident.read_names(config.state_dir, env)  # the names of what a later DROP removes from the catalog
    return result


def _dump(config: Config, env: Environment, backend: Backend, clock: Clock) -> BackupResult:
    started = clock.monotonic()
    now = clock.now()
    if env.uploads_dir and not env.uploads_dir.is_dir():
        raise BackupRefused(f"{env.uploads_dir}: the uploads folder does not exist",
                            f"fix uploads_dir of environment {env.name!r}, or remove the key")
    if config.repository:
        return _dump_to_repository(config, env, backend, clock, started)
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
    _heartbeat(config, result, config.backup_dir / LAST_SUCCESS, clock)
    result.seconds = clock.monotonic() - started
    return result


def _dump_to_repository(config: Config, env: Environment, backend: Backend, clock: Clock,
                        started: float) -> BackupResult:
    """The uploads archive, then the dump, each streamed to the repository and verified; when the dump fails
    the uploads archive is removed again, so the two are there together or not at all."""
    assert config.repository
    repo, settings = config.repository, config.repository.settings
    now = clock.now()
    dump_url = repo.backups.child(f"{env.database}_{stamp(now)}.sql.gz")
    uploads_url = repo.backups.child(f"uploads_{stamp(now)}.tar.gz")
    urls = [uploads_url, dump_url] if env.uploads_dir else [dump_url]
    for url in urls:
        _refuse_stored(url, settings)
    result = BackupResult("dump")
    try:
        if env.uploads_dir:
            with upload.upload_stream(uploads_url, settings) as sink, \
                    gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL) as gz, \
                    tarfile.open(fileobj=gz, mode="w|") as tar:
                tar.add(env.uploads_dir, arcname="uploads")
            result.artifacts.append(Artifact(uploads_url, _stored_size(uploads_url, settings)))
        with upload.upload_stream(dump_url, settings) as sink, \
                gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL) as gz:
            backend.dump_to(gz)
        result.artifacts.insert(0, Artifact(dump_url, _stored_size(dump_url, settings)))
    except BaseException:
        for artifact in result.artifacts:
            with contextlib.suppress(DrError):
                upload.remove(artifact.path, settings, "remove the uploads archive of a failed dump")
        raise
    _heartbeat(config, result, config.backup_dir / LAST_SUCCESS, clock)
    result.seconds = clock.monotonic() - started
    return result


def _stored_size(url: S3Url, settings: S3Settings) -> int:
    return upload.listing(url, settings, f"read the size of {url.name}")[""]["Size"]


def base(config: Config, env: Environment, clock: Clock, compress: str = "gzip",
         incremental: bool = False) -> BackupResult:
    """The backend's base backup (with WAL; on the local backend checked by pg_verifybackup first) as
    `basebackup_<stamp>.tar.gz` with backup_label first (`.tar.zst`, `.tar.lz4` or `.tar` with another
    `compress`, METHOD[:LEVEL]), then LAST_BASEBACKUP.txt. With `incremental` (PostgreSQL 17+): the blocks
    changed since the newest base backup in backup_dir, as the folder `basebackup_<stamp>`."""
    method, level = parse_compress(compress)
    if incremental and method != "gzip":  # gzip is --compress's default: not asked for
        raise BackupRefused(f"--compress {compress} --incremental: an incremental backup is kept uncompressed, "
                            "in plain format (pg_combinebackup 17 reads data directories only)",
                            "leave out --compress for an incremental backup")
    if incremental:
        return _one_at_a_time("base", config, env, clock, _incremental_base)
    return _one_at_a_time("base", config, env, clock,
                          lambda config, env, backend, clock: _base(config, env, backend, clock, method, level))


def _incremental_base(config: Config, env: Environment, backend: Backend, clock: Clock) -> BackupResult:
    """`pg_basebackup --incremental` on the newest base backup's manifest, in plain format. In backup_dir it is
    kept as the folder `basebackup_<stamp>` (pg_combinebackup 17 reads data directories only, and so restores
    it with its chain); to an S3 repository it goes as `basebackup_<stamp>.tar.gz`, backup_label first, which
    a restore fetches and unpacks before pg_combinebackup. Its backup_label's INCREMENTAL FROM line names the
    backup it builds on, which the inventory follows."""
    started = clock.monotonic()
    _refuse_without_summaries(env)
    prepare_dir(config.backup_dir, config.backup_group)
    name = f"basebackup_{stamp(clock.now())}"
    repository = config.repository
    final: Path | S3Url = repository.backups.child(name + ".tar.gz") if repository else config.backup_dir / name
    if isinstance(final, S3Url):
        _refuse_stored(final, repository.settings)
        parent = _manifest_of_stored(repository.backups, repository.settings)
    else:
        _refuse_existing(final)
        parent = _manifest_of(_newest_base_backup(config.backup_dir))
    workdir = Path(tempfile.mkdtemp(prefix=".basebackup-", dir=config.backup_dir))
    try:
        manifest = workdir / "parent_manifest"
        manifest.write_bytes(parent)
        target = backend.plain_base_backup(workdir, f"drtui {stamp(clock.now())} incremental", manifest)
        if isinstance(final, S3Url):
            with _artifact_sink(config, final) as raw, _compressing(raw, "gzip", GZIP_LEVEL) as sink:
                _tar_data_directory(target, sink)
        else:
            for root, folders, files in os.walk(target):  # not into a tablespace link
                for entry in (".", *folders, *files):
                    if not os.path.islink(os.path.join(root, entry)):
                        make_private(Path(root, entry), config.backup_group)
            target.rename(final)  # pg_basebackup has made every file durable
            fsync_dir(config.backup_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if isinstance(final, S3Url):
        size = _stored_size(final, repository.settings)
    else:
        size = sum(os.lstat(os.path.join(root, f)).st_size for root, _, files in os.walk(final) for f in files)
    result = BackupResult("base", [Artifact(final, size)])
    _heartbeat(config, result, config.backup_dir / LAST_BASEBACKUP, clock)
    result.seconds = clock.monotonic() - started
    return result


def _tar_data_directory(folder: Path, sink: IO[bytes]) -> None:
    """A plain backup as one tar stream: backup_label, PG_VERSION and backup_manifest first, as a restore
    reads the label before anything else."""
    first = ["backup_label", "PG_VERSION", "backup_manifest"]
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for entry in [*first, *sorted(p.name for p in folder.iterdir() if p.name not in first)]:
            tar.add(folder / entry, arcname=entry)


def _refuse_without_summaries(env: Environment) -> None:
    """An incremental backup needs PostgreSQL 17+ summarizing its WAL (summarize_wal = on)."""
    from drtui.core.postgres import query

    version, summarize = query(env, "select current_setting('server_version_num')::int, "
                                    "current_setting('summarize_wal', true)")[0]
    if version < 170000:
        raise BackupRefused(f"the server of {env.name!r} is PostgreSQL {version // 10000}: incremental base "
                            "backups exist from PostgreSQL 17 on", "take a full base backup (`drtui backup base`)")
    if summarize != "on":
        raise BackupRefused(f"summarize_wal is {summarize} on the server of {env.name!r}: an incremental base "
                            "backup needs the WAL summaries it writes",
                            "set summarize_wal = on (ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf();), "
                            "take a full base backup (`drtui backup base`), then the incremental ones")


def _newest_base_backup(folder: Path) -> Path:
    """The newest base backup in backup_dir by the stamp in its name: the one an incremental builds on."""
    found = sorted((stamped, entry.name) for entry in os.scandir(folder)
                   for kind, stamped in [classify_artifact(entry.name)] if kind == "basebackup" and stamped)
    if not found:
        raise BackupRefused(f"{folder}: no base backup for an incremental one to build on",
                            "take a full base backup first (`drtui backup base`)")
    return folder / found[-1][1]


def _manifest_of(backup: Path) -> bytes:
    """The backup_manifest of a base backup in backup_dir: a folder's file, or a tarball's member."""
    if backup.is_dir():
        if (backup / "backup_manifest").is_file():
            return (backup / "backup_manifest").read_bytes()
        raise _no_manifest(backup)
    return _manifest_in_tar(backup)


def _manifest_in_tar(backup: Path | S3Url, stream: IO[bytes] | None = None) -> bytes:
    """The backup_manifest member at a tarball's root (read from `stream` when given: an object's body)."""
    from drtui.core.inventory.streams import open_tar

    with open_tar(Path(backup.name), stream, drain=False) if stream else open_tar(backup) as tar:
        for member in tar:
            if member.name.removeprefix("./") == "backup_manifest" and member.isfile():
                handle = tar.extractfile(member)
                assert handle
                return handle.read()
    raise _no_manifest(backup)


def _no_manifest(backup: Path | S3Url) -> BackupRefused:
    return BackupRefused(f"{backup}: the newest base backup has no backup_manifest at its root, which "
                         "pg_basebackup --incremental needs", "take a full base backup (`drtui backup base`) first")


def _manifest_of_stored(prefix: S3Url, settings: S3Settings) -> bytes:
    """The backup_manifest of the newest base backup in the repository (by the stamp in its name)."""
    from drtui.core.inventory.remote import list_prefix, object_stream

    found = sorted((stamped, obj.url.name, obj) for obj in list_prefix(prefix, settings)
                   for kind, stamped in [classify_artifact(obj.url.name)] if kind == "basebackup" and stamped)
    if not found:
        raise BackupRefused(f"{prefix}: no base backup for an incremental one to build on",
                            "take a full base backup first (`drtui backup base`)")
    newest = found[-1][2]
    return _manifest_in_tar(newest.url, object_stream(newest, settings, "read its backup_manifest"))


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
def _compressing(raw: IO[bytes], method: str, level: int) -> Iterator[IO[bytes]]:
    """A stream writing into `raw` compressed (zstd on every core); `raw` is closed by its owner."""
    if method == "gzip":
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=level) as out:
            yield out
    elif method == "zstd":
        with zstandard.ZstdCompressor(level=level, threads=-1).stream_writer(raw, closefd=False) as out:
            yield out  # type: ignore[misc]
    elif method == "lz4":
        with lz4.frame.LZ4FrameFile(raw, "wb", compression_level=level) as out:
            yield out  # type: ignore[misc]
    else:
        yield raw


def _base(config: Config, env: Environment, backend: Backend, clock: Clock, method: str = "gzip",
          level: int = GZIP_LEVEL) -> BackupResult:
    started = clock.monotonic()
    now = clock.now()
    prepare_dir(config.backup_dir, config.backup_group)
    name = f"basebackup_{stamp(now)}{BASE_SUFFIXES[method]}"
    final: Path | S3Url = config.repository.backups.child(name) if config.repository else config.backup_dir / name
    if isinstance(final, S3Url):
        _refuse_stored(final, config.repository.settings)
    else:
        _refuse_existing(final)
    workdir = Path(tempfile.mkdtemp(prefix=".basebackup-", dir=config.backup_dir))
    try:
        with _artifact_sink(config, final) as raw, _compressing(raw, method, level) as sink:
            backend.base_backup_to(sink, workdir, f"drtui {stamp(now)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    size = _stored_size(final, config.repository.settings) if isinstance(final, S3Url) else final.stat().st_size
    result = BackupResult("base", [Artifact(final, size)])
    _heartbeat(config, result, config.backup_dir / LAST_BASEBACKUP, clock)
    result.seconds = clock.monotonic() - started
    return result


@contextlib.contextmanager
def _artifact_sink(config: Config, final: Path | S3Url) -> Iterator[IO[bytes]]:
    """Where an artifact's bytes go: a stream uploaded to the repository, or a file renamed when whole."""
    if isinstance(final, S3Url):
        assert config.repository
        with upload.upload_stream(final, config.repository.settings) as sink:
            yield sink
        return
    with atomic_path(final, group=config.backup_group) as tmp, open(tmp, "wb") as sink:
        yield sink


def wal_sync(config: Config, clock: Clock, target: str | Path | None = None, tarball: bool = False,
             compression: str = "none") -> BackupResult:
    """Pack the live WAL archive into `wal_archive_<stamp>.tar.gz` in backup_dir (and copy it to a
    `WAL_SYNC_TARGET` folder), then the WAL sync heartbeat. The live archive is the folder wal_archive, or the
    one production's backend keeps itself (the compose backend's WAL volume).

    To S3 (an s3:// `target`, else the repository's wal/ prefix) the sync is incremental: only the WAL files
    the prefix lacks are uploaded, one object each (`compression` "gzip": `.gz` objects), and the tarball is
    written (to the repository's backups/) only with `tarball`."""
    production = config.environments.get(PRODUCTION)
    folder = check_sync_target(target)
    prefix = folder if isinstance(folder, S3Url) else None
    if prefix is None and folder is None and config.repository:
        prefix = config.repository.wal
    if prefix is None:
        folders = [config.backup_dir, folder] if folder else [config.backup_dir]
        with _exclusive(config, "wal-sync", clock, *folders) as removed:
            result = _wal_sync(config, clock, folder, production)
    else:
        with _exclusive(config, "wal-sync", clock, config.backup_dir) as removed:
            result = _wal_sync_to_s3(config, clock, prefix, production, tarball, compression)
    result.removed = removed
    return result


def _wal_sync_to_s3(config: Config, clock: Clock, prefix: S3Url, production: Environment | None, tarball: bool,
                    compression: str) -> BackupResult:
    started = clock.monotonic()
    settings = config.repository.settings if config.repository else S3Settings()
    kept = backend_for(production, config.state_dir).archived_wal() if production else None
    if kept is None and not config.wal_archive.is_dir():
        raise BackupError(f"{config.wal_archive}: the WAL archive folder does not exist",
                          "check wal_archive in the config")
    files = wal_push.tar_files(kept) if kept is not None else wal_push.folder_files(config.wal_archive)
    synced = wal_push.sync(files, prefix, settings, compression)
    result = BackupResult("wal-sync", [Artifact(url, size) for url, size in synced.uploaded],
                          already_stored=synced.already_stored)
    if synced.conflicts:
        uploaded = f"; {len(synced.uploaded)} new WAL files were uploaded" if synced.uploaded else ""
        raise wal_push.WalConflict("WAL files already stored with other content, left as they are "
                                   f"(the heartbeat was not written{uploaded}):\n  " + "\n  ".join(synced.conflicts),
                                   wal_push.CONFLICT_HINT)
    if tarball:
        name = f"wal_archive_{stamp(clock.now())}.tar.gz"
        final: Path | S3Url = config.repository.backups.child(name) if config.repository else \
            config.backup_dir / name
        if isinstance(final, Path):
            prepare_dir(config.backup_dir, config.backup_group)
            _refuse_existing(final)
        else:
            _refuse_stored(final, settings)
        kept = backend_for(production, config.state_dir).archived_wal() if production else None
        with _artifact_sink(config, final) as sink, \
                gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL) as gz, \
                tarfile.open(fileobj=gz, mode="w|") as tar:
            _pack_wal(tar, kept, config.wal_archive)
        size = _stored_size(final, settings) if isinstance(final, S3Url) else final.stat().st_size
        result.artifacts.append(Artifact(final, size))
    _heartbeat(config, result, config.wal_sync_heartbeat, clock)
    result.seconds = clock.monotonic() - started
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
        _pack_wal(tar, kept, source)
    return _finish_wal_sync(config, clock, started, final, target)


def _pack_wal(tar: tarfile.TarFile, kept: Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]] | None,
              folder: Path) -> None:
    """The live WAL archive into a tarball: the backend's own (`kept`), else the host folder."""
    for member, contents in kept if kept is not None else _folder_files(folder, tar):
        tar.addfile(member, contents)


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


def check_sync_target(target: str | Path | None) -> Path | S3Url | None:
    """The WAL_SYNC_TARGET folder or S3 prefix, refused before any work when drtui cannot write there: another
    URL or a remote `host:/path` (drtui copies to a mounted folder only), or a folder that does not exist (an
    unmounted offsite disk must not silently become a local folder)."""
    if target is None or str(target) == "":
        return None
    text = str(target)
    if is_s3_url(text):
        try:
            return S3Url.parse(text).as_prefix()
        except ValueError as exc:
            raise BackupRefused(f"WAL_SYNC_TARGET={text}: {exc}",
                                "write it like s3://mybucket/wal-archive/") from None
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


def expire(config: Config, clock: Clock, keep: int | None, keep_days: float | None,
           dry_run: bool) -> retention.Expiry:
    """Remove the backups, WAL and preserved data directories the retention rules let go (drtui.core.retention);
    with `dry_run` only say what would go. Under the expire command's own lock."""
    if config.read_only and not dry_run:
        raise retention.ExpireRefused(f"{config.source}: a read-only config (it names only a [repository]) "
                                      "removes nothing", "run expire on the host with its own drtui.toml, or "
                                      "add --dry-run; nothing was removed")
    with _exclusive(config, "expire", clock):
        expiry = retention.plan(config, clock.now(), keep, keep_days)
        if not dry_run:
            retention.apply(config, expiry)
    return expiry


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
