"""`drtui init` against the compose test stack: it finds the project, its services and volumes through the
Docker Engine, and the config it writes drives the stack (`--check` connects)."""

from __future__ import annotations

from pathlib import Path

from drtui.core.config import load_config
from drtui.sandbox.compose_world import ComposeWorld
from tests.conftest import run_drtui


def test_init_finds_the_compose_project_its_services_and_volumes(compose_world: ComposeWorld,
                                                                  open_tmp: Path) -> None:
    world = compose_world
    output = open_tmp / "drtui.toml"
    result = run_drtui("init", "--dir", str(world.root), "--only-under", str(world.root), "--output", str(output),
                       "--docker-host", world.base_url, "--compose-project", world.project)
    assert result.exit_code == 0, result.output
    env = load_config(str(output), environ={}).environment("production")
    assert (env.backend, env.project, env.db_service) == ("compose", world.project, "db")
    assert env.app_services == ("api", "jobs", "web")
    assert (env.data_volume, env.wal_volume) == ("pg_data", "pg_wal_archive")
    assert (env.host, env.port, env.docker_host) == ("127.0.0.1", world.db_port, world.base_url)
    assert env.env_file == world.root / "production" / ".env"
    text = output.read_text()
    assert f"volume {world.data_volume}" in text and f"volume {world.wal_volume}" in text
    assert load_config(str(output), environ={}).wal_archive == world.root / "wal_archive"  # the bound folder

    check = run_drtui("init", "--check", "--output", str(output))
    assert "[production]" in check.stdout and "server: running (compose" in check.stdout, check.output
    assert f"connects: postgres@127.0.0.1:{world.db_port}/" in check.stdout
