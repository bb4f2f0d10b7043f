"""Major versions 13-18: the binaries' version is read from real programs in a real folder tree, and every
version has its WAL page magic (the version of a backup whose PG_VERSION was not seen)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drtui.core.inventory.names import MAGIC_OF_VERSION, WAL_PAGE_MAGIC
from drtui.core.planning import PlanError, pg_major_version

VERSIONS = (13, 14, 15, 16, 17, 18)


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
