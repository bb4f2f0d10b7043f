"""A production cluster with two tablespaces, backed up by pg_basebackup -Ft -z and -Fp (with
--tablespace-mapping), restored into staging to a time with exact rows: each tablespace where the plan said
(a mapping in the config, then one on the command line), the one in place kept aside, and rolled back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock, stamp
from drtui.core.extract import ExtractError, extract_base_backup
from drtui.core.inventory import read_base_backup
from drtui.core.models import Layout
from drtui.core.postgres import chown_to, connect, query
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui
from tests.integration.test_extract import _noop


@dataclass
class World:
    sandbox: Sandbox
    scratch: Path
    ft: Path  # the -Ft -z folder, tarred
    fp: Path  # the -Fp folder
    times: list[datetime]  # commits after both backups: 10 rows into a, then 20 into b, then 5 into a


def _counts(sandbox: Sandbox, env: str) -> tuple[int, int]:
    rows = query(sandbox.env(env), "select (select count(*) from a_rows), (select count(*) from b_rows)")
    return rows[0][0], rows[0][1]


def _insert(sandbox: Sandbox, table: str, rows: int) -> datetime:
    with connect(sandbox.env()) as conn:
        conn.execute(f"insert into {table} select generate_series(1, %s)", (rows,))
        return conn.execute("select clock_timestamp()").fetchone()[0]


def _basebackup(sandbox: Sandbox, *args: str) -> None:
    env = sandbox.env()
    subprocess.run([str(env.pg_bin / "pg_basebackup"), "-h", env.host, "-p", str(env.port), "-U", env.user,
                    "--no-password", "-c", "fast", "-X", "stream", *args], check=True,
                   env={**os.environ, "PGPASSWORD": env.password() or ""})


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    scratch = Path(tempfile.mkdtemp(prefix="drtui-tablespaces-"))
    scratch.chmod(0o755)
    try:
        with Sandbox() as sandbox:
            backup.dump(sandbox.config(), sandbox.env(), SystemClock())  # for the restored app's /healthz/backup
            with connect(sandbox.env()) as conn:
                for name, rows in (("a", 100), ("b", 200)):
                    folder = scratch / f"prod_ts_{name}"
                    folder.mkdir()
                    chown_to(folder, sandbox.os_user)
                    conn.execute(f"create tablespace ts_{name} location '{folder}'")
                    conn.execute(f"create table {name}_rows (id int) tablespace ts_{name}")
                    conn.execute(f"insert into {name}_rows select generate_series(1, {rows})")
            now = datetime.now(UTC)
            _basebackup(sandbox, "-D", str(scratch / "ft"), "-Ft", "-z")
            ft = sandbox.backup_dir / f"basebackup_{stamp(now)}.tar"
            subprocess.run(["tar", "-cf", str(ft), "-C", str(scratch / "ft"), "."], check=True)
            fp = sandbox.backup_dir / f"basebackup_{stamp(now + timedelta(seconds=1))}"
            _basebackup(sandbox, "-D", str(fp), "-Fp", *(f"--tablespace-mapping={scratch}/prod_ts_{n}="
                                                         f"{scratch}/fp_ts_{n}" for n in "ab"))
            sandbox.switch_wal()
            times = []
            for table, rows in (("a_rows", 10), ("b_rows", 20), ("a_rows", 5)):
                times.append(_insert(sandbox, table, rows))
                time.sleep(0.3)
            sandbox.switch_wal()
            yield World(sandbox, scratch, ft, fp, times)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _between(world: World, first: int) -> str:
    return (world.times[first] + (world.times[first + 1] - world.times[first]) / 2).isoformat()


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.lstat().st_size for p in folder.rglob("*")}


def test_the_inventory_lists_each_tablespace_and_where_it_was(world: World) -> None:
    ft, fp = read_base_backup(world.ft), read_base_backup(world.fp)
    assert ft.layout is Layout.TAR_FOLDER and fp.layout is Layout.DIRECTORY
    oids = [oid for oid, _ in ft.tablespaces]
    assert len(oids) == 2 and [oid for oid, _ in fp.tablespaces] == oids
    assert [where for _, where in ft.tablespaces] == [f"{world.scratch}/prod_ts_{n}" for n in "ab"]
    assert [where for _, where in fp.tablespaces] == [f"{world.scratch}/fp_ts_{n}" for n in "ab"]


def test_the_ft_folder_on_disk_extracts_each_tablespace_into_its_folder(world: World, open_tmp: Path) -> None:
    folder = read_base_backup(world.scratch / "ft")  # what pg_basebackup -Ft -z wrote, not tarred
    assert folder.layout is Layout.TAR_FOLDER and folder.tablespaces == read_base_backup(world.ft).tablespaces
    with pytest.raises(ExtractError, match="no place given for tablespace"):
        extract_base_backup(folder, open_tmp / "data", world.sandbox.os_user, _noop, threading.Event())
    assert not (open_tmp / "data").exists()
    places = {oid: (open_tmp / f"ts_{oid}", Path(f"/srv/ts_{oid}")) for oid, _ in folder.tablespaces}
    written = extract_base_backup(folder, open_tmp / "data", world.sandbox.os_user, _noop, threading.Event(),
                                  tablespaces=places)
    assert written <= folder.size_bytes <= written + 1024  # all but tablespace_map, which is left out
    for oid, (into, location) in places.items():
        assert os.readlink(open_tmp / "data" / "pg_tblspc" / oid) == str(location)
        assert [p.name[:6] for p in into.iterdir()] == ["PG_15_"] and into.stat().st_mode & 0o777 == 0o700
    assert not (open_tmp / "data" / "tablespace_map").exists() and (open_tmp / "data" / "backup_manifest").exists()


def test_restore_with_tablespaces_to_a_time_keeps_the_old_ones_and_rolls_back(world: World) -> None:
    sandbox, scratch = world.sandbox, world.scratch
    staging = sandbox.env("staging")
    production_before = {n: _listing(scratch / f"prod_ts_{n}") for n in "ab"}
    data_before = _listing(staging.data_dir)

    # Where the backup says (production's own tablespace folders): refused, nothing touched.
    refused = run_drtui("restore", "pitr", "--env", "staging", "--base-backup", str(world.ft), "--target-time",
                        _between(world, 0), config=sandbox.config_path, env={"CONFIRM_PITR_RESTORE": "YES"})
    assert refused.exit_code == 2, refused.output
    assert f"{scratch}/prod_ts_a, which is not empty" in refused.output and "--tablespace-mapping" in refused.output
    assert _listing(staging.data_dir) == data_before
    assert {n: _listing(scratch / f"prod_ts_{n}") for n in "ab"} == production_before
    assert sorted(p.name for p in scratch.iterdir()) == ["fp_ts_a", "fp_ts_b", "ft", "prod_ts_a", "prod_ts_b"]

    # -Ft -z, mapped by the environment's config, to a time between the first and the second commit.
    with sandbox.config_path.open("a") as config:  # [environments.staging] is the file's last table
        config.write(f'tablespace_mapping = {{"{scratch}/prod_ts_a" = "{scratch}/stg_ts_a", '
                     f'"{scratch}/prod_ts_b" = "{scratch}/stg_ts_b"}}\n')
    done = run_drtui("restore", "pitr", "--env", "staging", "--base-backup", str(world.ft), "--target-time",
                     _between(world, 0), config=sandbox.config_path, env={"CONFIRM_PITR_RESTORE": "YES"},
                     timeout=180)
    assert done.exit_code == 0, done.output
    assert _counts(sandbox, "staging") == (110, 200)
    links = {os.readlink(p) for p in (staging.data_dir / "pg_tblspc").iterdir()}
    assert links == {f"{scratch}/stg_ts_{n}" for n in "ab"}
    assert not (staging.data_dir / "tablespace_map").exists()
    assert {n: _listing(scratch / f"prod_ts_{n}") for n in "ab"} == production_before
    first = {n: _listing(scratch / f"stg_ts_{n}") for n in "ab"}

    # -Fp, mapped on the command line onto the same folders, now staging's own: kept aside, then replaced.
    done = run_drtui("restore", "pitr", "--env", "staging", "--base-backup", str(world.fp), "--target-time",
                     _between(world, 1), *(f"--tablespace-mapping={scratch}/fp_ts_{n}={scratch}/stg_ts_{n}"
                                           for n in "ab"),
                     config=sandbox.config_path, env={"CONFIRM_PITR_RESTORE": "YES"}, timeout=180)
    assert done.exit_code == 0, done.output
    assert "tablespace" in done.stdout
    assert _counts(sandbox, "staging") == (110, 220)
    kept = sorted(scratch.glob("stg_ts_a.pre_pitr_*"))
    assert len(kept) == 1 and _listing(kept[0]) == first["a"]
    assert (world.fp / "pg_tblspc").is_dir() and _listing(scratch / "fp_ts_a"), "the backup is only read"

    rolled = run_drtui("rollback", "--env", "staging", "--json", config=sandbox.config_path, timeout=120)
    assert rolled.exit_code == 0, rolled.output
    assert json.loads(rolled.stdout)["ok"]
    assert _counts(sandbox, "staging") == (110, 200)
    assert {n: _listing(scratch / f"stg_ts_{n}") for n in "ab"}.keys() == first.keys()
    assert not list(scratch.glob("stg_ts_*.pre_pitr_*"))
    assert len(list(scratch.glob("stg_ts_a.replaced_*"))) == 1, "the replaced tablespace is kept, never deleted"
