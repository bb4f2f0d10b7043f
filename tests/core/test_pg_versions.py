"""Major versions 13-18: the binaries' version is read from real programs in a real folder tree, every
version has its WAL page magic (the version of a backup whose PG_VERSION was not seen), and a backup of
another version than the environment's pg_bin is planned with the programs of its own version ([pg_bin] N of
the config, else Debian's layout), found by running the real PostgreSQL 15 and 17 programs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from drtui.core.config import parse_config
from drtui.core.errors import ConfigError
from drtui.core.incremental import ChainError, chain_of
from drtui.core.inventory.names import MAGIC_OF_VERSION, WAL_PAGE_MAGIC
from drtui.core.models import BaseBackup, Layout
from drtui.core.planning import Plan, PlanError, make_plan
from drtui.core.programs import pg_major_version, with_programs_of_data
from tests.conftest import run_drtui
from tests.core.test_planning import CLOCK, T0, at, world

VERSIONS = (13, 14, 15, 16, 17, 18)
PG15_BIN = Path("/usr/lib/postgresql/15/bin")
PG17_BIN = Path(os.environ.get("DRTUI_PG17_BIN", "/opt/drtui/pg17/usr/lib/postgresql/17/bin"))
needs_pg17 = pytest.mark.skipif(not (PG17_BIN / "postgres").exists() and not os.environ.get("CI"),
                                reason=f"no PostgreSQL 17 at {PG17_BIN} (scripts/install-pg17 installs it)")


def _program(folder: Path, name: str, output: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / name
    program.write_text(f"#!/bin/sh\necho '{output}'\n")
    program.chmod(0o755)


@pytest.mark.parametrize("version", VERSIONS)
def test_pg_config_names_the_major_version(tmp_path: Path, version: int) -> None:
    bin_dir = tmp_path / "usr/lib/postgresql" / str(version) / "bin"
    _program(bin_dir, "pg_config", f"PostgreSQL {version}.3 (Debian {version}.3-1)")
    assert pg_major_version(bin_dir) == version


@pytest.mark.parametrize("version", VERSIONS)
def test_postgres_dash_v_when_pg_config_is_missing(tmp_path: Path, version: int) -> None:
    bin_dir = tmp_path / f"opt/drtui/pg{version}/bin"
    _program(bin_dir, "postgres", f"postgres (PostgreSQL) {version}.1")
    assert pg_major_version(bin_dir) == version


def test_a_folder_without_programs_is_refused_with_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        pg_major_version(tmp_path)
    assert str(tmp_path) in caught.value.title
    assert "pg_bin" in caught.value.hint


@pytest.mark.parametrize("version", VERSIONS)
def test_every_supported_version_has_its_wal_page_magic(version: int) -> None:
    assert WAL_PAGE_MAGIC[MAGIC_OF_VERSION[version]] == version


def _plan(version: int, pg_bins: dict[int, Path], env_pg_bin: Path = PG15_BIN) -> Plan:
    """A plan of backups of `version` for an environment whose pg_bin is `env_pg_bin` (its version is run)."""
    config, env, inventory = world()
    env = dataclasses.replace(env, pg_bin=env_pg_bin)
    inventory.base_backups = [dataclasses.replace(b, pg_version=version) for b in inventory.base_backups]
    config = dataclasses.replace(config, environments={"staging": env}, pg_bins=pg_bins)
    return make_plan(config, env, at(2.5), clock=CLOCK, inventory=inventory, free_bytes=10**9)


@needs_pg17
def test_a_backup_of_another_version_is_planned_with_the_programs_of_pg_bin_n() -> None:
    plan = _plan(17, {17: PG17_BIN})
    assert plan.pg_bin == PG17_BIN
    assert Plan.from_json(plan.to_json()) == plan
    assert f"  programs     {PG17_BIN} (PostgreSQL 17)" in plan.describe()


def test_the_environments_own_pg_bin_is_not_written_into_the_plan() -> None:
    plan = _plan(15, {})
    assert plan.pg_bin is None and "pg_bin" not in plan.to_json()


def test_without_pg_bin_n_the_refusal_names_the_key_and_every_folder_tried(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        _plan(17, {13: tmp_path})  # another version's key is not tried
    title = caught.value.title
    assert "base backup basebackup_new.tar.gz is PostgreSQL 17: no PostgreSQL 17 programs" in title
    assert f"{PG15_BIN} (pg_bin of 'staging': PostgreSQL 15)" in title
    assert "/usr/lib/postgresql/17/bin (Debian's layout: no programs)" in title
    assert str(tmp_path) not in title
    assert '[pg_bin] 17 = "/usr/lib/postgresql/17/bin"' in caught.value.hint


def test_a_pg_bin_n_of_another_version_is_refused_with_what_it_holds() -> None:
    with pytest.raises(PlanError) as caught:
        _plan(17, {17: PG15_BIN})
    assert f"{PG15_BIN} (pg_bin.17: PostgreSQL 15)" in caught.value.title


def test_a_pg_bin_that_holds_no_programs_is_refused_not_passed_over(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:  # the config is wrong: another version's folder would hide it
        _plan(15, {}, env_pg_bin=tmp_path)
    assert str(tmp_path) in caught.value.title and "no pg_config or postgres" in caught.value.title


@needs_pg17
@pytest.mark.parametrize(("on_disk", "expected"), [("17", PG17_BIN), ("15", PG15_BIN)])
def test_the_programs_follow_the_version_of_the_data_directory(tmp_path: Path, on_disk: str,
                                                                expected: Path) -> None:
    """What promote, advance and the undo of a stop use: a restored 17 copy takes [pg_bin] 17; the old 15 data
    put back takes the environment's own again, even when the run's env had the backup's programs."""
    config, env, _ = world()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "PG_VERSION").write_text(on_disk + "\n")
    for pg_bin in (PG15_BIN, PG17_BIN):
        env = dataclasses.replace(env, data_dir=data_dir, pg_bin=pg_bin)
        config = dataclasses.replace(config, environments={"staging": env}, pg_bins={17: PG17_BIN, 15: PG15_BIN})
        assert with_programs_of_data(config, env, on_host=True).pg_bin == expected


def test_without_a_data_directory_the_environments_programs_stay(tmp_path: Path) -> None:
    config, env, _ = world()
    env = dataclasses.replace(env, data_dir=tmp_path / "gone", pg_bin=PG15_BIN)
    assert with_programs_of_data(config, env, on_host=True) == env


def test_the_config_reads_pg_bin_per_major_version(tmp_path: Path) -> None:
    (tmp_path / "pg17").mkdir()
    config = parse_config({"environments": {"staging": {}}, "pg_bin": {"17": "pg17"}}, tmp_path / "drtui.toml")
    assert config.pg_bins == {17: tmp_path / "pg17"}


@pytest.mark.parametrize(("table", "words"), [
    ({"17": "missing"}, ["pg_bin.17 = ", "missing' is not a folder", "PostgreSQL 17's bin folder"]),
    ({"pg17": "."}, ["pg_bin.pg17 is not a PostgreSQL major version", "[pg_bin] 17 = "]),
    ("/usr/lib/postgresql/17/bin", ["pg_bin must be a table of major versions"]),
])
def test_a_bad_pg_bin_table_names_the_key_and_what_to_write(tmp_path: Path, table, words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"environments": {"staging": {}}, "pg_bin": table}, tmp_path / "drtui.toml")
    text = str(caught.value)
    assert str(tmp_path / "drtui.toml") in text
    for word in words:
        assert word in text


@needs_pg17
def test_init_check_says_which_pg_bin_folder_holds_its_version(tmp_path: Path) -> None:
    config = tmp_path / "drtui.toml"
    config.write_text(f'[environments.staging]\ndata_dir = "{tmp_path / "data"}"\n\n'
                      f'[pg_bin]\n15 = "{PG15_BIN}"\n17 = "{PG17_BIN}"\n')
    good = run_drtui("init", "--check", "--output", str(config))
    assert good.exit_code == 0, good.output
    assert (f"[pg_bin] ok\n  pg_bin.15: {PG15_BIN} (PostgreSQL 15)\n  pg_bin.17: {PG17_BIN} (PostgreSQL 17)"
            in good.stdout)
    assert f"would: restore: a base backup of PostgreSQL 17 runs with {PG17_BIN}" in good.stdout

    config.write_text(config.read_text().replace(f'17 = "{PG17_BIN}"', f'17 = "{PG15_BIN}"')
                      .replace(f'15 = "{PG15_BIN}"', f'15 = "{tmp_path}"'))
    bad = run_drtui("init", "--check", "--output", str(config))
    assert bad.exit_code == 1, bad.output
    assert f"[pg_bin] PROBLEM\n  pg_bin.15: {tmp_path} holds no PostgreSQL programs\n" in bad.stdout
    assert f"pg_bin.17: {PG15_BIN} holds PostgreSQL 15, not 17" in bad.stdout


def _backup(name: str, version: int, start: int, parent: int | None = None) -> BaseBackup:
    return BaseBackup(path=Path("/backups") / name, layout=Layout.DIRECTORY, label="x", start_lsn=start,
                      start_wal_file="000000010000000000000002", checkpoint_lsn=start, start_time=T0,
                      timeline=1, pg_version=version, size_bytes=0, file_size=0,
                      incremental_from_lsn=parent, incremental_from_tli=1 if parent else None)


@pytest.mark.parametrize("version", [0, 13, 15, 16])
def test_an_incremental_chain_below_postgresql_17_is_refused(version: int) -> None:
    full, incremental = _backup("full", version, 0x2000028), _backup("incr", version, 0x4000028, 0x2000028)
    with pytest.raises(ChainError) as caught:
        chain_of(incremental, [full, incremental])
    assert "base backup incr says it is incremental, but it is PostgreSQL" in caught.value.title
    assert "incremental backups exist from PostgreSQL 17 on" in caught.value.title
    assert chain_of(full, [full, incremental]) == (full,)  # a full backup of any version needs no chain


def test_a_chain_of_two_major_versions_is_refused() -> None:
    full, incremental = _backup("full", 18, 0x2000028), _backup("incr", 17, 0x4000028, 0x2000028)
    with pytest.raises(ChainError) as caught:
        chain_of(incremental, [full, incremental])
    assert "base backup incr (PostgreSQL 17) builds on full, which is PostgreSQL 18" in caught.value.title
    assert chain_of(dataclasses.replace(incremental, pg_version=18), [full])[0] == full
