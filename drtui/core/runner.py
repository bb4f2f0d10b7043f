"""The runner: executes an ApprovedPlan's steps in order, appends every event to the run's journal, and on a
failure before the restored cluster came up undoes the completed steps in reverse (the old data directory
back in place, the old server and app started again). After that point it says how to roll back instead.

The RTO clock starts at the run's start (or the plan's incident start) and stops at the first healthy
/readyz that verification saw.

SIGINT, SIGTERM and SIGHUP (the terminal is gone) all stop a run the same way: the step in progress stops at its
next check, the runner undoes what can be undone, and no further signal can cut that short; the journal says
what was and was not undone and always ends with RunFinished. A run whose process was killed outright is found
by the next one (`status.interrupted_run`), which refuses until `drtui rollback` has undone it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from drtui.core.backends import backend_for
from drtui.core.clock import Clock, stamp
from drtui.core.config import Config, Environment, Objectives, load_config
from drtui.core.errors import DrError, ErrorKind
from drtui.core.events import (
    CheckCompleted,
    Event,
    RtoTicked,
    RunFinished,
    RunStarted,
    StepFailed,
    StepFinished,
    StepLogged,
    StepStarted,
)
from drtui.core.gates import ApprovedPlan
from drtui.core.journal import Journal, journal_path
from drtui.core.lock import EnvLock
from drtui.core.planning import DumpPlan, Plan
from drtui.core.remedy import UNDONE_REMEDY, remedy_after_commit
from drtui.core.run_record import RunRecord
from drtui.core.run_summary import RunSummary
from drtui.core.steps import Cancelled, Step, StepContext
from drtui.core.steps.dump import DumpPreflight, PreRestoreDump, RestoreDatabase, RestoreUploads
from drtui.core.steps.dump import recover as recover_dump
from drtui.core.steps.pitr import (
    ExtractBaseBackup,
    Preflight,
    Preserve,
    StageWal,
    StartApp,
    StartPostgres,
    StopApp,
    StopPostgres,
    SwapIn,
    Verify,
    WriteRecovery,
    stop_wal_staging,
)
from drtui.core.steps.recovery import FollowRecovery

PITR_STEPS: tuple[type[Step], ...] = (Preflight, ExtractBaseBackup, StageWal, WriteRecovery, StopApp, StopPostgres,
                                      Preserve, SwapIn, StartPostgres, FollowRecovery, StartApp, Verify)
DUMP_STEPS: tuple[type[Step], ...] = (DumpPreflight, StopApp, PreRestoreDump, RestoreDatabase, RestoreUploads,
                                      StartApp, Verify)
RTO_TICK_SECONDS = 5.0
SKIPPED_WHEN_PAUSED = ("start_app", "verify")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class InterruptedRunFound(DrError):
    """The environment's last run was killed and left things to undo; nothing was touched."""

    kind = ErrorKind.REFUSED


class SignalGuard:
    """While a run's steps run, the first stop signal sets the cancel event. From `hold()` on (the undo and the
    run's end) every stop signal is ignored, by this process and by the commands it starts (an ignored signal
    stays ignored across exec), so a second Ctrl-C, which the terminal sends to them too, cannot cut the undo
    short. Signals reach only the main thread: elsewhere the guard does nothing."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel
        self.received: list[str] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        self.received.append(signal.Signals(signum).name)
        self.cancel.set()

    def hold(self) -> None:
        for sig in self._previous:
            signal.signal(sig, signal.SIG_IGN)

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class Journey:
    """What the runner runs: the steps in order and how a failure is recovered from. A journey that plans
    after it starts (the drill) has a step that sets `ctx.plan` for the steps after it; the RTO clock starts
    when the plan is there."""

    name: str
    env: Environment
    steps: list[Step]
    plan: Plan | DumpPlan | None
    started_plan: Callable[[StepContext], dict[str, Any]]
    recover: Callable[[StepContext, Step, list[Step], str, RunRecord], str]
    finish: Callable[[RunSummary, StepContext, list[CheckCompleted]], RunSummary] = lambda summary, *_: summary
    operation: bool = False  # rollback, promote, advance: signals never cut it short, and it runs after a killed run


def rto_objective(objectives: Objectives, dump: bool) -> float:
    """The RTO objective, in seconds, that a run is held to: the staging restore's for a dump, else PITR's."""
    return (objectives.staging_rto if dump else objectives.pitr_rto).total_seconds()


def execute(approved: ApprovedPlan, journal: Journal, clock: Clock, cancel: threading.Event, *,
            config: Config | None = None, listener: Callable[[Event], None] | None = None) -> RunSummary:
    """Run an approved plan to its end, reporting through `journal` (and `listener`, if given)."""
    plan = approved.plan
    if config is None:
        config = load_config(str(plan.config_path) if plan.config_path else None).with_overrides(
            plan.environment, os.environ)
    env = config.environment(plan.environment)
    if isinstance(plan, Plan) and plan.pg_bin:  # a backup of another major version: its own programs
        env = dataclasses.replace(env, pg_bin=plan.pg_bin)
    is_dump = isinstance(plan, DumpPlan)
    journey = Journey(plan.journey, env, [cls() for cls in (DUMP_STEPS if is_dump else PITR_STEPS)], plan,
                      lambda ctx: {**plan.to_json(), "stamp": ctx.stamp}, recover_dump if is_dump else recover_restore)
    return run_journey(journey, journal, clock, cancel, config, listener)


def run_journey(journey: Journey, journal: Journal, clock: Clock, cancel: threading.Event, config: Config,
                listener: Callable[[Event], None] | None = None) -> RunSummary:
    """Take the environment's lock (refused: no journal), run the journey's steps and release the lock."""
    run_id = journal.path.stem
    try:
        lock = _take_lock(journey, run_id, config, clock)
    except DrError:
        if journal.path.exists() and journal.path.stat().st_size == 0:
            journal.path.unlink()  # a refused run leaves no journal
        raise
    try:
        return _guarded(journey, journal, clock, cancel, config, listener, run_id)
    finally:
        lock.release()


def run_operation(name: str, env: Environment, steps: list[Step], config: Config, clock: Clock,
                  listener: Callable[[Event], None] | None = None, run_id: str | None = None) -> RunSummary:
    """Run an operation on a restore (rollback, promote, advance) into a journal of its own, opened once the
    lock is held: no plan, no RTO clock, and nothing undone after a failure (the summary says what failed and
    what to do). A step leaves what the summary adds (RollbackFacts) in `ctx.facts["rollback"]`. `run_id` is
    chosen by a caller that follows the journal from the start (the wizard)."""
    run_id = run_id or new_run_id(name, env.name, clock)
    journey = Journey(name, env, steps, None, lambda _ctx: {}, lambda _ctx, _step, _done, hint, _record: hint,
                      lambda summary, ctx, _checks: dataclasses.replace(summary, rollback=ctx.facts.get("rollback")),
                      operation=True)
    lock = _take_lock(journey, run_id, config, clock)
    try:
        journal = Journal(journal_path(config.state_dir, run_id))
        try:
            return _guarded(journey, journal, clock, threading.Event(), config, listener, run_id)
        finally:
            journal.close()
    finally:
        lock.release()


def _take_lock(journey: Journey, run_id: str, config: Config, clock: Clock) -> EnvLock:
    """The environment's lock, held for `run_id`; a refusal (LockBusy, InterruptedRunFound) holds nothing."""
    lock = EnvLock(config.state_dir, journey.env.name)
    try:
        lock.acquire(run_id, clock)
        if not journey.operation:  # a rollback undoes the killed run; promote and advance need no restore
            _refuse_after_interrupted(config, journey.env)
    except DrError:
        lock.release()
        raise
    return lock


def _guarded(journey: Journey, journal: Journal, clock: Clock, cancel: threading.Event, config: Config,
             listener: Callable[[Event], None] | None, run_id: str) -> RunSummary:
    with SignalGuard(cancel) as guard:
        if journey.operation:  # a few renames, a restart, a promotion: stopped halfway, it strands the server
            guard.hold()
        return _run(journey, journal, clock, cancel, config, listener, run_id, guard)


def _refuse_after_interrupted(config: Config, env: Environment) -> None:
    """Restoring over what a killed run left would preserve its half-restored copy as if it were the data."""
    from drtui.core.status import interrupted_run

    found = interrupted_run(config, env)
    if found and found.needs_rollback:
        raise InterruptedRunFound(f"{env.name}: " + "; ".join(found.describe()), found.what_to_do())


def _run(journey: Journey, journal: Journal, clock: Clock, cancel: threading.Event, config: Config,
         listener: Callable[[Event], None] | None, run_id: str, guard: SignalGuard) -> RunSummary:
    env = journey.env
    listeners = [listener] if listener else []
    emitted_checks: list[CheckCompleted] = []
    record = RunRecord()

    def emit(event: Event) -> None:
        journal.append(event)
        record.apply(event)
        if isinstance(event, CheckCompleted):
            emitted_checks.append(event)
        for each in list(listeners):
            try:
                each(event)
            except OSError:  # the terminal is gone (SIGHUP): the journal goes on without it
                with contextlib.suppress(ValueError):  # the RTO ticker's thread may have dropped it already
                    listeners.remove(each)

    started = clock.now()
    steps = journey.steps
    backend = backend_for(env, config.state_dir)
    ctx = StepContext(plan=journey.plan, config=config, env=env, backend=backend, clock=clock, cancel=cancel,
                      emit=emit, run_id=run_id, stamp=backend.free_stamp(started), facts={"started": started})
    emit(RunStarted(started, run_id, journey.name, env.name, [s.name for s in steps], journey.started_plan(ctx),
                    os.getpid()))
    for step in steps:  # RunStarted names the steps; the summary gives every one its title, run or not
        record.all_steps[step.name].title = step.title
    completed: list[Step] = []
    failure: tuple[Step, str, str] | None = None
    finished = threading.Event()
    clock_start: list[datetime] = []  # the RTO clock's start, once the run has its plan

    def start_rto_clock() -> None:
        if not clock_start and ctx.plan is not None:
            clock_start.append(ctx.plan.incident_start or clock.now())

    def rto_tick() -> None:
        objective = rto_objective(config.objectives, isinstance(ctx.plan, DumpPlan))
        emit(RtoTicked(clock.now(), (clock.now() - clock_start[0]).total_seconds(), objective))

    def tick() -> None:
        while not finished.wait(RTO_TICK_SECONDS):
            if clock_start:
                rto_tick()

    if ctx.plan is not None:
        clock_start.append(ctx.plan.incident_start or started)
    ticker = threading.Thread(target=tick, name="rto-ticker", daemon=True)
    ticker.start()
    for step in steps:
        if ctx.paused and step.name in SKIPPED_WHEN_PAUSED:
            record.mark_skipped(step.name)
            emit(StepLogged(clock.now(), step.name, ["skipped: recovery is paused at the target"]))
            continue
        start_rto_clock()  # at the first step after the one that made the plan (the drill's)
        emit(StepStarted(clock.now(), step.name, step.title))
        t0 = clock.monotonic()
        try:
            ctx.check_cancel()
            skipped = step.run(ctx) or ""
        except BaseException as exc:  # every failure, even Ctrl-C, reaches the undo
            seconds = clock.monotonic() - t0
            title, hint = _describe(exc)
            if guard.received:
                if not isinstance(exc, Cancelled):
                    ctx.log(step.name, f"as it stopped: {title}")
                title, hint = f"interrupted by {guard.received[0]}", ""
            emit(StepFailed(clock.now(), step.name, seconds, title, hint))
            failure = (step, title, hint)
            break
        seconds = clock.monotonic() - t0
        if skipped:
            ctx.log(step.name, f"skipped: {skipped}")
        emit(StepFinished(clock.now(), step.name, seconds, skipped))
        if clock_start:
            rto_tick()
        completed.append(step)
    guard.hold()
    finished.set()
    ticker.join()
    is_dump = isinstance(ctx.plan, DumpPlan)
    recovered_to = (None if failure else ctx.plan.dump_time) if is_dump else ctx.recovered_to
    from drtui.core.checks import healthy_at  # with psycopg: not before the run needs it (drtui.core.postgres)

    healthy = healthy_at(ctx.checks)
    rto_seconds = (healthy - clock_start[0]).total_seconds() if healthy and clock_start else None
    error = hint = None
    if failure:
        step, error, step_hint = failure
        hint = journey.recover(ctx, step, completed, step_hint, record)
    if ctx.staged_wal and not ctx.paused and not (failure and isinstance(failure[0], PITR_STEPS)):
        stop_wal_staging(ctx)  # a WAL feeder may still be fetching past the target
        ctx.backend.discard(ctx.staged_wal)
    summary = journey.finish(RunSummary(
        run_id, failure is None, journal.path, env.name, journey.name, rto_seconds, recovered_to, ctx.paused,
        ctx.preserved, error, hint, tuple(dataclasses.replace(s, log=list(s.log)) for s in record.all_steps.values()),
        tuple(ctx.checks), ctx.facts.get("rpo"), remedy=ctx.facts.get("remedy")), ctx, emitted_checks)
    emit(RunFinished(clock.now(), summary.ok, summary.rto_seconds,
                     summary.recovered_to.isoformat() if summary.recovered_to else None, summary.to_json()))
    return summary


def recover_restore(ctx: StepContext, failed: Step, completed: list[Step], hint: str, record: RunRecord) -> str:
    """Undo what can be undone automatically; return the hint the operator reads."""
    if any(step.commits for step in completed):
        ctx.log(failed.name, "nothing was undone: the restored cluster was up before this failure"
                + (f" (the previous data directory is {ctx.preserved})" if ctx.preserved else ""))
        return after_commit_hint(ctx, failed, hint)
    ctx.log(failed.name, "undoing the steps done so far (further signals are ignored until this is done)")
    problems, undone, nothing, not_undone = [], [], [], []
    for step in [failed, *reversed(completed)]:
        try:
            done = step.undo(ctx)
        except Exception as exc:  # keep undoing the others; say what failed
            problems.append((step.name, *_describe(exc)))
            not_undone.append(step.name)
            ctx.log(step.name, f"NOT undone: {step.name}: {problems[-1][1]}")
            continue
        if done:
            ctx.log(step.name, f"undone: {done}")
            undone.append(step.name)
            record.mark_undone(step.name)
        else:
            nothing.append(step.name)
    ctx.log(failed.name, "undo finished: " + "; ".join(
        f"{label}: {', '.join(names)}" for label, names in (("undone", undone), ("nothing to undo", nothing),
                                                           ("NOT undone", not_undone)) if names))
    if any(name in ("preserve", "swap_in") for name, _, _ in problems):
        failed_undo = "; ".join(f"{name}: {title}" for name, title, _ in problems)
        return (f"{hint + '. ' if hint else ''}Undoing failed for {failed_undo}. The old data directory "
                f"is {ctx.preserved or ctx.backend.data_dir}; put it back with `drtui rollback --env {ctx.env.name}`")
    ctx.facts["remedy"] = UNDONE_REMEDY.as_dict()
    aside = f"; the failed restore is kept at {ctx.failed_aside}" if ctx.failed_aside else ""
    moved = any(step.name == "preserve" for step in completed)
    state = "is back in place" if moved else "is in place (it was never moved)"
    # The data is back: whatever else could not be undone (e.g. starting the old server) is said as it is.
    left = "".join(f"; but undoing {name} failed: {title}" + (f" ({more})" if more and more != hint else "")
                   for name, title, more in problems)
    return (f"{hint + '. ' if hint else ''}Nothing was lost: the old data directory {state}{aside}"
            + (f" (nothing to roll back){left}" if problems else ""))


def after_commit_hint(ctx: StepContext, failed: Step, hint: str) -> str:
    """The hint of a failure with the restored cluster up; its remedy (rollback only for wrong or unusable data)
    is kept in `ctx.facts["remedy"]` for the summary."""
    target = ctx.plan.target.time if isinstance(ctx.plan, Plan) and ctx.plan.target.time else None
    remedy = remedy_after_commit(ctx.env.name, failed.name, [c.name for c in ctx.checks if c.outcome == "failed"],
                                 str(ctx.preserved) if ctx.preserved else None,
                                 target.isoformat() if target else None)
    ctx.facts["remedy"] = remedy.as_dict()
    return f"{hint + '. ' if hint else ''}{remedy.text}"


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, DrError):
        return exc.title, exc.hint
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)", "the journal says what was done before it"
    return f"{type(exc).__name__}: {exc}", "an unexpected error in drtui; the journal holds the steps done so far"


# Journeys that operate on a restore (run_operation): they have no plan and no record of their own.
OPERATION_JOURNEYS = ("rollback", "promote", "advance")


def new_run_id(journey: str, env_name: str, clock: Clock) -> str:
    """`<stamp>-<journey>-<environment>-<random>`; the environment is left out when it has the journey's name
    (a staging restore of staging), and the suffix is random: one process (the TUI) launches many runs."""
    where = [] if env_name == journey else [env_name]
    return "-".join([stamp(clock.now()), journey, *where, secrets.token_hex(4)])


def is_operation(journal: Path) -> bool:
    """Whether a journal (named by its run id) is a rollback, promote or advance rather than a restore."""
    parts = journal.stem.split("-")
    return len(parts) > 1 and parts[1] in OPERATION_JOURNEYS
