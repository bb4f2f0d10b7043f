"""`drtui verify` and `drtui drills`, run as the real console program against a sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.postgres import connect
from drtui.sandbox import Sandbox
from drtui.sandbox.api import HEAD_REVISION
from drtui.sandbox.world import PASSWORD
from tests.conftest import run_drtui


@pytest.fixture(scope="module")
def world() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        backup.dump(sandbox.config(), sandbox.env("production"), SystemClock())  # LAST_SUCCESS.txt
        yield sandbox


def test_verify_passes_on_a_healthy_environment_and_prints_each_check(world: Sandbox) -> None:
    result = run_drtui("verify", "--env", "staging", "--target-time", "now", config=world.config_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for title in ("PostgreSQL accepts connections", "PostgreSQL is out of recovery", "WAL archiving", "/healthz",
                  "/readyz", "/healthz/backup", "Sample queries", "Data timestamp", "Uploads"):
        assert any(line.startswith("PASS ") and title in line for line in lines), title
    assert "bookings=180, leads=120, clients=60, invoices=60" in result.stdout
    assert "RPO " in result.stdout and "from created_at" in result.stdout
    assert lines[-1] == "9 passed, 0 failed, 0 skipped"
    assert PASSWORD not in result.output


def test_verify_json_is_pure_data(world: Sandbox) -> None:
    result = run_drtui("verify", "--json", config=world.config_path, env={"TARGET_ENV": "staging"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["environment"] == "staging"
    assert data["summary"] == {"passed": 8, "failed": 0, "skipped": 1}
    outcomes = {c["name"]: c["outcome"] for c in data["checks"]}
    assert outcomes["data_timestamp"] == "skipped"
    assert data["checks"][[c["name"] for c in data["checks"]].index("readyz")]["data"]["healthy_at"]
    assert data["rpo"] is None


def test_verify_fails_with_exit_1_and_says_what_to_run(world: Sandbox) -> None:
    staging = world.env("staging")
    config = world.config_path.read_text()
    line = 'server_log = "logs/staging.log"'
    world.config_path.write_text(config.replace(line, f'{line}\nmigrate_command = "alembic upgrade head"'))
    with connect(staging) as conn:
        conn.execute("update alembic_version set version_num = '0005_old'")
    try:
        result = run_drtui("verify", "--env", "staging", config=world.config_path)
    finally:
        with connect(staging) as conn:
            conn.execute("update alembic_version set version_num = %s", (HEAD_REVISION,))
        world.config_path.write_text(config)
    assert result.exit_code == 1, result.output
    readyz = [line for line in result.stdout.splitlines() if "/readyz" in line]
    assert readyz[0].startswith("FAIL ")
    assert "migrations are not current (revision '0005_old')" in readyz[0]
    assert "hint: run the migrate command (alembic upgrade head) and check again" in result.stdout
    assert result.stdout.splitlines()[-1].endswith("1 failed, 1 skipped")


def test_verify_measures_rpo_against_a_stated_failure_time(world: Sandbox) -> None:
    result = run_drtui("verify", "--env", "staging", "--json", "--target-time", "2 minutes ago",
                       "--failure-time", "now", config=world.config_path)
    data = json.loads(result.stdout)
    assert data["rpo"]["against"] == "failure_time"
    assert data["rpo"]["source"] == "created_at"
    assert data["rpo"]["rpo_seconds"] > 0
    # the seeded rows are newer than two minutes ago: the data timestamp check fails, and so does verify
    assert result.exit_code == 1
    assert {c["name"]: c["outcome"] for c in data["checks"]}["data_timestamp"] == "failed"


@pytest.mark.parametrize(("args", "message"), [
    (("--target-time", "next tuesday"), "is not a time I can read"),
    (("--env", "nowhere"), "no environment named 'nowhere'"),
    (("--wait", "-3"), "Invalid value for '--wait'"),
])
def test_verify_refuses_bad_arguments_with_exit_2(world: Sandbox, args: tuple[str, ...], message: str) -> None:
    result = run_drtui("verify", *args, config=world.config_path)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""


def test_verify_without_a_config_is_exit_2(open_tmp: Path) -> None:
    result = run_drtui("verify", cwd=open_tmp)
    assert result.exit_code == 2
    assert "no drtui.toml" in result.stderr


def test_drills_with_no_records_flags_the_missing_drill(world: Sandbox, open_tmp: Path) -> None:
    result = run_drtui("drills", config=world.config_path, env={"DRILL_REPORT_DIR": str(open_tmp)})
    assert result.exit_code == 0, result.output
    assert f"no drill records in {open_tmp}" in result.stdout
    assert "OVERDUE: no passing drill on record" in result.stdout


def test_drills_lists_records_and_flags_an_old_last_pass(world: Sandbox, open_tmp: Path) -> None:
    (open_tmp / "dr_drill_record_20250102T090000Z.md").write_text(
        "```\nDate (UTC): 2025-01-02\nStart time (UTC): 2025-01-02T09:00:00Z\nRTO achieved (minutes): 42.5\n"
        "RPO achieved (hours): 6\nIssues encountered: none\n```\n")
    (open_tmp / "pitr_drill_20250301T100000Z.md").write_text("**Result: FAIL**\n")
    (open_tmp / "pitr_drill_20250301T100000Z.json").write_text(json.dumps(
        {"date": "2025-03-01T10:00:00+00:00", "result": "FAIL", "rto_seconds": None, "rpo_seconds": None,
         "journey": "drill"}))
    result = run_drtui("drills", config=world.config_path, env={"DRILL_REPORT_DIR": str(open_tmp)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].startswith("2025-03-01 10:00 UTC  FAIL")
    assert lines[2].startswith("2025-01-02 09:00 UTC  PASS")
    assert "42.5 min" in lines[2] and "360.0 min" in lines[2]
    assert "last passing drill: 2025-01-02" in result.stdout
    assert "OVERDUE: the last passing drill is older than a quarter" in result.stdout

    as_json = run_drtui("drills", "--json", config=world.config_path, env={"DRILL_REPORT_DIR": str(open_tmp)})
    data = json.loads(as_json.stdout)
    assert data["overdue"] is True and data["quarter_days"] == 92
    assert [d["result"] for d in data["drills"]] == ["FAIL", "PASS"]
    assert data["last_pass"]["rto_seconds"] == 42.5 * 60


def test_report_writes_the_record_of_the_newest_run(sandbox: Sandbox, open_tmp: Path) -> None:
    config, prod = sandbox.config(), sandbox.env("production")
    made = backup.dump(config, prod, SystemClock())
    dump_file, uploads_archive = (a.path for a in made.artifacts)
    restored = run_drtui("restore", "staging", "--json", config=sandbox.config_path,
                         env={"TARGET_ENV": "staging", "CONFIRM_STAGING_RESTORE": "YES", "BACKUP_FILE": str(dump_file),
                              "UPLOADS_ARCHIVE": str(uploads_archive)})
    assert restored.exit_code == 0, restored.output
    run_id = Path(json.loads(restored.stdout)["journal"]).stem

    result = run_drtui("report", "--json", config=sandbox.config_path,
                       env={"DRILL_OPERATOR": "Ada Operator", "DRILL_REVIEWER": "Rex Reviewer",
                            "DRILL_REPORT_DIR": str(open_tmp)})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run_id"] == run_id and data["result"] == "PASS"
    text = Path(data["report"]).read_text()
    assert Path(data["report"]).parent == open_tmp
    assert "Primary operator: Ada Operator" in text and "Secondary reviewer: Rex Reviewer" in text
    assert f"Backup file: {dump_file}" in text

    again = run_drtui("report", run_id, config=sandbox.config_path, env={"DRILL_REPORT_DIR": str(open_tmp)})
    assert again.exit_code == 1 and "already exists" in again.stderr
    listed = run_drtui("drills", "--json", config=sandbox.config_path, env={"DRILL_REPORT_DIR": str(open_tmp)})
    history = json.loads(listed.stdout)
    assert history["overdue"] is False and history["drills"][0]["result"] == "PASS"


def test_report_refuses_an_unknown_run(world: Sandbox) -> None:
    result = run_drtui("report", "no-such-run", config=world.config_path)
    assert result.exit_code == 2
    assert "no run 'no-such-run'" in result.stderr
