from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drtui.core.config import load_config, parse_duration, read_env_file
from drtui.core.errors import ConfigError
from drtui.core.secrets import MASK, redact, redact_data
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


@pytest.mark.parametrize("content", [
    b"APP_ENV=prod # production host\n",
    b'APP_ENV="prod" # comment\n',
    b"export\tAPP_ENV=prod\n",
    b"export   APP_ENV=prod\n",
    b"\xef\xbb\xbfAPP_ENV=prod\n",
    b"# header\r\nAPP_ENV=prod\r\nOTHER=x\r\n",
    b"  APP_ENV = 'prod'  \n",
])
def test_env_files_are_read_as_compose_and_dotenv_read_them(tmp_path: Path, content: bytes) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_bytes(content)
    assert read_env_file(env_file)["APP_ENV"] == "prod"


def test_a_missing_or_undecodable_env_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as caught:
        read_env_file(tmp_path / "missing.env")
    assert str(tmp_path / "missing.env") in caught.value.title and "env_file" in caught.value.hint
    (tmp_path / "latin1.env").write_bytes(b"APP_ENV=\xe9t\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_env_file(tmp_path / "latin1.env")


def test_env_file_values_named_like_secrets_and_url_passwords_are_masked(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("JWT_SECRET=jwt-value-1\nAPI_TOKEN=tok-value-2\n"
                                      "DATABASE_URL=postgresql://app:dsn-value-3@db/x\nAPP_ENV=staging\n")
    read_env_file(tmp_path / "app.env")
    assert redact("jwt-value-1 tok-value-2 dsn-value-3 staging") == "****** ****** ****** staging"


@pytest.mark.parametrize("text", ["stop --password=abc", "PGPASSWORD=xyz", 'password="a b"',
                                  "GET http://user:pw-1@host/healthz", "host=db password=secret1"])
def test_masked_data_serializes_to_valid_json_without_the_secret(text: str) -> None:
    data = {"lines": [text], "after": "kept", "nested": {"cmd": (text,)}}
    line = json.dumps(redact_data(data))
    parsed = json.loads(line)
    assert parsed["after"] == "kept" and MASK in parsed["lines"][0] and MASK in parsed["nested"]["cmd"][0]
    for secret in ("abc", "xyz", "a b", "pw-1", "secret1"):
        assert secret not in line


def test_a_journal_line_stays_json_when_a_password_ends_a_string(tmp_path: Path) -> None:
    from drtui.core.events import StepLogged
    from drtui.core.journal import Journal, read_events

    journal = Journal(tmp_path / "run.jsonl")
    journal.append(StepLogged(datetime.now(UTC), "smoke", ["PGPASSWORD=ends-the-line"], "engine"))
    journal.close()
    [event] = read_events(tmp_path / "run.jsonl")
    assert isinstance(event, StepLogged) and event.lines == ["PGPASSWORD=******"]


def test_huge_durations_are_refused_in_words(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace('staging_rto = "90m"', 'staging_rto = "99999999999999999999d"'))
    with pytest.raises(ConfigError, match=r"objectives.staging_rto = '99999999999999999999d' is too long"):
        load_config(str(path), environ={})


def test_a_config_of_a_repository_alone_is_read_only(tmp_path: Path) -> None:
    config = load_config(str(_write(tmp_path, '[repository]\nurl = "s3://fleet-bucket/cleaning/"\n')))
    assert config.read_only and config.environments == {}
    with pytest.raises(ConfigError) as refused:
        config.environment()
    assert "a read-only config (it names only a [repository])" in refused.value.title
    assert "`drtui status`" in refused.value.hint
    with pytest.raises(ConfigError) as empty:
        load_config(str(_write(tmp_path, 'backup_dir = "b"\n')))
    assert "[environments] is missing or empty" in empty.value.title and "[repository] alone" in empty.value.hint
    assert not load_config(str(_write(tmp_path, GOOD))).read_only


@pytest.mark.parametrize(("table", "words"), [
    ("keep = 0", "retention.keep = 0 is not a count of backups"),
    ('keep = "7"', "retention.keep = '7' is not a count of backups"),
    ("keep_days = -1", "retention.keep_days = -1 is not a number of days"),
    ("keep_weeks = 2", "unknown key 'retention.keep_weeks'"),
    ("", "[retention] says nothing to keep"),
])
def test_bad_retention_is_named(tmp_path: Path, table: str, words: str) -> None:
    with pytest.raises(ConfigError) as bad:
        load_config(str(_write(tmp_path, GOOD + f"\n[retention]\n{table}\n")))
    assert words in bad.value.title


def test_retention_is_read(tmp_path: Path) -> None:
    config = load_config(str(_write(tmp_path, GOOD + "\n[retention]\nkeep = 7\nkeep_days = 14\n")))
    assert (config.retention.keep, config.retention.keep_days) == (7, 14.0)
    assert load_config(str(_write(tmp_path, GOOD))).retention is None
