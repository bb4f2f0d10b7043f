"""PITR from every base-backup layout the inventory knows, made for real by pg_basebackup (the plain tarball of
`drtui backup base` is covered by test_restore_pitr)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock, stamp
from drtui.core.postgres import query
from drtui.sandbox import Insert, Sandbox
from tests.conftest import run_drtui


@dataclass
class Layouts:
    sandbox: Sandbox
    backups: dict[str, Path]
    before: Insert
    after: Insert


def _basebackup(sandbox: Sandbox, *args: str, stdout: int | None = None) -> subprocess.Popen:
    env = sandbox.env()
    return subprocess.Popen([str(env.pg_bin / "pg_basebackup"), "-h", env.host, "-p", str(env.port), "-U", env.user,
                             "--no-password", "-c", "fast", *args], stdout=stdout, stderr=subprocess.PIPE,
                            env={**os.environ, "PGPASSWORD": env.password() or ""})


def _name(offset: int) -> str:
    return f"basebackup_{stamp(datetime.now(UTC) + timedelta(seconds=offset))}"


@pytest.fixture(scope="module")
def layouts() -> Iterator[Layouts]:
    scratch = Path(tempfile.mkdtemp(prefix="drtui-layouts-"))
    try:
        with Sandbox() as sandbox:
            backup.dump(sandbox.config(), sandbox.env(), SystemClock())  # for /healthz/backup
            out, backups = sandbox.backup_dir, {}
            backups["tar-stream"] = out / f"{_name(10)}.tar.gz"
            with gzip.open(backups["tar-stream"], "wb", compresslevel=1) as gz:
                proc = _basebackup(sandbox, "-D", "-", "-Ft", "-X", "fetch", stdout=subprocess.PIPE)
                assert proc.stdout
                shutil.copyfileobj(proc.stdout, gz)
                assert proc.wait() == 0
            assert _basebackup(sandbox, "-D", str(scratch / "ft"), "-Ft", "-z", "-X", "stream").wait() == 0
            backups["tar-folder"] = out / f"{_name(20)}.tar.gz"
            subprocess.run(["tar", "-czf", str(backups["tar-folder"]), "-C", str(scratch / "ft"), "."], check=True)
            backups["directory"] = out / _name(30)
            assert _basebackup(sandbox, "-D", str(backups["directory"]), "-Fp", "-X", "stream").wait() == 0
            sandbox.switch_wal()
            before = sandbox.insert("bookings")
            sandbox.switch_wal()
            time.sleep(0.2)
            after = sandbox.insert("bookings")
            sandbox.switch_wal()
            yield Layouts(sandbox, backups, before, after)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.parametrize("layout", ["tar-stream", "tar-folder", "directory"])
def test_pitr_to_a_time_from_each_layout(layouts: Layouts, layout: str) -> None:
    target = layouts.before.committed_at + (layouts.after.committed_at - layouts.before.committed_at) / 2
    done = run_drtui("restore", "pitr", "--env", "staging", "--base-backup", str(layouts.backups[layout]),
                     "--target-time", target.isoformat(), config=layouts.sandbox.config_path,
                     env={"CONFIRM_PITR_RESTORE": "YES"}, timeout=180)
    assert done.exit_code == 0, done.output
    assert f"({layout}," in done.stdout
    ids = {row[0] for row in query(layouts.sandbox.env("staging"), "select id from bookings")}
    assert layouts.before.id in ids and layouts.after.id not in ids
    assert layouts.backups[layout].exists()  # the backup itself is never moved or changed
