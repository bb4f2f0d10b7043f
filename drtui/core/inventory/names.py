"""Pure parsing of the names the inventory meets: the runbook's artifact names in backup_dir and the
file names of a WAL archive (segments, `.history`, `.backup`, `.partial`).

Everything here is string slicing and integer arithmetic, no regex in the per-segment path, because a WAL
archive may hold 100,000 names and the scan has to stay well under a second.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import datetime

from drtui.core.clock import parse_stamp
from drtui.core.models import DEFAULT_SEGMENT_SIZE

HEX_DIGITS = frozenset("0123456789ABCDEF")
_STAMP = r"(\d{8}T\d{6}Z)"
_COMPRESSED = r"\.(?:gz|zst|lz4)"
COMPRESSED_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".lz4": "lz4"}
_ARTIFACTS = (
    ("uploads", re.compile(rf"^uploads_{_STAMP}\.tar\.gz$")),
    ("basebackup", re.compile(rf"^basebackup_{_STAMP}(?:\.tar(?:{_COMPRESSED})?)?$")),
    ("wal_tarball", re.compile(rf"^wal_archive_{_STAMP}\.tar{_COMPRESSED}$")),
    ("dump", re.compile(rf"^.+_{_STAMP}\.sql\.gz$")),
)
HEARTBEAT_NAMES = ("LAST_SUCCESS.txt", "LAST_BASEBACKUP.txt")
# What a backup command leaves in backup_dir while it works (files.partial_path, the base backup's work folder),
# by the command that owns it: after a killed run they are orphans, which the next run of that command removes.
_WORK_IN_PROGRESS = (
    ("dump", re.compile(rf"^\..+_{_STAMP}\.sql\.gz\.partial$")),
    ("dump", re.compile(rf"^\.uploads_{_STAMP}\.tar\.gz\.partial$")),
    ("dump", re.compile(r"^\.LAST_SUCCESS\.txt\.partial$")),
    ("base", re.compile(rf"^\.basebackup_{_STAMP}\.tar(?:{_COMPRESSED})?\.partial$")),
    ("base", re.compile(r"^\.basebackup-\w+$")),
    ("base", re.compile(r"^\.LAST_BASEBACKUP\.txt\.partial$")),
    ("wal-sync", re.compile(rf"^\.wal_archive_{_STAMP}\.tar{_COMPRESSED}\.partial$")),
)


def classify_artifact(name: str) -> tuple[str, datetime | None]:
    """The kind of a backup_dir entry by its name, and the timestamp in the name; "unknown" if none fits."""
    if name in HEARTBEAT_NAMES:
        return "heartbeat", None
    for kind, pattern in _ARTIFACTS:
        match = pattern.match(name)
        if match:
            try:
                return kind, parse_stamp(match.group(1))
            except ValueError:  # 20261399T999999Z: the right shape, not a moment
                return "unknown", None
    return "unknown", None


def work_in_progress(name: str) -> str | None:
    """The backup command ("dump", "base", "wal-sync") whose unfinished work a backup_dir entry is, or None."""
    for command, pattern in _WORK_IN_PROGRESS:
        if pattern.match(name):
            return command
    return None


def is_hex(text: str) -> bool:
    return bool(text) and HEX_DIGITS.issuperset(text)


def segments_per_id(segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    return 0x100000000 // segment_size


def parse_segment(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> tuple[int, int] | None:
    """'000000010000000A000000FF' → (timeline 1, segment number); None if it is not a segment name."""
    if len(name) != 24 or not is_hex(name):
        return None
    per_id = segments_per_id(segment_size)
    low = int(name[16:24], 16)
    if low >= per_id:
        return None
    return int(name[0:8], 16), int(name[8:16], 16) * per_id + low


@dataclass(frozen=True)
class WalName:
    """What one archive file name is: kind is segment, partial, history, backup or other."""

    kind: str
    timeline: int = 0
    segno: int = 0
    offset: int = 0  # .backup: the start LSN's offset inside the segment
    compression: str | None = None  # a segment compressed by an archive_command: "gzip", "zstd" or "lz4"


def parse_wal_name(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> WalName:
    """Classify a WAL archive file name; `NAME.gz`, `NAME.zst` and `NAME.lz4` are segments too, compressed
    (the other kinds are only known plain)."""
    if len(name) == 24:
        parsed = parse_segment(name, segment_size)
        return WalName("segment", *parsed) if parsed else WalName("other")
    compression = COMPRESSED_SUFFIXES.get(name[24:])
    if compression:
        parsed = parse_segment(name[:24], segment_size)
        return WalName("segment", *parsed, compression=compression) if parsed else WalName("other")
    if name.endswith(".partial"):
        parsed = parse_segment(name[:-8], segment_size)
        return WalName("partial", *parsed) if parsed else WalName("other")
    if name.endswith(".history") and len(name) == 16 and is_hex(name[:8]):
        return WalName("history", int(name[:8], 16))
    if name.endswith(".backup") and len(name) == 40 and name[24] == "." and is_hex(name[25:33]):
        parsed = parse_segment(name[:24], segment_size)
        if parsed:
            return WalName("backup", *parsed, offset=int(name[25:33], 16))
    return WalName("other")


def backup_history_name(start_wal_file: str, start_lsn: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    """The name PostgreSQL gives the `.backup` history file of a base backup starting at start_lsn."""
    return f"{start_wal_file}.{start_lsn % segment_size:08X}.backup"


# XLOG_PAGE_MAGIC of each major version: the first two bytes of every WAL page.
WAL_PAGE_MAGIC = {0xD106: 13, 0xD10D: 14, 0xD110: 15, 0xD113: 16, 0xD116: 17, 0xD118: 18}
MAGIC_OF_VERSION = {version: magic for magic, version in WAL_PAGE_MAGIC.items()}
WAL_HEADER_BYTES = 40
_XLP_LONG_HEADER = 0x0002


@dataclass(frozen=True)
class WalHeader:
    pg_version: int | None  # None for a magic this table does not know
    segment_size: int


def parse_wal_header(data: bytes) -> WalHeader | None:
    """The long page header that opens every WAL segment: xlp_magic (offset 0), xlp_info (2) and
    xlp_seg_size (32). None when the bytes are not one (an empty or foreign file)."""
    if len(data) < WAL_HEADER_BYTES:
        return None
    magic, info = struct.unpack_from("<HH", data, 0)
    (segment_size,) = struct.unpack_from("<I", data, 32)
    power_of_two = segment_size & (segment_size - 1) == 0
    if not info & _XLP_LONG_HEADER or not power_of_two or not 1 << 20 <= segment_size <= 1 << 30:
        return None
    return WalHeader(WAL_PAGE_MAGIC.get(magic), segment_size)
