"""`make demo` / `make test` on a machine that lacks what they need: scripts/setup-host, run for real.

The machine running the tests has everything installed, so the cases take it away: an unprivileged user (who
cannot install), DRTUI_PG_BIN pointed at a folder with no PostgreSQL, and a PATH without apt-get.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from drtui.headless.sandbox_commands import demo_world
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "setup-host"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"  # root's own PATH may be private

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs the script as the unprivileged user nobody")


def as_nobody(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": SYSTEM_PATH, "HOME": "/nonexistent", **env}
    return subprocess.run(["runuser", "-u", "nobody", "--", "env", "-i", *(f"{k}={v}" for k, v in environ.items()),
                           *argv], capture_output=True, text=True, cwd=cwd, timeout=60, check=False)


@pytest.fixture
def checkout(open_tmp: Path) -> Path:
    """The files `make demo` reads before the venv exists, in a folder nobody may read but not write."""
    shutil.copy(REPO / "Makefile", open_tmp)
    shutil.copy(REPO / "pyproject.toml", open_tmp)
    shutil.copytree(REPO / "scripts", open_tmp / "scripts")
    return open_tmp


def test_make_demo_without_postgresql_as_a_user_prints_the_install_command_and_exits_2(checkout: Path) -> None:
    done = as_nobody(["make", "demo"], checkout, DRTUI_PG_BIN="/nonexistent/pg/bin")
    assert done.returncode == 2, done.stderr
    assert "/nonexistent/pg/bin/postgres not found" in done.stderr
    assert "sudo apt-get update && sudo apt-get install -y --no-install-recommends postgresql-15" in done.stderr
    assert "then `make demo` again" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (checkout / ".venv").exists()  # stopped before the venv


def test_make_test_names_every_missing_package(checkout: Path) -> None:
    done = as_nobody(["/bin/bash", str(checkout / "scripts" / "setup-host"), "test"], checkout,
                     DRTUI_PG_BIN="/nonexistent/pg/bin", PATH=str(_path_with(checkout, "id", "python3", "apt-get")))
    assert done.returncode == 2, done.stderr
    command = done.stderr.splitlines()[-1]
    assert command.startswith("  sudo apt-get update && sudo apt-get install")
    for package in ("postgresql-15", "tmux", "docker.io", "zstd", "lz4", "curl"):
        assert package in command.split()
    assert "python3" not in command.split()  # this one is there


def test_without_apt_get_it_lists_what_to_install(checkout: Path) -> None:
    done = as_nobody(["/bin/bash", str(checkout / "scripts" / "setup-host"), "demo"], checkout,
                     DRTUI_PG_BIN="/nonexistent/pg/bin", PATH=str(_path_with(checkout, "id", "python3")))
    assert done.returncode == 2, done.stderr
    assert "PostgreSQL 15 server binaries: /nonexistent/pg/bin/postgres not found" in done.stderr
    assert "no apt-get" in done.stderr and "README" in done.stderr
    assert "sudo" not in done.stderr


def test_on_a_machine_that_has_everything_it_does_nothing() -> None:
    done = subprocess.run([str(SETUP), "test"], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_a_bad_profile_is_refused() -> None:
    done = subprocess.run([str(SETUP), "prod"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "usage:" in done.stderr


def test_ci_runs_the_readmes_make_test_and_installs_nothing_itself() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "apt-get" not in ci and "dockerd" not in ci
    makefile = (REPO / "Makefile").read_text()
    assert "scripts/setup-host test" in makefile and "scripts/setup-host demo" in makefile


def test_the_engine_wrapper_passes_the_exit_code_through(checkout: Path) -> None:
    done = as_nobody([str(checkout / "scripts" / "with-docker-engine"), "sh", "-c", "exit 3"], checkout)
    assert done.returncode == 3


def _path_with(folder: Path, *commands: str) -> Path:
    """A PATH folder holding only `commands` (those this machine has)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in commands:
        found = shutil.which(name, path=SYSTEM_PATH)
        if found:
            (bin_dir / name).symlink_to(os.path.realpath(found))
    return bin_dir


def test_sandbox_up_prints_a_teardown_command_that_works_as_printed(open_tmp: Path) -> None:
    root = open_tmp / "sandbox"
    result = run_drtui("sandbox", "up", "--no-traffic", "--root", str(root))
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if "tear it down with:" in line)
    command = line.split("tear it down with:", 1)[1].strip()
    assert command.startswith("/")  # the venv's drtui is not on a `make demo` user's PATH
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": SYSTEM_PATH, "HOME": os.environ.get("HOME", "/root")})
    assert done.returncode == 0, done.stderr
    assert f"sandbox in {root} is down and removed" in done.stdout
    assert not root.exists()
    assert Sandbox(root).leftover_processes() == []


def test_the_demo_twice_reuses_the_running_sandbox_and_replaces_a_stopped_one(
        open_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = open_tmp / "sandbox"
    try:
        first = demo_world(root)
        assert "building a sandbox" in capsys.readouterr().err
        rows = first.counts()["bookings"]
        again = demo_world(root)
        assert f"reusing the running sandbox in {root}" in capsys.readouterr().err
        assert again.counts()["bookings"] >= rows  # the same world, traffic still writing

        again.server("staging").stop()  # e.g. after a reboot
        replaced = demo_world(root)
        said = capsys.readouterr().err
        assert f"replacing the sandbox in {root}: its servers are not running" in said
        assert "building a sandbox" in said
        assert replaced.counts("staging")["bookings"] > 0
        assert list(replaced.backup_dir.glob("basebackup_*.tar.gz"))  # something to recover again
    finally:
        Sandbox(root).down()
    assert Sandbox(root).leftover_processes() == []
