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


def launch_command(config: Config, journey: str, env_name: str, args: list[str]) -> tuple[str, Path, subprocess.Popen]:
    """Start `drtui ARGS --env ENV --json --run-id R` as a detached process under a run id chosen here, so the
    caller knows its journal before the command writes it; returns the run id, the journal path and the process
    (a command refused before its first step exits without a journal: its output is then in the journal's
    `.out`)."""
    run_id = new_run_id(journey, env_name, SystemClock())
    journal = journal_path(config.state_dir, run_id)
    journal.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "drtui"]
    if config.path:
        argv += ["--config", str(config.path)]
    argv += [*args, "--env", env_name, "--json", "--run-id", run_id]
    with journal.with_suffix(".out").open("ab") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                   close_fds=True)
    return run_id, journal, process


def launch_drill(config: Config, *, target_time: str | None = None, skip_backup: bool = False,
                 operator: str | None = None, reviewer: str | None = None) -> tuple[str, Path, subprocess.Popen]:
    """Start `drtui drill --yes --env staging` detached (launch_command)."""
    args = ["drill", "--yes"]
    if target_time:
        args += ["--target-time", target_time]
    if skip_backup:
        args.append("--skip-backup")
    if operator:
        args += ["--operator", operator]
    if reviewer:
        args += ["--reviewer", reviewer]
    return launch_command(config, "drill", "staging", args)


# The operations the result screen starts (the env's name is typed first where the CLI needs it named).
OPERATION_ARGS = {"rollback": ["rollback", "--yes"], "promote": ["restore", "promote"],
                  "advance": ["restore", "advance"]}


def launch_operation(config: Config, name: str, env_name: str, *extra: str) -> tuple[str, Path, subprocess.Popen]:
    """Start a rollback, promote or advance of `env_name` detached (launch_command)."""
    return launch_command(config, name, env_name, [*OPERATION_ARGS[name], *extra])
