"""`drtui drill`, the runbook's automated PITR drill, end to end on real clusters: production's backups restored
into staging while production takes writes, a target before the drill's marker, a broken backup, and the gates."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from drtui.core import backup, drill, drill_source
from drtui.core.clock import SystemClock
from drtui.core.events import RunFinished, RunStarted
from drtui.core.journal import read_events
from drtui.core.postgres import connect, query
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui

DRILL = {"TARGET_ENV": "staging", "CONFIRM_DRILL": "YES"}


@pytest.fixture
def tracking_sandbox() -> Iterator[Sandbox]:
    """A world of the test's own whose production tracks commit times (exact counts at a past target)."""
    with Sandbox(track_commit_timestamp=True) as world:
        yield world


def with_daily_dump(world: Sandbox) -> Sandbox:
    """The daily dump's heartbeat, which /healthz/backup checks after the restore."""
    backup.dump(world.config(), world.env("production"), SystemClock())
    return world


def staging_rows(world: Sandbox, table: str = "bookings") -> set[int]:
    return {row[0] for row in query(world.env("staging"), f"select id from {table}")}


def reports(folder: Path) -> list[Path]:
    return sorted(folder.glob("pitr_drill_*.md")) if folder.exists() else []


def field(text: str, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}:[ \t]*(.*)$", text, re.M)
    assert match, name
    return match.group(1)


def test_drill_end_to_end_while_production_takes_writes(sandbox: Sandbox) -> None:
    world = with_daily_dump(sandbox)
    report_dir = world.root / "drill-reports-here"
    smoke = world.root / "smoke.py"  # the runbook's smoke.sh: the restored API answers, the drill id is known
    smoke.write_text("import os, sys, urllib.request\n"
                     "body = urllib.request.urlopen(os.environ['API_BASE_URL'] + '/readyz').read().decode()\n"
                     "print('readyz', body)\nprint('drill', os.environ['DRILL_ID'])\n"
                     "sys.exit(0 if os.environ['TARGET_ENV'] == 'staging' else 3)\n")
    with world.config_path.open("a") as config:  # staging's table is the last one
        config.write(f'smoke_command = "{sys.executable} {smoke}"\n')
    world.start_traffic(interval=0.05)
    result = run_drtui("drill", "--json", config=world.config_path,
                       env={**DRILL, "DRILL_REPORT_DIR": str(report_dir), "DRILL_OPERATOR": "Ada Operator",
                            "DRILL_REVIEWER": "Grace Reviewer"})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] is True and summary["journey"] == "drill"

    # The report: PASS, RTO and RPO measured, the marker found, counts equal.
    [report] = reports(report_dir)
    assert summary["report"] == str(report)
    text = report.read_text()
    assert "**Result: PASS**" in text
    assert float(field(text, "RTO achieved (minutes)")) >= 0
    assert float(field(text, "RPO achieved (minutes)")) >= 0
    assert field(text, "Primary operator") == "Ada Operator"
    assert field(text, "Secondary reviewer") == "Grace Reviewer"
    assert re.search(r"\| Drill marker \| PASS \| drill_id '[^']+' found", text)
    assert re.search(r"\| Record counts \| PASS \| restored bookings=\d+, .* = source at the target \(exact", text)
    assert re.search(r"\| Smoke tests \| PASS \| .*smoke.py' exited 0", text)
    for section in ("## Pre-drill health", "## Post-restore health", "## Data integrity"):
        assert section in text

    # Staging really holds production as it was at the target: the marker, and exactly the counted rows,
    # while production went on taking writes.
    marker = summary["marker"]["drill_id"]
    assert query(world.env("staging"), "select count(*) from dr_drill_markers where drill_id = %s",
                 (marker,))[0][0] == 1
    source_counts = summary["counts"]["source"]
    assert summary["counts"]["exact"] is True
    staging_counts = world.counts("staging")
    assert staging_counts == source_counts
    time.sleep(0.3)
    assert world.counts("production")["bookings"] > staging_counts["bookings"]
    newest = query(world.env("staging"), "select max(created_at) from bookings")[0][0]
    assert newest <= datetime.fromisoformat(summary["target"])
    assert summary["rpo"]["rpo_seconds"] is not None and summary["rto_seconds"] is not None

    # One journal holds the whole drill; staging's old data directory was kept.
    events = read_events(Path(summary["journal"]))
    assert sum(isinstance(e, RunStarted) for e in events) == 1
    assert sum(isinstance(e, RunFinished) for e in events) == 1
    started = events[0]
    assert isinstance(started, RunStarted) and started.journey == "drill"
    assert started.steps[:4] == ["pre_health", "marker", "backup", "plan"]
    assert started.steps[-2:] == ["integrity", "smoke"]
    assert [s["name"] for s in summary["steps"]] == started.steps
    assert [s["name"] for s in summary["steps"] if s["outcome"] != "finished"] == ["stage_wal", "stop_app", "start_app"]
    assert {s["outcome"] for s in summary["steps"]} == {"finished", "skipped"}  # those three did nothing
    history = run_drtui("drills", "--json", config=world.config_path, env={"DRILL_REPORT_DIR": str(report_dir)})
    drills = json.loads(history.stdout)
    assert drills["drills"][0]["result"] == "PASS" and drills["overdue"] is False
    assert drills["drills"][0]["rto_seconds"] == summary["rto_seconds"]
    attached = run_drtui("attach", summary["run_id"], config=world.config_path)
    assert attached.exit_code == 0, attached.output
    assert "run_started" not in attached.stdout and "drill of staging: OK" in attached.stdout
    data_dir = world.env("staging").data_dir
    assert list(data_dir.parent.glob(f"{data_dir.name}.pre_pitr_*"))
    assert summary["plan"]["base_backup"]["path"].startswith(str(world.backup_dir / "basebackup_"))
    # The report is rendered from the journal alone, which names the fresh backup and the journal itself.
    assert field(text, "Base backup file") == summary["plan"]["base_backup"]["path"]
    assert f"journal `{summary['journal']}`" in text


def test_drill_to_a_target_before_its_marker_finds_no_marker_and_passes(tracking_sandbox: Sandbox) -> None:
    world = with_daily_dump(tracking_sandbox)
    backup.base(world.config(), world.env("production"), SystemClock())
    kept = world.insert("bookings")
    time.sleep(0.05)
    target = kept.committed_at + timedelta(milliseconds=10)
    time.sleep(0.05)
    lost = world.insert("bookings")
    assert lost.committed_at > target
    result = run_drtui("drill", "--json", config=world.config_path,
                       env={**DRILL, "SKIP_BACKUP": "true", "TARGET_TIME": target.isoformat()})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    text = Path(summary["report"]).read_text()
    assert "**Result: PASS**" in text
    assert re.search(r"\| Drill marker \| PASS \| drill_id '[^']+' absent, as expected for a target before", text)
    assert "rows whose inserting transaction committed by the target (pg_xact_commit_timestamp)" in text
    assert "| Smoke tests | SKIP | no smoke_command configured for staging" in text
    ids = staging_rows(world)
    assert kept.id in ids and lost.id not in ids
    assert world.counts("staging") == summary["counts"]["source"]
    # SKIP_BACKUP: the drill took no base backup of its own.
    assert len(list(world.backup_dir.glob("basebackup_*.tar.gz"))) == 1


def test_drill_from_a_truncated_base_backup_fails_and_leaves_staging_as_it_was(sandbox: Sandbox) -> None:
    world = with_daily_dump(sandbox)
    good = backup.base(world.config(), world.env("production"), SystemClock()).artifacts[0].path
    broken = world.root / "broken" / good.name
    broken.parent.mkdir()
    data = good.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    staging = world.env("staging")
    rows_before = world.counts("staging")
    ids_before = staging_rows(world)
    data_dir_inode = staging.data_dir.stat().st_ino
    pid_before = (staging.data_dir / "postmaster.pid").read_text().splitlines()[0]

    result = run_drtui("drill", config=world.config_path, env={**DRILL, "BASE_BACKUP": str(broken)})
    assert result.exit_code == 1, result.output
    assert "drill of staging from production: FAIL" in result.stdout
    assert re.search(r"failed\s+plan", result.stdout)
    [report] = reports(world.root / "ops" / "drill-reports")
    text = report.read_text()
    assert "**Result: FAIL**" in text
    assert re.search(r"\| Pick the target, archive its WAL, plan the restore \| .* ✘ failed: .*truncated", text)
    assert "## Troubleshooting" in text
    assert "Nothing was changed: the run stopped before it touched the data directory." in text
    # Staging is as it was: same rows, same data directory, same server, nothing left beside it.
    assert world.counts("staging") == rows_before and staging_rows(world) == ids_before
    assert staging.data_dir.stat().st_ino == data_dir_inode
    assert (staging.data_dir / "postmaster.pid").read_text().splitlines()[0] == pid_before
    assert sorted(p.name for p in staging.data_dir.parent.iterdir()) == [".env", "data", "uploads"]


def test_drill_refused_without_confirmation_or_on_a_prod_host_changes_nothing(sandbox: Sandbox,
                                                                             open_tmp: Path) -> None:
    world = sandbox
    prod_env = open_tmp / "staging.env"
    prod_env.write_text("APP_ENV=prod\n")
    tarball = open_tmp / "wal_archive_20260125T120000Z.tar.gz"
    tarball.write_bytes(b"")
    refused = [
        ({"TARGET_ENV": "staging"}, "CONFIRM_DRILL=YES"),
        ({**DRILL, "ENV_FILE": str(prod_env)}, "APP_ENV=prod"),
        ({"TARGET_ENV": "production", "CONFIRM_DRILL": "YES"}, "TARGET_ENV=staging"),
        ({"CONFIRM_DRILL": "YES"}, "TARGET_ENV=staging"),
        ({**DRILL, "TARGET_TIME": "2099-01-01 00:00:00 UTC"}, "is in the future"),
        ({**DRILL, "TARGET_TIME": "yesterday-ish"}, "is not a time I can read"),
        ({**DRILL, "BASE_BACKUP": str(open_tmp / "basebackup_missing.tar.gz")}, "no such base backup"),
        ({**DRILL, "WAL_ARCHIVE": str(tarball)}, "give a TARGET_TIME inside the tarball"),
    ]
    for env, reason in refused:
        result = run_drtui("drill", config=world.config_path, env=env)
        assert result.exit_code == 2, (env, result.output)
        assert reason in result.stderr, (env, result.stderr)
        assert result.stdout == ""
    # Nothing changed: no marker table in production, no backup, no journal, no report.
    assert query(world.env("production"), "select to_regclass('dr_drill_markers')")[0][0] is None
    assert list(world.backup_dir.glob("basebackup_*")) == []
    assert reports(world.root / "ops" / "drill-reports") == []
    runs = world.root / "ops" / "state" / "drtui" / "runs"
    assert not runs.exists() or os.listdir(runs) == []


def test_pinned_target_splits_concurrent_writers_exactly(shared_sandbox: Sandbox) -> None:
    """The SHARE lock's promise without a restore: while a writer inserts as fast as it can, the rows counted
    are exactly those created by the target (a writer that waited on the lock creates its row after it)."""
    env = shared_sandbox.env("production")
    stop = threading.Event()

    def write() -> None:
        with connect(env) as conn:
            while not stop.is_set():
                conn.execute("insert into bookings (client_id, service) values (1, 'racing writer')")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.2)
        with connect(env) as conn:
            target, counts = drill_source.pin_target(conn, ["bookings", "leads"])
        time.sleep(0.2)
    finally:
        stop.set()
        writer.join()
    created_by, after = query(env, "select count(*) filter (where created_at <= %s), "
                                   "count(*) filter (where created_at > %s) from bookings", (target, target))[0]
    assert created_by == counts["bookings"] and after > 0


def test_counts_at_a_past_target_without_commit_timestamps_are_approximate(shared_sandbox: Sandbox) -> None:
    env = shared_sandbox.env("production")
    with connect(env) as conn:
        assert conn.execute("show track_commit_timestamp").fetchone()[0] == "off"
        target = conn.execute("select now() - interval '3 hours'").fetchone()[0]
        counts, exact = drill_source.counts_at(conn, ["clients"], target)
    assert exact is False
    assert counts["clients"] == query(env, "select count(*) from clients where created_at <= %s", (target,))[0][0]


def test_pinned_target_gives_up_on_a_long_writing_transaction(shared_sandbox: Sandbox) -> None:
    env = shared_sandbox.env("production")
    with connect(env) as holder, connect(env) as conn:
        holder.execute("begin")
        holder.execute("insert into leads (client_id, source) values (1, 'long transaction')")
        try:
            with pytest.raises(drill.DrillStepError, match="stayed busy"):
                drill_source.pin_target(conn, ["bookings", "leads"])
        finally:
            holder.execute("rollback")
