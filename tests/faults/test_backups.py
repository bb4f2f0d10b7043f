"""Faults of the backup commands and of the journals: a full disk, a killed run, two runs at once, a sync
target that is not a folder, a damaged journal. Each is a real fault (a small tmpfs, kill -9, concurrent
processes, bytes appended to a real run's journal) on a real world."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.lock import EnvLock
from drtui.core.postgres import connect
from drtui.sandbox import PASSWORD
from tests.conftest import RUNBOOK_VARIABLES, run_drtui
from tests.faults.conftest import FaultWorld, Sentinel, assert_message, leftovers, tree_digest

OLD_HEARTBEAT = "2026-01-01T00:00:00+00:00\n"


@pytest.fixture
def fresh(fresh_world: FaultWorld) -> FaultWorld:
    """Every case here leaves the shared world as it found it (or says what it added)."""
    return fresh_world


@contextlib.contextmanager
def small_disk(world: FaultWorld, size: str) -> Iterator[tuple[Path, Path]]:
    """A tmpfs of `size` as backup_dir, holding an old LAST_SUCCESS.txt and LAST_BASEBACKUP.txt, and a config
    that uses it; yields (backup_dir, config)."""
    mount = Path(tempfile.mkdtemp(prefix="drtui-small-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0750", "tmpfs", str(mount)], check=True)
    try:
        for name in (backup.LAST_SUCCESS, backup.LAST_BASEBACKUP):
            (mount / name).write_text(OLD_HEARTBEAT)
        config = world.sandbox.root / "drtui-small-disk.toml"
        config.write_text(world.config.read_text().replace('backup_dir = "backups"', f'backup_dir = "{mount}"'))
        yield mount, config
    finally:
        subprocess.run(["umount", str(mount)], check=True)
        mount.rmdir()


def backup_dir_unchanged(world: FaultWorld) -> None:
    """backup_dir holds exactly what it held at `before()` (a base backup makes production switch and archive a
    WAL segment, which is production's own doing, so the WAL archive is not compared)."""
    assert tree_digest(world.sandbox.backup_dir) == world.fingerprints["backup_dir"]


def fill(folder: Path, leave: int) -> None:
    """Fill the filesystem of `folder` until about `leave` bytes are free."""
    free = shutil.disk_usage(folder).free
    with (folder / "filler").open("wb") as handle:
        handle.write(b"\0" * max(free - leave, 0))


def test_a_full_disk_during_a_dump_keeps_neither_half_of_the_pair(fresh: FaultWorld) -> None:
    uploads = fresh.sandbox.env("production").uploads_dir
    (uploads / "big.bin").write_bytes(os.urandom(1 << 20))  # does not compress: the uploads archive cannot fit
    try:
        with small_disk(fresh, "4m") as (folder, config):
            dump_size = max(p.stat().st_size for p in fresh.sandbox.backup_dir.glob("cleaning_*.sql.gz"))
            fill(folder, dump_size + (256 << 10))
            before = tree_digest(folder)
            result = run_drtui("backup", "dump", config=config)
            assert_message(result, str(folder), "No space left on device", "free space", code=1)
            assert tree_digest(folder) == before  # no dump without its uploads archive, old heartbeat kept
            checked = run_drtui("backup", "verify", config=config)
            assert_message(checked, "no cleaning_*.sql.gz dump found", code=1)
    finally:
        (uploads / "big.bin").unlink()
    assert fresh.sentinel.present()
    fresh.unchanged()
    assert leftovers(fresh.sandbox) == []


def test_verify_refuses_a_dump_without_its_uploads_archive(fresh: FaultWorld) -> None:
    newest = backup.newest(fresh.sandbox.backup_dir, "cleaning_", ".sql.gz")
    assert newest is not None
    lone = fresh.sandbox.backup_dir / "cleaning_20991231T235959Z.sql.gz"  # newer than every uploads archive
    shutil.copyfile(newest, lone)
    try:
        result = run_drtui("backup", "verify", config=fresh.config)
        assert_message(result, str(lone), "uploads_20991231T235959Z.tar.gz is missing", "drtui backup dump",
                       code=1)
        planned = run_drtui("restore", "staging", "--dry-run", config=fresh.config, env={"TARGET_ENV": "staging"})
        assert_message(planned, str(lone), "uploads_20991231T235959Z.tar.gz is missing", "BACKUP_FILE", code=2)
    finally:
        lone.unlink()
    paired = run_drtui("backup", "verify", config=fresh.config)
    assert paired.exit_code == 0 and backup.uploads_of(newest).name in paired.stdout, paired.output
    fresh.unchanged()


def test_a_full_disk_during_a_base_backup_names_the_full_disk(fresh: FaultWorld) -> None:
    with small_disk(fresh, "2m") as (folder, config):
        before = tree_digest(folder)
        result = run_drtui("backup", "base", config=config)
        assert_message(result, "No space left on device", "free space", str(folder), code=1)
        assert "running and reachable" not in result.output
        assert tree_digest(folder) == before
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    assert fresh.sentinel.present()
    backup_dir_unchanged(fresh)
    assert leftovers(fresh.sandbox) == []


def test_a_tool_refused_a_permission_is_shown_whole_with_its_hint(fresh: FaultWorld) -> None:
    with connect(fresh.sandbox.env("production")) as conn:
        conn.execute(f"drop role if exists reader; create role reader login password '{PASSWORD}'")
    config = fresh.sandbox.root / "drtui-reader.toml"
    config.write_text(fresh.config.read_text().replace('\nuser = "postgres"', '\nuser = "reader"', 1))
    result = run_drtui("backup", "dump", config=config)
    assert_message(result, "permission denied for table", "grant the permission", code=1)
    fresh.unchanged()
    assert leftovers(fresh.sandbox) == []


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in RUNBOOK_VARIABLES}


def test_a_killed_base_backup_is_listed_then_cleaned_by_the_next_run(fresh: FaultWorld) -> None:
    backup_dir = fresh.sandbox.backup_dir
    heartbeat = (backup_dir / backup.LAST_BASEBACKUP).read_text()
    run = subprocess.Popen([sys.executable, "-m", "drtui", "--config", str(fresh.config), "backup", "base"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_environ(),
                           start_new_session=True)
    deadline = time.monotonic() + 60
    while not any((p / "data" / "base").exists() for p in backup_dir.glob(".basebackup-*")):
        assert run.poll() is None and time.monotonic() < deadline, "the base backup never started copying"
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # kill -9 the run and its pg_basebackup
    run.wait()
    orphans = sorted(p for p in backup_dir.iterdir() if p.name.startswith("."))
    assert orphans and (backup_dir / backup.LAST_BASEBACKUP).read_text() == heartbeat

    listed = run_drtui("inventory", config=fresh.config)
    assert listed.exit_code == 0, listed.output
    for orphan in orphans:
        assert f"{orphan}: unfinished work of `drtui backup base`" in listed.stdout, listed.stdout
    assert f"Unknown files: {len(orphans)}" in listed.stdout

    again = run_drtui("backup", "base", config=fresh.config)
    assert again.exit_code == 0, again.output
    for orphan in orphans:
        assert f"removed {orphan}" in again.stdout
    assert not [p for p in backup_dir.iterdir() if p.name.startswith(".")]
    made = Path(again.stdout.split("wrote ", 1)[1].split(" (", 1)[0])
    assert backup.verify_tarball(made) > 0
    assert leftovers(fresh.sandbox) == []
    made.unlink()  # the world holds what it held
    (backup_dir / backup.LAST_BASEBACKUP).write_text(heartbeat)
    backup_dir_unchanged(fresh)


def test_a_second_wal_sync_while_one_runs_is_refused(fresh: FaultWorld) -> None:
    heartbeat = fresh.sandbox.config().wal_sync_heartbeat
    was = heartbeat.read_text()
    lock = EnvLock(fresh.sandbox.config().state_dir, "backup-wal-sync")
    lock.acquire("a wal-sync of this test", SystemClock())
    try:
        result = run_drtui("backup", "wal-sync", config=fresh.config)
    finally:
        lock.release()
    assert_message(result, "another `drtui backup wal-sync` is running", f"pid {os.getpid()}", "wait", code=2)
    assert heartbeat.read_text() == was
    fresh.unchanged()
    assert leftovers(fresh.sandbox) == []


def test_wal_syncs_started_together_never_crash_and_never_share_a_file(fresh: FaultWorld) -> None:
    backup_dir = fresh.sandbox.backup_dir
    before = set(backup_dir.iterdir())
    runs = [subprocess.Popen([sys.executable, "-m", "drtui", "--config", str(fresh.config), "backup", "wal-sync"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environ())
            for _ in range(4)]
    outcomes = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    made = sorted(set(backup_dir.iterdir()) - before)
    try:
        for code, stdout, stderr in outcomes:
            assert "Traceback" not in stderr, stderr
            assert code == 0 or "is running" in stderr or "already exists" in stderr, (code, stdout, stderr)
        assert any(code == 0 for code, _, _ in outcomes)
        assert made and all(p.name.startswith("wal_archive_") for p in made)
        for tarball in made:
            assert backup.verify_tarball(tarball) > 0
        assert leftovers(fresh.sandbox) == []
    finally:
        for path in made:
            path.unlink()
    fresh.unchanged()


@pytest.mark.parametrize(("target", "words"), [
    ("backup@host:/wal", ["WAL_SYNC_TARGET=backup@host:/wal", "remote host:path", "mount"]),
    ("s3://Bad_Bucket/wal", ["WAL_SYNC_TARGET=s3://Bad_Bucket/wal", "not a valid bucket name"]),
    ("offsite/wal", ["WAL_SYNC_TARGET=offsite/wal", "no such folder", "create or mount it"]),
])
def test_a_sync_target_that_is_not_a_folder_is_refused_before_anything_is_written(
        fresh: FaultWorld, tmp_path: Path, target: str, words: list[str]) -> None:
    heartbeat = fresh.sandbox.config().wal_sync_heartbeat
    was = heartbeat.read_text()
    result = run_drtui("backup", "wal-sync", config=fresh.config, env={"WAL_SYNC_TARGET": target}, cwd=tmp_path)
    assert_message(result, *words, code=2)
    assert "wrote" not in result.output
    assert list(tmp_path.iterdir()) == []  # no local folder named like the target
    assert heartbeat.read_text() == was
    fresh.unchanged()
    assert leftovers(fresh.sandbox) == []


def test_a_sync_target_folder_gets_the_tarball(fresh: FaultWorld, tmp_path: Path) -> None:
    result = run_drtui("backup", "wal-sync", config=fresh.config, env={"WAL_SYNC_TARGET": str(tmp_path)})
    assert result.exit_code == 0, result.output
    copies = list(tmp_path.glob("wal_archive_*.tar.gz"))
    assert len(copies) == 1 and backup.verify_tarball(copies[0]) > 0
    (fresh.sandbox.backup_dir / copies[0].name).unlink()
    fresh.unchanged()


# -- journals -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(shared_fault_world: FaultWorld) -> Path:
    """The journal of a real staging restore that finished (staging's sentinel is planted again after it)."""
    world = shared_fault_world
    dump = backup.newest(world.sandbox.backup_dir, "cleaning_", ".sql.gz")
    assert dump is not None
    done = run_drtui("restore", "staging", "--json", config=world.config,
                     env={"TARGET_ENV": "staging", "CONFIRM_STAGING_RESTORE": "YES", "BACKUP_FILE": str(dump)})
    assert done.exit_code == 0, done.output
    world.sentinel = Sentinel.plant(world.sandbox, "staging")
    return Path(json.loads(done.stdout)["journal"])


def _copy(journal: Path, folder: Path) -> Path:
    copy = folder / journal.name
    shutil.copyfile(journal, copy)
    return copy


def test_garbage_appended_to_a_journal_is_named_by_line_and_skipped(
        finished_run: Path, fresh: FaultWorld, tmp_path: Path) -> None:
    journal = _copy(finished_run, tmp_path)
    lines = len(journal.read_text().splitlines())
    with journal.open("ab") as handle:
        handle.write(b'{"type": "step_started"\n\xff\xfe garbage \x00\n[1, 2]\n')
    attached = run_drtui("attach", str(journal), config=fresh.config)
    assert_message(attached, f"{journal}: line {lines + 1} is damaged", f"line {lines + 2}", f"line {lines + 3}",
                   code=0)
    reports = tmp_path / "reports"
    reported = run_drtui("report", str(journal), config=fresh.config, env={"DRILL_REPORT_DIR": str(reports)})
    assert_message(reported, f"line {lines + 1} is damaged", code=0)
    assert len(list(reports.glob("dr_drill_record_*.md"))) == 1
    assert fresh.sentinel.present()
    fresh.unchanged()
    assert leftovers(fresh.sandbox) == []


def test_a_truncated_journal_is_called_truncated_not_just_a_crashed_run(
        finished_run: Path, fresh: FaultWorld, tmp_path: Path) -> None:
    journal = _copy(finished_run, tmp_path)
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) // 2])
    cut_line = data[: len(data) // 2].count(b"\n") + 1
    attached = run_drtui("attach", str(journal), config=fresh.config)
    assert_message(attached, f"{journal}: line {cut_line} is incomplete", "truncated", "ended without finishing",
                   code=1)
    reported = run_drtui("report", str(journal), config=fresh.config, env={"DRILL_REPORT_DIR": str(tmp_path / "r")})
    assert_message(reported, f"line {cut_line} is incomplete", "truncated", code=2)
    assert not (tmp_path / "r").exists()
    assert fresh.sentinel.present()
    fresh.unchanged()
    assert leftovers(fresh.sandbox) == []
