"""The backup commands against real clusters: artifacts, heartbeats, verification and failures."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drtui.core.postgres import LocalServer, chown_to
from drtui.sandbox import PASSWORD, Sandbox
from drtui.sandbox.world import free_port
from tests.conftest import run_drtui


def _heartbeat(path: Path) -> str:
    return path.read_text().strip()


def test_backup_dump_writes_dump_uploads_and_heartbeat(shared_sandbox: Sandbox) -> None:
    result = run_drtui("backup", "dump", "--json", config=shared_sandbox.config_path)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    paths = [Path(a["path"]) for a in summary["artifacts"]]
    assert [p.name.split("_")[0] for p in paths] == ["cleaning", "uploads"]
    assert all(p.stat().st_size == a["size_bytes"] for p, a in zip(paths, summary["artifacts"], strict=True))
    with gzip.open(paths[0], "rt") as sql:
        text = sql.read()
    assert "CREATE TABLE public.bookings" in text
    assert "-- PostgreSQL database dump complete" in text[-300:]
    with tarfile.open(paths[1]) as tar:
        assert "uploads/contracts/terms.pdf" in tar.getnames()
    heartbeat = shared_sandbox.backup_dir / "LAST_SUCCESS.txt"
    assert summary["heartbeat"] == str(heartbeat)
    assert _heartbeat(heartbeat).endswith("Z") and "T" in _heartbeat(heartbeat)

    checked = run_drtui("backup", "verify", config=shared_sandbox.config_path)
    assert checked.exit_code == 0, checked.stderr
    assert f"ok  {paths[0]}" in checked.stdout and f"ok  {paths[1]}" in checked.stdout


def test_plain_output_says_what_was_written_its_size_and_time(shared_sandbox: Sandbox) -> None:
    segment = shared_sandbox.switch_wal()
    time.sleep(1)  # artifact names carry the second; a backup never overwrites another
    result = run_drtui("backup", "wal-sync", config=shared_sandbox.config_path)
    assert result.exit_code == 0, result.stderr
    assert "wrote " in result.stdout and "wal_archive_" in result.stdout and "MiB" in result.stdout
    assert "wal-sync backup done in" in result.stdout
    tarball = next(shared_sandbox.backup_dir.glob("wal_archive_*.tar.gz"))
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert segment in names
    assert set(os.listdir(shared_sandbox.wal_archive)) == names
    assert (shared_sandbox.root / "ops/state/wal_sync_last_ok.txt").exists()


@pytest.fixture
def truncated_copies(shared_sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    time.sleep(1)
    assert run_drtui("backup", "dump", config=shared_sandbox.config_path).exit_code == 0
    dump = sorted(shared_sandbox.backup_dir.glob("cleaning_*.sql.gz"))[-1]
    uploads = sorted(shared_sandbox.backup_dir.glob("uploads_*.tar.gz"))[-1]
    cut_dump, cut_uploads = tmp_path / dump.name, tmp_path / uploads.name
    cut_dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    cut_uploads.write_bytes(uploads.read_bytes()[: uploads.stat().st_size // 2])
    yield cut_dump, cut_uploads


def test_verify_rejects_a_truncated_dump(shared_sandbox: Sandbox, truncated_copies: tuple[Path, Path]) -> None:
    cut_dump, _ = truncated_copies
    result = run_drtui("backup", "verify", config=shared_sandbox.config_path, env={"BACKUP_FILE": str(cut_dump)})
    assert result.exit_code == 1
    assert f"{cut_dump}: the dump is truncated" in result.stderr
    assert "hint: do not restore from it" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_rejects_a_dump_that_pg_dump_did_not_finish(shared_sandbox: Sandbox, tmp_path: Path) -> None:
    unfinished = tmp_path / "cleaning_20260101T000000Z.sql.gz"
    with gzip.open(unfinished, "wt") as sql:
        sql.write("--\n-- PostgreSQL database dump\n--\nCREATE TABLE half (id int);\n")
    result = run_drtui("backup", "verify", "--backup-file", str(unfinished), config=shared_sandbox.config_path)
    assert result.exit_code == 1
    assert "the SQL dump is incomplete" in result.stderr


def test_verify_rejects_a_truncated_uploads_archive(shared_sandbox: Sandbox,
                                                    truncated_copies: tuple[Path, Path]) -> None:
    _, cut_uploads = truncated_copies
    result = run_drtui("backup", "verify", config=shared_sandbox.config_path,
                       env={"UPLOADS_ARCHIVE": str(cut_uploads)})
    assert result.exit_code == 1
    assert f"{cut_uploads}: the archive is truncated or damaged" in result.stderr


def test_base_backup_restores_with_plain_tar_and_recovery_signal(shared_sandbox: Sandbox, open_tmp: Path) -> None:
    result = run_drtui("backup", "base", "--json", config=shared_sandbox.config_path)
    assert result.exit_code == 0, result.stderr
    tarball = Path(json.loads(result.stdout)["artifacts"][0]["path"])
    assert tarball.name.startswith("basebackup_") and tarball.name.endswith("Z.tar.gz")
    with tarfile.open(tarball, "r|gz") as tar:
        first = next(iter(tar))
    assert first.name == "backup_label"
    assert (shared_sandbox.backup_dir / "LAST_BASEBACKUP.txt").exists()
    expected = shared_sandbox.counts()
    shared_sandbox.switch_wal()

    restore_root = open_tmp
    data_dir = restore_root / "data"
    data_dir.mkdir()
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(data_dir)], check=True)
    for path in [data_dir, *data_dir.rglob("*")]:
        chown_to(path, shared_sandbox.os_user)
    data_dir.chmod(0o700)
    (data_dir / "recovery.signal").touch()
    port = free_port()
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"restore_command = 'cp {shared_sandbox.wal_archive}/%f %p'\n"
                   f"recovery_target = 'immediate'\nrecovery_target_action = 'promote'\n"
                   f"archive_mode = off\nunix_socket_directories = '{restore_root}'\nport = {port}\n")
    server = LocalServer(data_dir, shared_sandbox.server().pg_bin, shared_sandbox.os_user, str(restore_root),
                         port, restore_root / "server.log")
    chown_to(restore_root, shared_sandbox.os_user)
    server.start()
    try:
        import psycopg

        deadline = time.monotonic() + 30
        with psycopg.connect(**server.conninfo("cleaning"), autocommit=True) as conn:
            while conn.execute("select pg_is_in_recovery()").fetchone()[0]:
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.1)
            counts = {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in expected}
    finally:
        server.stop()
    assert counts == expected


@contextlib.contextmanager
def _immutable(folder: Path) -> Iterator[None]:
    """Make a folder unwritable, even for root (chattr +i), or by mode for other users."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_failed_backups_leave_the_old_heartbeat_untouched(sandbox: Sandbox) -> None:
    config = sandbox.config_path
    assert run_drtui("backup", "dump", config=config).exit_code == 0
    assert run_drtui("backup", "base", config=config).exit_code == 0
    last_success = sandbox.backup_dir / "LAST_SUCCESS.txt"
    last_base = sandbox.backup_dir / "LAST_BASEBACKUP.txt"
    before = {p: _heartbeat(p) for p in (last_success, last_base)}
    artifacts = sorted(os.listdir(sandbox.backup_dir))
    time.sleep(1.1)

    with _immutable(sandbox.backup_dir):
        for command in ("dump", "base"):
            result = run_drtui("backup", command, config=config)
            assert result.exit_code == 1, result.output
            assert f"{sandbox.backup_dir}: cannot write there" in result.stderr

    sandbox.server().stop()
    for command, tool in (("dump", "pg_dump"), ("base", "pg_basebackup")):
        result = run_drtui("backup", command, config=config)
        assert result.exit_code == 1, result.output
        assert f"{tool} of production failed" in result.stderr
        assert "Traceback" not in result.stderr
    assert {p: _heartbeat(p) for p in before} == before
    assert sorted(os.listdir(sandbox.backup_dir)) == artifacts


def test_no_password_appears_in_any_output(sandbox: Sandbox) -> None:
    env_url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/cleaning"
    outputs = [run_drtui("backup", "dump", "--json", config=sandbox.config_path),
               run_drtui("backup", "base", config=sandbox.config_path)]
    sandbox.server().stop()
    time.sleep(1.1)
    outputs.append(run_drtui("backup", "dump", config=sandbox.config_path, env={"PGPASSWORD": PASSWORD}))
    outputs.append(run_drtui("backup", "base", config=sandbox.config_path,
                             env={"API_BASE_URL": env_url, "TARGET_ENV": "production"}))
    assert [r.exit_code for r in outputs] == [0, 0, 1, 1]
    logs = "".join(p.read_text(errors="replace") for p in (sandbox.root / "logs").glob("*.log"))
    for text in [*(r.output for r in outputs), logs]:
        assert PASSWORD not in text


def test_backups_made_without_the_console_are_private_too(shared_sandbox: Sandbox) -> None:
    """The core gives its artifacts and heartbeats their mode itself (the console's umask is a second guard):
    a dump and its uploads archive called from Python, with this process's umask of 022, are still 0640."""
    from drtui.core import backup
    from drtui.core.clock import SystemClock

    time.sleep(1.1)  # a dump is named by the second: the shared world may have had one this second
    old_umask = os.umask(0o022)
    try:
        made = backup.dump(shared_sandbox.config(), shared_sandbox.env("production"), SystemClock())
    finally:
        os.umask(old_umask)
    assert made.heartbeat is not None
    modes = {p.name.split("_")[0]: oct(p.stat().st_mode & 0o777) for p in [*(a.path for a in made.artifacts),
                                                                           made.heartbeat]}
    assert modes == {"cleaning": "0o640", "uploads": "0o640", "LAST": "0o640"}
