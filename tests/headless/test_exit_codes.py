"""The headless face owns the exit codes: an error's kind maps to the documented code, shown in-process with
click's CliRunner where no server is needed."""

from __future__ import annotations

import gzip
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


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A production and a staging without servers (nothing here needs one: each case is refused first), a
    preserved copy beside production's data directory, and a dump that carries a shell command."""
    for folder in ("backups", "wal_archive", "production/data", "production/data.pre_pitr_20260101T000000Z",
                   "staging"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "staging" / ".env").write_text("APP_ENV=staging\n")
    (tmp_path / "drtui.toml").write_text('backup_dir = "backups"\nwal_archive = "wal_archive"\n'
                                         '[environments.production]\ndata_dir = "production/data"\nport = 5432\n'
                                         '[environments.staging]\ndata_dir = "staging/data"\nport = 5433\n'
                                         'env_file = "staging/.env"\n')
    sql = (f"--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\\! id > {tmp_path}/pwned\n"
           "CREATE TABLE t (id int);\n\n--\n-- PostgreSQL database dump complete\n--\n\n")
    (tmp_path / "backups" / "cleaning_20260101T000000Z.sql.gz").write_bytes(gzip.compress(sql.encode()))
    return tmp_path


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(("args", "env", "words"), [
    (["restore", "pitr"], {"TARGET_TIME": "", "TARGET_ENV": "staging"},
     ["TARGET_TIME", "is empty", "RECOVERY_TARGET=latest"]),
    (["rollback", "--env", "production"], {},
     ["rolling back production needs a confirmation", "data.pre_pitr_20260101T000000Z", "CONFIRM_ROLLBACK=YES"]),
    (["rollback"], {}, ["rolling back production needs the environment named", "--env production"]),
    (["backup", "wal-sync"], {"WAL_SYNC_TARGET": "backup@host:/wal"},
     ["WAL_SYNC_TARGET=backup@host:/wal", "remote host:path", "mount"]),
    (["restore", "staging", "--yes"], {"TARGET_ENV": "staging"},
     ["cleaning_20260101T000000Z.sql.gz", "\\! id", "do not restore this file"]),
], ids=["empty_target_time", "unconfirmed_production_rollback", "unnamed_production_rollback",
        "remote_wal_sync_target", "dump_with_a_shell_command"])
def test_a_refusal_is_2_names_what_and_what_to_do_and_touches_nothing(site: Path, args: list[str],
                                                                     env: dict[str, str], words: list[str]) -> None:
    before = _tree(site)
    result = CliRunner().invoke(main, ["--config", str(site / "drtui.toml"), *args],
                                env={"TARGET_ENV": None, "CONFIRM_ROLLBACK": None, **env})
    assert result.exit_code == ExitCode.REFUSED, result.output
    for word in words:
        assert word in result.output, (word, result.output)
    assert _tree(site) == before
