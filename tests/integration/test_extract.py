"""Base backup extraction and WAL staging against real pg_basebackup output of every layout: each extracted
data directory must start, replay WAL through restore_command and show the rows; damaged or hostile archives
must be refused without leaving anything behind."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pwd
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.extract import STAGED_MARKER, ExtractCancelled, ExtractError, extract_base_backup, stage_wal
from drtui.core.models import BaseBackup, Layout
from drtui.core.postgres import LocalServer, chown_to
from drtui.core.recovery_conf import PREFETCH_SPOOL, clear_prefetch, install_fetcher, restore_command
from drtui.sandbox import Sandbox
from drtui.sandbox.world import free_port


def _as_backup(path: Path, layout: Layout, prefix: str = "") -> BaseBackup:
    """What the inventory would say about a backup; extraction only reads path, layout, prefix and size."""
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return BaseBackup(path=path, layout=layout, label="test", start_lsn=0, start_wal_file="", checkpoint_lsn=0,
                      start_time=datetime.now(UTC), timeline=1, pg_version=15, size_bytes=0, file_size=size,
                      member_prefix=prefix)


def _client(world: Sandbox) -> tuple[list[str], dict[str, str]]:
    env = world.env("production")
    args = ["-h", env.host, "-p", str(env.port), "-U", env.user, "--no-password"]
    return args, {**os.environ, "PGPASSWORD": env.password() or ""}


def _pg_basebackup(world: Sandbox, *args: str, stdout: int | None = None) -> subprocess.CompletedProcess:
    conn, environ = _client(world)
    return subprocess.run([str(world.env().pg_bin / "pg_basebackup"), *conn, "-c", "fast", *args],
                          env=environ, check=True, stdout=stdout)


@dataclass
class Built:
    backups: dict[str, BaseBackup]
    marker_id: int  # a booking inserted after every backup: only WAL replay can bring it back
    wal_tarball: Path


@pytest.fixture(scope="module")
def built(shared_sandbox: Sandbox) -> Iterator[Built]:
    """One base backup of each layout, taken from the shared sandbox, then a row only the WAL holds."""
    work = Path(tempfile.mkdtemp(prefix="drtui-extract-layouts-"))
    try:
        backups: dict[str, BaseBackup] = {}
        made = backup.base(shared_sandbox.config(), shared_sandbox.env(), SystemClock())
        backups["plain-root"] = _as_backup(made.artifacts[0].path, Layout.PLAIN_TARBALL)

        _pg_basebackup(shared_sandbox, "-D", str(work / "plain" / "pgdata"), "-Fp", "-X", "stream")
        subprocess.run(["tar", "-czf", str(work / "plain_prefixed.tar.gz"), "-C", str(work / "plain"), "pgdata"],
                       check=True)
        backups["plain-prefixed"] = _as_backup(work / "plain_prefixed.tar.gz", Layout.PLAIN_TARBALL, "pgdata")

        with (work / "stream.tar.gz").open("wb") as out:
            feed = subprocess.Popen(["gzip", "-c"], stdin=subprocess.PIPE, stdout=out)
            assert feed.stdin
            _pg_basebackup(shared_sandbox, "-D", "-", "-Ft", "-X", "fetch", stdout=feed.stdin.fileno())
            feed.stdin.close()
            assert feed.wait() == 0
        backups["tar-stream"] = _as_backup(work / "stream.tar.gz", Layout.TAR_STREAM)

        _pg_basebackup(shared_sandbox, "-D", str(work / "folder" / "bb_20260101"), "-Ft", "-z", "-X", "stream")
        assert {p.name for p in (work / "folder" / "bb_20260101").iterdir()} >= {"base.tar.gz", "pg_wal.tar.gz"}
        subprocess.run(["tar", "-czf", str(work / "folder.tar.gz"), "-C", str(work / "folder"), "bb_20260101"],
                       check=True)
        backups["tar-folder"] = _as_backup(work / "folder.tar.gz", Layout.TAR_FOLDER, "bb_20260101")

        _pg_basebackup(shared_sandbox, "-D", str(work / "directory"), "-Fp", "-X", "stream")
        backups["directory"] = _as_backup(work / "directory", Layout.DIRECTORY)
        backups["directory-subfolder"] = _as_backup(work / "plain", Layout.DIRECTORY, "pgdata")

        marker = shared_sandbox.insert("bookings")
        shared_sandbox.switch_wal()
        time.sleep(1)  # wal-sync names carry the second
        wal = backup.wal_sync(shared_sandbox.config(), SystemClock())
        yield Built(backups, marker.id, wal.artifacts[0].path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _noop(done: int, total: int | None) -> None:
    pass


@contextlib.contextmanager
def _recovered(world: Sandbox, data_dir: Path, wal_folder: Path, run_dir: Path) -> Iterator[LocalServer]:
    """Start PostgreSQL on an extracted data directory with recovery.signal and `restore_command(wal_folder)`,
    never archiving anywhere, and wait until it has replayed the archive and been promoted."""
    port = free_port()
    (data_dir / "recovery.signal").touch()
    chown_to(data_dir / "recovery.signal", world.os_user)
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        install_fetcher(data_dir, world.os_user)
        command = restore_command(wal_folder, 16 << 20, 15).replace("'", "''")
        conf.write(f"restore_command = '{command}'\nrecovery_target_action = 'promote'\n"
                   f"archive_mode = off\nunix_socket_directories = '{run_dir}'\n"
                   f"listen_addresses = ''\nport = {port}\n")
    server = LocalServer(data_dir, world.server().pg_bin, world.os_user, str(run_dir), port, run_dir / "server.log")
    chown_to(run_dir, world.os_user)
    server.start()
    try:
        deadline = time.monotonic() + 60
        with psycopg.connect(**server.conninfo("cleaning"), autocommit=True) as conn:
            while conn.execute("select pg_is_in_recovery()").fetchone()[0]:
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.1)
        yield server
    finally:
        server.stop()


def _has_booking(server: LocalServer, booking_id: int) -> bool:
    with psycopg.connect(**server.conninfo("cleaning"), autocommit=True) as conn:
        return conn.execute("select count(*) from bookings where id = %s", (booking_id,)).fetchone()[0] == 1


def _owners(folder: Path) -> set[str]:
    return {pwd.getpwuid(p.lstat().st_uid).pw_name for p in [folder, *folder.rglob("*")]}


@pytest.mark.parametrize("kind", ["plain-root", "plain-prefixed", "tar-stream", "tar-folder", "directory",
                                  "directory-subfolder"])
def test_every_layout_extracts_to_a_cluster_that_replays_wal_and_shows_the_rows(
        kind: str, built: Built, shared_sandbox: Sandbox, open_tmp: Path) -> None:
    chosen = built.backups[kind]
    dest = open_tmp / "data"
    seen: list[tuple[int, int | None]] = []
    written = extract_base_backup(chosen, dest, shared_sandbox.os_user, lambda d, t: seen.append((d, t)),
                                  threading.Event())
    assert written > 10_000_000  # a real cluster, not a stub
    assert seen and seen[-1][0] == written
    assert (dest / "PG_VERSION").read_text().strip() == "15"
    assert (dest / "backup_label").is_file()
    assert dest.stat().st_mode & 0o777 == 0o700
    assert _owners(dest) == {shared_sandbox.os_user}
    if kind == "tar-folder":
        assert any((dest / "pg_wal").iterdir()), "pg_wal.tar.gz went into pg_wal"
        assert (dest / "backup_manifest").is_file()
    if chosen.layout is Layout.DIRECTORY:
        assert (chosen.path / chosen.member_prefix / "backup_label").is_file(), "the backup itself is left as it was"
    archive_before = _listing(shared_sandbox.wal_archive)
    with _recovered(shared_sandbox, dest, shared_sandbox.wal_archive, open_tmp) as server:
        assert _has_booking(server, built.marker_id)
        with psycopg.connect(**server.conninfo("cleaning"), autocommit=True) as conn:
            assert conn.execute("select count(*) from clients").fetchone()[0] >= 60
    archive_after = _listing(shared_sandbox.wal_archive)
    assert {name: archive_after[name] for name in archive_before} == archive_before, "the archive is only read"
    assert not [name for name in archive_after if name.startswith("00000002")], "nothing archived from the copy"
    clear_prefetch(dest)
    assert not (dest / PREFETCH_SPOOL).exists()


def _listing(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {entry.name: (entry.stat().st_size, entry.stat().st_mtime_ns, entry.stat().st_ino)
            for entry in os.scandir(folder)}


def test_a_wal_tarball_is_staged_and_replayed_through_links(built: Built, shared_sandbox: Sandbox,
                                                              open_tmp: Path) -> None:
    staged = stage_wal(built.wal_tarball, open_tmp / "wal", shared_sandbox.os_user, _noop, threading.Event())
    assert staged == open_tmp / "wal"
    with tarfile.open(built.wal_tarball) as tar:
        names = set(tar.getnames())
    assert {p.name for p in staged.iterdir()} == names | {STAGED_MARKER}
    assert _owners(staged) == {shared_sandbox.os_user}
    assert restore_command(staged, 16 << 20, 15).endswith(f"{staged} {16 << 20} d110 ln %f %p")

    dest = open_tmp / "data"
    extract_base_backup(built.backups["plain-root"], dest, shared_sandbox.os_user, _noop, threading.Event())
    with _recovered(shared_sandbox, dest, staged, open_tmp) as server:
        assert _has_booking(server, built.marker_id)
    assert set(names) <= {p.name for p in staged.iterdir()}, "linking leaves the staged copy in place"


def test_a_wal_folder_is_used_in_place_and_only_ever_copied_from(shared_sandbox: Sandbox, open_tmp: Path) -> None:
    before = sorted(os.listdir(shared_sandbox.wal_archive))
    assert stage_wal(shared_sandbox.wal_archive, open_tmp / "wal", "postgres", _noop,
                     threading.Event()) == shared_sandbox.wal_archive
    assert not (open_tmp / "wal").exists()
    command = restore_command(shared_sandbox.wal_archive, 16 << 20, 15)
    assert command.endswith(f"{shared_sandbox.wal_archive} {16 << 20} d110 cp %f %p")
    assert " ln " not in command, "a restored server must never share a file with the archive"
    assert sorted(os.listdir(shared_sandbox.wal_archive)) == before


def test_a_truncated_base_backup_is_refused_naming_the_file(built: Built, open_tmp: Path) -> None:
    whole = built.backups["plain-root"].path
    cut = open_tmp / whole.name
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    dest = open_tmp / "data"
    with pytest.raises(ExtractError) as caught:
        extract_base_backup(_as_backup(cut, Layout.PLAIN_TARBALL), dest, "postgres", _noop, threading.Event())
    assert caught.value.title.startswith(f"{cut}: ")
    assert "truncated" in caught.value.title
    assert "do not restore from it" in caught.value.hint
    assert not dest.exists(), "a failed extraction leaves nothing behind"


def test_a_truncated_inner_tarball_is_named(built: Built, open_tmp: Path) -> None:
    folder = open_tmp / "bb"
    folder.mkdir()
    with tarfile.open(built.backups["tar-folder"].path) as tar:
        data = tar.extractfile("bb_20260101/base.tar.gz")
        assert data
        whole = data.read()
    (folder / "base.tar.gz").write_bytes(whole[: len(whole) // 2])
    outer = open_tmp / "cut_folder.tar.gz"
    with tarfile.open(outer, "w:gz") as tar:
        tar.add(folder, arcname="bb")
    with pytest.raises(ExtractError) as caught:
        extract_base_backup(_as_backup(outer, Layout.TAR_FOLDER, "bb"), open_tmp / "data", "postgres", _noop,
                            threading.Event())
    assert caught.value.title.startswith(f"{outer}: base.tar.gz: ")
    assert "truncated" in caught.value.title


@pytest.mark.parametrize(("content", "says"), [
    (b"this is not a backup at all\n" * 100, "not a tar archive, plain or compressed"),
    (b"", "not a tar archive, plain or compressed"),
])
def test_a_file_that_is_not_a_tarball_is_refused(content: bytes, says: str, open_tmp: Path) -> None:
    bogus = open_tmp / "basebackup_20260101T000000Z.tar.gz"
    bogus.write_bytes(content)
    with pytest.raises(ExtractError, match=says) as caught:
        extract_base_backup(_as_backup(bogus, Layout.PLAIN_TARBALL), open_tmp / "data", "postgres", _noop,
                            threading.Event())
    assert str(bogus) in caught.value.title


def test_corrupt_gzip_data_is_refused(built: Built, open_tmp: Path) -> None:
    data = bytearray(built.backups["plain-root"].path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    damaged = open_tmp / "damaged.tar.gz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ExtractError, match=r"corrupt|damaged|truncated"):
        extract_base_backup(_as_backup(damaged, Layout.PLAIN_TARBALL), open_tmp / "data", "postgres", _noop,
                            threading.Event())
    assert not (open_tmp / "data").exists()


def _hostile(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("PG_VERSION")
        ok.size = 3
        tar.addfile(ok, io.BytesIO(b"15\n"))
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data))
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(("members", "says"), [
    ([(tarfile.TarInfo("../escaped"), b"x")], "points outside the destination"),
    ([(tarfile.TarInfo("base/../../escaped"), b"x")], "points outside the destination"),
    ([(tarfile.TarInfo("/tmp/escaped-absolute"), b"x")], "absolute or invalid name"),
    ([(_link("pg_tblspc/16400", "/tmp"), b""), (tarfile.TarInfo("pg_tblspc/16400/escaped"), b"x")],
     "is a link to '/tmp' .a tablespace"),
    ([(_link("evil", "../../.."), b""), (tarfile.TarInfo("evil/escaped"), b"x")], "links are refused"),
    ([(_link("hard", "/etc/passwd", tarfile.LNKTYPE), b"")], "links are refused"),
    ([(_link("dev", "", tarfile.CHRTYPE), b"")], "special file"),
])
def test_members_escaping_dest_are_refused(members: list, says: str, open_tmp: Path) -> None:
    root = open_tmp / "restore"
    root.mkdir()
    evil = _hostile(open_tmp / "evil.tar.gz", *members)
    before = set(open_tmp.rglob("*"))
    with pytest.raises(ExtractError, match=says):
        extract_base_backup(_as_backup(evil, Layout.PLAIN_TARBALL), root / "data", "postgres", _noop,
                            threading.Event())
    assert set(open_tmp.rglob("*")) == before
    assert not Path("/tmp/escaped-absolute").exists()


def test_dest_must_be_new_or_empty_and_is_left_alone_otherwise(built: Built, open_tmp: Path) -> None:
    dest = open_tmp / "data"
    dest.mkdir()
    (dest / "precious").write_text("keep me")
    with pytest.raises(ExtractError, match="not empty"):
        extract_base_backup(built.backups["plain-root"], dest, "postgres", _noop, threading.Event())
    assert (dest / "precious").read_text() == "keep me"


def test_an_empty_dest_is_used_and_emptied_again_on_failure(built: Built, open_tmp: Path) -> None:
    dest = open_tmp / "data"
    dest.mkdir()
    cancel = threading.Event()
    calls = []

    def progress(done: int, total: int | None) -> None:
        calls.append(done)
        cancel.set()

    with pytest.raises(ExtractCancelled):
        extract_base_backup(built.backups["tar-stream"], dest, "postgres", progress, cancel)
    assert dest.is_dir() and not any(dest.iterdir())


def test_a_cancelled_extraction_leaves_nothing(built: Built, open_tmp: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ExtractCancelled, match="cancelled"):
        extract_base_backup(built.backups["plain-prefixed"], open_tmp / "data", "postgres", _noop, cancel)
    assert not (open_tmp / "data").exists()


def test_a_tarball_without_wal_is_refused_as_a_wal_source(open_tmp: Path) -> None:
    empty = _hostile(open_tmp / "wal_archive_20260101T000000Z.tar.gz")
    with pytest.raises(ExtractError, match="no WAL files inside") as caught:
        stage_wal(empty, open_tmp / "wal", "postgres", _noop, threading.Event())
    assert caught.value.title.startswith(str(empty))
    assert not (open_tmp / "wal").exists()


@pytest.mark.parametrize("kind", ["plain-root", "plain-prefixed", "tar-stream", "tar-folder", "directory",
                                  "directory-subfolder"])
def test_what_the_inventory_reads_is_what_extraction_expects(kind: str, built: Built, open_tmp: Path) -> None:
    from drtui.core.inventory import read_base_backup

    ours = built.backups[kind]
    read = read_base_backup(ours.path)
    assert (read.layout, read.member_prefix) == (ours.layout, ours.member_prefix)
    seen: list[tuple[int, int | None]] = []
    written = extract_base_backup(read, open_tmp / "data", "postgres", lambda d, t: seen.append((d, t)),
                                  threading.Event())
    assert seen[-1] == (written, read.size_bytes or None)
    assert all(done <= (total or done) for done, total in seen), "progress never passes its total"
    assert written <= read.size_bytes <= written * 1.01  # the size the inventory reads includes pg_wal
    assert (open_tmp / "data" / "backup_label").read_bytes().startswith(b"START WAL LOCATION: ")


def test_a_tar_stream_cut_between_members_inside_a_whole_gzip_is_refused(built: Built, open_tmp: Path) -> None:
    """What `pg_basebackup -D - -Ft | gzip` leaves when pg_basebackup dies: gzip still closes the file."""
    cut = open_tmp / "stream_cut.tar.gz"
    with tarfile.open(built.backups["tar-stream"].path, "r|gz") as whole, gzip.open(cut, "wb") as out:
        for count, member in enumerate(whole):
            data = whole.extractfile(member) if member.isfile() else None
            out.write(member.tobuf(tarfile.GNU_FORMAT))
            if data:
                content = data.read()
                out.write(content + bytes(-len(content) % tarfile.BLOCKSIZE))
            if count == 20:
                break
    with pytest.raises(ExtractError, match="end-of-archive marker"):
        extract_base_backup(_as_backup(cut, Layout.TAR_STREAM), open_tmp / "data", "postgres", _noop,
                            threading.Event())
    assert not (open_tmp / "data").exists()
