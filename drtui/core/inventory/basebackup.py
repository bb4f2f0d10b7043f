"""Reading a base backup without extracting it: which layout it has, what its backup_label says, its
PostgreSQL major version and its uncompressed size.

A tarball is streamed once, to its end, as a tar stream over `gzip.GzipFile` (never random access, never
extracted): that one pass finds backup_label, PG_VERSION and backup_manifest wherever they are (pg_basebackup's
stream puts the manifest last) and proves the gzip and tar streams are whole, so a truncated backup is reported
before anyone restores from it. It costs one inflate of the backup (Python's zlib: ~0.9 GB/s on pgbench data,
~0.2 GB/s on ordinary data, perf-baseline.md), once: the result is cached by (path, size, mtime). Inside a
TAR_FOLDER tarball, base.tar.gz is read only until its backup_label and PG_VERSION (the outer stream is
still read to its end).

How the layouts are told apart:
- TAR_FOLDER: the tarball holds `base.tar.gz` (or `base.tar`) at its root or in one top folder;
- TAR_STREAM: backup_label is the very first member, at the root, names carry no `./`, and backup_manifest
  (if any) is the last member: exactly how `pg_basebackup -D - -Ft` writes its stream;
- PLAIN_TARBALL: any other tarball with backup_label at its root or in one top folder;
- DIRECTORY: a folder on disk holding backup_label (or one sub-folder that does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from drtui.core.errors import DrError
from drtui.core.inventory.cache import ReadCache, file_key
from drtui.core.inventory.labels import LabelError, LabelInfo, parse_backup_label, parse_manifest
from drtui.core.inventory.names import WAL_HEADER_BYTES, classify_artifact, parse_wal_header
from drtui.core.inventory.streams import open_tar_gz
from drtui.core.models import DEFAULT_SEGMENT_SIZE, BaseBackup, Layout, location

_FOLDER_BASES = ("base.tar.gz", "base.tar")
_FOLDER_WALS = ("pg_wal.tar.gz", "pg_wal.tar")


class InventoryError(DrError):
    """A backup or archive the inventory cannot read."""


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/") if name != "." else ""


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    return handle.read() if handle else b""


@dataclass
class _DataTar:
    """What the members of a data-directory tar told us so far."""

    labels: dict[str, bytes] = field(default_factory=dict)  # parent folder -> backup_label
    versions: dict[str, bytes] = field(default_factory=dict)
    manifest: bytes | None = None
    manifest_last: bool = False
    sizes: int = 0
    members: int = 0
    first: str | None = None
    dotted: bool = False
    wal_header: bytes | None = None  # the first bytes of a WAL segment in pg_wal/, for the segment size

    def take(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
        """Record one member; returns its normalised name."""
        self.members += 1
        if self.members == 1:  # `tar -C dir .` starts with "./"; pg_basebackup's stream starts with backup_label
            self.dotted = member.name.startswith(".")
        name = _norm(member.name)
        if not name:
            return name
        if self.first is None:
            self.first = name
        if member.isfile():
            self.sizes += member.size
        parent, _, base = name.rpartition("/")
        self.manifest_last = False
        if (self.wal_header is None and parent.rpartition("/")[2] == "pg_wal" and len(base) == 24
                and member.isfile() and member.size >= WAL_HEADER_BYTES):
            handle = tar.extractfile(member)
            self.wal_header = handle.read(WAL_HEADER_BYTES) if handle else None
        if "/" not in parent and member.isfile():
            if base == "backup_label":
                self.labels[parent] = _read_member(tar, member)
            elif base == "PG_VERSION":
                self.versions[parent] = _read_member(tar, member)
            elif base == "backup_manifest":
                self.manifest = _read_member(tar, member)
                self.manifest_last = True
        return name


def _read_inner(handle: IO[bytes], gzipped: bool, need_sizes: bool) -> _DataTar:
    """The base.tar(.gz) inside a TAR_FOLDER tarball, streamed from the outer one."""
    inner = _DataTar()
    # GzipFile, not tarfile's "r|gz": pg_basebackup's pg_wal.tar.gz holds several gzip members in a row
    source = gzip.GzipFile(fileobj=handle, mode="rb") if gzipped else handle
    with tarfile.open(fileobj=source, mode="r|") as tar:
        for member in tar:
            inner.take(tar, member)
            if "" in inner.labels and "" in inner.versions and not need_sizes:
                break
    return inner


@dataclass
class _Read:
    layout: Layout
    prefix: str
    label: bytes
    version: bytes | None
    manifest: bytes | None
    sizes: int
    extra: dict[str, Any] = field(default_factory=dict)
    wal_header: bytes | None = None


def _read_tarball(path: Path, stream: IO[bytes] | None = None) -> _Read:
    outer = _DataTar()
    folder_base: str | None = None
    folder_wal: str | None = None
    wal_bytes = 0
    inner: _DataTar | None = None
    with open_tar_gz(path, stream) as tar:
        for member in tar:
            name = outer.take(tar, member)
            parent, _, base = name.rpartition("/")
            if "/" not in parent and member.isfile():
                if base in _FOLDER_BASES and folder_base is None:
                    folder_base = name
                    handle = tar.extractfile(member)
                    assert handle is not None
                    inner = _read_inner(handle, base.endswith(".gz"), need_sizes=True)
                elif base in _FOLDER_WALS:
                    folder_wal = name
                    handle = tar.extractfile(member)
                    assert handle is not None
                    wal_bytes = _read_inner(handle, base.endswith(".gz"), need_sizes=True).sizes
    if folder_base is not None and inner is not None:
        if "" not in inner.labels:
            raise InventoryError(f"{path}: {folder_base} inside holds no backup_label",
                                 "this is not a pg_basebackup -Ft folder; check how the backup was made")
        prefix = folder_base.rpartition("/")[0]
        extracted = inner.sizes + wal_bytes + len(outer.manifest or b"")  # what extraction will write
        return _Read(Layout.TAR_FOLDER, prefix, inner.labels[""], inner.versions.get(""), outer.manifest,
                     extracted, {"base_member": folder_base, "wal_member": folder_wal}, inner.wal_header)
    if not outer.labels:
        raise InventoryError(f"{path}: no backup_label in this tarball",
                             "it is not a base backup (pg_basebackup writes backup_label into every one)")
    if len(outer.labels) > 1:
        raise InventoryError(f"{path}: more than one backup_label ({', '.join(sorted(outer.labels))})",
                             "pack one data directory per base backup tarball")
    prefix = next(iter(outer.labels))
    stream = (prefix == "" and not outer.dotted and outer.first == "backup_label"
              and (outer.manifest is None or outer.manifest_last))
    return _Read(Layout.TAR_STREAM if stream else Layout.PLAIN_TARBALL, prefix, outer.labels[prefix],
                 outer.versions.get(prefix), outer.manifest, outer.sizes, wal_header=outer.wal_header)


def _read_directory(path: Path) -> _Read:
    data = path
    if not (path / "backup_label").is_file():
        subs = [p for p in path.iterdir() if (p / "backup_label").is_file()]
        if len(subs) != 1:
            raise InventoryError(f"{path}: no backup_label in this folder (or in one sub-folder)",
                                 "it is not a base backup data directory")
        data = subs[0]
    manifest = data / "backup_manifest"
    version = data / "PG_VERSION"
    return _Read(Layout.DIRECTORY, "" if data == path else data.name, (data / "backup_label").read_bytes(),
                 version.read_bytes() if version.is_file() else None,
                 manifest.read_bytes() if manifest.is_file() else None, _folder_size(data),
                 wal_header=first_segment_header(data / "pg_wal"))


def first_segment_header(folder: Path) -> bytes | None:
    """The first bytes of the first WAL segment file found in a folder (None if there is none)."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if len(entry.name) == 24 and entry.is_file():
                    with open(entry.path, "rb") as handle:
                        return handle.read(WAL_HEADER_BYTES)
    except OSError:
        return None
    return None


def _folder_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def _build(path: Path, read: _Read, file_size: int) -> BaseBackup:
    kind, name_time = classify_artifact(path.name)
    try:
        info: LabelInfo = parse_backup_label(read.label.decode("utf-8", errors="replace"),
                                             near=name_time if kind == "basebackup" else None)
        manifest = parse_manifest(read.manifest) if read.manifest is not None else None
    except LabelError as exc:
        raise InventoryError(f"{path}: {exc}", exc.hint or "the backup_label or backup_manifest is damaged") from None
    header = parse_wal_header(read.wal_header) if read.wal_header else None
    try:
        version = int((read.version or b"").decode().strip().split(".")[0])
    except ValueError:  # no PG_VERSION seen: the WAL's page magic, else 0 (shown as unknown)
        version = header.pg_version or 0 if header else 0
    return BaseBackup(
        path=path, layout=read.layout, label=info.label, start_lsn=info.start_lsn,
        start_wal_file=info.start_wal_file, checkpoint_lsn=info.checkpoint_lsn, start_time=info.start_time,
        timeline=info.timeline, pg_version=version,
        # the manifest leaves out pg_wal; what was read (every member, or the folder) includes it
        size_bytes=max(manifest.size_bytes if manifest else 0, read.sizes), file_size=file_size,
        member_prefix=read.prefix, stop_lsn=manifest.wal_end_lsn if manifest else None,
        name_time=name_time if kind == "basebackup" else None,
        segment_size=header.segment_size if header else DEFAULT_SEGMENT_SIZE,
        base_member=read.extra.get("base_member"), wal_member=read.extra.get("wal_member"),
    )


def read_base_backup(path: Path, cache: ReadCache | None = None) -> BaseBackup:
    """Read one base backup (tarball or folder); InventoryError with a plain reason when it cannot."""
    path = Path(path)
    is_dir = path.is_dir()
    key = _dir_key(path) if is_dir else file_key(path)
    cached = cache.get("base_backups", key) if cache else None
    if cached:
        return backup_from_json(cached)
    with read_errors(path):
        if is_dir:
            backup = _build(path, _read_directory(path), _folder_size(path))
        else:
            backup = _build(path, _read_tarball(path), path.stat().st_size)
    if cache:
        cache.put("base_backups", key, backup_to_json(backup))
    return backup


def read_tarball_stream(name: Any, stream: IO[bytes], size: int) -> BaseBackup:
    """Read a base backup tarball from a stream (an object's body) that is named `name` (its URL)."""
    with read_errors(name):
        return _build(name, _read_tarball(name, stream), size)


@contextlib.contextmanager
def read_errors(path: Any) -> Iterator[None]:
    """Reading errors of a base backup as InventoryErrors with a plain reason."""
    try:
        yield
    except FileNotFoundError:
        raise InventoryError(f"{path}: no such base backup", "check the path") from None
    except PermissionError:
        raise InventoryError(f"{path}: cannot read it (permission denied)",
                             "run drtui as a user that can read backup_dir") from None
    except EOFError:
        raise InventoryError(f"{path}: truncated (the gzip stream ends early)",
                             "do not restore from it; take a new base backup") from None
    except (gzip.BadGzipFile, zlib.error, tarfile.TarError) as exc:
        reason = "truncated" if "unexpected end" in str(exc) else f"not a readable tar.gz ({exc})"
        raise InventoryError(f"{path}: {reason}", "do not restore from it; take a new base backup") from None
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read it ({exc.strerror or exc})",
                             "check the file and its permissions") from None


def _dir_key(path: Path) -> str | None:
    key = file_key(path)
    label = file_key(path / "backup_label")
    return f"{key}|{label}" if key else None


def backup_to_json(backup: BaseBackup) -> dict[str, Any]:
    data = dataclasses.asdict(backup)
    for name, value in data.items():
        if isinstance(value, datetime):
            data[name] = value.isoformat()
        elif isinstance(value, Path):
            data[name] = str(value)
    data["path"] = str(backup.path)  # a URL too (asdict would have made a dict of it)
    data["layout"] = str(backup.layout)
    return data


def backup_from_json(data: dict[str, Any]) -> BaseBackup:
    values = dict(data)
    values["path"] = location(values["path"])
    values["layout"] = Layout(values["layout"])
    for name in ("start_time", "stop_time", "name_time"):
        if values.get(name):
            values[name] = datetime.fromisoformat(values[name])
    return BaseBackup(**values)
