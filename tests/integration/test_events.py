"""`drtui events`: a DROP TABLE, a TRUNCATE, a DELETE without WHERE and an ALTER TABLE issued among normal traffic
are each listed with their table, xid and commit time (the names remembered by the backups taken before them);
restoring to just before one (`--before-xid`, paused to look first) brings its rows back; a drill at a random point
of the kept backups passes; a restore over production offers and takes the fresh base backup of its new timeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.postgres import connect, query
from drtui.sandbox import Sandbox
from tests.conftest import Result, run_drtui


@dataclass
class Incident:
    sql: str
    xid: int
    committed_at: datetime
    before: dict[str, int]  # the app tables' rows just before it: all that the test had committed by then


@dataclass
class World:
    sandbox: Sandbox
    incidents: dict[str, Incident]
    scratch_rows: int
    bookings_before_delete: int
    random_drill: Result


def _run(sandbox: Sandbox, sql: str) -> Incident:
    before = sandbox.counts()  # no other writer: exactly the rows committed before this transaction
    with connect(sandbox.env("production")) as conn, conn.transaction():
        xid = conn.execute("select txid_current()").fetchone()[0]
        conn.execute(sql)
    committed = query(sandbox.env("production"), "select pg_xact_commit_timestamp(%s::text::xid)", (xid,))[0][0]
    sandbox.insert("leads")  # normal traffic between the incidents
    return Incident(sql, xid, committed, before)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with Sandbox(track_commit_timestamp=True, seed_rows=60) as sandbox:
        prod = sandbox.env("production")
        with connect(prod) as conn:
            conn.execute("create table scratch (id int primary key, note text)")
            conn.execute("insert into scratch select g, 'row ' || g from generate_series(1, 150) g")
            conn.execute("create table notes (id int, body text, obsolete text)")
        backup.dump(sandbox.config(), prod, SystemClock())
        backup.base(sandbox.config(), prod, SystemClock())  # reads production's catalog: names known after a DROP
        sandbox.insert("bookings")
        sandbox.switch_wal()
        # before the incidents (a drill's counts are exact only for tables inserted into since its target)
        drill = run_drtui("drill", "--random-target", "--seed", "11", "--json", config=sandbox.config_path,
                          env={"TARGET_ENV": "staging", "CONFIRM_DRILL": "YES"})
        bookings = sandbox.counts()["bookings"]
        incidents = {
            "small_update": _run(sandbox, "update leads set source = 'phone' where id <= 50"),
            "drop": _run(sandbox, "drop table scratch"),
            "truncate": _run(sandbox, "truncate invoices"),
            "delete": _run(sandbox, "delete from bookings"),
            "ddl": _run(sandbox, "alter table notes drop column obsolete"),
        }
        sandbox.switch_wal()
        yield World(sandbox, incidents, 150, bookings, drill)


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
    assert "drtui restore pitr --before-xid XID" in done.stdout


def test_just_before_the_drop_paused_shows_the_counts_against_production_then_promotes(world: World) -> None:
    drop = world.incidents["drop"]
    listed = {c["xid"]: c for c in _events(world)["changes"]}[drop.xid]
    args = ("restore", "pitr", "--env", "staging", "--before-xid", str(drop.xid), "--pause-at-target")
    dry = run_drtui(*args, "--dry-run", config=world.sandbox.config_path)
    assert dry.exit_code == 0, dry.output
    assert (f"to just before transaction {drop.xid} (committed at {listed['committed_at']}, DROP public.scratch"
            in dry.stdout), dry.stdout
    done = run_drtui(*args, config=world.sandbox.config_path, env={"CONFIRM_PITR_RESTORE": "YES"})
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    at = lines.index("Rows per table in staging, paused at the target against production:")
    rows = {line.split()[0]: line.split()[1:] for line in lines[at + 1:] if line.startswith("  public.")}
    assert rows["public.scratch"] == ["locked", "production", "-"]  # its DROP's lock is replayed, not its commit
    assert any(line.startswith("  locked: held by the transaction recovery paused just before") for line in lines)
    assert rows["public.bookings"] == [str(world.bookings_before_delete), "production", "0"]
    assert rows["public.invoices"][1:] == ["production", "0"] and int(rows["public.invoices"][0]) > 0
    assert "  only in staging: public.scratch" in lines
    status = run_drtui("status", config=world.sandbox.config_path)
    assert "Rows per table in staging, paused at the target against production:" in status.stdout, status.output
    promoted = run_drtui("restore", "promote", "--env", "staging", config=world.sandbox.config_path)
    assert promoted.exit_code == 0, promoted.output
    staging = world.sandbox.env("staging")
    assert query(staging, "select count(*) from scratch")[0][0] == world.scratch_rows
    assert query(staging, "select count(*) from bookings")[0][0] == world.bookings_before_delete
    assert query(staging, "select count(*) from invoices")[0][0] > 0


@pytest.mark.parametrize(("name", "table"), [("truncate", "invoices"), ("delete", "bookings")])
def test_just_before_a_truncate_or_a_delete_restores_its_rows_and_every_commit_before_it(
        world: World, name: str, table: str) -> None:
    incident = world.incidents[name]
    listed = {c["xid"]: c for c in _events(world, "--table", table)["changes"]}
    assert list(listed) == [incident.xid], listed
    done = run_drtui("restore", "pitr", "--env", "staging", "--before-xid", str(listed[incident.xid]["xid"]),
                     config=world.sandbox.config_path, env={"CONFIRM_PITR_RESTORE": "YES"})
    assert done.exit_code == 0, done.output
    staging = world.sandbox.env("staging")
    # every app table exactly as the test had committed it just before: the emptied table whole, the lead
    # inserted after the previous incident there, and nothing of what came after (production has fewer rows)
    assert world.sandbox.counts("staging") == incident.before
    assert incident.before[table] > 0 and world.sandbox.counts()[table] == 0
    # the incidents committed before it are there too: the DROP (and, before the DELETE, the TRUNCATE)
    assert query(staging, "select to_regclass('scratch') is null")[0][0]
    if name == "delete":
        assert incident.before["invoices"] == 0
        assert incident.before["bookings"] == world.bookings_before_delete
    assert query(staging, "select pg_xact_status(%s::text::xid8)", (incident.xid,))[0][0] != "committed"


def test_a_drill_just_before_the_delete_passes_and_its_record_names_the_transaction(world: World) -> None:
    delete = world.incidents["delete"]
    done = run_drtui("drill", "--json", config=world.sandbox.config_path,
                     env={"TARGET_ENV": "staging", "CONFIRM_DRILL": "YES", "BEFORE_XID": str(delete.xid)})
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    checks = {c["name"]: c for c in summary["checks"] if c["phase"] == "post"}
    assert {name: checks[name]["outcome"] for name in ("record_counts", "drill_marker", "before_xid")} == {
        "record_counts": "passed", "drill_marker": "passed", "before_xid": "passed"}, checks
    # the rows the DELETE removed count as there before it (production holds none of them now)
    assert summary["counts"]["source"] == delete.before and summary["counts"]["exact"], summary["counts"]
    assert world.sandbox.counts("staging") == delete.before
    assert summary["plan"]["target"]["xid"] == delete.xid and summary["plan"]["target"]["inclusive"] is False
    about = (f"{delete.xid} (committed at {delete.committed_at.isoformat().replace('+00:00', 'Z')}, "
             f"DELETE public.bookings ({world.bookings_before_delete} rows))")
    record = Path(summary["report"]).read_text()
    assert f"| before_xid | {about} |" in record, record
    assert "Recovery target type: xid" in record


@pytest.mark.parametrize("extra", [{"TARGET_TIME": "1 minute ago"}, {"RANDOM_TARGET": "true"}, {}])
def test_a_drill_before_an_xid_and_another_target_or_an_uncommitted_xid_is_refused(world: World,
                                                                                  extra: dict) -> None:
    xid = world.incidents["delete"].xid if extra else 99999999
    done = run_drtui("drill", config=world.sandbox.config_path,
                     env={"TARGET_ENV": "staging", "CONFIRM_DRILL": "YES", "BEFORE_XID": str(xid), **extra})
    assert done.exit_code == 2, done.output
    assert "Traceback" not in done.output and ("not committed" if not extra else "BEFORE_XID" if "RANDOM_TARGET"
                                               in extra else "--target-time and --before-xid") in done.stderr


def test_a_random_target_drill_passes_and_its_record_names_the_point(world: World) -> None:
    done = world.random_drill
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    pick = summary["plan"]["random_target"]
    assert summary["target"] and pick.startswith(summary["target"].replace("+00:00", "Z")[:19])
    assert "picked at random (seed 11) inside the checked window" in pick and "of base backup basebackup_" in pick
    assert {c["name"]: c["outcome"] for c in summary["checks"]}["record_counts"] == "passed"
    record = Path(summary["report"]).read_text()
    assert f"| random_target | {pick} |" in record
    assert "Duration predicted: " in record and "the restore took" in record


def test_a_bad_around_is_refused(world: World) -> None:
    done = run_drtui("events", "--around", "yesterday-ish", config=world.sandbox.config_path)
    assert done.exit_code == 2 and "yesterday-ish" in done.output and "Traceback" not in done.output


def test_then_backup_is_refused_for_staging(world: World) -> None:
    done = run_drtui("restore", "pitr", "--env", "staging", "--then-backup", config=world.sandbox.config_path,
                     env={"CONFIRM_PITR_RESTORE": "YES"})
    assert done.exit_code == 2 and "--then-backup" in done.stderr and "staging" in done.stderr, done.output


def test_last_a_restore_over_production_says_its_old_backups_stop_and_takes_a_fresh_one(world: World) -> None:
    delete = world.incidents["delete"]
    before = {p.name for p in world.sandbox.backup_dir.iterdir()}
    done = run_drtui("restore", "pitr", "--env", "production", "--before-xid", str(delete.xid), "--then-backup",
                     "--report", "--json", config=world.sandbox.config_path, env={"CONFIRM_PITR_RESTORE": "YES"})
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert "production is on a new timeline now" in summary["new_timeline"]
    fresh = [Path(a["path"]).name for a in summary["then_backup"]["artifacts"]]
    assert fresh and set(fresh).isdisjoint(before) and all((world.sandbox.backup_dir / n).exists() for n in fresh)
    assert query(world.sandbox.env("production"), "select count(*) from bookings")[0][0] == (
        world.bookings_before_delete)
    assert "production is on a new timeline now" in Path(summary["report"]).read_text()
    # the status view's coverage starts at that fresh backup, on the new timeline
    wal_file = query(world.sandbox.env("production"), "select pg_walfile_name(pg_current_wal_lsn())")[0][0]
    timeline = int(wal_file[:8], 16)  # the WAL it writes now (its last checkpoint may be older than the promotion)
    fresh_base = next(a["path"] for a in summary["then_backup"]["artifacts"]
                      if Path(a["path"]).name.startswith("basebackup_"))
    status = run_drtui("status", "--json", config=world.sandbox.config_path)
    assert status.stdout, status.output
    seen = json.loads(status.stdout)
    window, newest = seen["window"], seen["newest"]["base_backup"]
    assert timeline > 1 and Path(window["base_backup"]).name == Path(fresh_base).name, window
    assert (window["timeline"], newest["timeline"], window["usable"]) == (timeline, timeline, True), window
    assert window["earliest"] >= newest["start_time"], (window, newest)
    inventory = run_drtui("inventory", "--json", config=world.sandbox.config_path)
    assert json.loads(inventory.stdout)["windows"][0] == window, inventory.output
    text = run_drtui("status", config=world.sandbox.config_path).stdout.splitlines()
    assert f"timeline {timeline}" in text[text.index("Recoverable window (newest base backup)") + 1], text
