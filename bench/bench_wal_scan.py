"""Benchmark: WAL coverage scan of a 100,000-segment archive folder and a 10,000-member WAL tarball, and the
whole inventory scan (`drtui.core.inventory.scan`) over that folder, first and cached.

Synthetic names (empty files / empty members, timeline 1 with one gap, a timeline 2 branch, .history, .backup
and .partial files), scanned warm with drtui.core.inventory.wal.scan_wal. The baseline in the same run is the
floor any scan pays: `os.listdir` of the folder plus `sorted()`, and for the tarball a bare `tarfile` 'r|gz'
member iteration. Reported: median seconds, seconds per 10,000 segments, and the ratio to the baseline. The
whole scan adds a base backup folder at segment 2 (its window walks 50,000 segments to the gap; pg_waldump
finds no commit in the empty files, so it falls back to the archive time) and is timed once without its
read cache and then, median of the runs, with it.

    .venv/bin/python bench/bench_wal_scan.py [--segments 100000] [--members 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from drtui.core.config import parse_config
from drtui.core.inventory import scan
from drtui.core.inventory.wal import fill_archive_times, scan_wal
from drtui.core.models import DEFAULT_SEGMENT_SIZE, segment_name


def _names(count: int) -> list[str]:
    names = [segment_name(1, segno) for segno in range(1, count + 1) if segno != count // 2]  # one gap
    names += [segment_name(2, segno) for segno in range(count - 10, count + 1)]
    names += ["00000002.history", f"{segment_name(1, 2)}.00000028.backup", f"{segment_name(1, count - 10)}.partial"]
    return names


def _contents(name: str, count: int) -> bytes:
    if name.endswith(".history"):
        return f"1\t{(count - 10) >> 8:X}/{((count - 10) & 0xFF) << 24:X}\tno recovery target specified\n".encode()
    if name.endswith(".backup"):
        return (b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
                b"STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n"
                b"CHECKPOINT LOCATION: 0/2000060\nSTART TIME: 2026-01-01 00:00:00 UTC\nLABEL: bench\n"
                b"START TIMELINE: 1\nSTOP TIME: 2026-01-01 00:00:01 UTC\nSTOP TIMELINE: 1\n")
    return b""


def _time(func: Callable[[], object], runs: int) -> float:
    func()  # warm
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="drtui-bench-wal-"))
    try:
        folder = root / "archive"
        folder.mkdir()
        for name in _names(args.segments):
            (folder / name).write_bytes(_contents(name, args.segments))
            if len(name) == 24:
                os.truncate(folder / name, DEFAULT_SEGMENT_SIZE)  # sparse, of a segment's size
        tarball = root / "wal_archive_20260101T000000Z.tar.gz"
        with tarfile.open(tarball, "w:gz") as tar:
            for name in _names(args.members):
                data = _contents(name, args.members)
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), 1_767_225_600
                tar.addfile(info, io.BytesIO(data))

        coverage = scan_wal(folder)
        assert coverage.segment_count == args.segments - 1 + 11 and len(coverage.gaps) == 1
        assert coverage.timelines == [1, 2]
        tar_coverage = scan_wal(tarball)  # its members are empty: all of them count as damaged
        assert sum(map(len, tar_coverage.damaged.values())) == args.members - 1 + 11

        def listing() -> object:
            return sorted(os.listdir(folder))

        def members() -> object:
            with tarfile.open(tarball, "r|gz") as tar:
                return [m.name for m in tar]

        backup = root / "backups" / "basebackup_20260101T000000Z"
        backup.mkdir(parents=True)
        (backup / "PG_VERSION").write_text("15\n")
        (backup / "backup_label").write_text(
            "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\n"
            "START TIME: 2026-01-01 00:00:00 UTC\nLABEL: bench\nSTART TIMELINE: 1\n")
        config = parse_config({"backup_dir": "backups", "wal_archive": "archive", "state_dir": "state",
                               "environments": {"production": {}}}, root / "drtui.toml")
        started = time.perf_counter()
        first = scan(config)
        first_scan = time.perf_counter() - started
        assert first.windows[0].cut_by_gap is not None and not first.problems, first.problems

        results = {
            "folder_segments": coverage.segment_count,
            "folder_scan_s": _time(lambda: scan_wal(folder), args.runs),
            "folder_listdir_sort_s": _time(listing, args.runs),
            "folder_scan_with_all_times_s": _time(lambda: fill_archive_times(scan_wal(folder)), args.runs),
            "tarball_members": args.members - 1 + 11,
            "tarball_scan_s": _time(lambda: scan_wal(tarball), args.runs),
            "tarball_member_iteration_s": _time(members, args.runs),
            "full_scan_first_s": first_scan,
            "full_scan_cached_s": _time(lambda: scan(config), args.runs),
        }
        results["folder_s_per_10k"] = results["folder_scan_s"] / coverage.segment_count * 10_000
        results["folder_ratio_to_listdir"] = results["folder_scan_s"] / results["folder_listdir_sort_s"]
        results["tarball_s_per_10k"] = results["tarball_scan_s"] / results["tarball_members"] * 10_000
        results["tarball_ratio_to_iteration"] = results["tarball_scan_s"] / results["tarball_member_iteration_s"]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for key, value in results.items():
        print(f"{key:28} {value:.4f}" if isinstance(value, float) else f"{key:28} {value}")
    print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in results.items()}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
