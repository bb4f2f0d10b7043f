"""The fetcher (drtui/core/fetch_wal.sh), run as PostgreSQL runs a restore_command: as the cluster's OS user, in
a data directory, on real archived WAL segments. Exit 0 delivers the file, 1 is "no such file" (the end of the
WAL), and 170 (> 125: fatal to PostgreSQL's startup process) is a file that is there but cannot be replayed."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drtui.core.postgres import chown_to, run_as
from drtui.core.recovery_conf import FETCH_FATAL, FETCHER_COPY, PREFETCH_SPOOL, install_fetcher, restore_command
from drtui.sandbox import Sandbox

SEGMENT = 16 << 20


@pytest.fixture(scope="module")
def world() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        for _ in range(4):
            sandbox.insert("bookings")
            sandbox.switch_wal()
        yield sandbox


@pytest.fixture
def place(world: Sandbox, open_tmp: Path) -> tuple[Path, Path, list[str]]:
    """A data directory with the fetcher installed, and a private copy of the archive's segments."""
    data = open_tmp / "data"
    (data / "pg_wal" / "archive_status").mkdir(parents=True)
    archive = open_tmp / "archive"
    archive.mkdir()
    names = sorted(p.name for p in world.wal_archive.iterdir() if len(p.name) == 24)
    for name in names:
        shutil.copy2(world.wal_archive / name, archive / name)
    for path in (data, data / "pg_wal", data / "pg_wal" / "archive_status", archive, *archive.iterdir()):
        chown_to(path, world.os_user)
    install_fetcher(data, world.os_user)
    return data, archive, names


def fetch(world: Sandbox, data: Path, archive: Path, name: str, dest: str = "pg_wal/RECOVERYXLOG",
          ) -> subprocess.CompletedProcess:
    command = restore_command(archive, SEGMENT, 15).replace("%f", name).replace("%p", dest)
    return run_as(world.os_user, ["sh", "-c", f"cd {data} && {command}"], check=False, timeout=60)


def test_a_segment_is_delivered_whole_and_the_next_ones_prefetched(world: Sandbox, place) -> None:
    data, archive, names = place
    done = fetch(world, data, archive, names[0])
    assert done.returncode == 0, done.stderr
    assert (data / "pg_wal" / "RECOVERYXLOG").read_bytes() == (archive / names[0]).read_bytes()
    deadline = time.monotonic() + 30
    while not (data / PREFETCH_SPOOL / f"{names[1]}.ok").exists():
        assert time.monotonic() < deadline, "the next segment was not prefetched"
        time.sleep(0.05)
    assert (data / "pg_wal" / names[1]).read_bytes() == (archive / names[1]).read_bytes()
    assert (data / "pg_wal" / "archive_status" / f"{names[1]}.done").exists()
    again = fetch(world, data, archive, names[1])
    assert again.returncode == 1, "a prefetched segment: PostgreSQL reads the copy in pg_wal"
    assert (data / FETCHER_COPY).is_file()


def test_a_missing_segment_is_the_end_of_the_wal_and_is_recorded(world: Sandbox, place) -> None:
    data, archive, names = place
    last = names[-1]
    after = last[:16] + f"{int(last[16:], 16) + 1:08X}"
    done = fetch(world, data, archive, after)
    assert done.returncode == 1 and not done.stderr
    assert (data / PREFETCH_SPOOL / f"{after}.missing").exists()
    assert fetch(world, data, archive, "00000009.history").returncode == 1, "a history file PostgreSQL probes for"
    assert not (data / PREFETCH_SPOOL / "00000009.history.missing").exists()


@pytest.mark.parametrize(("damage", "words"), [
    ("unreadable", ["cannot be read by postgres"]),
    ("truncated", ["wrong size: 200 bytes", str(SEGMENT)]),
    ("magic", ["magic number 0000, not d110"]),
    ("renamed", ["first page belongs to timeline 1 at"]),
])
def test_a_segment_that_cannot_be_replayed_is_fatal_and_named(world: Sandbox, place, damage: str,
                                                               words: list[str]) -> None:
    data, archive, names = place
    name = names[-2]
    path = archive / name
    if damage == "unreadable":
        path.chmod(0)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "magic":
        with path.open("r+b") as handle:
            handle.write(b"\0\0")
    else:  # another segment's bytes under this name
        path.write_bytes((archive / names[-1]).read_bytes())
    done = fetch(world, data, archive, name)
    assert done.returncode == FETCH_FATAL, (done.returncode, done.stderr)
    assert f"WAL file {name} in {archive}" in done.stderr
    for word in words:
        assert word in done.stderr
    assert "recovery stops here" in done.stderr
    assert not (data / "pg_wal" / "RECOVERYXLOG").exists()
    # the segment before it is delivered, and its prefetch stops short of the damaged one
    assert fetch(world, data, archive, names[-3]).returncode == 0
    time.sleep(1)
    assert not (data / PREFETCH_SPOOL / f"{name}.ok").exists() and not (data / "pg_wal" / name).exists()


def test_a_full_disk_is_fatal_not_the_end_of_the_wal(world: Sandbox, place, open_tmp: Path) -> None:
    data, archive, names = place
    small = open_tmp / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=True)
    try:
        chown_to(small, world.os_user)
        done = fetch(world, data, archive, names[0], dest=f"{small}/RECOVERYXLOG")
        assert done.returncode == FETCH_FATAL, done.stderr
        assert "No space left on device" in done.stderr and f"WAL file {names[0]}" in done.stderr
    finally:
        subprocess.run(["umount", str(small)], check=True)


COMPRESSORS = {".gz": ["gzip", "-c"], ".zst": ["zstd", "-qc"], ".lz4": ["lz4", "-qc"]}


def _compress(path: Path, suffix: str, owner: str) -> Path:
    """Replace an archived segment by its compressed copy, as a compressing archive_command leaves it."""
    packed = path.with_name(path.name + suffix)
    with packed.open("wb") as out:
        subprocess.run([*COMPRESSORS[suffix], str(path)], stdout=out, check=True)
    path.unlink()
    chown_to(packed, owner)
    return packed


def test_compressed_segments_are_delivered_decompressed_and_count_as_the_segment(world: Sandbox, place) -> None:
    from drtui.core.inventory.wal import Reader, fetch_segments, scan_wal

    data, archive, names = place
    plain = {name: (archive / name).read_bytes() for name in names[:4]}
    for name, suffix in zip(names[:3], COMPRESSORS, strict=True):
        _compress(archive / name, suffix, world.os_user)
    coverage = scan_wal(archive, SEGMENT, reader=Reader.of(world.os_user))
    assert not coverage.gaps and not coverage.damaged
    assert coverage.segment_count == len(names)
    with_names = fetch_segments(coverage, set(names[:3]), data)
    assert {name: path.read_bytes() for name, path in with_names.items()} == {n: plain[n] for n in names[:3]}

    for name in names[:3]:  # each decompressed by its own tool, and the prefetch of the next ones too
        done = fetch(world, data, archive, name)
        assert done.returncode in (0, 1), done.stderr
        delivered = data / "pg_wal" / ("RECOVERYXLOG" if done.returncode == 0 else name)
        assert delivered.read_bytes() == plain[name]
    deadline = time.monotonic() + 30
    while not (data / PREFETCH_SPOOL / f"{names[3]}.ok").exists():
        assert time.monotonic() < deadline, "the segment after the compressed ones was not prefetched"
        time.sleep(0.05)
    assert (data / "pg_wal" / names[3]).read_bytes() == plain[names[3]]


def test_a_damaged_compressed_segment_is_fatal_and_seen_by_the_inventory(world: Sandbox, place) -> None:
    from drtui.core.inventory.wal import scan_wal

    data, archive, names = place
    name = names[-2]
    half = (archive / name).read_bytes()[: SEGMENT // 2]
    (archive / name).write_bytes(half)
    packed = _compress(archive / name, ".zst", world.os_user)  # whole zstd data, of half a segment
    other = _compress(archive / names[-3], ".gz", world.os_user)
    other.write_bytes(b"\x1f\x8b" + bytes(100))  # gzip magic, then garbage
    coverage = scan_wal(archive, SEGMENT)
    reasons = [reason for gap in coverage.gaps for reason in gap.damaged]
    assert any(other.name in reason and "does not decompress as gzip" in reason for reason in reasons), reasons
    assert not any(packed.name in reason for reason in reasons), "a half segment's header is still whole"

    done = fetch(world, data, archive, name)
    assert done.returncode == FETCH_FATAL, (done.returncode, done.stderr)
    assert f"WAL file {name} in {archive} ({packed.name}) has the wrong size: {SEGMENT // 2} bytes" in done.stderr
    assert not (data / "pg_wal" / "RECOVERYXLOG").exists()
    done = fetch(world, data, archive, names[-3])
    assert done.returncode == FETCH_FATAL and "could not be decompressed" in done.stderr, done.stderr
    assert not (data / "pg_wal" / "RECOVERYXLOG").exists()
