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
from collections.abc import Callable, Iterator
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


@dataclass(frozen=True)
class StepRecord:
    """How one step of a run ended, as the summary and `--json` say it."""

    name: str
    title: str
    outcome: str  # "finished", "failed", "undone", "skipped", "not run"
    seconds: float = 0.0
    error: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class DrillFacts:
    """What a drill adds to its summary: its source, target, marker, the source's counts, the plan it made."""

    source: str
    target: datetime | None
    marker: dict[str, Any] | None
    counts: dict[str, Any]
    plan: dict[str, Any]
    report: Path


@dataclass(frozen=True)
class RunSummary:
    """How a run ended: what every journey returns, and (as `to_json()`) RunFinished's summary and `--json`."""

    run_id: str
    ok: bool
    journal: Path
    environment: str
    journey: str
    rto_seconds: float | None = None
    recovered_to: datetime | None = None
    paused: bool = False
    preserved: Path | None = None
    error: str | None = None
    hint: str | None = None
    steps: tuple[StepRecord, ...] = ()
    checks: tuple[CheckCompleted, ...] = ()
    rpo: dict[str, Any] | None = None  # as measured (RpoMeasure.as_dict() or the dump's RPO)
    drill: DrillFacts | None = None

    def to_json(self) -> dict[str, Any]:
        """The `--json` summary and RunFinished's payload."""
        recovered_to = self.recovered_to.isoformat() if self.recovered_to else None
        preserved = str(self.preserved) if self.preserved else None
        steps = [dataclasses.asdict(s) for s in self.steps]
        if self.drill is None:
            return {"ok": self.ok, "run_id": self.run_id, "environment": self.environment, "journey": self.journey,
                    "rto_seconds": self.rto_seconds, "recovered_to": recovered_to, "paused_at_target": self.paused,
                    "preserved": preserved, "error": self.error, "hint": self.hint, "rpo": self.rpo,
                    "rpo_seconds": self.rpo.get("rpo_seconds") if self.rpo else None, "steps": steps,
                    "checks": [{"name": c.name, "outcome": c.outcome, "detail": c.detail} for c in self.checks],
                    "journal": str(self.journal)}
        drill = self.drill
        return {"ok": self.ok, "run_id": self.run_id, "environment": self.environment, "journey": self.journey,
                "source": drill.source, "rto_seconds": self.rto_seconds, "recovered_to": recovered_to,
                "target": drill.target.isoformat() if drill.target else None, "paused_at_target": self.paused,
                "preserved": preserved, "error": self.error, "hint": self.hint, "steps": steps,
                "checks": [{"name": c.name, "outcome": c.outcome, "detail": c.detail,
                            "phase": c.data.get("phase", "post")} for c in self.checks],
                "marker": drill.marker, "counts": drill.counts, "rpo": self.rpo, "plan": drill.plan,
                "journal": str(self.journal), "report": str(drill.report)}


class StepLedger:
    """The step records of a run in progress (undo turns a finished step into an undone one)."""

    def __init__(self) -> None:
        self.steps: list[StepRecord] = []

    def mark_undone(self, name: str) -> None:
        self.steps = [dataclasses.replace(r, outcome="undone") if r.name == name and r.outcome == "finished" else r
                      for r in self.steps]


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
    recover: Callable[[StepContext, Step, list[Step], str, StepLedger], str]
    finish: Callable[[RunSummary, StepContext, list[CheckCompleted]], RunSummary] = lambda summary, *_: summary


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
    is_dump = isinstance(plan, DumpPlan)
    journey = Journey(plan.journey, env, [cls() for cls in (DUMP_STEPS if is_dump else PITR_STEPS)], plan,
                      lambda ctx: {**plan.to_json(), "stamp": ctx.stamp}, recover_dump if is_dump else recover_restore)
    return run_journey(journey, journal, clock, cancel, config, listener)


def run_journey(journey: Journey, journal: Journal, clock: Clock, cancel: threading.Event, config: Config,
                listener: Callable[[Event], None] | None = None) -> RunSummary:
    """Take the environment's lock (refused: no journal), run the journey's steps and release the lock."""
    run_id = journal.path.stem
    lock = EnvLock(config.state_dir, journey.env.name)
    try:
        lock.acquire(run_id, clock)
        _refuse_after_interrupted(config, journey.env)
    except DrError:
        lock.release()
        if journal.path.exists() and journal.path.stat().st_size == 0:
            journal.path.unlink()  # a refused run leaves no journal
        raise
    try:
        with SignalGuard(cancel) as guard:
            return _run(journey, journal, clock, cancel, config, listener, run_id, guard)
    finally:
        lock.release()


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

    def emit(event: Event) -> None:
        journal.append(event)
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
    ledger = StepLedger()
    emit(RunStarted(started, run_id, journey.name, env.name, [s.name for s in steps], journey.started_plan(ctx),
                    os.getpid()))
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
            ledger.steps.append(StepRecord(step.name, step.title, "skipped"))
            emit(StepLogged(clock.now(), step.name, ["skipped: recovery is paused at the target"]))
            continue
        start_rto_clock()  # at the first step after the one that made the plan (the drill's)
        emit(StepStarted(clock.now(), step.name, step.title))
        t0 = clock.monotonic()
        try:
            ctx.check_cancel()
            step.run(ctx)
        except BaseException as exc:  # every failure, even Ctrl-C, reaches the undo
            seconds = clock.monotonic() - t0
            title, hint = _describe(exc)
            if guard.received:
                if not isinstance(exc, Cancelled):
                    ctx.log(step.name, f"as it stopped: {title}")
                title, hint = f"interrupted by {guard.received[0]}", ""
            emit(StepFailed(clock.now(), step.name, seconds, title, hint))
            ledger.steps.append(StepRecord(step.name, step.title, "failed", seconds, title, hint))
            failure = (step, title, hint)
            break
        seconds = clock.monotonic() - t0
        emit(StepFinished(clock.now(), step.name, seconds))
        ledger.steps.append(StepRecord(step.name, step.title, "finished", seconds))
        if clock_start:
            rto_tick()
        completed.append(step)
    guard.hold()
    finished.set()
    ticker.join()
    done_names = {r.name for r in ledger.steps}
    ledger.steps += [StepRecord(s.name, s.title, "not run") for s in steps if s.name not in done_names]
    is_dump = isinstance(ctx.plan, DumpPlan)
    recovered_to = (None if failure else ctx.plan.dump_time) if is_dump else ctx.recovered_to
    from drtui.core.checks import healthy_at  # with psycopg: not before the run needs it (drtui.core.postgres)

    healthy = healthy_at(ctx.checks)
    rto_seconds = (healthy - clock_start[0]).total_seconds() if healthy and clock_start else None
    error = hint = None
    if failure:
        step, error, step_hint = failure
        hint = journey.recover(ctx, step, completed, step_hint, ledger)
    if ctx.staged_wal and not ctx.paused and not (failure and isinstance(failure[0], PITR_STEPS)):
        stop_wal_staging(ctx)  # a WAL feeder may still be fetching past the target
        ctx.backend.discard(ctx.staged_wal)
    summary = journey.finish(RunSummary(
        run_id, failure is None, journal.path, env.name, journey.name, rto_seconds, recovered_to, ctx.paused,
        ctx.preserved, error, hint, tuple(ledger.steps), tuple(ctx.checks), ctx.facts.get("rpo")), ctx, emitted_checks)
    emit(RunFinished(clock.now(), summary.ok, summary.rto_seconds,
                     summary.recovered_to.isoformat() if summary.recovered_to else None, summary.to_json()))
    return summary


def recover_restore(ctx: StepContext, failed: Step, completed: list[Step], hint: str, ledger: StepLedger) -> str:
    """Undo what can be undone automatically; return the hint the operator reads."""
    if any(step.commits for step in completed):
        where = f"; the previous data directory is kept at {ctx.preserved}" if ctx.preserved else ""
        ctx.log(failed.name, "nothing was undone: the restored cluster was up before this failure"
                + (f" (the previous data directory is {ctx.preserved})" if ctx.preserved else ""))
        return (f"{hint + '. ' if hint else ''}The restored cluster is in place{where}. To put the old data back: "
                f"drtui rollback --env {ctx.env.name}")
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
            ledger.mark_undone(step.name)
        else:
            nothing.append(step.name)
    ctx.log(failed.name, "undo finished: " + "; ".join(
        f"{label}: {', '.join(names)}" for label, names in (("undone", undone), ("nothing to undo", nothing),
                                                           ("NOT undone", not_undone)) if names))
    if any(name in ("preserve", "swap_in") for name, _, _ in problems):
        failed_undo = "; ".join(f"{name}: {title}" for name, title, _ in problems)
        return (f"{hint + '. ' if hint else ''}Undoing failed for {failed_undo}. The old data directory "
                f"is {ctx.preserved or ctx.backend.data_dir}; put it back with `drtui rollback --env {ctx.env.name}`")
    aside = f"; the failed restore is kept at {ctx.failed_aside}" if ctx.failed_aside else ""
    moved = any(step.name == "preserve" for step in completed)
    state = "is back in place" if moved else "is in place (it was never moved)"
    # The data is back: whatever else could not be undone (e.g. starting the old server) is said as it is.
    left = "".join(f"; but undoing {name} failed: {title}" + (f" ({more})" if more and more != hint else "")
                   for name, title, more in problems)
    return (f"{hint + '. ' if hint else ''}Nothing was lost: the old data directory {state}{aside}"
            + (f" (nothing to roll back){left}" if problems else ""))


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, DrError):
        return exc.title, exc.hint
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)", "the journal says what was done before it"
    return f"{type(exc).__name__}: {exc}", "an unexpected error in drtui; the journal holds the steps done so far"


class OperationRun:
    """A one-step run (rollback, promote, advance) with a journal of its own, read like a restore's."""

    def __init__(self, journal: Journal, listener: Callable[[Event], None] | None) -> None:
        self.journal, self.listener = journal, listener
        self.ok = True  # the operation may end without an error and still have failed (a check, say)
        self.summary: dict[str, Any] = {}

    def emit(self, event: Event) -> None:
        self.journal.append(event)
        if self.listener:
            self.listener(event)


@contextlib.contextmanager
def operation_run(state_dir: Path, journey: str, title: str, environment: str, clock: Clock,
                  listener: Callable[[Event], None] | None = None, run_id: str | None = None
                  ) -> Iterator[OperationRun]:
    """Journal an operation from here on: its start, what it emits, and how it ended (a failure is re-raised).
    Refusals belong before it, so that a refused operation leaves no journal. The body fills `run.summary`,
    which ends as the RunFinished summary with ok, environment and journal added."""
    run_id = run_id or new_run_id(journey, environment, clock)
    run = OperationRun(Journal(journal_path(state_dir, run_id)), listener)
    where = {"environment": environment, "journal": str(run.journal.path)}
    run.emit(RunStarted(clock.now(), run_id, journey, environment, [journey], {}, os.getpid()))
    run.emit(StepStarted(clock.now(), journey, title))
    began = clock.monotonic()
    try:
        yield run
    except BaseException as exc:
        error, hint = _describe(exc)
        run.emit(StepFailed(clock.now(), journey, clock.monotonic() - began, error, hint))
        run.emit(RunFinished(clock.now(), False, summary={"ok": False, **where, "error": error, "hint": hint}))
        raise
    else:
        run.emit(StepFinished(clock.now(), journey, clock.monotonic() - began))
        run.summary |= {"ok": run.ok, **where}
        run.emit(RunFinished(clock.now(), run.ok, summary=run.summary))
    finally:
        run.journal.close()


# Journeys journaled by operation_run: they have no plan, steps list or record of a restore.
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
