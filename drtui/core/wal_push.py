"""WAL into an S3 prefix, one object per WAL file: `drtui wal push %p` (PostgreSQL's archive_command) and the
incremental `drtui backup wal-sync`.

An object is named after its WAL file, plus `.gz` when drtui compressed it. An object is never replaced: a PUT
is conditional (If-None-Match: *), and a name already stored with other content is refused and reported, as
the runbook's `test ! -f` refuses. `push` is exact (it reads the stored object back to compare); `sync` makes
one listing and uploads what the listing lacks, comparing only what is cheap to compare (the size of an
uncompressed object, the whole content of the small `.history` and `.backup` files), because a live archive
holds thousands of segments and the sync runs every few minutes.
"""

from __future__ import annotations

import gzip
import os
import tarfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from drtui.core.errors import BackupError, UsageError
from drtui.core.inventory.names import parse_wal_name
from drtui.core.objectstore import S3Settings, S3Url
from drtui.core.upload import ObjectExists, listing, put, read

COMPRESSIONS = {"none": "", "gzip": ".gz"}
UPLOADS_IN_FLIGHT = 4
SMALL_KINDS = ("history", "backup")


class WalConflict(BackupError):
    """A WAL file's name is stored with other content: it was left as it was."""


@dataclass
class SyncResult:
    uploaded: list[tuple[S3Url, int]] = field(default_factory=list)
    already_stored: int = 0
    conflicts: list[str] = field(default_factory=list)  # what was refused, in words naming the object


def object_name(name: str, compression: str) -> str:
    return name + COMPRESSIONS[compression]


def encode(data: bytes, compression: str) -> bytes:
    return gzip.compress(data, mtime=0) if compression == "gzip" else data


def decode(key: str, data: bytes) -> bytes:
    return gzip.decompress(data) if key.endswith(".gz") else data


def _stored_variants(name: str, stored: dict[str, dict]) -> list[str]:
    return [name + suffix for suffix in COMPRESSIONS.values() if name + suffix in stored]


def push(path: Path, prefix: S3Url, settings: S3Settings, compression: str = "none") -> str:
    """Archive one WAL file: "uploaded" once the object is stored and verified, "already stored" when the same
    content is there; a WalConflict when other content is, any store error raised (PostgreSQL retries)."""
    name = path.name
    if parse_wal_name(name).kind == "other":
        raise UsageError(f"{path}: not a WAL file name (a segment, .partial, .history or .backup file)",
                         "archive_command must be `drtui wal push %p`")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})",
                         "archive_command runs in the data directory as PostgreSQL's OS user: give it %p") from None
    stored = listing(prefix.child(name), settings, f"look for {name} in the WAL prefix")
    variants = [key for key in stored if key in COMPRESSIONS.values()]
    if variants:
        return _compare(prefix, name, data, [name + key for key in variants], settings)
    try:
        put(prefix.child(object_name(name, compression)), encode(data, compression), settings)
    except ObjectExists:  # another push of the same file got there first
        return _compare(prefix, name, data, [object_name(name, compression)], settings)
    return "uploaded"


def _compare(prefix: S3Url, name: str, data: bytes, keys: list[str], settings: S3Settings) -> str:
    for key in keys:
        if decode(key, read(prefix.child(key), settings, f"compare {name} with the stored copy")) != data:
            raise WalConflict(f"{prefix.child(key)}: already stored with other content than {name}; "
                              "it was left as it is", CONFLICT_HINT)
    return "already stored"


CONFLICT_HINT = ("two clusters (or a restored copy) archive into the same WAL prefix: give each its own prefix, "
                  "and keep the stored object, it is the history the backups there need")


def sync(files: Iterable[tuple[str, int, IO[bytes] | Path]], prefix: S3Url, settings: S3Settings,
         compression: str = "none") -> SyncResult:
    """Upload the WAL files the prefix lacks (one listing, several uploads in flight, a bounded number of files
    in memory). `files` are (name, size, contents or path). Conflicts are collected, never overwritten."""
    stored = listing(prefix, settings, "list the WAL prefix")
    result = SyncResult()

    def upload(name: str, data: bytes) -> None:
        url = prefix.child(object_name(name, compression))
        body = encode(data, compression)
        try:
            put(url, body, settings)
        except ObjectExists:
            result.conflicts.append(f"{url}: appeared while drtui uploaded {name}; it was left as it is")
            return
        result.uploaded.append((url, len(body)))

    with ThreadPoolExecutor(UPLOADS_IN_FLIGHT) as pool:
        pending: deque[Future] = deque()
        for name, size, contents in files:
            kind = parse_wal_name(name).kind
            if kind == "other":
                continue
            variants = _stored_variants(name, stored)
            if variants:
                result.already_stored += 1
                conflict = _cheap_conflict(prefix, name, size, contents, kind, variants, stored, settings)
                if conflict:
                    result.conflicts.append(conflict)
                continue
            data = contents.read_bytes() if isinstance(contents, Path) else contents.read()
            pending.append(pool.submit(upload, name, data))
            while len(pending) > 2 * UPLOADS_IN_FLIGHT:
                pending.popleft().result()
        for future in pending:
            future.result()
    result.uploaded.sort()
    return result


def _cheap_conflict(prefix: S3Url, name: str, size: int, contents: IO[bytes] | Path, kind: str,
                    variants: list[str], stored: dict[str, dict], settings: S3Settings) -> str | None:
    """Words naming the stored object when it cannot hold this file: an uncompressed object of another size,
    or a `.history` / `.backup` file with other content."""
    for key in variants:
        if key == name and stored[key]["Size"] != size:
            return f"{prefix.child(key)}: stored with {stored[key]['Size']} bytes, {name} has {size}"
        if kind in SMALL_KINDS:
            data = contents.read_bytes() if isinstance(contents, Path) else contents.read()
            if decode(key, read(prefix.child(key), settings, f"compare {name}")) != data:
                return f"{prefix.child(key)}: stored with other content than {name}"
    return None


def folder_files(folder: Path) -> Iterator[tuple[str, int, Path]]:
    """The files at the top of a host WAL folder (hidden ones aside), in name order."""
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        if entry.is_file() and not entry.name.startswith("."):
            yield entry.name, entry.stat().st_size, Path(entry.path)


def tar_files(members: Iterable[tuple[tarfile.TarInfo, IO[bytes] | None]]) -> Iterator[tuple[str, int, IO[bytes]]]:
    """A backend's archived WAL (tar headers and contents) as sync takes files."""
    for member, contents in members:
        if member.isreg() and contents is not None:
            yield member.name.rsplit("/", 1)[-1], member.size, contents
