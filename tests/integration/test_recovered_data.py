"""Issue 14: the checks judge the data as recovered, not what is written after the promotion. Production is
restored in place while a writer (not the app: nothing stops it) keeps inserting before, during and after the
promotion; the sandbox's app (traffic and API) is paused and resumed by its stop/start commands."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.events import StepProgressed
from drtui.core.journal import read_events
from drtui.core.postgres import query
from drtui.sandbox import PASSWORD, Sandbox
from drtui.sandbox.app import app_pids
from tests.conftest import run_drtui
from tests.writer import Writer

CONFIRM = {"CONFIRM_PITR_RESTORE": "YES"}


@dataclass
class World:
    sandbox: Sandbox
    writer: Writer
    target: datetime


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with Sandbox(app_commands=True) as sandbox:
        config, prod = sandbox.config(), sandbox.env("production")
        backup.dump(config, prod, SystemClock())
        backup.base(config, prod, SystemClock())
        writer = Writer(sandbox)
        thread = threading.Thread(target=writer.run, daemon=True)
        thread.start()
        time.sleep(1.0)
        target = datetime.now().astimezone()
        time.sleep(1.0)
        sandbox.switch_wal()
        backup.wal_sync(config, SystemClock())
        try:
            yield World(sandbox, writer, target)
        finally:
            writer.stop.set()
            thread.join(10)


def writer_rows(world: World, where: str, *args: object) -> int:
    return query(world.sandbox.env("production"),
                 f"select count(*) from bookings where service = 'writer' and {where}", args)[0][0]


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_the_sandbox_app_commands_pause_and_resume_its_api_and_its_psql_lines_work(world: World) -> None:
    env = world.sandbox.env("production")
    api = app_pids(world.sandbox.root)[-1]
    assert env.stop_app_command and env.start_app_command
    assert shell(env.stop_app_command).returncode == 0 and process_state(api) == "T"
    assert shell(env.start_app_command).returncode == 0 and process_state(api) != "T"
    for name in ("production", "staging"):
        line = world.sandbox.connect_command(name)
        assert PASSWORD not in line
        done = shell(f"{line} -At -c 'select count(*) from clients'")
        assert done.returncode == 0 and done.stdout.strip().isdigit(), done.stderr


def shell(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, check=False, timeout=30, capture_output=True, text=True)


def test_a_writer_through_the_promotion_does_not_fail_a_correct_restore(world: World) -> None:
    sandbox, target = world.sandbox, world.target
    before = sum(1 for t in world.writer.committed if t <= target - timedelta(seconds=0.2))
    started = datetime.now().astimezone()

    done = run_drtui("restore", "pitr", "--env", "production", "--target-time", target.isoformat(), "--json",
                     config=sandbox.config_path, env=CONFIRM, timeout=240)

    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["ok"] is True and summary["remedy"] is None
    checks = {c["name"]: c for c in summary["checks"]}
    assert checks["sample_queries"]["outcome"] == "passed"
    assert checks["data_timestamp"]["outcome"] == "passed", checks["data_timestamp"]
    assert "last replayed commit" in checks["data_timestamp"]["detail"]
    steps = {s["name"]: s["outcome"] for s in summary["steps"]}
    assert steps["stop_app"] == steps["start_app"] == "finished"
    events = read_events(Path(summary["journal"]))
    logged = " ".join(line for e in events for line in getattr(e, "lines", []))
    replay = [e for e in events if isinstance(e, StepProgressed) and e.step == "follow_recovery"]
    assert replay and replay[-1].done == replay[-1].total  # the replay bar ends at 100 % once promoted
    assert "drtui.sandbox.app stop" in logged and "drtui.sandbox.app start" in logged
    time.sleep(0.5)
    # The data is production's as of the target, and the writer went on writing after the promotion.
    # (a row whose created_at is just before the bound may have been recorded by the writer just after it)
    assert before <= writer_rows(world, "created_at <= %s", target - timedelta(seconds=0.2)) <= before + 1
    assert writer_rows(world, "created_at > %s and created_at < %s", target + timedelta(seconds=0.1), started) == 0
    assert writer_rows(world, "created_at > %s", started) > 0
    # The checks saw those later rows and said so, without failing.
    assert datetime.fromisoformat(checks["data_timestamp"]["detail"].split("= ")[1].split(",")[0]) <= target


def test_a_health_failure_offers_a_recheck_and_a_wrong_target_fails_the_data_checks(world: World) -> None:
    sandbox = world.sandbox
    sandbox.switch_wal()  # the writer's rows after the first promotion, on the new timeline, are archived
    (sandbox.backup_dir / "LAST_SUCCESS.txt").write_text("2026-01-01T00:00:00Z\n")  # /healthz/backup fails

    done = run_drtui("restore", "pitr", "--env", "production", "--json", config=sandbox.config_path,
                     env=CONFIRM, timeout=240)

    assert done.exit_code == 1, done.output
    summary = json.loads(done.stdout)
    failed = [c["name"] for c in summary["checks"] if c["outcome"] == "failed"]
    assert failed == ["healthz_backup"], (summary["error"], summary["hint"], summary["steps"])
    assert summary["remedy"]["kind"] == "recheck"
    assert "do not roll back" in summary["hint"] and "drtui verify --env production" in summary["hint"]
    assert "drtui rollback" not in summary["hint"]

    # Restored to latest, production holds rows later than the target the operator meant: they fail.
    verified = run_drtui("verify", "--env", "production", "--target-time", world.target.isoformat(), "--json",
                         config=sandbox.config_path)
    assert verified.exit_code == 1, verified.output
    checks = {c["name"]: c for c in json.loads(verified.stdout)["checks"]}
    assert checks["data_timestamp"]["outcome"] == "failed"
    assert "the last replayed commit" in checks["data_timestamp"]["detail"]
    assert "is later than the recovery target" in checks["data_timestamp"]["detail"]
