"""Starting a run that outlives the terminal: the approved plan is written to a plan file and
`python -m drtui _run PLANFILE` is started in a session of its own; the caller follows the journal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from drtui.core.clock import SystemClock
from drtui.core.config import Config
from drtui.core.gates import ApprovedPlan
from drtui.core.journal import journal_path
from drtui.core.runner import new_run_id


def plans_dir(state_dir: Path) -> Path:
    return state_dir / "plans"


def write_plan_file(approved: ApprovedPlan, config: Config, run_id: str) -> Path:
    folder = plans_dir(config.state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.json"
    path.write_text(json.dumps(approved.to_json(), indent=2))
    return path


def launch_detached(approved: ApprovedPlan, config: Config) -> tuple[str, Path]:
    """Start the run as a detached process; returns its run id and journal path."""
    plan = approved.plan
    run_id = new_run_id(plan.journey, plan.environment, SystemClock())
    plan_file = write_plan_file(approved, config, run_id)
    journal = journal_path(config.state_dir, run_id)
    journal.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "drtui"]
    if config.path:
        argv += ["--config", str(config.path)]
    with journal.with_suffix(".out").open("ab") as out:
        subprocess.Popen([*argv, "_run", str(plan_file)], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                         start_new_session=True, close_fds=True)
    return run_id, journal


def launch_drill(config: Config, *, target_time: str | None = None, skip_backup: bool = False,
                 operator: str | None = None, reviewer: str | None = None) -> tuple[str, Path, subprocess.Popen]:
    """Start `drtui drill --yes --env staging` as a detached process under a run id chosen here, so the caller
    knows its journal before the drill writes it; returns the run id, the journal path and the process (a drill
    refused before its first step exits without a journal: its output is then in the journal's `.out`)."""
    run_id = new_run_id("drill", "staging", SystemClock())
    journal = journal_path(config.state_dir, run_id)
    journal.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "drtui"]
    if config.path:
        argv += ["--config", str(config.path)]
    argv += ["drill", "--yes", "--env", "staging", "--json", "--run-id", run_id]
    if target_time:
        argv += ["--target-time", target_time]
    if skip_backup:
        argv.append("--skip-backup")
    if operator:
        argv += ["--operator", operator]
    if reviewer:
        argv += ["--reviewer", reviewer]
    with journal.with_suffix(".out").open("ab") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                   close_fds=True)
    return run_id, journal, process
