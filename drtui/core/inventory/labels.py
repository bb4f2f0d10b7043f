"""Parsing the small text files PostgreSQL writes about a backup and its timelines: `backup_label`, the
archive's `.backup` history file, `.history` files and `backup_manifest`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from drtui.core.models import TimelineHistory, parse_lsn

# PostgreSQL prints START/STOP TIME with log_timezone's abbreviation; these are the common ones.
_ABBREVIATIONS = {
    "UTC": 0, "GMT": 0, "UCT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1, "IST": 1, "CET": 1, "CEST": 2,
    "MET": 1, "MEST": 2, "EET": 2, "EEST": 3, "MSK": 3, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
    "MST": -7, "MDT": -6, "PST": -8, "PDT": -7, "JST": 9, "KST": 9, "AEST": 10, "AEDT": 11,
}
_OFFSET = re.compile(r"^([+-])(\d{1,2})(?::?(\d{2}))?$")
_LOCATION = re.compile(r"^([0-9A-Fa-f]+/[0-9A-Fa-f]+)(?: \(file ([0-9A-F]{24})\))?")


class LabelError(ValueError):
    """A backup_label or .backup file that does not say what it must."""


def parse_pg_time(text: str) -> datetime:
    """'2026-11-24 18:00:00 UTC' (or +01, -05:30, CET) → an aware datetime."""
    stamp, _, zone = text.strip().rpartition(" ")
    if not stamp:
        raise LabelError(f"no time zone in {text!r}")
    try:
        naive = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007 - the zone is parsed below
    except ValueError as exc:
        raise LabelError(f"not a time: {text!r}") from exc
    match = _OFFSET.match(zone)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
        return naive.replace(tzinfo=timezone(sign * delta))
    if zone.upper() in _ABBREVIATIONS:
        return naive.replace(tzinfo=timezone(timedelta(hours=_ABBREVIATIONS[zone.upper()])))
    raise LabelError(f"unknown time zone abbreviation {zone!r} in {text!r}")


def _fields(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            found[key.strip()] = value.strip()
    return found


@dataclass(frozen=True)
class LabelInfo:
    start_lsn: int
    start_wal_file: str
    checkpoint_lsn: int
    start_time: datetime
    timeline: int
    label: str
    stop_lsn: int | None = None
    stop_time: datetime | None = None


def parse_backup_label(text: str) -> LabelInfo:
    """A backup_label, or a `.backup` history file (the same fields plus STOP WAL LOCATION and STOP TIME)."""
    fields = _fields(text)
    try:
        start = _LOCATION.match(fields["START WAL LOCATION"])
        checkpoint = _LOCATION.match(fields.get("CHECKPOINT LOCATION", ""))
        if not start or not start.group(2):
            raise LabelError(f"unreadable START WAL LOCATION: {fields['START WAL LOCATION']!r}")
        start_time = parse_pg_time(fields["START TIME"])
    except KeyError as exc:
        raise LabelError(f"no {exc.args[0]} line") from None
    timeline = fields.get("START TIMELINE") or str(int(start.group(2)[:8], 16))
    stop = _LOCATION.match(fields.get("STOP WAL LOCATION", ""))
    return LabelInfo(
        start_lsn=parse_lsn(start.group(1)),
        start_wal_file=start.group(2),
        checkpoint_lsn=parse_lsn(checkpoint.group(1)) if checkpoint else parse_lsn(start.group(1)),
        start_time=start_time,
        timeline=int(timeline),
        label=fields.get("LABEL", ""),
        stop_lsn=parse_lsn(stop.group(1)) if stop else None,
        stop_time=parse_pg_time(fields["STOP TIME"]) if "STOP TIME" in fields else None,
    )


def parse_history(timeline: int, text: str) -> list[TimelineHistory]:
    """A `.history` file lists the whole ancestry: each line `parent<TAB>switch LSN<TAB>reason`; the line
    after a parent names the timeline it switched to (the last line switches to `timeline` itself)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise LabelError(f"unreadable history line {line!r}")
        rows.append((int(parts[0]), parse_lsn(parts[1]), parts[2] if len(parts) > 2 else ""))
    entries = []
    for i, (parent, switch_lsn, reason) in enumerate(rows):
        child = rows[i + 1][0] if i + 1 < len(rows) else timeline
        entries.append(TimelineHistory(child, parent, switch_lsn, reason))
    return entries


@dataclass(frozen=True)
class ManifestInfo:
    size_bytes: int
    wal_end_lsn: int | None
    files: int


def parse_manifest(data: bytes) -> ManifestInfo:
    """backup_manifest: the sum of the files' sizes, and the end of the WAL range the backup needs."""
    try:
        manifest = json.loads(data)
        files = manifest["Files"]
        size = sum(int(entry.get("Size", 0)) for entry in files)
        ranges = manifest.get("WAL-Ranges") or []
        end = max((parse_lsn(r["End-LSN"]) for r in ranges), default=None)
    except (ValueError, KeyError, TypeError) as exc:
        raise LabelError(f"unreadable backup_manifest ({exc})") from None
    return ManifestInfo(size, end, len(files))


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
