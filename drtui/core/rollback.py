"""Rollback: undo the last restore of an environment. Normally it puts the newest preserved data directory
(`<data_dir>.pre_pitr_<stamp>`) back in place and keeps the one it replaces aside, named for what it was:
`.replaced_<stamp>` (a restore that finished, or data a previous rollback put back), `.failed_<stamp>` (a
restore that failed after its cluster was up), `.interrupted_<stamp>` (the copy of a run that was killed).

After a killed run it undoes that run: it puts back the data from before it (the copy that run preserved, not
merely the newest one; when the run never moved the data, nothing is put back), removes the run's unfinished
extraction and staged WAL, and starts PostgreSQL (and the app, if the run had stopped it). Nothing else is
ever deleted. Signals cannot cut a rollback short: it is a few renames and a restart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drtui.core import tablespaces
from drtui.core.backends import backend_for
from drtui.core.clock import Clock
from drtui.core.config import Config, Environment
from drtui.core.dump_rollback import pending_dump_restore, roll_back_dump
from drtui.core.errors import DrError, ErrorKind
from drtui.core.events import Event, RunFinished
from drtui.core.lock import EnvLock, LockBusy
from drtui.core.run_summary import RollbackFacts, RunSummary
from drtui.core.runner import is_operation, run_operation
from drtui.core.status import InterruptedRun, interrupted_run, newest_run
from drtui.core.steps import Step, StepContext
from drtui.core.steps.pitr import StartApp


class NothingToRollBack(DrError):
    kind = ErrorKind.REFUSED


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback will do, said before it moves anything."""

    environment: str
    data_dir: Path
    put_back: Path | None  # None: the data directory stays (an interrupted run never moved it)
    aside_kind: str  # how the data directory in place is named when set aside: replaced, failed, interrupted
    interrupted: InterruptedRun | None = None
    database: str | None = None  # a dump restore's rollback: `put_back` is its pre-restore dump of this database

    @property
    def removes(self) -> tuple[Path, ...]:
        return self.interrupted.leftovers if self.interrupted else ()

    def describe(self) -> list[str]:
        if self.database:
            return [f"load {self.put_back} back into the database {self.database} (the dump restore is undone)",
                    "rename the uploads folder that restore set aside back into place (the one in place is kept)"]
        lines = [f"undo the interrupted run {self.interrupted.run_id}"] if self.interrupted else []
        if self.put_back and self.data_dir.exists():
            lines.append(f"set {self.data_dir} aside as {self.data_dir.name}.{self.aside_kind}_<stamp> "
                         f"(kept, never deleted)")
        if self.put_back:
            lines.append(f"put {self.put_back} back as {self.data_dir}")
        lines += [f"remove {path} (that run's unfinished copy)" for path in self.removes]
        lines.append(f"start PostgreSQL on {self.data_dir}")
        return lines


def is_production_like(env: Environment) -> bool:
    """Production itself, or an environment whose env file says APP_ENV=prod."""
    return env.is_production or (env.env_values().get("APP_ENV") or "").lower() in ("prod", "production")


def plan_rollback(config: Config, env: Environment) -> RollbackPlan:
    """What a rollback of `env` would do now; refuses (LockBusy, NothingToRollBack) without touching anything."""
    holder = EnvLock(config.state_dir, env.name).holder()
    if holder:
        raise LockBusy(f"environment {env.name!r} is busy: {holder.describe()} is running",
                       f"wait for it (`drtui attach {holder.run_id}`), then roll back")
    backend = backend_for(env, config.state_dir)
    found = interrupted_run(config, env)
    if found and found.needs_rollback:
        return RollbackPlan(env.name, backend.data_dir, found.preserved, "interrupted", found)
    preserved = backend.preserved()
    if saved := pending_dump_restore(config, env, preserved):
        return RollbackPlan(env.name, backend.data_dir, saved, "replaced", database=env.database)
    if not preserved:
        data_dir = backend.data_dir
        raise NothingToRollBack(f"no preserved data directory beside {data_dir} ({data_dir.name}.pre_pitr_*): "
                                "there is nothing (more) to roll back", "nothing was changed")
    return RollbackPlan(env.name, backend.data_dir, preserved[-1], _what_is_in_place(config, env))


def _what_is_in_place(config: Config, env: Environment) -> str:
    newest = newest_run(config.state_dir, env.name)
    if newest is None or is_operation(newest[0]):
        return "replaced"
    finished = [e for e in newest[1] if isinstance(e, RunFinished)]
    return "failed" if finished and not finished[-1].ok else "replaced"


def roll_back(config: Config, env: Environment, clock: Clock,
              listener: Callable[[Event], None] | None = None, run_id: str | None = None) -> RunSummary:
    """Plan, say what will happen, then do it. The run has a journal of its own (journey "rollback"); a refusal
    leaves none."""
    backend = backend_for(env, config.state_dir)
    found = interrupted_run(config, env)
    if not (found and found.needs_rollback) and (
            dumped := roll_back_dump(config, env, clock, backend.preserved(), listener, run_id)):
        return dumped
    plan = plan_rollback(config, env)
    steps: list[Step] = [PutBack(plan), StartServer()]
    if plan.interrupted and "stop_app" in plan.interrupted.finished_steps:
        steps.append(StartApp())
    return run_operation("rollback", env, steps, config, clock, listener, run_id)


class PutBack(Step):
    """Stop the server, set the data directory in place aside, put the preserved one back, remove what a killed
    run left unfinished."""

    name, title = "rollback", "Put the data from before the restore back"

    def __init__(self, plan: RollbackPlan) -> None:
        self.plan = plan

    def run(self, ctx: StepContext) -> None:
        plan, backend = self.plan, ctx.backend
        ctx.log(self.name, *(f"will {line}" for line in plan.describe()))
        if backend.server_alive():
            backend.stop_server()
            ctx.log(self.name, f"stopped PostgreSQL on {backend.data_dir}")
        aside = None
        if plan.put_back:
            aside = backend.set_aside(ctx.stamp, plan.aside_kind)
            if aside:
                ctx.log(self.name, f"{backend.data_dir} → {aside} (kept, never deleted)")
            backend.put_in_place(plan.put_back)
            ctx.log(self.name, f"{plan.put_back} → {backend.data_dir}")
            if moved := tablespaces.put_back(backend.data_dir, plan.put_back, plan.aside_kind, ctx.stamp):
                ctx.log(self.name, *(f"tablespace {line}" for line in moved))
        for path in plan.removes:
            backend.discard(path)
            ctx.log(self.name, f"removed {path}")
        ctx.facts["rollback"] = RollbackFacts(backend.data_dir, plan.put_back, aside, plan.removes,
                                              plan.interrupted.run_id if plan.interrupted else None, False)


class StartServer(Step):
    name, title = "start_postgres", "Start PostgreSQL"

    def run(self, ctx: StepContext) -> None:
        ctx.backend.start_server()
        ctx.log(self.name, "started PostgreSQL")
        ctx.facts["rollback"] = dataclasses.replace(ctx.facts["rollback"], started=True)
