"""Golden files of every `--json` shape and of the `--dry-run` text, from the real console program against one
real sandbox (built once for the module: backups, the dry-runs, a dump restore and a PITR into staging, a drill,
the inventory, status, drills and events of the world they left, then a rollback of staging). What varies
between runs is masked (tests/golden.py); `pytest --snapshot-update` regenerates the files on purpose."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from drtui.sandbox import Sandbox
from tests.conftest import Result, run_drtui
from tests.golden import JsonGolden, TextGolden, normalize, normalize_text

STAGING = {"TARGET_ENV": "staging"}
COMMANDS: dict[str, tuple[list[str], dict[str, str]]] = {  # golden name: (arguments, environment)
    "backup_dump": (["backup", "dump", "--json"], {}),
    "backup_base": (["backup", "base", "--json"], {}),
    "backup_wal_sync": (["backup", "wal-sync", "--json"], {}),
    "backup_verify": (["backup", "verify", "--json"], {}),
    "restore_pitr_dry_run": (["restore", "pitr", "--recovery-target", "latest", "--dry-run"], STAGING),
    "restore_pitr_dry_run_json": (["restore", "pitr", "--recovery-target", "latest", "--dry-run", "--json"],
                                  STAGING),
    "restore_staging_dry_run": (["restore", "staging", "--dry-run"], STAGING),
    "restore_staging_dry_run_json": (["restore", "staging", "--dry-run", "--json"], STAGING),
    "restore_staging": (["restore", "staging", "--yes", "--json"], STAGING),
    "restore_pitr": (["restore", "pitr", "--recovery-target", "latest", "--yes", "--json"], STAGING),
    "drill": (["drill", "--json"], {**STAGING, "CONFIRM_DRILL": "YES"}),
    "inventory": (["inventory", "--json"], {}),
    "status": (["status", "--json"], {}),
    "drills": (["drills", "--json"], {}),
    "events": (["events", "--around", "now", "--span", "10m", "--json"], {}),
    "rollback": (["rollback", "--env", "staging", "--json"], {}),
}


@pytest.fixture(scope="module")
def outputs() -> Iterator[tuple[Sandbox, dict[str, Result]]]:
    with Sandbox() as world:
        for _ in range(3):
            world.insert("bookings")
        done: dict[str, Result] = {}
        for name, (args, env) in COMMANDS.items():
            done[name] = run_drtui(*args, config=world.config_path, env=env)
            if name.startswith("backup_base"):
                world.insert("bookings")
                world.switch_wal()
        yield world, done


@pytest.mark.parametrize("name", [name for name in COMMANDS if not name.endswith("_dry_run")])
def test_each_json_shape_is_as_golden(outputs: tuple[Sandbox, dict[str, Result]], name: str, snapshot) -> None:
    world, done = outputs
    result = done[name]
    assert result.exit_code in (0, 1), result.output  # status and drills say "warning" with 1
    data = normalize(json.loads(result.stdout), [world.root])
    assert snapshot(name=name, extension_class=JsonGolden) == data


@pytest.mark.parametrize("name", [name for name in COMMANDS if name.endswith("_dry_run")])
def test_each_dry_run_text_is_as_golden(outputs: tuple[Sandbox, dict[str, Result]], name: str, snapshot) -> None:
    world, done = outputs
    result = done[name]
    assert result.exit_code == 0, result.output
    assert snapshot(name=name, extension_class=TextGolden) == normalize_text(result.stdout, [world.root])
