"""The records and the drill report, rendered from journals of real runs: real backups, a real point-in-time
recovery and a real dump restore into the sandbox's staging, real checks, and a real failed extraction."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from drtui.core import backup, checks, report
from drtui.core.clock import SystemClock, isoformat, stamp
from drtui.core.config import Config
from drtui.core.events import RunFinished, RunStarted, StepFailed, StepFinished, StepLogged, StepStarted
from drtui.core.inventory.basebackup import InventoryError, read_base_backup
from drtui.core.journal import Journal, journal_path, read_events
from drtui.core.postgres import connect
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui
from tests.integration.test_checks import pitr_into_staging

REPO = Path(__file__).resolve().parents[2]
# shared/ sits beside the repository (a CI clone and the work tree alike)
RUNBOOK = next((p for p in (REPO.parent / "shared/runbook/DR_RUNBOOK.md", Path("/work/shared/runbook/DR_RUNBOOK.md"))
                if p.exists()), Path("/work/shared/runbook/DR_RUNBOOK.md"))
CLOCK = SystemClock()
HEADERS = {"Steps followed:", "Validation results:", "Verification results:"}


class Run:
    """Writes a run's events into a real journal, timing real actions as steps."""

    def __init__(self, config: Config, journey: str, environment: str, plan: dict) -> None:
        self.run_id = f"{journey}-{stamp(CLOCK.now())}-{time.monotonic_ns() % 10_000}"
        self.path = journal_path(config.state_dir, self.run_id)
        self.journal = Journal(self.path)
        self.started = CLOCK.now()
        self.journal.append(RunStarted(at=self.started, run_id=self.run_id, journey=journey,
                                       environment=environment, steps=[], plan=plan))
        self.checks: list = []

    @contextmanager
    def step(self, name: str, title: str) -> Iterator[Callable[[str], None]]:
        began = CLOCK.monotonic()
        self.journal.append(StepStarted(at=CLOCK.now(), step=name, title=title))
        try:
            yield lambda line: self.journal.append(StepLogged(at=CLOCK.now(), step=name, lines=[line]))
        except Exception as exc:
            self.journal.append(StepFailed(at=CLOCK.now(), step=name, seconds=CLOCK.monotonic() - began,
                                           error=f"{type(exc).__name__}: {exc}", hint="see the troubleshooting notes"))
            raise
        self.journal.append(StepFinished(at=CLOCK.now(), step=name, seconds=CLOCK.monotonic() - began))

    def emit(self, event) -> None:
        self.checks.append(event)
        self.journal.append(event)

    def finish(self, ok: bool, recovered_to=None, rpo: checks.RpoMeasure | None = None) -> Path:
        healthy = checks.healthy_at(self.checks)
        self.journal.append(RunFinished(
            at=CLOCK.now(), ok=ok, rto_seconds=(healthy - self.started).total_seconds() if healthy else None,
            recovered_to=recovered_to.isoformat() if recovered_to else None,
            summary={"rpo": rpo.as_dict()} if rpo else {}))
        self.journal.close()
        return self.path


def restore_dump_into_staging(world: Sandbox, dump: Path) -> None:
    """The dump restore of restore_to_staging.sh, by hand: recreate the database and feed it the dump."""
    env = world.env("staging")
    with connect(env, dbname="postgres") as conn:
        conn.execute("drop database cleaning with (force)")
        conn.execute("create database cleaning")
    with gzip.open(dump, "rb") as sql_in:
        done = subprocess.run([str(env.pg_bin / "psql"), "-h", env.host, "-p", str(env.port), "-U", env.user,
                               "-d", env.database, "-v", "ON_ERROR_STOP=1", "-q"], input=sql_in.read(),
                              capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def runs() -> Iterator[dict]:
    """Three real runs in one sandbox: an automated PITR drill, a staging dump restore, and a drill whose
    base backup is truncated (it fails at extraction)."""
    with Sandbox() as world:
        config = world.config()
        prod, staging = world.env("production"), world.env("staging")
        backup.dump(config, prod, CLOCK)  # LAST_SUCCESS.txt, for /healthz/backup
        base_path = backup.base(config, prod, CLOCK).artifacts[0].path
        drill = Run(config, "drill", "staging", {
            "journey": "drill", "environment": "staging", "data_dir": str(staging.data_dir),
            "base_backup": {"path": str(base_path)}, "wal_source": str(config.wal_archive), "wal_kind": "directory",
            "target": {"kind": "time", "time": None}, "skip_backup": True})
        with drill.step("pre_health", "Pre-drill health check"):
            checks.run_checks(config, prod, recovered_to=None, emit=drill.emit, clock=CLOCK)
        with drill.step("insert_marker", "Insert marker record") as log:
            marker = world.insert("bookings")
            log(f"marker booking {marker.id} committed at {marker.committed_at.isoformat()}")
        time.sleep(0.05)
        target = CLOCK.now()
        world.insert("bookings")
        world.switch_wal()
        with drill.step("pitr_restore", "Perform PITR restore") as log:
            preserved = pitr_into_staging(world, base_path, target)
            log(f"staging data preserved at {preserved}")
        with drill.step("verify", "Post-restore health checks"):
            checks.run_checks(config, staging, recovered_to=target, emit=drill.emit, clock=CLOCK,
                              wait_ready_seconds=30)
        rpo = checks.measure_rpo(staging, target)
        drill_journal = drill.finish(True, target, rpo)

        dump_result = backup.dump(config, prod, CLOCK)
        dump_path = dump_result.artifacts[0].path
        uploads_path = dump_result.artifacts[1].path
        restore = Run(config, "staging", "staging", {
            "journey": "staging", "environment": "staging", "backup_file": str(dump_path),
            "uploads_archive": str(uploads_path)})
        with restore.step("restore_dump", "Run restore script"):
            restore_dump_into_staging(world, dump_path)
        with restore.step("verify", "Run validations"):
            checks.run_checks(config, staging, recovered_to=None, emit=restore.emit, clock=CLOCK)
        dump_rpo = checks.measure_rpo(staging, None, failure_time=restore.started, replayed=False)
        staging_journal = restore.finish(True, None, dump_rpo)

        truncated = base_path.with_name("basebackup_19990101T000000Z.tar.gz")
        truncated.write_bytes(base_path.read_bytes()[: base_path.stat().st_size // 2])
        broken = Run(config, "drill", "staging", {
            "journey": "drill", "environment": "staging", "data_dir": str(staging.data_dir),
            "base_backup": {"path": str(truncated)}, "wal_source": str(config.wal_archive), "wal_kind": "directory",
            "target": {"kind": "latest", "time": None}})
        scratch = Path(tempfile.mkdtemp(prefix="drtui-extract-"))
        try:
            # tarfile's own r|gz can stop quietly at a cut between members; the inventory drains the gzip
            with pytest.raises(InventoryError), broken.step("extract", "Extract base backup"):
                read_base_backup(truncated)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        failed_journal = broken.finish(False)
        yield {"world": world, "config": config, "drill": drill_journal, "staging": staging_journal,
               "failed": failed_journal, "target": target, "marker": marker, "rpo": rpo, "base": base_path}


def runbook_fields(heading: str) -> list[str]:
    """The field lines of one of the runbook's record templates, without their example values."""
    text = RUNBOOK.read_text()
    block = text[text.index(heading):].split("```", 2)[1]
    fields = []
    for line in block.strip("\n").splitlines():
        name = line.split(":", 1)[0] + ":" if ":" in line else line
        fields.append(name)
    return fields


def assert_filled(text: str, fields: tuple[str, ...]) -> None:
    """Every field is there, in the runbook's order, each with a value."""
    lines = text.splitlines()
    position = -1
    for name in fields:
        found = [i for i, line in enumerate(lines) if line.startswith(name) and i > position]
        assert found, f"missing field {name!r}"
        position = found[0]
        if name in HEADERS:
            assert lines[position + 1].startswith("  - "), name
            continue
        value = lines[position][len(name):].lstrip(":").strip()
        assert value, f"field {name!r} is empty"


@pytest.mark.skipif(not RUNBOOK.exists(), reason="the runbook is not on this machine")
def test_the_field_lists_are_the_runbooks() -> None:
    assert tuple(runbook_fields("## DR Drill Record Template")) == report.DR_DRILL_RECORD_FIELDS
    pitr = runbook_fields("### PITR DR Drill Record Template")
    assert tuple(pitr) == report.PITR_DRILL_RECORD_FIELDS


def test_the_drill_report_holds_every_section_and_the_pitr_record(runs: dict) -> None:
    path = report.write_report(runs["config"], runs["drill"], operator="Ada Operator", reviewer="Rex Reviewer")
    assert path.parent == runs["config"].report_dir
    assert re.fullmatch(r"pitr_drill_\d{8}T\d{6}Z\.md", path.name)
    text = path.read_text()
    assert "**Result: PASS**" in text
    for section in ("## Configuration", "## Step-by-step log", "## Pre-drill health", "## Post-restore health",
                    "## Data integrity", "## RTO and RPO", "## Summary", "## PITR DR drill record"):
        assert section in text, section
    assert "## Troubleshooting" not in text
    assert_filled(text, report.PITR_DRILL_RECORD_FIELDS)
    for title in ("Pre-drill health check", "Insert marker record", "Perform PITR restore",
                  "Post-restore health checks"):
        assert re.search(rf"\| \d \| {title} \| \d{{4}}-\d\d-\d\dT[\d:]+Z \| \d{{4}}-[\d\-T:]+Z \| [\d.]+ \| ✔ done \|",
                         text), title
    assert "Primary operator: Ada Operator" in text and "Secondary reviewer: Rex Reviewer" in text
    assert "Recovery target type: time" in text
    assert f"Target time (if applicable): {isoformat(runs['target'])}" in text
    assert f"Base backup file: {runs['base']}" in text
    assert "RTO target (minutes): 120" in text and "RPO target (minutes): 5" in text
    rto = re.search(r"RTO achieved \(minutes\): ([\d.]+)", text)
    assert rto and float(rto.group(1)) >= 0
    rpo_minutes = float(re.search(r"RPO achieved \(minutes\): ([\d.]+)", text).group(1))
    assert rpo_minutes == pytest.approx(runs["rpo"].rpo_seconds / 60, abs=0.05)
    assert "source: pg_last_xact_replay_timestamp()" in text
    assert "  - /readyz: PASS — HTTP 200" in text
    assert "  - Data timestamp check: PASS — the last replayed commit" in text
    # the production cluster's pre-drill health is its own table, the staging checks the post-restore ones
    pre = text.split("## Pre-drill health")[1].split("## Post-restore health")[0]
    assert "archive_mode=on" in pre
    post = text.split("## Post-restore health")[1].split("## Data integrity")[0]
    assert "archive_mode=off" in post
    integrity = text.split("## Data integrity")[1].split("## RTO and RPO")[0]
    assert "bookings=181" in integrity
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["result"] == "PASS" and sidecar["journey"] == "drill"
    assert sidecar["rpo_seconds"] == pytest.approx(runs["rpo"].rpo_seconds)
    assert sidecar["rto_seconds"] > 0


def test_the_pitr_record_is_filled_from_a_real_recovery(runs: dict) -> None:
    events = read_events(runs["drill"])
    started = events[0]
    assert isinstance(started, RunStarted)
    pitr_events = [replace(started, journey="pitr"), *events[1:]]
    text = report.render(report.record_from_events(pitr_events), runs["config"], operator="Ada", reviewer="Rex",
                         rpo=runs["rpo"])
    assert text.startswith("# PITR DR drill record")
    assert_filled(text, report.PITR_DRILL_RECORD_FIELDS)
    assert f"WAL archive file: {runs['config'].wal_archive}" in text


def test_the_staging_dr_drill_record_is_filled_from_a_real_dump_restore(runs: dict) -> None:
    path = report.write_report(runs["config"], runs["staging"], operator="Ada", reviewer="Rex")
    assert path.name.startswith("dr_drill_record_")
    text = path.read_text()
    assert_filled(text, report.DR_DRILL_RECORD_FIELDS)
    assert "RTO target (minutes): 90" in text and "RPO target (hours): 24" in text
    assert re.search(r"Backup file: .*/cleaning_\d{8}T\d{6}Z\.sql\.gz", text)
    assert re.search(r"Uploads archive: .*/uploads_\d{8}T\d{6}Z\.tar\.gz", text)
    assert "  - Sample queries: PASS — bookings=182" in text  # a dump taken after both inserts
    assert "  - Uploads check: PASS — 6 files" in text
    assert "  - /healthz/backup: PASS — HTTP 200" in text
    assert "Issues encountered: none" in text
    hours = float(re.search(r"RPO achieved \(hours\): ([\d.]+)", text).group(1))
    assert 0 <= hours < 1
    assert "source: max(created_at) of the sample tables: a dump restore's commit times" in text


def test_a_failed_run_says_fail_with_troubleshooting_for_its_step(runs: dict) -> None:
    path = report.write_report(runs["config"], runs["failed"], operator="Ada", reviewer="Rex")
    text = path.read_text()
    assert "**Result: FAIL**" in text
    assert "| 1 | Extract base backup |" in text and "✘ failed" in text
    guidance = text.split("## Troubleshooting")[1]
    assert "Step 'Extract base backup' failed" in guidance
    assert "drtui backup verify" in guidance
    assert f"{runs['world'].env('staging').data_dir}.pre_pitr_*" in guidance
    assert "drtui rollback --env staging" in guidance
    assert_filled(text, report.PITR_DRILL_RECORD_FIELDS)
    assert "RTO achieved (minutes): not measured" in text
    assert "| RTO (to a healthy `/readyz`) | 120 min | not measured | NO |" in text
    assert json.loads(path.with_suffix(".json").read_text())["result"] == "FAIL"


def test_a_user_templates_folder_overrides_a_template(runs: dict, open_tmp: Path) -> None:
    (open_tmp / "_pitr_record_block.md.j2").write_text("OUR RECORD {{ environment }} {{ result }}\n")
    config = replace(runs["config"], templates_dir=open_tmp)
    text = report.render(report.record_from_events(read_events(runs["drill"])), config, operator="A", reviewer="B")
    assert "OUR RECORD staging PASS" in text
    assert "## Step-by-step log" in text  # the packaged report around it


def test_a_report_is_never_overwritten(runs: dict, open_tmp: Path) -> None:
    config = replace(runs["config"], report_dir=open_tmp / "reports")
    report.write_report(config, runs["failed"], operator="A", reviewer="B")
    with pytest.raises(report.ReportError, match="already exists"):
        report.write_report(config, runs["failed"], operator="A", reviewer="B")


def test_a_journal_without_a_run_is_refused(open_tmp: Path) -> None:
    (open_tmp / "empty.jsonl").write_text("")
    with pytest.raises(report.ReportError, match="no run_started event"):
        report.record_from_events(read_events(open_tmp / "empty.jsonl"))


def test_the_history_reads_sidecars_and_hand_written_records(runs: dict, open_tmp: Path) -> None:
    config = replace(runs["config"], report_dir=open_tmp)
    written = report.write_report(config, runs["drill"], operator="A", reviewer="B")
    hand = open_tmp / "dr_drill_record_20250101T090000Z.md"
    hand.write_text("Date (UTC): 2025-01-01\nStart time (UTC): 2025-01-01 09:00\nRTO achieved (minutes): 42\n"
                    "RPO achieved (hours): 6\nIssues encountered: none\n")
    (open_tmp / "README.md").write_text("# Drill reports\n\nNotes: kept for a year.\n")
    history = report.drill_history(open_tmp, CLOCK.now())
    assert [e.path for e in history.entries] == [written, hand]
    assert history.entries[1].rto_seconds == 42 * 60 and history.entries[1].rpo_seconds == 6 * 3600
    assert history.entries[1].result == "PASS"
    assert history.last_pass.path == written and not history.overdue
    later = report.drill_history(open_tmp, CLOCK.now() + timedelta(days=93))
    assert later.overdue


def test_the_wheel_ships_the_templates(open_tmp: Path) -> None:
    source = open_tmp / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "*.pyc", "__pycache__", "screens",
                                                                 ".pytest_cache", "bench"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(open_tmp / "dist"), str(source)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    wheel = next((open_tmp / "dist").glob("drtui-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(name.removeprefix("drtui/report_templates/") for name in names
                     if name.startswith("drtui/report_templates/") and name.endswith(".md.j2"))
    assert shipped == sorted(p.name for p in (REPO / "report_templates").glob("*.md.j2"))
    assert {"dr_drill_record.md.j2", "pitr_drill_record.md.j2", "pitr_drill_report.md.j2"} <= set(shipped)


@pytest.fixture(scope="module")
def engine_runs() -> Iterator[dict]:
    """Journals written by the restore engine itself: `drtui restore pitr` and `drtui restore staging`."""
    with Sandbox() as world:
        config, prod = world.config(), world.env("production")
        backup.dump(config, prod, CLOCK)
        backup.base(config, prod, CLOCK)
        before = world.insert("bookings")
        time.sleep(0.2)
        after = world.insert("bookings")
        target = before.committed_at + (after.committed_at - before.committed_at) / 2
        world.switch_wal()
        pitr = run_drtui("restore", "pitr", "--env", "staging", "--target-time", target.isoformat(), "--json",
                         config=world.config_path, env={"CONFIRM_PITR_RESTORE": "YES"}, timeout=300)
        assert pitr.exit_code == 0, pitr.output
        made = backup.dump(config, prod, CLOCK)
        dump_file, uploads_archive = (a.path for a in made.artifacts)
        staging = run_drtui("restore", "staging", "--json", config=world.config_path, timeout=300,
                            env={"TARGET_ENV": "staging", "CONFIRM_STAGING_RESTORE": "YES",
                                 "BACKUP_FILE": str(dump_file), "UPLOADS_ARCHIVE": str(uploads_archive)})
        assert staging.exit_code == 0, staging.output
        yield {"world": world, "config": config, "target": target, "pitr": json.loads(pitr.stdout),
               "staging": json.loads(staging.stdout), "dump": dump_file}


def test_the_pitr_record_of_an_engine_run(engine_runs: dict) -> None:
    summary = engine_runs["pitr"]
    path = report.write_report(engine_runs["config"], Path(summary["journal"]), operator="Ada", reviewer="Rex")
    assert re.fullmatch(r"pitr_record_\d{8}T\d{6}Z\.md", path.name)
    text = path.read_text()
    assert "**Result: PASS**" in text
    assert_filled(text, report.PITR_DRILL_RECORD_FIELDS)
    assert "Recovery target type: time" in text
    assert f"Target time (if applicable): {isoformat(engine_runs['target'])}" in text
    outcomes = [s["outcome"] for s in summary["steps"]]
    assert text.count("✔ done") == outcomes.count("finished") and text.count("– skipped") == outcomes.count("skipped")
    assert outcomes.count("finished") + outcomes.count("skipped") == len(outcomes)
    assert "  - /readyz: PASS — HTTP 200" in text
    expected_rpo = (engine_runs["target"] - datetime.fromisoformat(summary["recovered_to"])).total_seconds() / 60
    rpo = float(re.search(r"RPO achieved \(minutes\): ([\d.]+)", text).group(1))
    assert rpo == pytest.approx(expected_rpo, abs=0.05)
    assert "pg_last_xact_replay_timestamp()" in text  # measured on the restored cluster by the engine
    rto = float(re.search(r"RTO achieved \(minutes\): ([\d.]+)", text).group(1))
    assert rto == pytest.approx(summary["rto_seconds"] / 60, abs=0.05)


def test_the_drill_report_of_an_engine_run(engine_runs: dict) -> None:
    events = read_events(Path(engine_runs["pitr"]["journal"]))
    as_drill = [replace(events[0], journey="drill"), *events[1:]]
    text = report.render(report.record_from_events(as_drill), engine_runs["config"], operator="A", reviewer="B")
    assert "**Result: PASS**" in text
    assert_filled(text, report.PITR_DRILL_RECORD_FIELDS)
    post = text.split("## Post-restore health")[1].split("## Data integrity")[0]
    assert "/readyz | PASS" in post


def test_the_dr_drill_record_of_an_engine_dump_restore(engine_runs: dict) -> None:
    summary = engine_runs["staging"]
    path = report.write_report(engine_runs["config"], Path(summary["journal"]), operator="Ada", reviewer="Rex")
    text = path.read_text()
    assert path.name.startswith("dr_drill_record_") and "**Result: PASS**" in text
    assert_filled(text, report.DR_DRILL_RECORD_FIELDS)
    assert f"Backup file: {engine_runs['dump']}" in text
    assert "  - Sample queries: PASS — bookings=182" in text
    assert "source: the dump's timestamp" in text
    assert "against the start of the run" in text
