"""Base backups pg_basebackup compresses every way it can (gzip at a level, lz4, zstd; by the client or by
the server), each read by the inventory without extraction, extracted, checked by pg_verifybackup, started and
replayed from WAL compressed another way (a wal_archive_*.tar.gz, .tar.lz4, .tar.zst, or a folder of
segments compressed one by one) until it shows a row only the WAL holds."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.extract import extract_base_backup, stage_wal
from drtui.core.inventory import read_base_backup
from drtui.core.inventory.wal import scan_wal
from drtui.core.models import BaseBackup, Layout
from drtui.core.postgres import chown_to
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui
from tests.integration.test_extract import _has_booking, _noop, _pg_basebackup, _recovered

COMPRESSIONS = {  # --compress: the suffix pg_basebackup gives base.tar, and the WAL it is replayed from
    "gzip:3": (".gz", ".gz"), "client-lz4": (".lz4", ".lz4"), "client-zstd": (".zst", ".zst"),
    "server-zstd:5": (".zst", "segments"),
}
WAL_TOOLS = {".gz": ["gzip", "-c"], ".zst": ["zstd", "-qc"], ".lz4": ["lz4", "-qc"]}


@dataclass
class Made:
    backups: dict[str, Path]
    marker_id: int
    wal: dict[str, Path]


@pytest.fixture(scope="module")
def made(shared_sandbox: Sandbox) -> Iterator[Made]:
    work = Path(tempfile.mkdtemp(prefix="drtui-compression-"))
    try:
        backups = {}
        for number, compress in enumerate(COMPRESSIONS):
            folder = work / compress / f"bb{number}"
            _pg_basebackup(shared_sandbox, "-D", str(folder), "-Ft", f"--compress={compress}", "-X", "stream")
            backups[compress] = work / f"basebackup_2026010{number}T000000Z.tar"  # the folder, tarred plain
            subprocess.run(["tar", "-cf", str(backups[compress]), "-C", str(folder.parent), folder.name], check=True)
        marker = shared_sandbox.insert("bookings")
        shared_sandbox.switch_wal()
        plain = work / "wal.tar"
        with tarfile.open(plain, "w") as tar:
            for path in sorted(shared_sandbox.wal_archive.iterdir()):
                tar.add(path, arcname=path.name)
        wal = {"segments": work / "segments"}
        for number, (suffix, tool) in enumerate(WAL_TOOLS.items()):
            wal[suffix] = work / f"wal_archive_2026010{number}T000000Z.tar{suffix}"
            with wal[suffix].open("wb") as out:
                subprocess.run([*tool, str(plain)], stdout=out, check=True)
        shutil.copytree(shared_sandbox.wal_archive, wal["segments"])
        for number, path in enumerate(sorted(wal["segments"].iterdir())):  # each segment compressed another way
            suffix = list(WAL_TOOLS)[number % 3]
            with path.with_name(path.name + suffix).open("wb") as out:
                subprocess.run([*WAL_TOOLS[suffix], str(path)], stdout=out, check=True)
            path.unlink()
        chown_to(work, shared_sandbox.os_user)
        for path in wal["segments"].rglob("*"):
            chown_to(path, shared_sandbox.os_user)
        yield Made(backups, marker.id, wal)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("compress", COMPRESSIONS)
def test_every_compression_is_read_extracted_and_replayed(compress: str, made: Made, shared_sandbox: Sandbox,
                                                           open_tmp: Path) -> None:
    path = made.backups[compress]
    suffix, wal_kind = COMPRESSIONS[compress]
    with tarfile.open(path) as tar:
        names = {Path(name).name for name in tar.getnames()}
    assert f"base.tar{suffix}" in names, names
    read = read_base_backup(path)
    assert (read.layout, read.pg_version, read.tablespaces) == (Layout.TAR_FOLDER, 15, ())
    assert read.base_member and read.base_member.endswith(f"base.tar{suffix}")
    wal = made.wal[wal_kind]
    coverage = scan_wal(wal)
    assert coverage.segment_count >= 3 and not coverage.gaps and not coverage.damaged
    staged = stage_wal(wal, open_tmp / "wal", shared_sandbox.os_user, _noop, threading.Event())
    assert staged == wal if wal.is_dir() else {p.name for p in staged.iterdir()} >= {
        p.name for p in shared_sandbox.wal_archive.iterdir() if len(p.name) == 24 and p.stat().st_size}
    dest = open_tmp / "data"
    seen: list[tuple[int, int | None]] = []
    written = extract_base_backup(read, dest, shared_sandbox.os_user, lambda d, t: seen.append((d, t)),
                                  threading.Event())
    assert written > 10_000_000 and seen[-1] == (written, read.size_bytes)
    assert (dest / "backup_label").is_file() and any((dest / "pg_wal").iterdir())
    verified = subprocess.run(["runuser", "-u", shared_sandbox.os_user, "--",
                               str(shared_sandbox.env().pg_bin / "pg_verifybackup"), "-n", str(dest)],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr  # every file as the manifest lists it, byte for byte
    with _recovered(shared_sandbox, dest, staged, open_tmp) as server:
        assert _has_booking(server, made.marker_id)


def test_a_damaged_zstd_base_backup_is_refused_and_leaves_nothing(made: Made, open_tmp: Path) -> None:
    from drtui.core.extract import ExtractError

    cut = open_tmp / "basebackup_20260109T000000Z.tar"
    whole = made.backups["client-zstd"].read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    backup = BaseBackup(**{**read_base_backup(made.backups["client-zstd"]).__dict__, "path": cut})
    with pytest.raises(ExtractError, match="truncated"):
        extract_base_backup(backup, open_tmp / "data", "postgres", _noop, threading.Event())
    assert not (open_tmp / "data").exists()


def test_backup_base_writes_each_compression_that_the_inventory_and_extraction_read(
        shared_sandbox: Sandbox, open_tmp: Path) -> None:
    config = shared_sandbox.config()
    made = backup.base(config, shared_sandbox.env(), SystemClock(), compress="zstd:5")
    path = made.artifacts[0].path
    assert path.name.startswith("basebackup_") and path.name.endswith(".tar.zst")
    assert path.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame, whatever the name says
    read = read_base_backup(path)
    assert read.layout in (Layout.PLAIN_TARBALL, Layout.TAR_STREAM) and read.pg_version == 15
    written = extract_base_backup(read, open_tmp / "data", shared_sandbox.os_user, _noop, threading.Event())
    assert written == read.size_bytes and (open_tmp / "data" / "backup_label").is_file()

    before = sorted(p.name for p in config.backup_dir.iterdir())
    for bad, says, hint in (("brotli", "no such compression", "use zstd (recommended)"),
                            ("gzip:12", "'12' is not a level of gzip", "gzip levels go from 1 to 9")):
        refused = run_drtui("backup", "base", "--compress", bad, config=shared_sandbox.config_path)
        assert refused.exit_code == 2, refused.output
        assert f"--compress {bad}: {says}" in refused.output and hint in refused.output
    assert sorted(p.name for p in config.backup_dir.iterdir()) == before, "nothing written"
