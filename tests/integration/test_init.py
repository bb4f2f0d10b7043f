"""`drtui init` against a live sandbox: it finds the sandbox's clusters, env files, backup folder and WAL archive
from the running postmasters, writes a config equal in substance to the sandbox's own, and `--check` says
what each environment would do."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from drtui.core import discover
from drtui.core.config import load_config, parse_config
from drtui.sandbox import Sandbox
from drtui.sandbox.world import PASSWORD
from tests.conftest import run_drtui

SAME = ("backend", "data_dir", "pg_bin", "os_user", "port", "database", "user", "env_file", "uploads_dir")


@pytest.fixture
def written(shared_sandbox: Sandbox, open_tmp: Path) -> Path:
    root = shared_sandbox.root
    output = open_tmp / "drtui.toml"
    result = run_drtui("init", "--dir", str(root), "--only-under", str(root), "--output", str(output), "--no-docker")
    assert result.exit_code == 0, result.output
    assert f"wrote {output}" in result.stdout
    assert PASSWORD not in result.output + output.read_text()  # DATABASE_URL was read for its database only
    return output


def test_init_on_the_sandbox_writes_a_config_equal_in_substance_to_its_own(shared_sandbox: Sandbox,
                                                                            written: Path) -> None:
    own, found = shared_sandbox.config(), load_config(str(written), environ={})
    assert sorted(found.environments) == ["production", "staging"]
    for name in ("production", "staging"):
        mine, theirs = found.environment(name), own.environment(name)
        assert {k: getattr(mine, k) for k in SAME} == {k: getattr(theirs, k) for k in SAME}
        assert mine.env_values()["APP_ENV"] == theirs.env_values()["APP_ENV"]
        # the sandbox names production by 127.0.0.1: init takes the socket directory both servers listen on
        assert mine.host == str(shared_sandbox.root / "run" / name)
    assert (found.backup_dir, found.wal_archive, found.report_dir) == (own.backup_dir, own.wal_archive,
                                                                      own.report_dir)
    text = written.read_text()
    assert "# found: archive_command of" in text  # the WAL archive was read from production's settings
    assert "# api_base_url = " in text and "not found" in text  # left commented, with drtui's default


def test_init_check_says_what_each_environment_would_do(written: Path) -> None:
    result = run_drtui("init", "--check", "--output", str(written))
    assert result.exit_code == 0, result.output
    production, staging = result.stdout.split("[production] ok")[1].split("[staging] ok")
    assert "server: running" in production and "connects: postgres@" in production
    assert "APP_ENV=prod" in production and "CONFIRM_PITR_RESTORE=YES" in production
    assert "drtui backup base" in production
    assert "APP_ENV=staging" in staging and "TARGET_ENV=staging" in staging
    assert PASSWORD not in result.output


def test_init_check_names_a_server_it_cannot_reach_and_exits_1(written: Path, open_tmp: Path) -> None:
    data = tomllib.loads(written.read_text())
    port = data["environments"]["staging"]["port"]
    broken = open_tmp / "wrong-port.toml"
    broken.write_text(written.read_text().replace(f"port = {port} ", "port = 1 ", 1))
    result = run_drtui("init", "--check", "--output", str(broken))
    assert result.exit_code == 1, result.output
    assert "[staging] PROBLEM" in result.stdout and ":1/cleaning" in result.stdout
    assert "[production] ok" in result.stdout


def test_init_check_of_a_bad_file_names_it_and_exits_2(open_tmp: Path) -> None:
    bad = open_tmp / "bad.toml"
    bad.write_text('[environments.production]\nport = "x"\n')
    result = run_drtui("init", "--check", "--output", str(bad))
    assert result.exit_code == 2
    assert str(bad) in result.stderr and "environments.production.port" in result.stderr


def test_init_never_overwrites_a_file_without_force(shared_sandbox: Sandbox, written: Path) -> None:
    before = written.read_bytes()
    root = shared_sandbox.root
    args = ("init", "--dir", str(root), "--only-under", str(root), "--output", str(written), "--no-docker")
    result = run_drtui(*args)
    assert result.exit_code == 2
    assert f"{written} already exists: not overwritten" in result.stderr and "--force" in result.stderr
    assert written.read_bytes() == before
    written.write_text("# mine\n")
    result = run_drtui(*args, "--force")
    assert result.exit_code == 0, result.output
    assert "[environments.production]" in written.read_text()
    assert not list(written.parent.glob(".*.partial"))


def test_guessed_values_are_marked_and_nothing_found_still_loads(tmp_path: Path) -> None:
    found = discover.Discovery(tmp_path)
    text = discover.render(found, "header")
    config = parse_config(tomllib.loads(text), tmp_path / "drtui.toml")
    assert list(config.environments) == ["production"]  # every key commented: drtui's defaults
    found.environments.append(discover.FoundEnvironment(
        discover.Found("staging", "from the data directory's path /srv/stag/data", guessed=True),
        {"backend": discover.Found("local", "pg_lsclusters"), "port": discover.Found(5433, "pg_lsclusters")}))
    text = discover.render(found, "header")
    assert "[environments.staging]  # guessed: from the data directory's path /srv/stag/data" in text
    assert "port = 5433" in text


@pytest.mark.skipif(not Path("/var/lib/postgresql/15/main").is_dir(), reason="no Debian cluster 15/main here")
def test_init_finds_debians_registered_cluster(tmp_path: Path) -> None:
    found = discover.discover(tmp_path, only_under=Path("/var/lib/postgresql/15"), search_docker=False)
    [env] = found.environments
    assert env.value("data_dir") == Path("/var/lib/postgresql/15/main")
    assert env.value("pg_bin") == Path("/usr/lib/postgresql/15/bin")
    assert env.value("port") == 5432 and env.value("os_user") == "postgres"
    assert env.name.guessed  # no env file says which environment it is
    text = discover.render(found, "header")
    assert "[environments.production]  # guessed: from the data directory's path" in text
    parse_config(tomllib.loads(text), tmp_path / "drtui.toml")
