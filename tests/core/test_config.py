from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from drtui.core.config import load_config, parse_duration
from drtui.core.errors import ConfigError
from tests.conftest import run_drtui

GOOD = """
backup_dir = "backups"
wal_archive = "/var/lib/postgresql/wal_archive"
[objectives]
staging_rto = "90m"
wal_sync_max_age = "10m"
[environments.staging]
data_dir = "staging/data"
port = 5433
env_file = ".env"
[environments.production]
"""


@pytest.mark.parametrize(("text", "expected"), [
    ("90m", timedelta(minutes=90)), ("4h", timedelta(hours=4)), ("26h", timedelta(hours=26)),
    ("1h30m", timedelta(minutes=90)), ("45s", timedelta(seconds=45)), ("2d", timedelta(days=2)),
])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "ninety minutes", "4x", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drtui.toml"
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = load_config(str(_write(tmp_path, GOOD)), environ={})
    assert config.backup_dir == tmp_path / "backups"
    assert config.wal_archive == Path("/var/lib/postgresql/wal_archive")
    assert config.wal_sync_heartbeat == tmp_path / "ops/state/wal_sync_last_ok.txt"
    staging = config.environment("staging")
    assert staging.data_dir == tmp_path / "staging/data"
    assert staging.port == 5433
    assert config.objectives.staging_rto == timedelta(minutes=90)
    assert config.objectives.basebackup_max_age == timedelta(hours=26)  # the runbook's default


def test_config_is_found_by_option_then_variable_then_cwd(tmp_path: Path, monkeypatch) -> None:
    here = _write(tmp_path, GOOD)
    other = tmp_path / "other"
    other.mkdir()
    via_env = _write(other, GOOD)
    monkeypatch.chdir(tmp_path)
    assert load_config(None, environ={}).path == here
    assert load_config(None, environ={"DRTUI_CONFIG": str(via_env)}).path == via_env
    assert load_config(str(here), environ={"DRTUI_CONFIG": str(via_env)}).path == here


def test_runbook_variables_override_the_target_environment(tmp_path: Path) -> None:
    config = load_config(str(_write(tmp_path, GOOD)), environ={})
    overridden = config.with_overrides("staging", {"ENV_FILE": "/srv/staging.env",
                                                   "API_BASE_URL": "http://stage:8000",
                                                   "DRILL_REPORT_DIR": "/srv/reports"})
    staging = overridden.environment("staging")
    assert staging.env_file == Path("/srv/staging.env")
    assert staging.api_base_url == "http://stage:8000"
    assert overridden.report_dir == Path("/srv/reports")
    assert overridden.environment("production").api_base_url is None


@pytest.mark.parametrize(("text", "words"), [
    (GOOD.replace('staging_rto = "90m"', 'staging_rto = "soon"'), ["objectives.staging_rto", "'soon'"]),
    (GOOD.replace("port = 5433", "port = 99999"), ["environments.staging.port", "99999"]),
    (GOOD.replace("port = 5433", 'prot = 5433'), ["environments.staging.prot", "unknown key"]),
    (GOOD.replace('backup_dir = "backups"', 'backup_dirs = "x"'), ["backup_dirs", "unknown key"]),
    (GOOD + "\n[environments.dr]\nbackend = \"ssh\"\n", ["environments.dr.backend", "'ssh'"]),
    ("backup_dir = [", ["not valid TOML"]),
])
def test_config_errors_name_the_file_the_key_and_the_value(tmp_path: Path, text: str, words: list[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), environ={})
    message = caught.value.title
    assert str(path) in message
    for word in words:
        assert word in message


def test_a_bad_config_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("port = 5433", "port = 'x'"))
    result = run_drtui("backup", "dump", "--env", "staging", config=path)
    assert result.exit_code == 2
    assert "environments.staging.port = 'x'" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_unknown_environment_lists_the_configured_ones(tmp_path: Path) -> None:
    result = run_drtui("backup", "dump", config=_write(tmp_path, GOOD), env={"TARGET_ENV": "qa"})
    assert result.exit_code == 2
    assert "no environment named 'qa'" in result.stderr
    assert "production, staging" in result.stderr


def test_env_file_values_are_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# comment\nexport APP_ENV=prod\nPOSTGRES_PASSWORD='quoted secret'\n")
    config = load_config(str(_write(tmp_path, GOOD)), environ={})
    values = config.environment("staging").env_values()
    assert values == {"APP_ENV": "prod", "POSTGRES_PASSWORD": "quoted secret"}
