"""S3 benchmark (issue 13, point 9): drtui against an S3 API over HTTP, beside the baselines of the same run.

Parts (`--parts`, default all):
  get      the test server's own raw GET throughput, so a reader can tell drtui's limit from the server's: one
           64 MiB object read by one GET, and by 8 ranged GETs in parallel (boto3, nothing of drtui's).
  list     listing 100,000 WAL segment objects: drtui's repository listing against a bare boto3 paginator
           over the same prefix (goal < 2 s).
  wal      WAL replay from S3 (drtui's restore_command fed from the bucket) against the pre-staged ceiling
           (every segment already in pg_wal) and against drtui's restore_command on a local folder
           (goal >= 0.85x the ceiling's rate).
  pitr     a whole `drtui restore pitr` from the bucket against the same command on the same backup on local
           disk (bench_restore.py's fixture and timing).

The S3 server is moto's standalone server on 127.0.0.1 (the tests' server, tests/s3world.py). Ratios are the
median of per-round ratios (min-max). Run as root: `.venv/bin/python bench/bench_s3.py --scale 10 --rounds 3`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import botocore.config

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import bench_restore  # noqa: E402  (the restore benchmark's fixture, timing and report)

from drtui.core.extract import STAGED_MARKER  # noqa: E402
from drtui.core.inventory.remote import Listed, list_prefix, scan_remote_wal  # noqa: E402
from drtui.core.models import WalCoverage  # noqa: E402
from drtui.core.objectstore import S3Settings, S3Url  # noqa: E402
from drtui.core.postgres import connect  # noqa: E402
from drtui.core.recovery_conf import install_fetcher, restore_command  # noqa: E402
from drtui.core.walfeed import WalFeeder  # noqa: E402
from tests.s3world import ACCESS_KEY, REGION, SECRET_KEY, S3World, running_s3_server, s3_environment  # noqa: E402

say = bench_restore.say
MiB = 1 << 20


def _client(world: S3World, connections: int = 32):
    return boto3.client("s3", endpoint_url=world.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY,
                        config=botocore.config.Config(max_pool_connections=connections))


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


# -- get: the server's own throughput ---------------------------------------------------------------


def bench_get(world: S3World, rounds: int) -> None:
    s3 = _client(world)
    bucket = world.bucket("bench-get")
    size = 64 * MiB
    s3.put_object(Bucket=bucket, Key="blob", Body=os.urandom(size))

    def one() -> float:
        started = time.monotonic()
        body = s3.get_object(Bucket=bucket, Key="blob")["Body"]
        while body.read(MiB):
            pass
        return time.monotonic() - started

    def ranged(parts: int = 8) -> float:
        step = size // parts

        def part(index: int) -> None:
            body = s3.get_object(Bucket=bucket, Key="blob",
                                 Range=f"bytes={index * step}-{(index + 1) * step - 1}")["Body"]
            while body.read(MiB):
                pass
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(parts) as pool:
            list(pool.map(part, range(parts)))
        return time.monotonic() - started

    times = {"1 GET": [one() for _ in range(rounds)], "8 ranged GETs": [ranged() for _ in range(rounds)]}
    say("\nRaw GET throughput of the S3 server (64 MiB object, boto3 only)")
    for name, values in times.items():
        rates = [size / MiB / t for t in values]
        say(f"  {name:<16} {_median(values)} s   {statistics.median(rates):.0f} MiB/s")


# -- list: 100,000 segments ---------------------------------------------------------------------------


def segment_names(count: int) -> list[str]:
    """`count` WAL segment names of timeline 1 from 000000010000000000000001 (16 MiB segments)."""
    return [f"00000001{n // 256:08X}{n % 256:08X}" for n in range(1, count + 1)]


def bench_scan_only(rounds: int, count: int) -> None:
    """drtui's own share of a listing: the inventory's WAL scan over `count` listed objects, no server."""
    prefix = S3Url("bench", "drtui/wal/")
    listing = [Listed(prefix.child(name), 16 * MiB, '"etag"', 1.7e9 + n) for n, name in
               enumerate(segment_names(count))]
    times = []
    for _ in range(rounds):
        started = time.monotonic()
        coverage = scan_remote_wal(prefix, S3Settings(), 16 * MiB, listing)
        times.append(time.monotonic() - started)
        assert sum(map(len, coverage.segments.values())) == count
    say(f"\ndrtui's WAL scan of a {count:,}-object listing already in memory (no server): {_median(times)} s")


def bench_list(world: S3World, rounds: int, count: int, readers: dict[str, Callable[[S3Url], int]]) -> None:
    s3 = _client(world, 64)
    bucket = world.bucket("bench-list")
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # the server is one process: more only load the box
        list(pool.map(lambda name: s3.put_object(Bucket=bucket, Key=f"drtui/wal/{name}", Body=b""),
                      segment_names(count)))
    say(f"\nListing {count:,} segment objects (uploaded in {time.monotonic() - started:.0f} s)")

    def bare() -> float:
        started = time.monotonic()
        found = sum(len(page.get("Contents", [])) for page in
                    s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="drtui/wal/"))
        assert found == count, found
        return time.monotonic() - started

    def timed(reader: Callable[[S3Url], int]) -> Callable[[], float]:
        def run() -> float:
            started = time.monotonic()
            found = reader(S3Url(bucket, "drtui/wal/"))
            assert found == count, found
            return time.monotonic() - started
        return run

    methods = {"boto3 paginator": bare, **{name: timed(reader) for name, reader in readers.items()}}
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, method in methods.items():
            times[name].append(method())
    for name, values in times.items():
        line = f"  {name:<16} {_median(values)} s"
        if name != "boto3 paginator":
            ratios = [a / b for a, b in zip(values, times["boto3 paginator"], strict=True)]
            line += f"   x paginator: {_median(ratios)}"
        say(line)


def drtui_listings() -> dict[str, Callable[[S3Url], int]]:
    """drtui's own readers of a WAL prefix: the bare paginated listing, and the inventory's whole WAL scan
    (coverage, gaps, timelines) from that one listing."""
    return {"drtui list_prefix": lambda prefix: len(list_prefix(prefix, S3Settings())),
            "drtui scan_remote_wal": lambda prefix: _classified(scan_remote_wal(prefix, S3Settings(), 16 * MiB))}


def _classified(coverage: WalCoverage) -> int:
    """Segments the scan saw: whole ones and (the benchmark's objects are empty) the ones it calls damaged."""
    return sum(map(len, coverage.segments.values())) + sum(map(len, coverage.damaged.values()))


# -- wal and pitr: bench_restore's fixture, its backup and WAL also in a bucket -------------------------


def upload_fixture(world: S3World, fixture: bench_restore.Fixture) -> tuple[S3Url, S3Url]:
    """The fixture's base backup and every archived WAL file into a bucket: (backup object, WAL prefix)."""
    s3 = _client(world)
    bucket = world.bucket("bench-pitr")
    s3.upload_file(str(fixture.tarball), bucket, f"drtui/backups/{fixture.tarball.name}")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda path: s3.upload_file(str(path), bucket, f"drtui/wal/{path.name}"),
                      sorted(p for p in fixture.archive.iterdir() if p.is_file())))
    return S3Url(bucket, f"drtui/backups/{fixture.tarball.name}"), S3Url(bucket, "drtui/wal/")


def later_target(world: S3World, fixture: bench_restore.Fixture, prefix: S3Url) -> bench_restore.Fixture:
    """A target after the upload, with its WAL archived and uploaded too: a bucket dates every object by when it
    was stored (LastModified), and the inventory dates segments by it, so a target before this benchmark's
    upload would be outside the window read from the bucket (a repository written live has no such lag)."""
    env = fixture.world.env()
    fixture.world.server().start()
    traffic = subprocess.Popen([str(bench_restore.PG_BIN / "pgbench"), "-T", "6", "-c", "2", "-j", "2", "-n",
                                *bench_restore._client_args(fixture.world), env.database],
                               env=bench_restore._client_env(fixture.world), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(3)
    with connect(env) as conn:
        target = conn.execute("select now()").fetchone()[0]
    traffic.wait()
    fixture.world.switch_wal()
    time.sleep(1)  # the archiver's last copy
    fixture.world.server().stop()
    s3 = _client(world)
    stored = set(world.keys(prefix.bucket, prefix.key))
    for path in sorted(p for p in fixture.archive.iterdir() if p.is_file()):
        if prefix.key + path.name not in stored:
            s3.upload_file(str(path), prefix.bucket, prefix.key + path.name)
    say(f"target {target.isoformat()} (after the upload)")
    return dataclasses.replace(fixture, target=target)


def replay_from_s3(prefix: S3Url) -> Callable[[bench_restore.Fixture, Path, Path, int], bench_restore.Timing]:
    """Start → promoted with the WAL fed from the bucket, as a restore does it (WalFeeder into a staged folder,
    drtui's restore_command on it); the clock includes the feeder's listing and every download."""
    def run(fixture: bench_restore.Fixture, data: Path, run_dir: Path, port: int) -> bench_restore.Timing:
        bench_restore._prepared(fixture, data)
        install_fetcher(data, bench_restore.OS_USER)
        segno = int(fixture.first_segment[8:16], 16) * 256 + int(fixture.first_segment[16:], 16)
        backup = dataclasses.replace(bench_restore._backup(fixture), start_lsn=segno * 16 * MiB)
        feed = fixture.work / f"feed-{port}"  # a path without the method's name (no space to quote in the conf)
        bench_restore.drop_caches(bench_restore.COLD)
        started = time.monotonic()
        feeder = WalFeeder(prefix, S3Settings(), backup, feed, bench_restore.OS_USER).start()
        try:
            while not (feed / STAGED_MARKER).exists():
                assert feeder.running, feeder.error
                time.sleep(0.005)
            bench_restore._write_recovery(data, run_dir, port, fixture.target, restore_command(feed, 16 * MiB, 15))
            bench_restore._start_and_promote(data, run_dir, port)
            done = time.monotonic()
        finally:
            feeder.stop()
            shutil.rmtree(feed, ignore_errors=True)
        return bench_restore.Timing(done - started, bench_restore.redo_facts(run_dir / "server.log"))
    return run


def bench_restores(world: S3World, args: argparse.Namespace, parts: set[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="drtui-bench-s3-"))
    work.chmod(0o755)
    fixture = None
    try:
        fixture = bench_restore.build_fixture(args.scale, args.traffic, work, with_pgbackrest=False)
        started = time.monotonic()
        backup_url, wal_prefix = upload_fixture(world, fixture)
        say(f"uploaded the backup and {len(list(fixture.archive.iterdir()))} WAL files in "
            f"{time.monotonic() - started:.1f} s")
        fixture = later_target(world, fixture, wal_prefix)
        if "wal" in parts:
            methods = {"pre-staged (ceiling)": bench_restore.replay_with(bench_restore._prestage),
                       "drtui from a folder": bench_restore.replay_with(bench_restore._drtui_fetcher),
                       "drtui from S3": replay_from_s3(wal_prefix)}
            say(f"\nWAL replay (start -> promoted, data already synced), {args.rounds} rounds")
            results = bench_restore.run_rounds(fixture, args.rounds, methods)
            bench_restore.report("Start -> promoted (s)", results, ["pre-staged (ceiling)", "drtui from a folder"])
            bench_restore.report("Redo span from the server log (s; x ceiling > 1 is slower)", results,
                                 ["pre-staged (ceiling)"], lambda t: t.phases.get("redo_s"))
        if "pitr" in parts:
            from_s3 = dataclasses.replace(fixture, tarball=str(backup_url), archive=str(wal_prefix))
            methods = {"drtui from disk": bench_restore.pitr_drtui,
                       "drtui from S3": lambda f, *rest: bench_restore.pitr_drtui(from_s3, *rest)}
            say(f"\nWhole PITR (drtui restore pitr, command start -> promoted), {args.rounds} rounds")
            results = bench_restore.run_rounds(fixture, args.rounds, methods)
            bench_restore.report("PITR to the target (s)", results, ["drtui from disk"])
            bench_restore.report("  of which extraction", results, ["drtui from disk"],
                                 lambda t: t.phases.get("extract"))
            bench_restore.report("  of which start -> promoted", results, ["drtui from disk"],
                                 lambda t: t.phases.get("recover"))
    finally:
        if fixture:
            fixture.world.__exit__(None, None, None)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale for wal and pitr")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--traffic", type=int, default=20, help="seconds of pgbench traffic after the backup")
    parser.add_argument("--segments", type=int, default=100_000, help="objects for the listing part")
    parser.add_argument("--parts", default="get,list,wal,pitr")
    parser.add_argument("--warm", action="store_true", help="do not drop the page cache before each run")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        say("run as root: the clusters run as the postgres user, and cold runs drop the page cache")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the servers and clusters are stopped on the way out
    parts = set(args.parts.split(","))
    bench_restore.COLD = not args.warm
    with running_s3_server() as server:
        world = S3World(server)
        with s3_environment(world):  # the buckets go with the server (moto keeps them in memory)
            if "get" in parts:
                bench_get(world, args.rounds)
            if "list" in parts:
                bench_scan_only(args.rounds, 100_000)
                bench_list(world, args.rounds, args.segments, drtui_listings())
            if parts & {"wal", "pitr"}:
                bench_restores(world, args, parts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
