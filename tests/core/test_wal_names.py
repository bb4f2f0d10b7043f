"""Pure parsing tables: artifact names, WAL names, backup labels, history files, gaps, heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from drtui.core.clock import FrozenClock
from drtui.core.inventory.labels import LabelError, parse_backup_label, parse_history, parse_pg_time
from drtui.core.inventory.names import (
    WalHeader,
    backup_history_name,
    classify_artifact,
    parse_segment,
    parse_wal_header,
    parse_wal_name,
)
from drtui.core.inventory.wal import find_gaps
from drtui.core.inventory.windows import compute_windows, parse_last_commit
from drtui.core.models import BaseBackup, Gap, Layout, TimelineHistory, WalCoverage, segment_name
from drtui.core.status import Level, heartbeat, overall, parse_heartbeat, short_duration

MB = 1024 * 1024
T = datetime(2026, 1, 25, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(("name", "kind", "moment"), [
    ("cleaning_20260125T143000Z.sql.gz", "dump", T),
    ("my_app_db_20260125T143000Z.sql.gz", "dump", T),
    ("uploads_20260125T143000Z.tar.gz", "uploads", T),
    ("basebackup_20260125T143000Z.tar.gz", "basebackup", T),
    ("basebackup_20260125T143000Z", "basebackup", T),
    ("wal_archive_20260125T143000Z.tar.gz", "wal_tarball", T),
    ("LAST_SUCCESS.txt", "heartbeat", None),
    ("LAST_BASEBACKUP.txt", "heartbeat", None),
    ("basebackup_20261399T999999Z.tar.gz", "unknown", None),
    ("basebackup_latest.tar.gz", "unknown", None),
    ("cleaning.sql.gz", "unknown", None),
    ("notes.txt", "unknown", None),
])
def test_artifact_names(name: str, kind: str, moment: datetime | None) -> None:
    assert classify_artifact(name) == (kind, moment)


@pytest.mark.parametrize(("name", "size", "expected"), [
    ("000000010000000000000001", 16 * MB, (1, 1)),
    ("00000001000000000000000A", 16 * MB, (1, 10)),
    ("0000000100000001000000FF", 16 * MB, (1, 256 + 255)),
    ("00000002000000030000000F", 16 * MB, (2, 3 * 256 + 15)),
    ("000000010000000100000000", 64 * MB, (1, 64)),
    ("000000010000000000000040", 64 * MB, None),  # 64 MB segments: only 00..3F per log id
    ("0000000100000000000000fg", 16 * MB, None),
    ("00000001000000000000001", 16 * MB, None),
])
def test_segment_names(name: str, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_segment(name, size) == expected
    if expected:
        assert segment_name(*expected, size) == name.upper()


@pytest.mark.parametrize(("name", "kind", "timeline", "segno", "offset"), [
    ("000000010000000000000002", "segment", 1, 2, 0),
    ("000000010000000000000002.partial", "partial", 1, 2, 0),
    ("00000002.history", "history", 2, 0, 0),
    ("000000010000000000000002.00000028.backup", "backup", 1, 2, 0x28),
    ("000000010000000000000002.gz", "segment", 1, 2, 0),  # a compressed segment (issue 17)
    ("archive_status", "other", 0, 0, 0),
    ("0000000Z.history", "other", 0, 0, 0),
])
def test_wal_file_kinds(name: str, kind: str, timeline: int, segno: int, offset: int) -> None:
    parsed = parse_wal_name(name)
    assert (parsed.kind, parsed.timeline, parsed.segno, parsed.offset) == (kind, timeline, segno, offset)


def test_backup_history_name() -> None:
    assert backup_history_name("000000010000000000000002", 0x2000028) == "000000010000000000000002.00000028.backup"


def test_gaps_are_holes_inside_each_timeline() -> None:
    assert find_gaps({1: [1, 2, 3, 5, 6, 9], 2: [6, 7]}) == [Gap(1, 4, 4), Gap(1, 7, 8)]
    assert Gap(1, 7, 8).from_name == "000000010000000000000007" and Gap(1, 7, 8).to_name.endswith("08")
    assert find_gaps({1: []}) == []


LABEL = """START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-11-24 18:18:46 UTC
LABEL: drtui 20261124T181846Z
START TIMELINE: 1
"""


def test_backup_label_and_backup_history_file() -> None:
    info = parse_backup_label(LABEL)
    assert (info.start_lsn, info.start_wal_file, info.checkpoint_lsn) == (0x2000028, "000000010000000000000002",
                                                                         0x2000060)
    assert info.start_time == datetime(2026, 11, 24, 18, 18, 46, tzinfo=UTC)
    assert (info.timeline, info.label, info.stop_lsn, info.stop_time) == (1, "drtui 20261124T181846Z", None, None)
    history = parse_backup_label(LABEL + "STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n"
                                 "STOP TIME: 2026-11-24 18:18:47 UTC\nSTOP TIMELINE: 1\n")
    assert history.stop_lsn == 0x2000100 and history.stop_time == datetime(2026, 11, 24, 18, 18, 47, tzinfo=UTC)
    with pytest.raises(LabelError, match="START TIME"):
        parse_backup_label(LABEL.replace("START TIME", "BEGUN"))


@pytest.mark.parametrize(("text", "offset"), [
    ("2026-11-24 18:18:46 UTC", 0), ("2026-11-24 18:18:46 GMT", 0), ("2026-11-24 18:18:46 CET", 60),
    ("2026-11-24 18:18:46 +01", 60), ("2026-11-24 18:18:46 -0530", -330), ("2026-11-24 18:18:46 -05:30", -330),
])
def test_postgres_times(text: str, offset: int) -> None:
    assert parse_pg_time(text) == datetime(2026, 11, 24, 18, 18, 46, tzinfo=timezone(timedelta(minutes=offset)))


def test_postgres_time_with_an_unknown_zone_is_refused() -> None:
    with pytest.raises(LabelError, match="XYZT"):
        parse_pg_time("2026-11-24 18:18:46 XYZT")


def test_history_file_lists_the_ancestry() -> None:
    text = "1\t0/3000000\tno recovery target specified\n\n2\t0/50000A0\tbefore 2026-11-24 18:00:00+00\n"
    assert parse_history(3, text) == [TimelineHistory(2, 1, 0x3000000, "no recovery target specified"),
                                      TimelineHistory(3, 2, 0x50000A0, "before 2026-11-24 18:00:00+00")]


def test_last_commit_in_waldump_output() -> None:
    output = (
        "rmgr: Transaction len (rec/tot): 34/34, tx: 735, lsn: 0/03000060, prev 0/03000028, "
        "desc: COMMIT 2026-11-24 18:00:00.123456 UTC\n"
        "rmgr: Transaction len (rec/tot): 34/34, tx: 736, lsn: 0/030000A0, prev 0/03000060, "
        "desc: ABORT 2026-11-24 18:00:02.000000 UTC\n"
        "rmgr: Transaction len (rec/tot): 34/34, tx: 737, lsn: 0/030000D0, prev 0/030000A0, "
        "desc: COMMIT 2026-11-24 18:00:01.5 UTC; inval msgs: catcache 1\n")
    assert parse_last_commit(output) == datetime(2026, 11, 24, 18, 0, 1, 500000, tzinfo=UTC)
    assert parse_last_commit("rmgr: XLOG len ... desc: SWITCH\n") is None


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-01-25T14:30:00Z\n", T),
    ("2026-01-25T15:30:00+01:00", T),
    ("2026-01-25T14:30:00", T),
    ("1769351400", T),
])
def test_heartbeat_contents(text: str, expected: datetime) -> None:
    assert parse_heartbeat(text) == expected


@pytest.mark.parametrize(("age", "state", "level"), [
    (timedelta(hours=1), "ok", Level.OK),
    (timedelta(hours=21), "ok", Level.WARNING),  # over 80 % of 26 h
    (timedelta(hours=27), "stale", Level.CRITICAL),
])
def test_heartbeat_states(tmp_path, age: timedelta, state: str, level: Level) -> None:
    clock = FrozenClock()
    path = tmp_path / "LAST_BASEBACKUP.txt"
    path.write_text((clock.now() - age).strftime("%Y-%m-%dT%H:%M:%SZ\n"))
    found = heartbeat("base backup", path, timedelta(hours=26), clock.now())
    assert (found.state, found.level, found.age) == (state, level, age)


def test_heartbeat_missing_garbage_and_future(tmp_path) -> None:
    now = FrozenClock().now()
    missing = heartbeat("dump", tmp_path / "nope.txt", timedelta(hours=26), now)
    assert (missing.state, missing.level) == ("missing", Level.CRITICAL)
    (tmp_path / "g.txt").write_text("yesterday-ish, probably\n")
    garbage = heartbeat("dump", tmp_path / "g.txt", timedelta(hours=26), now)
    assert (garbage.state, garbage.level) == ("unreadable", Level.UNKNOWN)
    assert "not a timestamp" in garbage.detail
    (tmp_path / "f.txt").write_text("2030-01-01T00:00:00Z\n")
    assert heartbeat("dump", tmp_path / "f.txt", timedelta(hours=26), now).level == Level.UNKNOWN


def test_overall_is_the_worst_with_a_summary_line(tmp_path) -> None:
    now = FrozenClock().now()
    (tmp_path / "ok.txt").write_text((now - timedelta(minutes=3)).isoformat())
    (tmp_path / "old.txt").write_text((now - timedelta(hours=27)).isoformat())
    ok = heartbeat("WAL sync", tmp_path / "ok.txt", timedelta(minutes=10), now)
    stale = heartbeat("base backup", tmp_path / "old.txt", timedelta(hours=26), now)
    assert overall([ok]) == (Level.OK, "DRTUI OK - WAL sync ok (3m)")
    assert overall([ok, stale]) == (Level.CRITICAL,
                                    "DRTUI CRITICAL - base backup stale (27h, limit 26h); WAL sync ok (3m)")


@pytest.mark.parametrize(("seconds", "text"), [(45, "45s"), (600, "10m"), (5400, "1h30m"), (97200, "27h"),
                                               (36000, "10h"), (86400 * 2, "2d"), (86400 * 3 + 7200, "3d2h")])
def test_short_durations(seconds: int, text: str) -> None:
    assert short_duration(timedelta(seconds=seconds)) == text


def _header(magic: int, segment_size: int, info: int = 0x0002) -> bytes:
    import struct

    return struct.pack("<HHIQI4xQII", magic, info, 1, 0, 0, 7, segment_size, 8192)


@pytest.mark.parametrize(("data", "expected"), [
    (_header(0xD110, 16 * MB), WalHeader(15, 16 * MB)),
    (_header(0xD113, 64 * MB), WalHeader(16, 64 * MB)),
    (_header(0xBEEF, 1 * MB), WalHeader(None, 1 * MB)),
    (_header(0xD110, 16 * MB, info=0), None),  # not a long (first-page) header
    (_header(0xD110, 3 * MB), None),
    (b"\0" * 10, None),
], ids=["pg15-16MB", "pg16-64MB", "unknown-magic", "short-header", "odd-size", "too-short"])
def test_wal_segment_headers(data: bytes, expected: WalHeader | None) -> None:
    assert parse_wal_header(data) == expected


def _backup(start_segno: int, timeline: int = 1, stop_segno: int | None = None) -> BaseBackup:
    size = 16 * MB
    stop = (stop_segno or start_segno) * size + 0x100
    return BaseBackup(path=Path(f"/b/{start_segno}"), layout=Layout.PLAIN_TARBALL, label="",
                      start_lsn=start_segno * size + 0x28,
                      start_wal_file=segment_name(timeline, start_segno), checkpoint_lsn=start_segno * size + 0x60,
                      start_time=T, timeline=timeline, pg_version=15, size_bytes=0, file_size=0, stop_lsn=stop,
                      stop_time=T + timedelta(seconds=1))


def _coverage(segments: dict[int, list[int]], histories: list[TimelineHistory] | None = None) -> WalCoverage:
    base = T.timestamp()
    return WalCoverage(source=Path("/nowhere.tar.gz"), kind="tarball", segments=segments,
                       archived_at={t: [base + 60 * s for s in segs] for t, segs in segments.items()},
                       histories=histories or [], gaps=find_gaps(segments))


def test_windows_follow_the_archive_until_the_first_gap() -> None:
    coverage = _coverage({1: [2, 3, 4, 6, 7]})
    early, late = compute_windows([_backup(2), _backup(6)], coverage, pg_bin=None)
    assert early.last_segment == segment_name(1, 4) and early.cut_by_gap == Gap(1, 5, 5)
    assert early.latest == T + timedelta(minutes=4) and early.latest_source == "archive-time"
    assert early.earliest == T + timedelta(seconds=1) and early.usable and "pg_waldump" in (early.note or "")
    assert late.last_segment == segment_name(1, 7) and late.cut_by_gap is None


def test_a_backup_whose_own_wal_is_missing_is_not_usable() -> None:
    window = compute_windows([_backup(2, stop_segno=3)], _coverage({1: [2, 4, 5]}), pg_bin=None)[0]
    assert not window.usable and segment_name(1, 3) in (window.reason or "")


def test_windows_follow_the_newest_timeline_that_branched_after_the_backup() -> None:
    switch = 5 * 16 * MB + 0x1000  # timeline 2 branched inside segment 5; timeline 3 branched from 1 before it
    coverage = _coverage({1: [2, 3, 4, 5], 2: [5, 6, 7], 3: [2, 3]},
                         [TimelineHistory(2, 1, switch), TimelineHistory(3, 1, 2 * 16 * MB)])
    before, after = compute_windows([_backup(3), _backup(1, stop_segno=1)], coverage, pg_bin=None)
    assert before.timeline == 2 and before.last_segment == segment_name(2, 7) and before.cut_by_gap is None
    assert "recovery_target_timeline = 2" in (before.note or "")
    assert after.timeline == 3 and not after.usable  # segment 1 is in no timeline of the archive
