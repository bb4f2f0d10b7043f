"""What the inventory knows: base backups, dumps, WAL coverage and recoverable windows.

Plain frozen dataclasses with raw values (bytes, LSNs as ints, aware datetimes), shared by the inventory
that fills them, the planner that checks a target against them, and the faces that show them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drtui.core.objectstore import S3Url

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024


def location(text: str) -> Path | S3Url:
    """Where an artifact is, from its text (journals and plans are JSON): a path, or an s3:// object/prefix."""
    if text.lower().startswith("s3://"):
        from drtui.core.objectstore import S3Url

        return S3Url.parse(text)
    return Path(text)


class Layout(enum.StrEnum):
    """The shapes of base backup that real scripts produce."""

    TAR_STREAM = "tar-stream"  # pg_basebackup -D - -Ft -X fetch | gzip: the data directory as one tar stream
    TAR_FOLDER = "tar-folder"  # a gzipped tar of the folder pg_basebackup -Ft -z writes (base.tar.gz, ...)
    PLAIN_TARBALL = "plain-tarball"  # a gzipped tar of a plain (-Fp) data directory, at the root or in one folder
    DIRECTORY = "directory"  # such a data directory unpacked on disk


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.strip().partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def segment_name(timeline: int, segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


@dataclass(frozen=True)
class BaseBackup:
    path: Path | S3Url  # a file or folder, or an object of an S3 repository
    layout: Layout
    label: str
    start_lsn: int
    start_wal_file: str
    checkpoint_lsn: int
    start_time: datetime
    timeline: int
    pg_version: int
    size_bytes: int  # uncompressed data
    file_size: int  # on disk (the tarball, or the folder's total)
    member_prefix: str = ""  # folder inside the tarball that holds the data directory ("" at the root)
    stop_lsn: int | None = None  # from the archive's .backup history file
    stop_time: datetime | None = None
    segment_size: int = DEFAULT_SEGMENT_SIZE
    name_time: datetime | None = None  # the timestamp in the file name, if any
    # TAR_FOLDER only: the outer tarball's members `<member_prefix>/base.tar.gz` (or base.tar, the data
    # directory as pg_basebackup -Ft writes it, backup_label first, no prefix inside) and, when present,
    # `<member_prefix>/pg_wal.tar.gz` (or pg_wal.tar: the WAL for pg_wal/, names at its root).
    base_member: str | None = None
    wal_member: str | None = None


@dataclass(frozen=True)
class Artifact:
    """A dump, uploads archive, WAL tarball, heartbeat or unknown file in backup_dir (or the repository)."""

    path: Path | S3Url
    kind: str  # "dump", "uploads", "basebackup", "wal_tarball", "heartbeat", "unknown"
    size_bytes: int
    name_time: datetime | None = None


@dataclass(frozen=True)
class Problem:
    """Something the inventory could not read, said plainly (never a traceback)."""

    path: Path
    message: str


@dataclass(frozen=True)
class Gap:
    timeline: int
    first_missing: int  # segment numbers
    last_missing: int
    segment_size: int = DEFAULT_SEGMENT_SIZE
    damaged: tuple[str, ...] = ()  # why the segments of the gap that are present cannot be used, one each

    def describe(self) -> str:
        """What is wrong, in words: the missing range and/or each damaged segment."""
        missing = (self.last_missing - self.first_missing + 1) - len(self.damaged)
        names = self.from_name if self.from_name == self.to_name else f"{self.from_name} … {self.to_name}"
        parts = [f"{names} missing"] if not self.damaged else []
        if self.damaged and missing:
            parts.append(f"{missing} segment(s) of {names} missing")
        return "; ".join(parts + list(self.damaged))

    @property
    def from_name(self) -> str:
        return segment_name(self.timeline, self.first_missing, self.segment_size)

    @property
    def to_name(self) -> str:
        return segment_name(self.timeline, self.last_missing, self.segment_size)


@dataclass(frozen=True)
class TimelineHistory:
    """One line of a `.history` file: this timeline branched from `parent` at `switch_lsn`."""

    timeline: int
    parent: int
    switch_lsn: int
    reason: str = ""


@dataclass
class WalCoverage:
    """What one WAL source (the live archive folder, a WAL tarball, or an S3 repository's WAL prefix) holds."""

    source: Path | S3Url
    kind: str  # "directory", "tarball" or "s3"
    segment_size: int = DEFAULT_SEGMENT_SIZE
    # timeline -> sorted segment numbers, and (same order) their archive times as POSIX seconds
    segments: dict[int, list[int]] = field(default_factory=dict)
    archived_at: dict[int, list[float]] = field(default_factory=dict)
    histories: list[TimelineHistory] = field(default_factory=list)
    backup_files: list[str] = field(default_factory=list)
    partial_files: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    backup_texts: dict[str, str] = field(default_factory=dict)  # `.backup` file name -> its contents
    # Segments present but unusable (wrong size, unreadable by the server's OS user): timeline -> segment
    # number -> why. They are not in `segments`, and `gaps` counts them. `damage_checked` is False for a big
    # folder source, whose segments are checked only where a recoverable window walks (inventory.windows).
    damaged: dict[int, dict[int, str]] = field(default_factory=dict)
    damage_checked: bool = True
    # A directory source with more than inventory.wal.STAT_ALL_LIMIT segments leaves `archived_at` empty (no
    # stat() per segment) until drtui.core.inventory.wal.fill_archive_times(coverage) is called.

    @property
    def timelines(self) -> list[int]:
        return sorted(set(self.segments) | set(self.damaged) | {h.timeline for h in self.histories})

    @property
    def segment_count(self) -> int:
        return sum(len(v) for v in self.segments.values())


@dataclass(frozen=True)
class Window:
    """How far one base backup can take a recovery with the WAL at hand."""

    base_backup: Path | S3Url
    earliest: datetime | None  # the consistent point: the backup's stop time
    latest: datetime | None
    latest_source: str  # "waldump" (a real commit time), "archive-time" (fallback), or "unknown"
    timeline: int
    last_segment: str | None = None
    cut_by_gap: Gap | None = None
    reason: str | None = None  # why it cannot be used at all, if so
    earliest_source: str = "backup-history"  # "backup-history" (.backup STOP TIME), "archive-time", "unknown"
    note: str | None = None  # a caveat that does not make the window unusable (e.g. a fallback and why)

    @property
    def usable(self) -> bool:
        return self.reason is None

    def contains(self, moment: datetime) -> bool:
        return (self.usable and self.earliest is not None and self.latest is not None
                and self.earliest <= moment <= self.latest)
