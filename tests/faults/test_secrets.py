"""Secrets in every input drtui reads, and none in anything it writes or shows.

One world carries a secret in each input: the env file's POSTGRES_PASSWORD and a JWT_SECRET, a DSN in its
DATABASE_URL, PGPASSWORD, an API_BASE_URL with user:password, stop/start/smoke commands with --password=...,
and a smoke script that prints PGPASSWORD=..., a DSN and the raw values. A drill and a PITR restore with its
record run on it (both must succeed: a journal line cut by a mask used to make them crash), then `drtui report`
and `drtui attach` read them back, and the TUI renders the drill's journal. Every stdout and stderr, every file
in the state and report folders, and the screen are searched for every secret.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drtui.core.clock import SystemClock
from drtui.core.config import load_config
from drtui.sandbox import PASSWORD, Sandbox
from tests.conftest import Result
from tests.faults.conftest import FaultWorld, make_fault_world

API_PASSWORD = "s3cr3t-api"
SECRETS = {
    "PGPASSWORD and env file POSTGRES_PASSWORD": PASSWORD,
    "API_BASE_URL's password": API_PASSWORD,
    "stop_app_command --password": "stop-Secret-11",
    "start_app_command --password": "start-Secret-22",
    "smoke_command --password": "smoke-Cmd-33",
    "smoke script PGPASSWORD= line": "smoke-Out-44",
    "env file DATABASE_URL": "dsn-Secret-55",
    "env file JWT_SECRET": "jwt-Secret-66",
    "a DSN the smoke script prints": "smoke-Dsn-77",
}

SMOKE = f"""
print("smoke: staging answers")
print("dsn postgresql://app:{SECRETS["a DSN the smoke script prints"]}@db/cleaning")
print("raw", {PASSWORD!r}, {SECRETS["env file DATABASE_URL"]!r}, {SECRETS["env file JWT_SECRET"]!r})
print("PGPASSWORD={SECRETS["smoke script PGPASSWORD= line"]}")
"""


@dataclass
class Runs:
    world: FaultWorld
    env: dict[str, str]
    results: dict[str, Result] = field(default_factory=dict)
    screen: str = ""

    def run(self, name: str, *args: str, **extra: str) -> Result:
        result = self.world.drtui(*args, env={**self.env, **extra})
        self.results[name] = result
        return result


def _plant_secrets(world: FaultWorld) -> dict[str, str]:
    """Secrets into staging's env file and commands; the variables (PGPASSWORD, API_BASE_URL) to run with."""
    root = world.sandbox.root
    env_file = root / "staging" / ".env"
    dsn = f"postgresql://app:{SECRETS['env file DATABASE_URL']}@127.0.0.1:5432/cleaning"
    text = re.sub(r"DATABASE_URL=.*", f"DATABASE_URL={dsn}", env_file.read_text())
    env_file.write_text(text + f"JWT_SECRET={SECRETS['env file JWT_SECRET']}\n")
    smoke = root / "smoke.py"
    smoke.write_text(SMOKE)
    stop, start = SECRETS["stop_app_command --password"], SECRETS["start_app_command --password"]
    with world.config.open("a") as config:  # staging's table is the last one
        config.write(f'stop_app_command = "echo stopping the app --password={stop}"\n'
                     f'start_app_command = "echo starting the app --password={start}"\n'
                     f'smoke_command = "{sys.executable} {smoke} --password={SECRETS["smoke_command --password"]}"\n')
    api = load_config(str(world.config), environ={}).environment("staging").api_base_url
    assert api and api.startswith("http://")
    return {"PGPASSWORD": PASSWORD, "API_BASE_URL": api.replace("http://", f"http://apiuser:{API_PASSWORD}@")}


async def _render_journal(world: FaultWorld, journal: Path) -> str:
    from drtui.tui.app import DrApp
    from drtui.tui.screens.run import RunScreen
    from tests.textdump import screen_text
    from tests.tui.conftest import run_ended, until

    app = DrApp(load_config(str(world.config), environ={}), SystemClock(), start=journal)
    async with app.run_test(size=(160, 60)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        await run_ended(pilot)
        # the log panel follows the journal's end: its last lines are the app's start and the checks
        await until(pilot, lambda: "ran: echo starting the app" in screen_text(app), timeout=30)
        return screen_text(app)


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    with Sandbox() as sandbox:
        world = make_fault_world(sandbox)
        runs = Runs(world, _plant_secrets(world))
        drill = runs.run("drill", "drill", "--json", TARGET_ENV="staging", CONFIRM_DRILL="YES")
        pitr = runs.run("pitr", "restore", "pitr", "--env", "staging", "--report", "--json",
                        CONFIRM_PITR_RESTORE="YES", RECOVERY_TARGET="latest")
        for name, result in (("drill", drill), ("pitr", pitr)):
            if result.exit_code == 0:
                run_id = json.loads(result.stdout)["run_id"]
                again = world.sandbox.root / "ops" / "records-again"  # the run's own record is never overwritten
                runs.run(f"report {name}", "report", run_id, DRILL_REPORT_DIR=str(again))
                runs.run(f"attach {name}", "attach", run_id)
        if drill.exit_code == 0:
            runs.screen = asyncio.run(_render_journal(world, Path(json.loads(drill.stdout)["journal"])))
        yield runs


def test_the_drill_and_the_restore_succeed_and_are_read_back(runs: Runs) -> None:
    for name in ("drill", "pitr", "report drill", "attach drill", "report pitr", "attach pitr"):
        assert name in runs.results, f"{name} did not run (an earlier run failed)"
        result = runs.results[name]
        assert result.exit_code == 0, f"{name}: exit {result.exit_code}\n{result.output}"
        assert "Traceback" not in result.output, result.output
    assert "drill of staging: OK" in runs.results["attach drill"].stdout


def test_every_journal_line_is_valid_json(runs: Runs) -> None:
    journals = sorted((runs.world.sandbox.root / "ops" / "state" / "drtui" / "runs").glob("*.jsonl"))
    assert len(journals) >= 2
    for journal in journals:
        for number, line in enumerate(journal.read_text().splitlines(), 1):
            json.loads(line), f"{journal}:{number}"


def _written_files(world: FaultWorld) -> list[Path]:
    root = world.sandbox.root / "ops"
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_secret_in_any_output_journal_record_or_screen(runs: Runs) -> None:
    files = _written_files(runs.world)
    assert any(p.suffix == ".jsonl" for p in files) and any(p.suffix == ".md" for p in files)
    texts = {f"{name} stdout+stderr": result.output for name, result in runs.results.items()}
    texts |= {str(p): p.read_text(errors="replace") for p in files}
    texts["the TUI's run screen"] = runs.screen
    assert "ran: echo starting the app --password=******" in runs.screen, runs.screen
    leaks = [f"{what} ({secret!r}) in {where}" for where, text in texts.items()
             for what, secret in SECRETS.items() if secret in text]
    assert leaks == [], "\n".join(leaks)


def test_the_masked_values_still_say_what_they_were(runs: Runs) -> None:
    [report] = sorted((runs.world.sandbox.root / "ops" / "drill-reports").glob("pitr_drill_*.md"))
    text = report.read_text()
    assert re.search(r"API_BASE_URL\s*\|\s*http://apiuser:\*{6}@127\.0\.0\.1:\d+", text), text
    journal = "".join(p.read_text() for p in (runs.world.sandbox.root / "ops" / "state" / "drtui" / "runs")
                      .glob("*.jsonl"))
    assert "PGPASSWORD=******" in journal
    assert "--password=******" in journal
