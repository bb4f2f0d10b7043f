"""Parsing the small text files PostgreSQL writes about a backup and its timelines: `backup_label`, the
archive's `.backup` history file, `.history` files and `backup_manifest`."""

from __future__ import annotations

import functools
import json
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from drtui.core.models import TimelineHistory, parse_lsn

# PostgreSQL prints START/STOP TIME with log_timezone's abbreviation. These mean UTC wherever they are used;
# any other abbreviation is looked up in the tz database for its date, and used only when it has one offset.
_UTC_NAMES = {"UTC", "GMT", "UCT", "UT", "Z"}
_OFFSET = re.compile(r"^([+-])(\d{1,2})(?::?(\d{2}))?$")
_LOCATION = re.compile(r"^([0-9A-Fa-f]+/[0-9A-Fa-f]+)(?: \(file ([0-9A-F]{24})\))?")
# A backup's UTC name stamp is taken just before pg_basebackup starts, and START TIME is written once its
# checkpoint is done (seconds with -c fast, as drtui takes them; minutes with a spread one): a reading of an
# ambiguous abbreviation is accepted only when it alone falls in this window after the stamp.
NEAR = (timedelta(minutes=-1), timedelta(minutes=10))
FIX_ZONE = ("set log_timezone = 'UTC' on the server (PostgreSQL then writes UTC in backup_label) and take a new "
            "base backup, or name the backup basebackup_YYYYMMDDTHHMMSSZ with its UTC start so drtui can tell")


class LabelError(ValueError):
    """A backup_label or .backup file that does not say what it must."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@functools.cache
def _zones() -> tuple[ZoneInfo, ...]:
    found = []
    for key in sorted(zoneinfo.available_timezones()):
        try:
            found.append(ZoneInfo(key))
        except (OSError, ValueError):
            continue
    return tuple(found)


@functools.cache
def abbreviation_offsets(zone: str, naive: datetime) -> frozenset[timedelta]:
    """Every UTC offset the tz database gives the abbreviation `zone` at local time `naive` (any place)."""
    offsets = set()
    for info in _zones():
        for fold in (0, 1):
            local = naive.replace(tzinfo=info, fold=fold)
            if local.tzname() == zone:
                offsets.add(local.utcoffset())
    return frozenset(offset for offset in offsets if offset is not None)


def _format_offset(offset: timedelta) -> str:
    sign, minutes = ("-" if offset < timedelta(0) else "+"), abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _split(text: str) -> tuple[datetime, str]:
    """'2026-11-24 18:00:00 CET' → the naive local time and the zone as written."""
    stamp, _, zone = text.strip().rpartition(" ")
    if not stamp:
        raise LabelError(f"no time zone in {text!r}")
    try:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S"), zone  # noqa: DTZ007 - the zone is the caller's
    except ValueError as exc:
        raise LabelError(f"not a time: {text!r}") from exc


def parse_pg_time(text: str, near: datetime | None = None) -> datetime:
    """'2026-11-24 18:00:00 UTC' (or +01, -05:30, CET) → an aware datetime. An abbreviation the tz database
    gives several offsets (IST, CST, PST) is read with the one that alone puts the time in the NEAR window
    after `near` (the backup's UTC name stamp, or its start already read); else it is refused, never guessed."""
    naive, zone = _split(text)
    match = _OFFSET.match(zone)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
        return naive.replace(tzinfo=timezone(sign * delta))
    if zone.upper() in _UTC_NAMES:
        return naive.replace(tzinfo=UTC)
    offsets = abbreviation_offsets(zone, naive)
    close = [o for o in offsets if near is not None and NEAR[0] <= naive.replace(tzinfo=timezone(o)) - near <= NEAR[1]]
    if len(offsets) == 1 or len(close) == 1:
        return naive.replace(tzinfo=timezone(close[0] if len(close) == 1 else next(iter(offsets))))
    if not offsets:
        raise LabelError(f"unknown time zone abbreviation {zone!r} in {text!r}", FIX_ZONE)
    readings = ", ".join(_format_offset(o) for o in sorted(offsets))
    raise LabelError(f"the time zone abbreviation {zone!r} in {text!r} is ambiguous (it means {readings} in "
                     "different places)", FIX_ZONE)


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
    incremental_from_lsn: int | None = None  # PostgreSQL 17+: the start of the backup this one builds on
    incremental_from_tli: int | None = None


def parse_backup_label(text: str, near: datetime | None = None) -> LabelInfo:
    """A backup_label, or a `.backup` history file (the same fields plus STOP WAL LOCATION and STOP TIME).
    `near` is a UTC time just before its START TIME, known from elsewhere (see parse_pg_time); the STOP TIME,
    written in the same zone, is read with START TIME's offset."""
    fields = _fields(text)
    try:
        start = _LOCATION.match(fields["START WAL LOCATION"])
        checkpoint = _LOCATION.match(fields.get("CHECKPOINT LOCATION", ""))
        if not start or not start.group(2):
            raise LabelError(f"unreadable START WAL LOCATION: {fields['START WAL LOCATION']!r}")
        start_time = parse_pg_time(fields["START TIME"], near)
    except KeyError as exc:
        raise LabelError(f"no {exc.args[0]} line") from None
    timeline = fields.get("START TIMELINE") or str(int(start.group(2)[:8], 16))
    stop = _LOCATION.match(fields.get("STOP WAL LOCATION", ""))
    stop_time = None
    if "STOP TIME" in fields:
        naive, zone = _split(fields["STOP TIME"])
        same_zone = zone == _split(fields["START TIME"])[1]
        stop_time = naive.replace(tzinfo=start_time.tzinfo) if same_zone else parse_pg_time(fields["STOP TIME"])
    return LabelInfo(
        start_lsn=parse_lsn(start.group(1)),
        start_wal_file=start.group(2),
        checkpoint_lsn=parse_lsn(checkpoint.group(1)) if checkpoint else parse_lsn(start.group(1)),
        start_time=start_time,
        timeline=int(timeline),
        label=fields.get("LABEL", ""),
        stop_lsn=parse_lsn(stop.group(1)) if stop else None,
        stop_time=stop_time,
        incremental_from_lsn=parse_lsn(fields["INCREMENTAL FROM LSN"]) if "INCREMENTAL FROM LSN" in fields else None,
        incremental_from_tli=int(fields["INCREMENTAL FROM TLI"]) if "INCREMENTAL FROM TLI" in fields else None,
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
