"""Recoverable windows: for each base backup, from its consistent point (its stop time) to the last commit in
the last segment reachable from it without a gap, along the timeline that leads furthest.

The latest time is a real commit time read with pg_waldump from pg_bin; when pg_waldump cannot tell, the
segment's archive time stands in and the window says so in `latest_source`.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drtui.core.inventory.cache import ReadCache, file_key
from drtui.core.inventory.labels import utc
from drtui.core.inventory.remote import fetch_remote_segments
from drtui.core.inventory.wal import Reader, archive_time, check_segments, fetch_segments
from drtui.core.models import BaseBackup, Gap, WalCoverage, Window, segment_name
from drtui.core.objectstore import S3Settings, S3Url

WALK_BACK = 2  # segments to look back when the last one holds no commit (e.g. a forced switch)
_COMMIT = re.compile(r"desc: COMMIT(?:_PREPARED)? (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")


def parse_last_commit(output: str) -> datetime | None:
    """The last COMMIT time in pg_waldump's output (run with TZ=UTC)."""
    found = _COMMIT.findall(output)
    if not found:
        return None
    text = found[-1]
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Path:
    """The timelines a recovery from one backup walks through: (timeline, first segment on it)."""

    steps: tuple[tuple[int, int], ...]

    @property
    def target(self) -> int:
        return self.steps[-1][0]

    def timeline_for(self, segno: int) -> int:
        timeline = self.steps[0][0]
        for tli, begin in self.steps:
            if begin <= segno:
                timeline = tli
        return timeline


def _best_path(backup: BaseBackup, coverage: WalCoverage) -> _Path:
    """Follow the timeline tree from the backup's timeline to the highest timeline that branched off after the
    backup started (what recovery_target_timeline = 'latest' does when the backup is on its history)."""
    size = coverage.segment_size
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in coverage.histories:
        children.setdefault(entry.parent, []).append((entry.timeline, entry.switch_lsn))
    best = (backup.timeline, ((backup.timeline, 0),))
    stack = [(backup.timeline, ((backup.timeline, 0),))]
    while stack:
        timeline, steps = stack.pop()
        if timeline > best[0]:
            best = (timeline, steps)
        for child, switch_lsn in children.get(timeline, []):
            if switch_lsn > backup.start_lsn and all(child != t for t, _ in steps):
                stack.append((child, (*steps, (child, switch_lsn // size))))
    return _Path(best[1])


def _walk(path: _Path, coverage: WalCoverage, first: int,
          present: dict[int, set[int]]) -> tuple[int | None, Gap | None]:
    """The last segment reachable from `first` without a hole, and the gap that stops it (if WAL exists
    beyond it on the path)."""
    segno = first
    while segno in present.get(path.timeline_for(segno), ()):
        segno += 1
    last = segno - 1 if segno > first else None
    beyond = []
    damaged = {}  # on the path, from where the walk stopped
    for i, (tli, begin) in enumerate(path.steps):
        end = path.steps[i + 1][1] if i + 1 < len(path.steps) else None
        segs = coverage.segments.get(tli, [])
        j = bisect_left(segs, max(begin, segno))
        if j < len(segs) and (end is None or segs[j] < end):
            beyond.append(segs[j])
        damaged |= {s: why for s, why in coverage.damaged.get(tli, {}).items()
                    if s >= max(begin, segno) and (end is None or s < end)}
    if not beyond and not damaged:
        return last, None
    upto = min(beyond) - 1 if beyond else max(damaged)
    reasons = tuple(damaged[s] for s in sorted(damaged) if s <= upto)
    return last, Gap(path.timeline_for(segno), segno, upto, coverage.segment_size, reasons)


def _waldump(pg_bin: Path, segment: Path) -> tuple[datetime | None, str]:
    try:
        done = subprocess.run([str(pg_bin / "pg_waldump"), "-r", "Transaction", str(segment)],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "TZ": "UTC", "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"pg_waldump could not run ({exc})"
    moment = parse_last_commit(done.stdout)
    if moment is None:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return None, lines[-1] if lines and not done.stdout else "no commit in the segment"
    return moment, ""


class _Latest:
    """pg_waldump results per segment, cached by the segment file's (path, size, mtime). Segments of a tarball
    are extracted together, in one pass, into a temporary folder that `close` removes."""

    def __init__(self, coverage: WalCoverage, pg_bin: Path | None, cache: ReadCache | None,
                 settings: S3Settings | None = None) -> None:
        self.coverage = coverage
        self.pg_bin = pg_bin
        self.cache = cache
        self.settings = settings or S3Settings()  # of an S3 source
        self.files: dict[str, Path] = {}
        self.tmp: tempfile.TemporaryDirectory[str] | None = None

    def _key(self, name: str) -> str | None:
        if isinstance(self.coverage.source, S3Url):  # a WAL object is never overwritten with other content
            return str(self.coverage.source.child(name))
        source = self.coverage.source / name if self.coverage.kind == "directory" else self.coverage.source
        key = file_key(source)
        return f"{key}|{name}" if key else None

    def _cached(self, name: str) -> dict | None:
        return self.cache.get("waldump", self._key(name)) if self.cache else None

    def prefetch(self, names: set[str]) -> None:
        """Make the segments that are not cached yet readable, in one pass over the source."""
        wanted = {n for n in names if n not in self.files and self._cached(n) is None}
        if not wanted or self.pg_bin is None:
            return
        if self.tmp is None:
            self.tmp = tempfile.TemporaryDirectory(prefix="drtui-waldump-")
        if self.coverage.kind == "s3":
            self.files.update(fetch_remote_segments(self.coverage, wanted, Path(self.tmp.name), self.settings))
        else:
            self.files.update(fetch_segments(self.coverage, wanted, Path(self.tmp.name)))

    def last_commit(self, timeline: int, segno: int) -> tuple[datetime | None, str]:
        name = segment_name(timeline, segno, self.coverage.segment_size)
        if self.pg_bin is None:
            return None, "no pg_bin configured to run pg_waldump"
        cached = self._cached(name)
        if cached is not None:
            return (datetime.fromisoformat(cached["commit"]) if cached["commit"] else None), cached["why"]
        self.prefetch({name})
        segment = self.files.get(name)
        if segment is None:
            return None, f"{name} could not be read from {self.coverage.source}"
        moment, why = _waldump(self.pg_bin, segment)
        if self.cache:
            self.cache.put("waldump", self._key(name), {"commit": moment.isoformat() if moment else None,
                                                        "why": why})
        return moment, why

    def close(self) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()


def _stop_segment(backup: BaseBackup, size: int) -> int:
    first = backup.start_lsn // size
    if backup.stop_lsn is None:
        return first
    return max(first, (backup.stop_lsn - 1) // size)


def compute_windows(base_backups: Sequence[BaseBackup], coverage: WalCoverage | None, pg_bin: Path | None,
                    cache: ReadCache | None = None, reader: Reader | None = None,
                    settings: S3Settings | None = None) -> list[Window]:
    """One Window per base backup, in the same order. `reader`: the OS user the server restores WAL as;
    `settings`: how to reach an S3 source."""
    if coverage is None:
        return [_window(backup, None, None, {}) for backup in base_backups]
    latest = _Latest(coverage, pg_bin, cache, settings)
    present = {tli: set(segs) for tli, segs in coverage.segments.items()}
    if not coverage.damage_checked:
        _check_walks(base_backups, coverage, present, reader)
    try:
        candidates = set()
        for backup in base_backups:
            path = _best_path(backup, coverage)
            first = backup.start_lsn // coverage.segment_size
            last, _gap = _walk(path, coverage, first, present)
            if last is not None:
                candidates |= {segment_name(path.timeline_for(s), s, coverage.segment_size)
                               for s in range(last, max(first, last - WALK_BACK) - 1, -1)}
        latest.prefetch(candidates)
        return [_window(backup, coverage, latest, present) for backup in base_backups]
    finally:
        latest.close()


def _check_walks(base_backups: Sequence[BaseBackup], coverage: WalCoverage, present: dict[int, set[int]],
                 reader: Reader | None) -> None:
    """A big folder source is not checked for damage at scan time: check the segments each backup's walk
    replays, once each. A damaged one leaves `present`, so the walk then stops before it."""
    checked: dict[int, set[int]] = {}
    for backup in base_backups:
        path = _best_path(backup, coverage)
        first = backup.start_lsn // coverage.segment_size
        last, _gap = _walk(path, coverage, first, present)
        if last is None:
            continue
        for i, (timeline, begin) in enumerate(path.steps):
            end = path.steps[i + 1][1] if i + 1 < len(path.steps) else last + 1
            done = checked.setdefault(timeline, set())
            wanted = set(range(max(first, begin), min(last + 1, end))) - done
            done |= wanted
            if wanted and check_segments(coverage, timeline, sorted(wanted), reader):
                present[timeline] -= coverage.damaged[timeline].keys()


def _window(backup: BaseBackup, coverage: WalCoverage | None, latest: _Latest | None,
            present: dict[int, set[int]]) -> Window:
    if coverage is None or latest is None:
        return Window(backup.path, backup.stop_time, None, "unknown", backup.timeline,
                      earliest_source="backup-history" if backup.stop_time else "unknown",
                      reason="no WAL archive could be read")
    size = coverage.segment_size
    path = _best_path(backup, coverage)
    first = backup.start_lsn // size
    stop_seg = _stop_segment(backup, size)
    last, gap = _walk(path, coverage, first, present)
    notes = []
    earliest, earliest_source = backup.stop_time, "backup-history"
    if earliest is None:
        seconds = archive_time(coverage, path.timeline_for(stop_seg), stop_seg)
        earliest, earliest_source = (utc(seconds), "archive-time") if seconds else (None, "unknown")
        notes.append("no .backup history file for this backup in the archive: the consistent point is "
                     + ("the archive time of its stop segment" if seconds else "unknown"))
    if last is None or last < stop_seg:
        segno = first if last is None else last + 1
        missing = segment_name(path.timeline_for(segno), segno, size)
        why = coverage.damaged.get(path.timeline_for(segno), {}).get(segno)
        return Window(backup.path, earliest, None, "unknown", path.target, cut_by_gap=gap,
                      earliest_source=earliest_source,
                      reason=f"WAL segment {why}; it is needed to make this backup consistent" if why else
                             f"WAL segment {missing}, needed to make this backup consistent, is not in "
                             f"{coverage.source}")
    timeline = path.timeline_for(last)
    moment, why = None, ""
    for segno in range(last, max(first, last - WALK_BACK) - 1, -1):
        moment, why = latest.last_commit(path.timeline_for(segno), segno)
        if moment is not None:
            break
    source = "waldump"
    if moment is None:
        seconds = archive_time(coverage, timeline, last)
        moment, source = (utc(seconds), "archive-time") if seconds is not None else (None, "unknown")
        notes.append(f"latest time is {'the archive time of the last segment' if seconds else 'unknown'}: "
                     f"pg_waldump found no commit ({why})")
    newest = max(coverage.timelines, default=path.target)
    if path.target != newest:
        notes.append(f"timeline {newest} does not descend from this backup: recover with "
                     f"recovery_target_timeline = {path.target}")
    if moment is not None and earliest is not None and moment < earliest:
        moment = earliest
        notes.append("no commit after the consistent point in the reachable WAL")
    return Window(backup.path, earliest, moment, source, path.target,
                  last_segment=segment_name(timeline, last, size), cut_by_gap=gap,
                  earliest_source=earliest_source, note="; ".join(notes) or None)
