"""The headless face owns the exit codes: an error's kind maps to the documented code, shown in-process with
click's CliRunner where no server is needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from drtui.cli import main
from drtui.core.errors import ConfigError, DrError, UsageError
from drtui.core.gates import GateRefused
from drtui.core.lock import LockBusy
from drtui.core.planning import PlanError
from drtui.headless.output import ExitCode, exit_code_for


@pytest.mark.parametrize(("error", "code"), [
    (DrError("a step failed"), ExitCode.FAILED),
    (ConfigError("bad key"), ExitCode.REFUSED),
    (UsageError("bad argument"), ExitCode.REFUSED),
    (GateRefused("APP_ENV=prod"), ExitCode.REFUSED),
    (PlanError("outside the window"), ExitCode.REFUSED),
    (LockBusy("a run holds staging"), ExitCode.REFUSED),
])
def test_each_kind_of_error_has_its_code(error: DrError, code: ExitCode) -> None:
    assert exit_code_for(error) is code


@pytest.fixture
def bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "drtui.toml"
    path.write_text('backup_dir = "b"\nnot_a_key = 1\n[environments.production]\n')
    return path


def test_a_bad_config_is_2_and_names_the_key(bad_config: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(bad_config), "inventory"])
    assert result.exit_code == 2 and "not_a_key" in result.output


def test_status_check_is_unknown_on_a_bad_config(bad_config: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(bad_config), "status", "--check"])
    assert result.exit_code == 3 and result.output.startswith("DRTUI UNKNOWN - ")


def test_a_bad_time_is_2(bad_config: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('backup_dir = "b"\n[environments.production]\n')
    result = CliRunner().invoke(main, ["--config", str(good), "events", "--around", "someday"])
    assert result.exit_code == 2 and "someday" in result.output
