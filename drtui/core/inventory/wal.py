"""WAL coverage of one source: the live archive folder (one os.scandir, names only) or a
`wal_archive_*.tar.gz` (its member headers, streamed, nothing extracted).

Segment names are turned into (timeline, segment number) by integer arithmetic; gaps are holes between the
first and the last segment of a timeline. Archive times: a tarball gives every member's mtime for free; a
folder needs one stat() per file (1.6 s cold for 100,000 names), so `scan_wal` reads a folder's times only
when it holds at most STAT_ALL_LIMIT segments (0.3 s cold at that size); above it, `archived_at` stays empty
until `fill_archive_times` is called (e.g. from a UI worker), and the windows stat only the few segments they
need, through `archive_time`.

A segment compressed by the archive_command (`NAME.gz`, `.zst`, `.lz4`) counts as the segment, in a folder;
its size is checked on its decompressed first page header (the segment size it states).

A segment of the wrong size, or one the server's OS user cannot read, is no coverage: it moves from
`segments` to `damaged` and counts as a gap. The size and mode come from the stat the archive times need
(mode bits against the user's uid and groups, no subprocess); a tarball's member headers carry the size. A
folder above STAT_ALL_LIMIT is checked only where a recoverable window walks (`check_segments`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from drtui.core.inventory.basebackup import InventoryError
from drtui.core.inventory.cache import ReadCache, file_key
from drtui.core.inventory.labels import LabelError, parse_history
from drtui.core.inventory.names import (
    COMPRESSED_SUFFIXES,
    HEX_DIGITS,
    WAL_HEADER_BYTES,
    parse_wal_header,
    parse_wal_name,
    segments_per_id,
)
from drtui.core.inventory.streams import READ_ERRORS, decompressing, open_tar
from drtui.core.models import DEFAULT_SEGMENT_SIZE, Gap, TimelineHistory, WalCoverage, segment_name

STAT_ALL_LIMIT = 20_000
MIB = 1024 * 1024


@dataclass(frozen=True)
class Reader:
    """The OS user PostgreSQL restores WAL as: whether it may read a file, from the file's mode bits."""

    name: str
    uid: int
    gids: frozenset[int]

    @classmethod
    def of(cls, os_user: str | None) -> Reader | None:
        if not os_user:
            return None
        try:
            entry = pwd.getpwnam(os_user)
        except KeyError:
            return None
        return cls(os_user, entry.pw_uid, frozenset(os.getgrouplist(os_user, entry.pw_gid)))

    def can_read(self, info: os.stat_result) -> bool:
        if self.uid == 0:
            return True
        if info.st_uid == self.uid:
            return bool(info.st_mode & stat.S_IRUSR)
        if info.st_gid in self.gids:
            return bool(info.st_mode & stat.S_IRGRP)
        return bool(info.st_mode & stat.S_IROTH)


def _size_text(size: int) -> str:
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size} bytes"


def damage(name: str, size: int, segment_size: int, info: os.stat_result | None = None,
           reader: Reader | None = None) -> str | None:
    """Why a present segment cannot be replayed (wrong size, unreadable by the reader), or None."""
    if size != segment_size:
        return f"{name}: {size} bytes, a segment is {_size_text(segment_size)}"
    if info is not None and reader is not None and not reader.can_read(info):
        return (f"{name}: unreadable by {reader.name} (mode {stat.S_IMODE(info.st_mode):04o}, "
                f"owner uid {info.st_uid})")
    return None


def compressed_damage(path: Path, compression: str, segment_size: int, info: os.stat_result | None = None,
                      reader: Reader | None = None) -> str | None:
    """Why a compressed segment cannot be replayed (its decompressed header is no segment's of this size, it
    does not decompress, the reader cannot read it), or None. Only its first page is decompressed."""
    name = path.name
    if info is not None and reader is not None and not reader.can_read(info):
        return damage(name, segment_size, segment_size, info, reader)
    try:
        with path.open("rb") as raw, decompressing(raw, compression) as plain:
            head = plain.read(WAL_HEADER_BYTES)
    except READ_ERRORS as exc:
        return f"{name}: does not decompress as {compression} ({exc or type(exc).__name__})"
    header = parse_wal_header(head)
    if header is None:
        return f"{name}: decompressed, it does not start with a WAL segment's page header"
    if header.segment_size != segment_size:
        return f"{name}: decompressed, a segment of {_size_text(header.segment_size)}, not {_size_text(segment_size)}"
    return None


def stat_segment(folder: Path, name: str) -> tuple[Path, os.stat_result, str | None] | None:
    """The file holding a segment in a folder (NAME, else NAME.gz, .zst or .lz4), its stat and compression;
    None when there is none."""
    for suffix, compression in (("", None), *COMPRESSED_SUFFIXES.items()):
        path = folder / (name + suffix)
        try:
            return path, os.stat(path), compression
        except OSError:
            continue
    return None


def _segment_damage(found: tuple[Path, os.stat_result, str | None], segment_size: int,
                    reader: Reader | None) -> str | None:
    path, info, compression = found
    if compression:
        return compressed_damage(path, compression, segment_size, info, reader)
    return damage(path.name, info.st_size, segment_size, info, reader)


def _add_segment(found: dict[int, list[int]], name: str, per_id: int) -> bool:
    """The per-name hot path: a 24-hex segment name into found[timeline]; False if it is not one."""
    if not HEX_DIGITS.issuperset(name):
        return False
    low = int(name[16:24], 16)
    if low >= per_id:
        return False
    timeline = int(name[0:8], 16)
    segs = found.get(timeline)
    if segs is None:
        segs = found[timeline] = []
    segs.append(int(name[8:16], 16) * per_id + low)
    return True


def find_gaps(segments: dict[int, list[int]], segment_size: int = DEFAULT_SEGMENT_SIZE,
              damaged: dict[int, dict[int, str]] | None = None) -> list[Gap]:
    """Holes in each timeline (lists must be sorted): segments missing between the first and the last file,
    and damaged segments (which may also come first or last), each with its reason."""
    gaps = []
    damaged = damaged or {}
    for timeline in sorted(set(segments) | set(damaged)):
        segs = segments.get(timeline, [])
        bad = damaged.get(timeline)
        if bad:  # damaged segments before the first or after the last sound one bound a gap too
            low, high = min(bad) - 1, max(bad) + 1
            segs = [*([low] if not segs or low < segs[0] else []), *segs,
                    *([high] if not segs or high > segs[-1] else [])]
        for before, after in pairwise(segs):
            if after - before > 1:
                reasons = tuple(bad[s] for s in sorted(bad) if before < s < after) if bad else ()
                gaps.append(Gap(timeline, before + 1, after - 1, segment_size, reasons))
    return gaps


def check_segments(coverage: WalCoverage, timeline: int, segnos: Iterable[int], reader: Reader | None) -> bool:
    """Stat these folder segments; the damaged ones move from `segments` to `damaged` and the gaps are found
    again. True when one was damaged."""
    prefix, size = f"{coverage.source}{os.sep}", coverage.segment_size
    found = {}
    for segno in segnos:
        name = segment_name(timeline, segno, size)
        try:
            info = os.stat(prefix + name)
            why = damage(name, info.st_size, size, info, reader)
        except OSError:
            compressed = stat_segment(coverage.source, name)
            if compressed is None:
                continue  # gone since the scan: the next scan shows it missing
            why = _segment_damage(compressed, size, reader)
        if why:
            found[segno] = why
    if found:
        _set_damaged(coverage, timeline, found)
    return bool(found)


def _set_damaged(coverage: WalCoverage, timeline: int, found: dict[int, str]) -> None:
    coverage.damaged.setdefault(timeline, {}).update(found)
    segs = coverage.segments.get(timeline, [])
    keep = [i for i, segno in enumerate(segs) if segno not in found]
    coverage.segments[timeline] = [segs[i] for i in keep]
    times = coverage.archived_at.get(timeline)
    if times:
        coverage.archived_at[timeline] = [times[i] for i in keep]
    if not coverage.segments[timeline]:
        del coverage.segments[timeline]
        coverage.archived_at.pop(timeline, None)
    coverage.gaps = find_gaps(coverage.segments, coverage.segment_size, coverage.damaged)


def _histories(texts: dict[int, str], source: Path) -> list[TimelineHistory]:
    entries: dict[int, TimelineHistory] = {}
    for timeline in sorted(texts):
        try:
            for entry in parse_history(timeline, texts[timeline]):
                entries.setdefault(entry.timeline, entry)
        except LabelError as exc:
            raise InventoryError(f"{source}: {timeline:08X}.history: {exc}",
                                 "the timeline history file is damaged") from None
    return [entries[t] for t in sorted(entries)]


def _scan_directory(source: Path, segment_size: int, reader: Reader | None) -> WalCoverage:
    per_id = segments_per_id(segment_size)
    found: dict[int, list[int]] = {}
    coverage = WalCoverage(source=source, kind="directory", segment_size=segment_size)
    history_texts: dict[int, str] = {}
    with os.scandir(source) as entries:
        for entry in entries:
            name = entry.name
            if len(name) == 24 and _add_segment(found, name, per_id):
                continue
            parsed = parse_wal_name(name, segment_size)
            if parsed.kind == "segment":  # compressed
                _add_segment(found, name[:24], per_id)
            elif parsed.kind == "partial":
                coverage.partial_files.append(name)
            elif parsed.kind == "history":
                history_texts[parsed.timeline] = Path(entry.path).read_text(errors="replace")
            elif parsed.kind == "backup":
                coverage.backup_files.append(name)
                coverage.backup_texts[name] = Path(entry.path).read_text(errors="replace")
    for timeline, segs in found.items():
        found[timeline] = sorted(set(segs))  # a segment both plain and compressed is one segment
    coverage.segments = found
    coverage.histories = _histories(history_texts, source)
    coverage.backup_files.sort()
    coverage.partial_files.sort()
    coverage.gaps = find_gaps(found, segment_size)
    if coverage.segment_count <= STAT_ALL_LIMIT:
        _read_stats(coverage, reader, check=True)
    else:
        coverage.damage_checked = False
    return coverage


def fill_archive_times(coverage: WalCoverage) -> None:
    """Read every segment's archive time (file mtime) of a folder source into `archived_at`: one stat() per
    segment. A segment removed since the scan takes its neighbour's time."""
    if coverage.kind != "directory" or coverage.archived_at:
        return
    _read_stats(coverage, None, check=False)


def _read_stats(coverage: WalCoverage, reader: Reader | None, check: bool) -> None:
    """One stat() per folder segment: its archive time and, with `check`, whether it is damaged."""
    for timeline in list(coverage.segments):
        times: list[float | None] = []
        bad = {}
        for segno in coverage.segments[timeline]:
            name = segment_name(timeline, segno, coverage.segment_size)
            try:
                info = os.stat(coverage.source / name)
                why = damage(name, info.st_size, coverage.segment_size, info, reader) if check else None
            except OSError:
                compressed = stat_segment(coverage.source, name)
                if compressed is None:
                    times.append(None)
                    continue
                info = compressed[1]
                why = _segment_damage(compressed, coverage.segment_size, reader) if check else None
            if why:
                bad[segno] = why
            times.append(info.st_mtime)
        known = [t for t in times if t is not None]
        if known:
            previous = known[0]
            filled = []
            for value in times:
                previous = value if value is not None else previous
                filled.append(previous)
            coverage.archived_at[timeline] = filled
        if bad:
            _set_damaged(coverage, timeline, bad)


def _scan_tarball(source: Path, segment_size: int) -> WalCoverage:
    found: dict[int, list[tuple[int, float]]] = {}
    coverage = WalCoverage(source=source, kind="tarball", segment_size=segment_size)
    history_texts: dict[int, str] = {}
    damaged: dict[int, dict[int, str]] = {}
    with open_tar(source) as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.rpartition("/")[2]
            parsed = parse_wal_name(name, segment_size)
            if parsed.kind == "segment" and not parsed.compression:
                found.setdefault(parsed.timeline, []).append((parsed.segno, float(member.mtime)))
                why = damage(name, member.size, segment_size)
                if why:
                    damaged.setdefault(parsed.timeline, {})[parsed.segno] = why
            elif parsed.kind == "partial":
                coverage.partial_files.append(name)
            elif parsed.kind in ("history", "backup"):
                handle = tar.extractfile(member)
                text = handle.read().decode(errors="replace") if handle else ""
                if parsed.kind == "history":
                    history_texts[parsed.timeline] = text
                else:
                    coverage.backup_files.append(name)
                    coverage.backup_texts[name] = text
    return complete_coverage(coverage, found, history_texts, damaged)


def complete_coverage(coverage: WalCoverage, found: dict[int, list[tuple[int, float]]], history_texts: dict[int, str],
                      damaged: dict[int, dict[int, str]]) -> WalCoverage:
    """The end of every listing's scan (a tarball's members, a bucket's objects): the segments found, in order
    with their archive times, the timeline histories, the gaps, the damaged segments."""
    for timeline, pairs in found.items():
        pairs.sort()
        coverage.segments[timeline] = [segno for segno, _ in pairs]
        coverage.archived_at[timeline] = [moment for _, moment in pairs]
    coverage.histories = _histories(history_texts, coverage.source)
    coverage.backup_files.sort()
    coverage.partial_files.sort()
    coverage.gaps = find_gaps(coverage.segments, coverage.segment_size)
    for timeline, bad in damaged.items():
        _set_damaged(coverage, timeline, bad)
    return coverage


def scan_wal(source: Path, segment_size: int = DEFAULT_SEGMENT_SIZE, cache: ReadCache | None = None,
             reader: Reader | None = None) -> WalCoverage:
    """What a WAL source holds; InventoryError with a plain reason when it cannot be read. `reader` is the OS
    user the server restores WAL as: a folder's segments it cannot read are damaged."""
    source = Path(source)
    try:
        if source.is_dir():
            return _scan_directory(source, segment_size, reader)
        key = f"{file_key(source)}|{segment_size}|sizes"
        cached = cache.get("wal_tarballs", key) if cache else None
        if cached:
            return coverage_from_json(cached)
        coverage = _scan_tarball(source, segment_size)
        if cache:
            cache.put("wal_tarballs", key, coverage_to_json(coverage))
        return coverage
    except FileNotFoundError:
        raise InventoryError(f"{source}: no such WAL archive", "check wal_archive in the config") from None
    except PermissionError:
        raise InventoryError(f"{source}: cannot read the WAL archive (permission denied)",
                             "run drtui as a user that can read it") from None
    except READ_ERRORS as exc:
        raise InventoryError(f"{source}: the WAL tarball is truncated or damaged ({exc or type(exc).__name__})",
                             "use the live archive folder or another wal_archive_*.tar.gz") from None


def archive_time(coverage: WalCoverage, timeline: int, segno: int) -> float | None:
    """When a segment was archived (POSIX seconds): the member mtime, or one stat() of the file."""
    times = coverage.archived_at.get(timeline)
    segs = coverage.segments.get(timeline, [])
    if times:
        i = bisect_left(segs, segno)
        return times[i] if i < len(segs) and segs[i] == segno else None
    if coverage.kind == "s3":  # the listing gave every time there is
        return None
    found = stat_segment(coverage.source, segment_name(timeline, segno, coverage.segment_size))
    return found[1].st_mtime if found else None


def fetch_segments(coverage: WalCoverage, names: set[str], folder: Path) -> dict[str, Path]:
    """Paths to segments' bytes: in place for a folder; for a tarball, the members extracted into `folder` in
    one pass over the stream (stopping when all are found). Names it cannot find are left out."""
    found: dict[str, Path] = {}
    if coverage.kind == "directory":
        for name in names:
            held = stat_segment(coverage.source, name)
            if held and held[2] is None:
                found[name] = held[0]
            elif held:  # compressed: decompressed into `folder`
                try:
                    with held[0].open("rb") as raw, decompressing(raw, held[2]) as plain, \
                            (folder / name).open("wb") as out:
                        shutil.copyfileobj(plain, out, 1 << 20)
                    found[name] = folder / name
                except READ_ERRORS:
                    pass  # reported as unreadable
        return found
    try:
        with open_tar(coverage.source, drain=False) as tar:
            for member in tar:
                name = member.name.rpartition("/")[2]
                if member.isfile() and name in names and name not in found:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        with (folder / name).open("wb") as out:
                            shutil.copyfileobj(handle, out, 1 << 20)
                        found[name] = folder / name
                    if len(found) == len(names):
                        break
    except READ_ERRORS:
        pass  # what was extracted whole is still usable; the rest is reported as unreadable
    return found


def coverage_to_json(coverage: WalCoverage) -> dict:
    return {
        "source": str(coverage.source), "kind": coverage.kind, "segment_size": coverage.segment_size,
        "segments": {str(t): s for t, s in coverage.segments.items()},
        "archived_at": {str(t): s for t, s in coverage.archived_at.items()},
        "histories": [[h.timeline, h.parent, h.switch_lsn, h.reason] for h in coverage.histories],
        "backup_files": coverage.backup_files, "partial_files": coverage.partial_files,
        "backup_texts": coverage.backup_texts,
        "damaged": {str(t): {str(n): why for n, why in bad.items()} for t, bad in coverage.damaged.items()},
        "damage_checked": coverage.damage_checked,
    }


def coverage_from_json(data: dict) -> WalCoverage:
    coverage = WalCoverage(
        source=Path(data["source"]), kind=data["kind"], segment_size=data["segment_size"],
        segments={int(t): s for t, s in data["segments"].items()},
        archived_at={int(t): s for t, s in data["archived_at"].items()},
        histories=[TimelineHistory(*row) for row in data["histories"]],
        backup_files=data["backup_files"], partial_files=data["partial_files"],
        backup_texts=data["backup_texts"],
        damaged={int(t): {int(n): why for n, why in bad.items()} for t, bad in data["damaged"].items()},
        damage_checked=data["damage_checked"],
    )
    coverage.gaps = find_gaps(coverage.segments, coverage.segment_size, coverage.damaged)
    return coverage
