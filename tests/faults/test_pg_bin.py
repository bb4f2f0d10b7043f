"""A wrong or missing pg_bin, wherever it is set (the config, the sandbox's DRTUI_PG_BIN): one message naming
the path, the program and the package that provides it, and nothing touched."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from drtui.core.errors import PostgresError
from drtui.core.postgres import LocalServer
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui
from tests.faults.conftest import FaultWorld, assert_message, leftovers, make_fault_world


@pytest.fixture(scope="module")
def world() -> Iterator[FaultWorld]:
    """One world for the module: every case reads a copy of its config and must leave it as it was."""
    with Sandbox() as sandbox:
        world = make_fault_world(sandbox)
        world.before()
        yield world


def config_with_pg_bin(world: FaultWorld, pg_bin: Path, name: str, env: str = "production") -> Path:
    """A copy of the world's config with one environment's pg_bin changed."""
    sandbox = world.sandbox
    head, _, staging = sandbox.config_path.read_text().partition("[environments.staging]")
    old = f'pg_bin = "{sandbox.env(env).pg_bin}"'
    if env == "production":
        head = head.replace(old, f'pg_bin = "{pg_bin}"', 1)
    else:
        staging = staging.replace(old, f'pg_bin = "{pg_bin}"', 1)
    config = sandbox.root / name
    config.write_text(head + "[environments.staging]" + staging)
    return config


def assert_nothing_touched(world: FaultWorld) -> None:
    world.unchanged()
    assert world.sentinel.present()
    assert leftovers(world.sandbox, "production") == []
    assert leftovers(world.sandbox, "staging") == []


def test_a_pg_bin_that_is_not_a_folder_is_refused_when_the_config_loads(world: FaultWorld) -> None:
    config = config_with_pg_bin(world, Path("/nonexistent/pg/bin"), "drtui-nopgbin.toml")
    result = run_drtui("backup", "base", config=config)
    assert_message(result, str(config), "environments.production.pg_bin", "/nonexistent/pg/bin", "not a folder",
                   "apt-get install postgresql-15", "or set pg_bin", code=2)
    assert_nothing_touched(world)


def test_a_pg_bin_without_the_program_names_the_program_and_the_package(world: FaultWorld) -> None:
    empty = world.sandbox.root / "empty-bin"
    empty.mkdir(exist_ok=True)
    result = run_drtui("backup", "base", config=config_with_pg_bin(world, empty, "drtui-emptybin.toml"))
    assert_message(result, f"pg_bin {empty} has no pg_basebackup", "apt-get install postgresql-15", code=1)
    assert_nothing_touched(world)


def test_a_restore_with_an_empty_pg_bin_is_refused_before_anything_is_touched(world: FaultWorld) -> None:
    empty = world.sandbox.root / "empty-bin"
    empty.mkdir(exist_ok=True)
    config = config_with_pg_bin(world, empty, "drtui-emptybin-staging.toml", env="staging")
    result = run_drtui("restore", "pitr", "--env", "staging", "--recovery-target", "immediate", config=config,
                       env={"CONFIRM_PITR_RESTORE": "YES"})
    assert_message(result, str(empty), "no pg_config or postgres", "apt-get install postgresql-15", code=2)
    assert_nothing_touched(world)


def test_a_server_command_from_an_empty_pg_bin_is_an_error_not_a_stopped_server(world: FaultWorld) -> None:
    empty = world.sandbox.root / "empty-bin"
    empty.mkdir(exist_ok=True)
    server = LocalServer.for_environment(replace(world.sandbox.env("production"), pg_bin=empty))
    with pytest.raises(PostgresError) as raised:
        server.state()  # as root runuser only exits 127: this said "stopped" of a running production
    assert raised.value.title == f"pg_bin {empty} has no pg_ctl"
    assert "apt-get install postgresql-15" in raised.value.hint
    assert_nothing_touched(world)


def test_the_sandbox_with_a_missing_pg_bin_says_so_and_leaves_nothing(open_tmp: Path) -> None:
    root = open_tmp / "sandbox"
    result = run_drtui("sandbox", "up", "--root", str(root), env={"DRTUI_PG_BIN": "/nonexistent/pg/bin"})
    assert_message(result, "/nonexistent/pg/bin", "apt-get install postgresql-15", code=2)
    assert not root.exists()
