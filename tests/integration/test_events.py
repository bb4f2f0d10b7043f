"""`drtui events`: a DROP TABLE, a TRUNCATE, a DELETE without WHERE and an ALTER TABLE issued among normal traffic
are each listed with their table, xid and commit time; restoring to just before one brings its rows back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.postgres import connect, query
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui


@dataclass
class Incident:
    sql: str
    xid: int
    committed_at: datetime


@dataclass
class World:
    sandbox: Sandbox
    incidents: dict[str, Incident]
    scratch_rows: int
    bookings_before_delete: int


def _run(sandbox: Sandbox, sql: str) -> Incident:
    with connect(sandbox.env("production")) as conn, conn.transaction():
        xid = conn.execute("select txid_current()").fetchone()[0]
        conn.execute(sql)
    committed = query(sandbox.env("production"), "select pg_xact_commit_timestamp(%s::text::xid)", (xid,))[0][0]
    sandbox.insert("leads")  # normal traffic between the incidents
    return Incident(sql, xid, committed)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with Sandbox(track_commit_timestamp=True, seed_rows=60) as sandbox:
        prod = sandbox.env("production")
        with connect(prod) as conn:
            conn.execute("create table scratch (id int primary key, note text)")
            conn.execute("insert into scratch select g, 'row ' || g from generate_series(1, 150) g")
            conn.execute("create table notes (id int, body text, obsolete text)")
        backup.dump(sandbox.config(), prod, SystemClock())
        backup.base(sandbox.config(), prod, SystemClock())
        # drtui reads production's catalog before the incident (as a backup or a status check would)
        assert run_drtui("events", "--around", "now", config=sandbox.config_path).exit_code == 0
        sandbox.insert("bookings")
        bookings = sandbox.counts()["bookings"]
        incidents = {
            "small_update": _run(sandbox, "update leads set source = 'phone' where id <= 50"),
            "drop": _run(sandbox, "drop table scratch"),
            "truncate": _run(sandbox, "truncate invoices"),
            "delete": _run(sandbox, "delete from bookings"),
            "ddl": _run(sandbox, "alter table notes drop column obsolete"),
        }
        sandbox.switch_wal()
        yield World(sandbox, incidents, 150, bookings)


def _events(world: World, *args: str) -> dict:
    done = run_drtui("events", "--around", "now", "--span", "10m", "--json", *args,
                     config=world.sandbox.config_path)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_each_destructive_transaction_is_listed_with_table_xid_and_commit_time(world: World) -> None:
    found = {c["xid"]: c for c in _events(world)["changes"]}
    expected = {"drop": ("DROP", "public.scratch", None), "truncate": ("TRUNCATE", "public.invoices", None),
                "delete": ("DELETE", "public.bookings", world.bookings_before_delete)}
    for name, (kind, table, rows) in expected.items():
        incident = world.incidents[name]
        change = found[incident.xid]
        assert (change["kind"], change["relations"], change["rows"]) == (kind, [table], rows), change
        assert datetime.fromisoformat(change["committed_at"]) == incident.committed_at
    assert found[world.incidents["drop"].xid]["note"] == "name from an earlier reading of the catalog"
    assert world.incidents["small_update"].xid not in found  # 50 rows: below the threshold of 100
    assert found[world.incidents["ddl"].xid]["kind"] == "DDL"
    assert {xid for xid, c in found.items() if c["kind"] != "DDL"} == {
        world.incidents[name].xid for name in ("drop", "truncate", "delete")}


def test_table_filter_and_threshold(world: World) -> None:
    only = _events(world, "--table", "bookings")["changes"]
    assert [c["xid"] for c in only] == [world.incidents["delete"].xid]
    high = {c["xid"] for c in _events(world, "--threshold", "100000")["changes"]}
    assert world.incidents["delete"].xid not in high and world.incidents["drop"].xid in high
    low = {c["xid"] for c in _events(world, "--threshold", "10")["changes"]}
    assert world.incidents["small_update"].xid in low


def test_the_text_names_the_restore_that_goes_just_before(world: World) -> None:
    done = run_drtui("events", "--around", "now", "--span", "10m", config=world.sandbox.config_path)
    assert done.exit_code == 0, done.output
    drop = world.incidents["drop"]
    assert f"xid {drop.xid}" in done.stdout and "DROP public.scratch" in done.stdout
    assert "drtui restore pitr --target-xid XID --exclusive" in done.stdout


def test_restoring_just_before_the_drop_brings_the_table_back(world: World) -> None:
    drop = world.incidents["drop"]
    done = run_drtui("restore", "pitr", "--env", "staging", "--target-xid", str(drop.xid), "--exclusive",
                     config=world.sandbox.config_path, env={"CONFIRM_PITR_RESTORE": "YES"})
    assert done.exit_code == 0, done.output
    staging = world.sandbox.env("staging")
    assert query(staging, "select count(*) from scratch")[0][0] == world.scratch_rows
    assert query(staging, "select count(*) from bookings")[0][0] == world.bookings_before_delete
    assert query(staging, "select count(*) from invoices")[0][0] > 0


def test_a_bad_around_is_refused(world: World) -> None:
    done = run_drtui("events", "--around", "yesterday-ish", config=world.sandbox.config_path)
    assert done.exit_code == 2 and "yesterday-ish" in done.output and "Traceback" not in done.output
