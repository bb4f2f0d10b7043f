"""The inventory against real artifacts: base backups in all four layouts made by pg_basebackup against the
sandbox's production cluster, a WAL archive with a hole, and a promoted restore that starts timeline 2."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock, stamp
from drtui.core.inventory import InventoryError, read_base_backup, scan
from drtui.core.models import Layout
from drtui.core.postgres import LocalServer, chown_to
from drtui.sandbox import Sandbox
from drtui.sandbox.world import free_port
from tests.conftest import run_drtui


@dataclass
class World:
    sandbox: Sandbox
    backups: dict[str, Path]  # layout name -> the artifact
    labels: dict[str, str]  # layout name -> the -l label it was made with
    scratch: Path


def _client(world: Sandbox, *args: str) -> list[str]:
    env = world.env()
    return [str(env.pg_bin / "pg_basebackup"), "-h", env.host, "-p", str(env.port), "-U", env.user,
            "--no-password", "-c", "fast", *args]


def _pg_env(world: Sandbox) -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": world.env().password() or ""}


def _wait_for_backup_file(world: Sandbox, label: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for path in world.wal_archive.glob("*.backup"):
            if f"LABEL: {label}\n" in path.read_text():
                return
        time.sleep(0.1)
    raise AssertionError(f"no .backup history file for {label!r} was archived")


def _name(offset: int) -> str:
    return stamp(datetime.now(UTC) + timedelta(seconds=offset))


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One sandbox of this module's own with five base backups: four layouts, one twice (with a top folder)."""
    scratch = Path(tempfile.mkdtemp(prefix="drtui-inv-"))
    try:
        with Sandbox() as sandbox:
            backups: dict[str, Path] = {}
            labels: dict[str, str] = {}
            out = sandbox.backup_dir
            env = _pg_env(sandbox)

            result = backup.base(sandbox.config(), sandbox.env(), SystemClock())
            backups["plain"] = result.artifacts[0].path
            labels["plain"] = f"drtui {backups['plain'].name[11:27]}"
            sandbox.insert()

            labels["stream"] = "inv stream"
            backups["stream"] = out / f"basebackup_{_name(10)}.tar.gz"
            with gzip.open(backups["stream"], "wb") as gz:
                proc = subprocess.Popen(_client(sandbox, "-D", "-", "-Ft", "-X", "fetch", "-l", labels["stream"]),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                assert proc.stdout
                shutil.copyfileobj(proc.stdout, gz)
                assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
            sandbox.insert()

            labels["folder"] = "inv folder"
            subprocess.run(_client(sandbox, "-D", str(scratch / "ft"), "-Ft", "-z", "-X", "stream",
                                   "-l", labels["folder"]), env=env, check=True, capture_output=True)
            backups["folder"] = out / f"basebackup_{_name(20)}.tar.gz"
            subprocess.run(["tar", "-czf", str(backups["folder"]), "-C", str(scratch / "ft"), "."], check=True)
            sandbox.insert()

            labels["prefixed"] = "inv prefixed"
            subprocess.run(_client(sandbox, "-D", str(scratch / "data"), "-Fp", "-X", "stream",
                                   "-l", labels["prefixed"]), env=env, check=True, capture_output=True)
            backups["prefixed"] = out / f"basebackup_{_name(30)}.tar.gz"
            subprocess.run(["tar", "-czf", str(backups["prefixed"]), "-C", str(scratch), "data"], check=True)
            sandbox.insert()

            labels["directory"] = "inv directory"
            backups["directory"] = out / f"basebackup_{_name(40)}"
            subprocess.run(_client(sandbox, "-D", str(backups["directory"]), "-Fp", "-X", "stream",
                                   "-l", labels["directory"]), env=env, check=True, capture_output=True)
            for label in labels.values():
                _wait_for_backup_file(sandbox, label)
            sandbox.insert()
            sandbox.switch_wal()
            yield World(sandbox, backups, labels, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _backup_history(world: Sandbox, label: str) -> dict[str, str]:
    """The archive's .backup file of a backup, as PostgreSQL wrote it (parsed here with plain string ops)."""
    for path in world.wal_archive.glob("*.backup"):
        text = path.read_text()
        if f"LABEL: {label}\n" in text:
            return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    raise AssertionError(label)


EXPECTED_LAYOUTS = {"plain": (Layout.PLAIN_TARBALL, ""), "stream": (Layout.TAR_STREAM, ""),
                    "folder": (Layout.TAR_FOLDER, ""), "prefixed": (Layout.PLAIN_TARBALL, "data"),
                    "directory": (Layout.DIRECTORY, "")}


@pytest.mark.parametrize("kind", list(EXPECTED_LAYOUTS))
def test_each_layout_reports_what_postgresql_wrote(world: World, kind: str) -> None:
    found = read_base_backup(world.backups[kind])
    history = _backup_history(world.sandbox, world.labels[kind])
    assert (found.layout, found.member_prefix) == EXPECTED_LAYOUTS[kind]
    assert found.label == world.labels[kind]
    assert history["START WAL LOCATION"].endswith(f"(file {found.start_wal_file})")
    assert found.start_time.strftime("%Y-%m-%d %H:%M:%S UTC") == history["START TIME"]
    assert found.timeline == int(history["START TIMELINE"]) == 1
    assert found.pg_version == 15
    assert found.size_bytes > 20_000_000  # a whole cluster's files, uncompressed
    if kind == "folder":
        assert found.base_member == "base.tar.gz" and found.wal_member == "pg_wal.tar.gz"


def test_scan_lists_every_backup_newest_first_with_stop_times_and_windows(world: World) -> None:
    inv = scan(world.sandbox.config())
    assert {b.path for b in inv.base_backups} == set(world.backups.values())
    assert [b.start_time for b in inv.base_backups] == sorted((b.start_time for b in inv.base_backups),
                                                              reverse=True)
    assert not inv.problems
    for b, window in zip(inv.base_backups, inv.windows, strict=True):
        history = _backup_history(world.sandbox, b.label)
        assert b.stop_time is not None
        assert b.stop_time.strftime("%Y-%m-%d %H:%M:%S UTC") == history["STOP TIME"]
        assert window.base_backup == b.path and window.usable
        assert window.earliest == b.stop_time and window.earliest_source == "backup-history"
        assert window.latest_source == "waldump" and window.latest >= window.earliest
        assert window.cut_by_gap is None and window.timeline == 1
    assert inv.window_for(world.backups["plain"]).latest == inv.windows[-1].latest
    assert inv.wal is not None and len(inv.wal.archived_at[1]) == len(inv.wal.segments[1])
    cache = json.loads((world.sandbox.config().state_dir / "inventory-cache.json").read_text())
    assert len(cache["sections"]["base_backups"]) == len(world.backups)
    again = scan(world.sandbox.config())
    assert again.base_backups == inv.base_backups and again.windows == inv.windows


def test_inventory_json_and_table(world: World) -> None:
    (world.sandbox.backup_dir / "notes.txt").write_text("hello")
    try:
        result = run_drtui("inventory", "--json", config=world.sandbox.config_path)
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        assert {b["layout"] for b in data["base_backups"]} == {str(v[0]) for v in EXPECTED_LAYOUTS.values()}
        first = data["base_backups"][0]
        assert set(first) >= {"file", "layout", "start_time", "stop_time", "start_wal", "timeline", "pg_version",
                              "size_bytes"}
        assert data["wal"]["timelines"][0]["timeline"] == 1 and data["wal"]["gaps"] == []
        assert data["wal"]["segments"] >= 6 and data["wal"]["first"] and data["wal"]["last"]
        assert {w["base_backup"] for w in data["windows"]} == {b["file"] for b in data["base_backups"]}
        assert all(set(w) >= {"earliest", "latest", "cut_by_gap"} for w in data["windows"])
        assert [u["file"] for u in data["unknown"]] == [str(world.sandbox.backup_dir / "notes.txt")]
        table = run_drtui("inventory", config=world.sandbox.config_path)
        assert table.exit_code == 0, table.stderr
        assert "Base backups in" in table.stdout and "tar-stream" in table.stdout and "MiB" in table.stdout
        assert "Unknown files: 1" in table.stdout and "notes.txt" in table.stdout
    finally:
        (world.sandbox.backup_dir / "notes.txt").unlink()


@pytest.fixture
def archive_copy(world: World) -> Iterator[Path]:
    """A copy of the sandbox's WAL archive that a test may cut into or archive into (never the original)."""
    folder = Path(tempfile.mkdtemp(prefix="drtui-inv-archive-"))
    folder.chmod(0o755)
    try:
        copy = folder / "archive"
        shutil.copytree(world.sandbox.wal_archive, copy)
        for path in [copy, *copy.iterdir()]:
            chown_to(path, world.sandbox.os_user)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_deleted_segment_is_a_gap_that_cuts_the_windows_before_it(world: World, archive_copy: Path) -> None:
    sandbox = world.sandbox
    before = scan(sandbox.config())
    # More WAL after every backup, one commit per segment, a new base backup after them, then a copy of the
    # archive with one segment gone between the old backups and the new one.
    inserts, segments = [], []
    for _ in range(3):
        inserts.append(sandbox.insert())
        segments.append(sandbox.switch_wal())
    after = backup.base(sandbox.config(), sandbox.env(), SystemClock()).artifacts[0].path
    try:
        _wait_for_backup_file(sandbox, f"drtui {after.name[11:27]}")
        inserts.append(sandbox.insert())
        segments.append(sandbox.switch_wal())
        for path in sandbox.wal_archive.iterdir():
            if not (archive_copy / path.name).exists():
                shutil.copy2(path, archive_copy / path.name)
                chown_to(archive_copy / path.name, sandbox.os_user)  # else postgres cannot read it: damaged
        (archive_copy / segments[1]).unlink()

        result = run_drtui("inventory", "--json", "--wal-source", str(archive_copy), config=sandbox.config_path)
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["wal"]["gaps"] == [{"timeline": 1, "from": segments[1], "to": segments[1], "segments": 1,
                                        "damaged": []}]
        windows = {Path(w["base_backup"]): w for w in data["windows"]}
        assert windows[after]["cut_by_gap"] is None and windows[after]["last_segment"] == segments[3]
        for path in world.backups.values():
            assert windows[path]["cut_by_gap"]["from"] == segments[1]
            assert windows[path]["last_segment"] == segments[0]

        inv = scan(sandbox.config(), wal_source=archive_copy)
        for old in before.windows:
            window = inv.window_for(old.base_backup)
            assert window.latest_source == "waldump"
            assert window.latest >= old.latest  # the first new segment is still reachable
            assert inserts[0].committed_at - timedelta(seconds=1) <= window.latest <= inserts[0].committed_at
            assert window.latest < inserts[1].committed_at
        newest = inv.window_for(after)
        assert inserts[3].committed_at - timedelta(seconds=1) <= newest.latest <= inserts[3].committed_at
        whole = scan(sandbox.config())
        assert all(w.cut_by_gap is None and w.last_segment == segments[3] for w in whole.windows)
        table = run_drtui("inventory", "--wal-source", str(archive_copy), config=sandbox.config_path)
        assert f"GAP on timeline 1: {segments[1]} (1 segment missing)" in table.stdout
        assert f"CUT BY GAP at {segments[1]}" in table.stdout
    finally:
        after.unlink()


def test_a_promoted_restore_shows_two_timelines(world: World, archive_copy: Path) -> None:
    sandbox = world.sandbox
    restore_root = archive_copy.parent
    data_dir = restore_root / "data"
    data_dir.mkdir()
    with tarfile.open(world.backups["plain"], "r|gz") as tar:
        tar.extractall(data_dir, filter="data")
    for path in [data_dir, *data_dir.rglob("*")]:
        chown_to(path, sandbox.os_user)
    data_dir.chmod(0o700)
    chown_to(restore_root, sandbox.os_user)
    (data_dir / "recovery.signal").touch()
    port = free_port()
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"restore_command = 'cp {archive_copy}/%f %p'\n"
                   f"archive_mode = on\narchive_command = 'test ! -f {archive_copy}/%f && cp %p {archive_copy}/%f'\n"
                   f"unix_socket_directories = '{restore_root}'\nport = {port}\n")
    server = LocalServer(data_dir, sandbox.server().pg_bin, sandbox.os_user, str(restore_root), port,
                         restore_root / "server.log")
    try:
        server.start()
        deadline = time.monotonic() + 60
        with psycopg.connect(**server.conninfo("cleaning"), autocommit=True) as conn:
            while conn.execute("select pg_is_in_recovery()").fetchone()[0]:
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.1)
            conn.execute("insert into leads (client_id, source) values (1, 'after promotion')")
            segment = conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()[0]
            while not (archive_copy / segment).exists():
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.1)
    finally:
        with contextlib.suppress(Exception):
            server.stop()
    assert (archive_copy / "00000002.history").exists() and segment.startswith("00000002")

    inv = scan(sandbox.config(), wal_source=archive_copy)
    assert inv.wal is not None and inv.wal.timelines == [1, 2]
    assert [(h.timeline, h.parent) for h in inv.wal.histories] == [(2, 1)]
    window = inv.window_for(world.backups["plain"])
    assert window.timeline == 2 and window.last_segment == segment and window.usable
    data = run_drtui("inventory", "--json", "--wal-source", str(archive_copy), config=sandbox.config_path)
    assert [t["timeline"] for t in json.loads(data.stdout)["wal"]["timelines"]] == [1, 2]


def test_a_wal_tarball_is_read_by_its_member_list(world: World) -> None:
    sandbox = world.sandbox
    for _ in range(3):  # archive_timeout may archive a segment meanwhile: then the tarball is not the archive
        live = scan(sandbox.config())
        tarball = backup.wal_sync(sandbox.config(), SystemClock()).artifacts[0].path
        if scan(sandbox.config()).wal.segments == live.wal.segments:
            break
        tarball.unlink()
    try:
        inv = scan(sandbox.config(), wal_source=tarball)
        assert inv.wal is not None and live.wal is not None
        assert inv.wal.kind == "tarball" and inv.wal.segments == live.wal.segments
        assert len(inv.wal.archived_at[1]) == len(inv.wal.segments[1])
        assert inv.wal.backup_files == live.wal.backup_files
        assert [w.latest for w in inv.windows] == [w.latest for w in live.windows]
        assert all(w.latest_source == "waldump" for w in inv.windows)
        assert [a.path for a in inv.wal_tarballs] == [tarball]
    finally:
        tarball.unlink()
        sandbox.config().wal_sync_heartbeat.unlink(missing_ok=True)


def test_damaged_backups_and_unreadable_folders_are_plain_problems(world: World) -> None:
    sandbox = world.sandbox
    out = sandbox.backup_dir
    truncated = out / f"basebackup_{_name(-1000)}.tar.gz"
    data = world.backups["plain"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    garbage = out / f"basebackup_{_name(-2000)}.tar.gz"
    garbage.write_bytes(b"this is not a tarball\n" * 100)
    locked = out / f"basebackup_{_name(-3000)}"
    locked.mkdir(mode=0o700)
    locked_wal = world.scratch / "locked_wal"
    locked_wal.mkdir(mode=0o700, exist_ok=True)
    world.scratch.chmod(0o755)
    (locked / "backup_label").write_text("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n")
    try:
        with pytest.raises(InventoryError, match=r"not a readable tar\.gz"):
            read_base_backup(garbage)
        result = run_drtui("inventory", config=sandbox.config_path)
        assert result.exit_code == 0, result.stderr
        assert "Traceback" not in result.output
        assert f"{truncated}: truncated" in result.stdout
        assert f"{garbage}: not a readable tar.gz" in result.stdout
        assert f"{locked}: no START TIME line" in result.stdout

        # As the cluster's OS user, the root-only folders cannot be read at all. The child cannot import from
        # root's Python either, so what it needs is loaded before the fork.
        datetime.strptime("2026 +0000", "%Y %z")
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            os.close(reader)
            try:
                import pwd

                entry = pwd.getpwnam(sandbox.os_user)
                os.setgid(entry.pw_gid)
                os.setuid(entry.pw_uid)
                messages = [p.message for p in scan(sandbox.config()).problems if p.path == locked]
                messages += [p.message for p in scan(sandbox.config(), wal_source=locked_wal).problems
                             if p.path == locked_wal]
                os.write(writer, json.dumps(messages).encode())
            except BaseException:
                import traceback

                os.write(writer, json.dumps([traceback.format_exc()]).encode())
            finally:
                os._exit(0)
        os.close(writer)
        with os.fdopen(reader) as pipe:
            messages = json.loads(pipe.read() or "null")
        os.waitpid(pid, 0)
        assert messages and "cannot read it (permission denied)" in messages[0]
        assert "cannot read the WAL archive (permission denied)" in messages[-1]
    finally:
        truncated.unlink()
        garbage.unlink()
        shutil.rmtree(locked)


def test_a_cluster_with_1mb_segments_is_read_with_its_own_segment_size(open_tmp: Path) -> None:
    from drtui.core.config import parse_config
    from drtui.core.postgres import run_as
    from drtui.sandbox.world import PG_BIN, default_os_user

    os_user = default_os_user()
    data_dir, archive, backups = open_tmp / "data", open_tmp / "archive", open_tmp / "backups"
    for folder in (data_dir, archive):
        folder.mkdir()
        chown_to(folder, os_user)
    backups.mkdir()
    chown_to(open_tmp, os_user)
    run_as(os_user, [str(PG_BIN / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "--no-sync",
                     "--wal-segsize=1"], timeout=120)
    port = free_port()
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"listen_addresses = ''\nunix_socket_directories = '{open_tmp}'\nport = {port}\nfsync = off\n"
                   f"archive_mode = on\narchive_command = 'cp %p {archive}/%f'\n")
    server = LocalServer(data_dir, PG_BIN, os_user, str(open_tmp), port, open_tmp / "server.log")
    try:
        server.start()
        with psycopg.connect(**server.conninfo("postgres"), autocommit=True) as conn:
            conn.execute("create table t (id int)")
            conn.execute("insert into t select generate_series(1, 1000)")
            tarball = backups / f"basebackup_{_name(0)}.tar.gz"
            with gzip.open(tarball, "wb") as gz:
                proc = subprocess.Popen([str(PG_BIN / "pg_basebackup"), "-h", str(open_tmp), "-p", str(port),
                                         "-U", "postgres", "-D", "-", "-Ft", "-X", "fetch", "-c", "fast"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                assert proc.stdout
                shutil.copyfileobj(proc.stdout, gz)
                assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
            conn.execute("insert into t values (1001)")
            segment = conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()[0]
            deadline = time.monotonic() + 30
            while not (archive / segment).exists():
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.05)
    finally:
        with contextlib.suppress(Exception):
            server.stop()
    config = parse_config({"backup_dir": "backups", "wal_archive": "archive", "state_dir": "state",
                           "environments": {"production": {"pg_bin": str(PG_BIN)}}}, open_tmp / "drtui.toml")
    inv = scan(config)
    assert not inv.problems
    (found,) = inv.base_backups
    assert found.layout == Layout.TAR_STREAM and found.segment_size == 1024 * 1024 and found.pg_version == 15
    assert inv.wal is not None and inv.wal.segment_size == 1024 * 1024 and inv.wal.gaps == []
    assert any(name.startswith(found.start_wal_file) for name in inv.wal.backup_files)
    (window,) = inv.windows
    assert window.usable and window.latest_source == "waldump" and window.last_segment == segment
    assert window.earliest == found.stop_time and window.latest >= window.earliest


def test_archive_times_of_a_folder_are_read_only_below_the_limit(tmp_path: Path, monkeypatch) -> None:
    from drtui.core.inventory import wal
    from drtui.core.models import segment_name

    for segno in (1, 2, 3, 5):
        path = tmp_path / segment_name(1, segno)
        path.write_bytes(b"")
        os.truncate(path, 16 * 1024 * 1024)  # sparse, of a segment's size (a short one is damaged)
        os.utime(path, (1_767_225_600 + segno, 1_767_225_600 + segno))
    small = wal.scan_wal(tmp_path)
    assert small.archived_at == {1: [1_767_225_601.0, 1_767_225_602.0, 1_767_225_603.0, 1_767_225_605.0]}
    monkeypatch.setattr(wal, "STAT_ALL_LIMIT", 3)
    large = wal.scan_wal(tmp_path)
    assert large.archived_at == {} and large.gaps == small.gaps
    assert wal.archive_time(large, 1, 3) == 1_767_225_603.0  # one stat, where a window needs it
    (tmp_path / segment_name(1, 2)).unlink()
    wal.fill_archive_times(large)
    assert large.archived_at == {1: [1_767_225_601.0, 1_767_225_601.0, 1_767_225_603.0, 1_767_225_605.0]}


@pytest.mark.parametrize(("folder", "tar_args", "layout", "prefix"), [
    ("ft", ["ft"], Layout.TAR_FOLDER, "ft"),  # the -Ft folder under one top folder
    ("data", ["-C", "data", "."], Layout.PLAIN_TARBALL, ""),  # a plain data directory packed as ./...
])
def test_the_same_backups_packed_other_ways(world: World, open_tmp: Path, folder: str, tar_args: list[str],
                                            layout: Layout, prefix: str) -> None:
    tarball = open_tmp / f"basebackup_{_name(0)}.tar.gz"
    subprocess.run(["tar", "-czf", str(tarball), *tar_args], cwd=world.scratch, check=True)
    found = read_base_backup(tarball)
    assert (found.layout, found.member_prefix) == (layout, prefix)
    assert found.label == world.labels["folder" if folder == "ft" else "prefixed"]
    if layout == Layout.TAR_FOLDER:
        assert (found.base_member, found.wal_member) == ("ft/base.tar.gz", "ft/pg_wal.tar.gz")


def test_a_second_scan_reads_from_the_cache_until_the_file_changes(world: World, open_tmp: Path) -> None:
    from drtui.core.config import parse_config

    (open_tmp / "backups").mkdir()
    copy = open_tmp / "backups" / world.backups["plain"].name
    shutil.copy2(world.backups["plain"], copy)
    config = parse_config({"backup_dir": "backups", "wal_archive": str(world.sandbox.wal_archive),
                           "state_dir": "state", "environments": {"production": {}}}, open_tmp / "drtui.toml")
    first = scan(config)
    assert [b.path for b in first.base_backups] == [copy] and not first.problems
    # Same size and mtime, different bytes: the cache answers and nothing is read.
    stat = copy.stat()
    copy.write_bytes(b"\0" * stat.st_size)
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert scan(config).base_backups == first.base_backups
    # A new mtime is a new file: it is read again, and now it is not a tarball.
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = scan(config)
    assert again.base_backups == [] and "not a readable tar.gz" in again.problems[0].message
