"""Base backup extraction against its two limits (issue 17, point 3).

`.venv/bin/python bench/bench_extract.py [--scale 20] [--rounds 3]` (as root: the files go to `postgres`) builds
a sandbox, loads `pgbench -i -s SCALE`, and takes the same base backup three ways with `drtui backup base`:
`--compress gzip` (.tar.gz), `zstd` (.tar.zst) and `none` (.tar). Then, in one interleaved run (the order
rotates each round; the source files stay in the page cache, the destination is removed and synced between
runs, outside the clock), it times:

* drtui extraction (`extract_base_backup`, durable) of the .tar.gz, with zlib (drtui's decoder) and with
  rapidgzip's parallel inflate in its place;
* the single-core inflate limit: zlib inflating the same .tar.gz to nothing (`gzip -dc >/dev/null` is
  timed too), and rapidgzip inflating it on every core;
* drtui extraction of the .tar.zst, and zstd decoding it to nothing;
* the write limit: drtui extraction of the plain .tar (the same bytes, no decompression).

It prints each method's median and its ratio to the limits, and a Markdown table for bench/README.md.
rapidgzip is not a dependency of drtui (it measured slower here, bench/README.md): `pip install rapidgzip` to
time it; without it its two rows are left out.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import zstandard

from drtui.core import backup, extract, tar_stream
from drtui.core.clock import SystemClock
from drtui.core.inventory import read_base_backup
from drtui.core.postgres import connect
from drtui.sandbox import Sandbox

CHUNK = 1 << 20


def say(text: str) -> None:
    print(text, flush=True)


def _quiet(done: int, total: int | None) -> None:
    pass


def _rapidgzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """rapidgzip needs a file it can seek: it is handed the path _read_file reads (bench only)."""
    import rapidgzip

    path = _rapidgzip.path  # type: ignore[attr-defined]
    with rapidgzip.open(str(path), parallelization=os.cpu_count() or 2) as handle:
        while out := handle.read(tar_stream.INFLATE_SIZE):
            yield out


def extract_with(path: Path, dest: Path, os_user: str, decoder: Callable | None = None) -> None:
    saved = tar_stream.DECODERS["gzip"]
    if decoder is not None:
        tar_stream.DECODERS["gzip"] = decoder
    try:
        extract.extract_base_backup(read_base_backup(path), dest, os_user, _quiet, threading.Event())
    finally:
        tar_stream.DECODERS["gzip"] = saved


def inflate_zlib(path: Path) -> None:
    inflater = zlib.decompressobj(31)
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK):
            data = chunk
            while data:
                inflater.decompress(data, tar_stream.INFLATE_SIZE)
                data = inflater.unconsumed_tail
                if inflater.eof:
                    rest, inflater = inflater.unused_data, zlib.decompressobj(31)
                    data = rest if rest.strip(b"\0") else b""


def inflate_rapidgzip(path: Path) -> None:
    import rapidgzip

    with rapidgzip.open(str(path), parallelization=os.cpu_count() or 2) as handle:
        while handle.read(tar_stream.INFLATE_SIZE):
            pass


def unzstd(path: Path) -> None:
    with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as out:
        while out.read(tar_stream.INFLATE_SIZE):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="drtui-bench-extract-"))
    work.chmod(0o755)
    try:
        with Sandbox(root=work / "world") as world:
            env = world.env()
            started = time.monotonic()
            subprocess.run([str(env.pg_bin / "pgbench"), "-i", "-q", "-s", str(args.scale), "-h", env.host, "-p",
                            str(env.port), "-U", env.user, env.database], check=True, capture_output=True,
                           env={**os.environ, "PGPASSWORD": env.password() or ""})
            say(f"pgbench -i -s {args.scale}: {time.monotonic() - started:.1f} s")
            with connect(env) as conn:
                conn.execute("checkpoint")
            made = {}
            for method in ("gzip", "zstd", "none"):
                started = time.monotonic()
                made[method] = backup.base(world.config(), env, SystemClock(), compress=method).artifacts[0].path
                say(f"backup base --compress {method}: {time.monotonic() - started:.1f} s -> {made[method].name} "
                    f"({made[method].stat().st_size / 1e6:.1f} MB)")
                time.sleep(1.1)  # one stamp per second
            data_bytes = read_base_backup(made["none"]).size_bytes
            say(f"{data_bytes / 1e6:.0f} MB of data; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
            _rapidgzip.path = made["gzip"]  # type: ignore[attr-defined]
            dest = work / "dest"

            def extraction(path: Path, decoder: Callable | None = None) -> Callable[[], None]:
                return lambda: extract_with(path, dest, world.os_user, decoder)

            methods: dict[str, Callable[[], None]] = {
                "drtui extract .tar.gz (zlib)": extraction(made["gzip"]),
                "drtui extract .tar.gz (rapidgzip)": extraction(made["gzip"], _rapidgzip),
                "inflate .tar.gz, zlib, 1 core": lambda: inflate_zlib(made["gzip"]),
                "gzip -dc >/dev/null": lambda: subprocess.run(["gzip", "-dc", str(made["gzip"])],
                                                              stdout=subprocess.DEVNULL, check=True),
                "inflate .tar.gz, rapidgzip, all cores": lambda: inflate_rapidgzip(made["gzip"]),
                "drtui extract .tar.zst": extraction(made["zstd"]),
                "decode .tar.zst, zstd": lambda: unzstd(made["zstd"]),
                "drtui extract .tar (write limit)": extraction(made["none"]),
            }
            if importlib.util.find_spec("rapidgzip") is None:
                say("rapidgzip is not installed: its rows are left out")
                methods = {name: run for name, run in methods.items() if "rapidgzip" not in name}
            times: dict[str, list[float]] = {name: [] for name in methods}
            names = list(methods)
            for round_number in range(args.rounds):
                for name in names[round_number % len(names):] + names[:round_number % len(names)]:
                    shutil.rmtree(dest, ignore_errors=True)
                    os.sync()
                    started = time.monotonic()
                    methods[name]()
                    times[name].append(time.monotonic() - started)
                say(f"round {round_number + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f}" for n in names))
            shutil.rmtree(dest, ignore_errors=True)
            median = {name: statistics.median(values) for name, values in times.items()}
            inflate, write = median["inflate .tar.gz, zlib, 1 core"], median["drtui extract .tar (write limit)"]
            say(f"\nscale {args.scale}, {data_bytes / 1e6:.0f} MB of data, "
                f".tar.gz {made['gzip'].stat().st_size / 1e6:.1f} MB, "
                f".tar.zst {made['zstd'].stat().st_size / 1e6:.1f} MB, median of {args.rounds}, "
                f"load {os.getloadavg()[0]:.1f}\n")
            say("| what | median | MB/s of data | ÷ 1-core zlib inflate | ÷ plain-tar write |")
            say("|---|---|---|---|---|")
            for name in names:
                say(f"| {name} | {median[name]:.2f} s | {data_bytes / 1e6 / median[name]:.0f} | "
                    f"{median[name] / inflate:.2f}× | {median[name] / write:.2f}× |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
