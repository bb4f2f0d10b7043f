"""Shared fixtures: real PostgreSQL sandboxes, and the `drtui` console run as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drtui.sandbox import Sandbox
from tests.s3world import S3World, running_s3_server, s3_environment


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[Sandbox]:
    """One world for the whole session: only for tests that read it or add rows, never restore into it."""
    with Sandbox() as world:
        yield world


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A world of the test's own, for tests that stop, break or restore clusters."""
    with Sandbox() as world:
        yield world


@pytest.fixture(scope="session")
def s3_server() -> Iterator:
    """moto's standalone S3 server, one process per test worker, on 127.0.0.1."""
    with running_s3_server() as server:
        yield server


@pytest.fixture
def s3(s3_server) -> Iterator[S3World]:
    """The S3 server with boto3's standard environment set in this process (and `s3.env` for subprocesses);
    every bucket made with `s3.bucket()` is emptied and deleted at the end."""
    world = S3World(s3_server)
    try:
        with s3_environment(world):
            yield world
    finally:
        world.drop_buckets()


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary folder the cluster's OS user can traverse (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="drtui-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_drtui(*args: str, config: Path | None = None, env: dict[str, str] | None = None,
              cwd: Path | None = None, timeout: float = 300) -> Result:
    """Run the real console program (`python -m drtui`) and capture what it printed."""
    environ = {k: v for k, v in os.environ.items() if k not in RUNBOOK_VARIABLES}
    if config:
        environ["DRTUI_CONFIG"] = str(config)
    environ.update(env or {})
    done = subprocess.run([sys.executable, "-m", "drtui", *args], capture_output=True, text=True,
                          env=environ, cwd=cwd or Path.cwd(), timeout=timeout, check=False)
    return Result(done.returncode, done.stdout, done.stderr)


RUNBOOK_VARIABLES = {
    "TARGET_ENV", "ENV_FILE", "API_BASE_URL", "BACKUP_FILE", "UPLOADS_ARCHIVE", "BASE_BACKUP", "WAL_ARCHIVE",
    "TARGET_TIME", "RECOVERY_TARGET", "DRILL_REPORT_DIR", "SKIP_BACKUP", "WAL_SYNC_TARGET", "DRTUI_CONFIG",
    "CONFIRM_PITR_RESTORE", "CONFIRM_STAGING_RESTORE", "CONFIRM_DRILL", "PGPASSWORD",
    # boto3's own environment: a test that wants the S3 server passes `s3.env`
    "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist's `--dist loadgroup`, a module's tests stay on one worker (they share module-scoped
    worlds), and every docker test on one worker (one engine, one image build). Run after xdist's hook, the
    groups were never seen: tests were spread one by one and every module world was built again per test.
    A module that sets `SPREAD_TESTS = True` (each case builds its own world) has its tests spread."""
    for item in items:
        in_docker = "tests/docker/" in str(item.path).replace(os.sep, "/")
        spread = getattr(getattr(item, "module", None), "SPREAD_TESTS", False)
        group = item.nodeid if spread else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group("docker" if in_docker else group))


@pytest.fixture(autouse=True)
def _process_umask() -> Iterator[None]:
    """drtui's main sets the process umask (027, its files are private); a test that calls main in-process
    (click's CliRunner) must not hand that on to the tests after it in the same worker."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)
