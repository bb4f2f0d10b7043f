"""The automated PITR drill (the runbook's `pitr_restore_drill.sh`): production's backups restored into staging
and proven, with every step an event in ONE run journal of journey "drill", so the report, the TUI and the
headless printer read it like any run.

The steps, in the journal's names:
 1. `pre_health`  run_checks against staging, recorded as pre-restore checks (the starting point; they do not
                  decide the verdict, as the report does not count them either);
 2. `marker`      a row in `dr_drill_markers` (id, drill_id unique, created_at) of the SOURCE database
                  (production, where the backups come from), created if missing; the drill id is the run id;
                  a dr_drill_markers of another shape (an older drill script's) is left alone and the marker
                  goes into drtui_drill_markers;
 3. `backup`      a fresh base backup of the source, unless SKIP_BACKUP (then the newest that reaches the target)
                  or BASE_BACKUP names one;
 4. `plan`        the target, the source's row counts at it, the WAL that covers it archived, the restore planned
                  and approved; then the engine's own steps (preflight … start_app) restore staging to the
                  target, keeping staging's data directory aside first;
 5.+6. `verify`   the engine's last step: a bounded wait for /readyz, then the post-restore health checks;
 7. `integrity`   the marker present (absent for a target before it), the app tables' counts equal to what the
                  source held at the target, max(created_at) not later than the target; RPO measured;
 8. `smoke`       the environment's smoke_command (the runbook's smoke.sh); skipped, never passed, without one;
 9.               the report, rendered from the finished journal into report_dir (DRILL_REPORT_DIR).

Exact counts while production takes writes. When the drill picks the target itself it takes a SHARE lock on
the app tables in one transaction on the source, reads the counts, reads clock_timestamp() as the target and
commits. SHARE conflicts with every writer's ROW EXCLUSIVE lock, so the lock is granted only once every
transaction that wrote those tables has finished: each of those committed before the target was read, with a
commit time before it, and each writer that queued behind the lock commits after the lock is gone, with a
commit time after the target. Recovery to that time, inclusive, replays exactly the commits up to it, so the
restored tables hold exactly the rows counted. Writers wait for as long as the counts take (milliseconds on the
sandbox's tables; a count grows with its table); the lock waits at most drill_source.LOCK_TIMEOUT for a long writing
transaction, since new writers queue behind it meanwhile.

To give recovery a commit after the target to stop at even when production is idle, the drill then commits a
transactional logical message (no table touched), switches the WAL segment and waits for the archiver to copy
it, so the plan sees the target inside the archived WAL.

For a TARGET_TIME given by the operator (in the past) the counts are of the rows whose inserting transaction
committed by then: with track_commit_timestamp=on, pg_xact_commit_timestamp(xmin) <= target (rows whose commit
time is not known, frozen or older than the setting, count as before it). That is exact for tables that are
only inserted into since the target (a row updated or deleted since has another xmin, or is gone). Without
track_commit_timestamp the counts fall back to created_at <= target: approximate, said so in the check, and a
mismatch is then reported as skipped, not failed.

For BEFORE_XID (just before a transaction, `recovery_target_xid` with `recovery_target_inclusive = off`) the
transaction must have committed on the source; its commit time (pg_xact_commit_timestamp, else a listing of
`drtui events`) stands for the target time: the marker, inserted after it, must be absent, and the counts are of
the rows committed before it, plus the rows the transaction itself deleted or updated, which the source no longer
holds as they were (the WAL counts them, read with core/incident). A table it truncated or dropped cannot be
counted that way and is left out of the comparison, said so. A check proves the transaction is not committed in
the restored data. No fresh base backup is taken for it: one taken now starts after that transaction and cannot
reach a target before it, so the newest backup that reaches its commit time is restored.

Exit codes: 0 only when every step finished and no post-restore check failed; 1 when a step or check failed;
2 when a gate refused (TARGET_ENV=staging, CONFIRM_DRILL=YES, no APP_ENV=prod in staging's env file, the lock)
or an input is bad, in which case nothing was touched: no marker, no backup, no journal, no report.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from drtui.core import backup, incident
from drtui.core.backends import backend_for
from drtui.core.checks import (
    FAILED,
    PASSED,
    SKIPPED,
    RpoMeasure,
    last_replayed_commit,
    max_created_at,
    measure_rpo,
    run_checks,
)
from drtui.core.clock import Clock, format_duration, stamp
from drtui.core.config import PRODUCTION, Config, Environment
from drtui.core.drill_source import (
    DrillStepError,
    commit_time,
    counts_at,
    counts_text,
    full_xid,
    marker_shape_problem,
    pin_target,
    tracks_commit_times,
    xact_status,
)
from drtui.core.errors import DrError, UsageError
from drtui.core.events import (
    CheckCompleted,
    Event,
)
from drtui.core.gates import (
    CONFIRM_VARIABLES,
    ApprovedPlan,
    Confirmation,
    GateRefused,
    approve,
    evaluate,
    evaluate_journey,
    gather_facts,
)
from drtui.core.inventory.wal import scan_wal
from drtui.core.journal import Journal, journal_path
from drtui.core.objectstore import S3Settings, S3Url
from drtui.core.planning import Target, TargetKind, make_plan
from drtui.core.postgres import connect
from drtui.core.random_target import RandomPick, pick_target
from drtui.core.report import TEMPLATES, write_report
from drtui.core.run_record import RunRecord
from drtui.core.run_summary import DrillFacts, RunSummary
from drtui.core.runner import PITR_STEPS, Journey, after_commit_hint, new_run_id, recover_restore, run_journey
from drtui.core.steps import Step, StepContext

JOURNEY = "drill"
MARKER_TABLE = "dr_drill_markers"
# drtui's own marker table, for when dr_drill_markers exists in another shape (the runbook's shell drill's).
OWN_MARKER_TABLE = "drtui_drill_markers"
ARCHIVE_WAIT_SECONDS = 120
SMOKE_TIMEOUT_SECONDS = 900
SMOKE_LOG_LINES = 40

# Check names of the drill's own checks (the report lists them under data integrity).
MARKER_CHECK = "drill_marker"
COUNTS_CHECK = "record_counts"
CREATED_CHECK = "created_before_target"
SMOKE_CHECK = "smoke_tests"
BEFORE_XID_CHECK = "before_xid"

DRILL_STEPS = (("pre_health", "Pre-drill health check of staging"),
               ("marker", "Insert a marker row into the source database"),
               ("backup", "Create a fresh base backup"),
               ("plan", "Pick the target, archive its WAL, plan the restore"))
AFTER_STEPS = (("integrity", "Verify data integrity"), ("smoke", "Run the smoke tests"))


@dataclass(frozen=True)
class DrillRequest:
    """What the operator asked for: the runbook's variables, already parsed."""

    target_env: str | None  # TARGET_ENV / --env
    confirmed: bool  # CONFIRM_DRILL=YES / --yes
    target_time: datetime | None = None  # TARGET_TIME; None: the drill picks it (exact counts)
    base_backup: Path | None = None  # BASE_BACKUP
    wal_archive: Path | None = None  # WAL_ARCHIVE; None: the live archive
    skip_backup: bool = False  # SKIP_BACKUP
    operator: str = "not recorded"  # DRILL_OPERATOR
    reviewer: str = "not recorded"  # DRILL_REVIEWER
    source_env: str = PRODUCTION
    run_id: str | None = None  # chosen by a caller that follows the journal from the start (the wizard)
    random_target: bool = False  # RANDOM_TARGET: a random kept backup, a moment uniformly inside its window
    seed: int | None = None  # of the random pick (None: a fresh one, recorded)
    before_xid: Target | None = None  # BEFORE_XID: just before this transaction (an exclusive xid target)


@dataclass(frozen=True)
class BeforeXid:
    """The transaction a BEFORE_XID drill stops just before, as the source and its WAL know it."""

    target: Target  # exclusive, saying what the transaction did when known
    full_xid: int  # with its epoch, to ask the restored server about it
    committed_at: datetime
    changes: tuple[incident.Change, ...]  # what the WAL says it did (every DELETE and UPDATE counted)

    def describe(self) -> str:
        return f"{self.target.xid} ({self.target.about})"

    def rows_undone(self, tables: list[str]) -> dict[str, int | None]:
        """Per app table it touched: the rows it deleted or updated (there again before it), None when it
        truncated or dropped the table (rows the WAL does not count)."""
        undone: dict[str, int | None] = {}
        for change in self.changes:
            for name in change.relations:
                table = name.rpartition(".")[2]
                if table in tables:
                    rows = undone.get(table, 0)
                    undone[table] = None if change.rows is None or rows is None else rows + change.rows
        return undone


@dataclass
class Marker:
    drill_id: str
    row_id: int
    created_at: datetime
    inserted_after: datetime  # clock_timestamp() just before the insert
    committed_by: datetime  # clock_timestamp() just after its commit
    committed_at: datetime | None  # the exact commit time (track_commit_timestamp=on)
    table: str = MARKER_TABLE


def check_gates(config: Config, request: DrillRequest) -> Environment:
    """The drill's gates before anything is touched; GateRefused (exit 2) when one says no."""
    env = config.environment(request.target_env if request.target_env in config.environments else "staging")
    facts = gather_facts(config, env, request.target_env)
    failed = [r for r in evaluate_journey(JOURNEY, env.name, facts) if not r.passed]
    if failed:
        raise GateRefused("refused: " + "; ".join(r.message for r in failed),
                          "; ".join(r.hint for r in failed if r.hint))
    if not request.confirmed:
        raise GateRefused(f"refused: the drill of {env.name!r} was not confirmed",
                          f"set {CONFIRM_VARIABLES[JOURNEY]}=YES (the runbook's confirmation)")
    return env


def _check_inputs(config: Config, env: Environment, request: DrillRequest, clock: Clock) -> Environment:
    source = config.environment(request.source_env)
    if request.before_xid is not None and (request.target_time is not None or request.random_target):
        raise UsageError("BEFORE_XID gives the target, and so does " + (
            "TARGET_TIME" if request.target_time is not None else "RANDOM_TARGET"),
            "drop one of them: BEFORE_XID (--before-xid), TARGET_TIME (--target-time) or RANDOM_TARGET")
    if request.target_time is not None and request.target_time > clock.now():
        raise UsageError(f"TARGET_TIME {request.target_time.isoformat()} is in the future",
                         "give a past time, or leave TARGET_TIME unset: the drill then picks one after its marker")
    if source.name == env.name:
        raise UsageError(f"the drill restores {source.name!r} backups into {env.name!r}: they must differ",
                         "the source is the environment the backups come from (production)")
    if request.base_backup is not None and not request.base_backup.exists():
        raise UsageError(f"{request.base_backup}: no such base backup", "check BASE_BACKUP / --base-backup")
    if request.wal_archive is not None and not request.wal_archive.exists():
        raise UsageError(f"{request.wal_archive}: no such WAL archive", "check WAL_ARCHIVE / --wal-archive")
    if (request.wal_archive is not None and request.wal_archive.is_file() and request.target_time is None
            and request.before_xid is None):
        raise UsageError(f"WAL_ARCHIVE is the tarball {request.wal_archive}, which cannot hold the WAL after this "
                         "drill's marker", "give a TARGET_TIME inside the tarball, or leave WAL_ARCHIVE unset to "
                         "use the live archive")
    return source


def report_path(config: Config, started: datetime) -> Path:
    """Where the drill's report goes: `pitr_drill_YYYYMMDDTHHMMSSZ.md` in report_dir."""
    return config.report_dir / f"{TEMPLATES[JOURNEY][1]}_{stamp(started)}.md"


def run_drill(config: Config, request: DrillRequest, clock: Clock, cancel: threading.Event, *,
              listener: Callable[[Event], None] | None = None) -> RunSummary:
    """Gates, then the drill's steps run by the runner into one journal, then the report. Refusals raise before
    any change."""
    env = check_gates(config, request)
    source = _check_inputs(config, env, request, clock)
    pick = None
    if request.random_target:  # picked before anything is touched: a drill that cannot pick is refused
        pick = pick_target(config, source, clock, seed=request.seed, wal_source=request.wal_archive,
                           base_backup=request.base_backup)
        request = dataclasses.replace(request, target_time=pick.moment, base_backup=pick.backup)
    before = resolve_before_xid(config, source, request.before_xid, request.wal_archive) \
        if request.before_xid else None
    run_id = request.run_id or new_run_id(JOURNEY, env.name, clock)
    drill = _Drill(config, env, source, request, clock, run_id, pick, before)
    journal = Journal(journal_path(config.state_dir, run_id))
    try:
        summary = run_journey(drill.journey(), journal, clock, cancel, config, listener)
    finally:
        journal.close()
    write_report(config, journal.path, operator=request.operator, reviewer=request.reviewer, rpo=drill.rpo)
    return summary


def resolve_before_xid(config: Config, source: Environment, target: Target,
                       wal_archive: Path | None = None) -> BeforeXid:
    """The transaction of a BEFORE_XID target: committed on the source (else UsageError, nothing touched), when,
    and what the WAL around its commit says it did."""
    assert target.xid is not None
    xid = target.xid
    with connect(source) as conn:
        full = full_xid(conn, xid)
        status = xact_status(conn, full) if full is not None else "not assigned yet"
        committed = commit_time(conn, xid) if status == "committed" else None
    if status != "committed":
        raise UsageError(f"BEFORE_XID {xid}: transaction {xid} is {status or 'too old to be known'} on "
                         f"{source.name}, not committed", "give the xid of a committed transaction, as "
                         "`drtui events --around TIME` lists them")
    known = incident.known_change(config.state_dir, source.name, xid)
    committed = committed or (known.committed_at if known else None)
    if committed is None:
        raise UsageError(f"BEFORE_XID {xid}: {source.name} does not say when transaction {xid} committed "
                         "(track_commit_timestamp is off)", "list it first with `drtui events --around TIME`, "
                         "which reads its commit time from the WAL")
    assert full is not None
    changes = _changes_of(config, source, xid, committed, wal_archive) or ((known,) if known else ())
    about = changes[0].about() if changes else f"committed at {committed.isoformat().replace('+00:00', 'Z')}"
    if len(changes) > 1:
        about += "; " + "; ".join(c.describe() for c in changes[1:])
    return BeforeXid(dataclasses.replace(target, about=about), full, committed, changes)


def _changes_of(config: Config, source: Environment, xid: int, committed: datetime,
                wal_archive: Path | None) -> tuple[incident.Change, ...]:
    """Every DELETE and UPDATE (one row and up), TRUNCATE, DROP and DDL of transaction `xid`, from the WAL around
    its commit; none when the WAL source is not a local folder or tarball, or pg_waldump cannot read it."""
    wal = wal_archive or config.wal_archive
    if not isinstance(wal, Path) or not wal.exists() or not (source.pg_bin / "pg_waldump").exists():
        return ()
    names, _ = incident.read_names(config.state_dir, source)
    try:
        found = incident.read_changes(scan_wal(wal), source.pg_bin, committed, timedelta(seconds=1), names,
                                      threshold=1)
    except DrError:
        return ()
    return tuple(c for c in found if c.xid == xid)


class _DrillStep(Step):
    """One of the drill's own steps (outside the restore engine): `work` does it, on the drill's state."""

    def __init__(self, name: str, title: str, work: Callable[[StepContext], str | None]) -> None:
        self.name, self.title, self._work = name, title, work

    def run(self, ctx: StepContext) -> str | None:
        try:
            return self._work(ctx)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DrillStepError(f"PostgreSQL: {reason}", "read the server log of the environment named") from exc


class _Drill:
    """The drill's state, which its steps fill in: the marker, the target and the source's counts at it, the plan
    (set for the engine's steps after it), the RPO measured."""

    def __init__(self, config: Config, env: Environment, source: Environment, request: DrillRequest, clock: Clock,
                 run_id: str, random_pick: RandomPick | None = None, before: BeforeXid | None = None) -> None:
        self.config, self.env, self.source, self.request, self.clock = config, env, source, request, clock
        self.run_id = run_id
        self.random_pick = random_pick
        self.before = before
        self.marker: Marker | None = None
        self.chosen_backup: Path | None = request.base_backup
        self.target: datetime | None = None
        self.counts: dict[str, int] = {}
        self.counts_exact = True
        self.counts_basis = ""
        self.approved: ApprovedPlan | None = None
        self.rpo: RpoMeasure | None = None

    def journey(self) -> Journey:
        """Pre-health, marker, backup, plan, the engine's PITR steps (verify included), integrity, smoke."""
        work = {"pre_health": self._pre_health, "marker": self._insert_marker, "backup": self._backup,
                "plan": self._plan, "integrity": self._integrity, "smoke": self._smoke}
        steps: list[Step] = [_DrillStep(name, title, work[name]) for name, title in DRILL_STEPS]
        steps += [cls() for cls in PITR_STEPS]
        steps += [_DrillStep(name, title, work[name]) for name, title in AFTER_STEPS]
        return Journey(JOURNEY, self.env, steps, None, lambda _ctx: self._plan_facts(), self._recover, self._finish)

    @staticmethod
    def _recover(ctx: StepContext, failed: Step, completed: list[Step], hint: str, record: RunRecord) -> str:
        """A failed engine step is undone like a restore's; the drill's own steps change nothing to undo."""
        if not isinstance(failed, PITR_STEPS):
            return after_commit_hint(ctx, failed, hint) if any(step.commits for step in completed) else hint
        return recover_restore(ctx, failed, [s for s in completed if isinstance(s, PITR_STEPS)], hint, record)

    def _finish(self, summary: RunSummary, ctx: StepContext, checks: list[CheckCompleted]) -> RunSummary:
        failed_check = any(c.outcome == FAILED for c in checks if c.data.get("phase") != "pre")
        facts = DrillFacts(self.source.name, self.target,
                           dataclasses.asdict(self.marker) if self.marker else None,
                           {"source": self.counts, "exact": self.counts_exact, "basis": self.counts_basis},
                           self._full_plan(), report_path(self.config, ctx.facts["started"]))
        return dataclasses.replace(summary, ok=summary.ok and not failed_check, checks=tuple(checks),
                                   rpo=self.rpo.as_dict() if self.rpo else None, drill=facts)

    def check(self, ctx: StepContext, name: str, title: str, outcome: str, detail: str, **data: Any) -> None:
        ctx.emit(CheckCompleted(self.clock.now(), name, outcome, detail, {"title": title, "phase": "post", **data}))

    def _plan_facts(self) -> dict[str, Any]:
        """What is known of the plan when the drill starts (RunStarted's plan); the whole plan, made later, is in
        RunFinished's summary, where the report finds it."""
        wal = self.request.wal_archive or self.config.wal_archive
        facts: dict[str, Any] = {"journey": JOURNEY, "environment": self.env.name, "source": self.source.name,
                                 "data_dir": str(self.env.data_dir), "wal_source": str(wal),
                                 "marker": f"{self.marker.table if self.marker else MARKER_TABLE}.drill_id = "
                                           f"{self.run_id}",
                                 "skip_backup": self.request.skip_backup,
                                 "target": self.before.target.to_json() if self.before else
                                 {"kind": "time", "time": self.request.target_time.isoformat()
                                  if self.request.target_time else None}}
        if self.before:
            facts["before_xid"] = self.before.describe()
        if self.request.base_backup:
            facts["base_backup"] = {"path": str(self.request.base_backup)}
        if self.random_pick:
            facts["random_target"] = self.random_pick.describe()
        return facts

    def _full_plan(self) -> dict[str, Any]:
        facts = self._plan_facts()
        if self.approved:
            facts |= self.approved.plan.to_json()
            facts["journey"] = JOURNEY
        elif self.target and not self.before:
            facts["target"] = {"kind": "time", "time": self.target.isoformat()}
        if self.chosen_backup and not self.approved:
            facts["base_backup"] = {"path": str(self.chosen_backup)}
        return facts

    # -- 1. pre-drill health ------------------------------------------------------------------------
    def _pre_health(self, ctx: StepContext) -> None:
        def pre(event: Event) -> None:
            if isinstance(event, CheckCompleted):
                event = dataclasses.replace(event, data={**event.data, "phase": "pre"})
            ctx.emit(event)

        found = run_checks(self.config, self.env, recovered_to=None, emit=pre, clock=self.clock, cancel=ctx.cancel)
        failed = [c.name for c in found if c.outcome == FAILED]
        ctx.log("pre_health", f"{len(found) - len(failed)} checks passed or skipped, {len(failed)} failed"
                 + (f" ({', '.join(failed)})" if failed else "")
                 + ": the starting point, not part of the verdict")

    # -- 2. marker ----------------------------------------------------------------------------------
    def _insert_marker(self, ctx: StepContext) -> None:
        with connect(self.source) as conn:
            table = self._marker_table(ctx, conn)
            conn.execute(sql.SQL("create table if not exists {} (id bigserial primary key, drill_id text not null "
                                 "unique, created_at timestamptz not null default clock_timestamp())").format(
                sql.Identifier(table)))
            before = conn.execute("select clock_timestamp()").fetchone()[0]
            with conn.transaction():
                row_id, created = conn.execute(
                    sql.SQL("insert into {} (drill_id) values (%s) returning id, created_at").format(
                        sql.Identifier(table)), (self.run_id,)).fetchone()
            after = conn.execute("select clock_timestamp()").fetchone()[0]
            committed = None
            if tracks_commit_times(conn):
                committed = conn.execute(sql.SQL("select pg_xact_commit_timestamp(xmin) from {} where id = %s").format(
                    sql.Identifier(table)), (row_id,)).fetchone()[0]
        self.marker = Marker(self.run_id, row_id, created, before, after, committed, table)
        ctx.log("marker", f"{self.source.name}: {table} row {row_id}, drill_id {self.run_id!r}, committed "
                 + (f"at {committed.isoformat()}" if committed else f"by {after.isoformat()}"))

    def _marker_table(self, ctx: StepContext, conn: psycopg.Connection) -> str:
        """dr_drill_markers, unless it exists in a shape the drill cannot insert into (an older drill script's
        table): then drtui's own table, and the journal says why."""
        problem = marker_shape_problem(conn, MARKER_TABLE)
        if problem is None:
            return MARKER_TABLE
        own = marker_shape_problem(conn, OWN_MARKER_TABLE)
        if own is not None:
            raise DrillStepError(f"{self.source.name}: neither {MARKER_TABLE} ({problem}) nor {OWN_MARKER_TABLE} "
                                 f"({own}) can hold the drill's marker",
                                 f"drop or rename {OWN_MARKER_TABLE} (drtui creates it in its own shape)")
        ctx.log("marker", f"{self.source.name}: {MARKER_TABLE} exists in another shape ({problem}): the marker "
                 f"goes into {OWN_MARKER_TABLE}")
        return OWN_MARKER_TABLE

    # -- 3. base backup -----------------------------------------------------------------------------
    def _backup(self, ctx: StepContext) -> str | None:
        if self.request.base_backup:
            return f"BASE_BACKUP names {self.request.base_backup}: no new backup taken"
        if self.request.skip_backup:
            return "SKIP_BACKUP=true: the newest existing base backup that reaches the target is used"
        if self.before:
            return (f"BEFORE_XID {self.before.target.xid}: a backup taken now starts after that transaction and "
                    "cannot reach a target before it; the newest base backup that reaches it is used")
        made = backup.base(self.config, self.source, self.clock)
        self.chosen_backup = made.artifacts[0].path
        ctx.log("backup", f"{self.chosen_backup} ({made.artifacts[0].size_bytes} bytes, "
                          f"{format_duration(made.seconds)})")
        return None

    # -- 4. target, WAL, plan -----------------------------------------------------------------------
    def _plan(self, ctx: StepContext) -> None:
        tables = list(self.source.sample_tables)
        with connect(self.source) as conn:
            if self.before:
                self.target = self.before.committed_at
                self._counts_before_xid(conn, tables)
            elif self.request.target_time is None:
                self.target, self.counts = pin_target(conn, tables)
                self.counts_basis = ("exact: counted under a SHARE lock on the app tables in the transaction that "
                                     "read the target")
            else:
                self.target = self.request.target_time
                self.counts, self.counts_exact = counts_at(conn, tables, self.target)
                self.counts_basis = ("exact: rows whose inserting transaction committed by the target "
                                     "(pg_xact_commit_timestamp)" if self.counts_exact else
                                     "approximate: rows with created_at <= target (track_commit_timestamp is off "
                                     "on the source)")
            ctx.log("plan", f"target just before transaction {self.before.describe()}" if self.before else
                     f"target {self.target.isoformat()}"
                     + (" (TARGET_TIME)" if self.request.target_time else " (picked by the drill)"),
                     "source counts at the target: " + counts_text(self.counts), f"counts are {self.counts_basis}")
            # A commit after the target for recovery to stop at, then its WAL segment archived.
            with conn.transaction():
                conn.execute("select pg_logical_emit_message(true, 'drtui.drill', %s)", (f"after {self.run_id}",))
            lsn, segment = conn.execute("select lsn, pg_walfile_name(lsn) from pg_switch_wal() lsn").fetchone()
        repository = self.config.repository
        wal_source = self.request.wal_archive or (repository.wal if repository else self.config.wal_archive)
        if isinstance(wal_source, S3Url):
            self._wait_stored(ctx, wal_source, segment, repository.settings if repository else S3Settings())
            ctx.log("plan", f"WAL up to {lsn} archived ({segment} is in {wal_source})")
        elif wal_source.is_dir():
            self._wait_archived(ctx, wal_source, segment)
            ctx.log("plan", f"WAL up to {lsn} archived ({segment} is in {wal_source})")
        elif wal_source.is_file():
            ctx.log("plan", f"WAL_ARCHIVE is the tarball {wal_source}: it must already reach the target")
        else:
            ctx.log("plan", f"the WAL archive {wal_source} is not a folder here: segment {segment} was switched "
                     "but its arrival cannot be watched")
        # A fresh backup is after an operator's past target: then the newest backup that reaches it is used.
        past = self.request.target_time is not None or self.before is not None
        chosen = self.request.base_backup or (None if past else self.chosen_backup)
        plan = make_plan(self.config, self.env, Target(TargetKind.TIME, time=self.target), clock=self.clock,
                         journey=JOURNEY, base_backup=chosen, wal_source=self.request.wal_archive)
        if self.before:  # the backup that reaches its commit time, restored to just before its commit
            plan = make_plan(self.config, self.env, self.before.target, clock=self.clock, journey=JOURNEY,
                             base_backup=plan.base_backup.path, wal_source=self.request.wal_archive)
        facts = dataclasses.replace(gather_facts(self.config, self.env, self.request.target_env),
                                    lock_holder=None)  # the lock this drill holds is no obstacle to itself
        self.approved = approve(plan, evaluate(plan, facts), Confirmation(True, None, "headless"), self.clock)
        ctx.plan = plan  # the engine's steps after this one restore to it
        if plan.pg_bin:  # a backup of another major version: the engine's steps run its programs
            ctx.env = dataclasses.replace(ctx.env, pg_bin=plan.pg_bin)
            ctx.backend = backend_for(ctx.env, self.config.state_dir)
        ctx.log("plan", *plan.describe())

    def _counts_before_xid(self, conn: psycopg.Connection, tables: list[str]) -> None:
        """The rows committed before the transaction, plus those it deleted or updated; the tables it truncated
        or dropped are left out."""
        assert self.before and self.target
        self.counts, self.counts_exact = counts_at(conn, tables, self.target, inclusive=False)
        undone = self.before.rows_undone(tables)
        for table, rows in undone.items():
            if rows is None:
                del self.counts[table]
            else:
                self.counts[table] += rows
        emptied = sorted(t for t, rows in undone.items() if rows is None)
        self.counts_basis = (("exact: rows whose inserting transaction committed before transaction "
                              f"{self.before.target.xid} (pg_xact_commit_timestamp)" if self.counts_exact else
                              f"approximate: rows with created_at before transaction {self.before.target.xid} "
                              "committed (track_commit_timestamp is off on the source)")
                             + (", plus the rows it deleted or updated (the WAL counts them)"
                                if any(undone.values()) else "")
                             + (f"; {', '.join(emptied)} not compared: emptied by it, rows the WAL does not count"
                                if emptied else ""))

    def _wait_archived(self, ctx: StepContext, folder: Path, segment: str) -> None:
        deadline = time.monotonic() + ARCHIVE_WAIT_SECONDS
        while not (folder / segment).exists():
            if time.monotonic() > deadline:
                raise DrillStepError(f"WAL segment {segment} did not reach the archive {folder} within "
                                     f"{ARCHIVE_WAIT_SECONDS} s", "check archive_command and pg_stat_archiver on "
                                     f"{self.source.name}")
            if ctx.cancel.wait(0.05):
                raise DrillStepError("the drill was cancelled", "nothing was restored")

    def _wait_stored(self, ctx: StepContext, prefix: S3Url, segment: str, settings: S3Settings) -> None:
        """As _wait_archived, for a WAL prefix in the repository (production's `drtui wal push`)."""
        from drtui.core.upload import exists
        from drtui.core.wal_push import COMPRESSIONS

        names = [segment + suffix for suffix in COMPRESSIONS.values()]
        deadline = time.monotonic() + ARCHIVE_WAIT_SECONDS
        while not any(exists(prefix.child(name), settings, "see whether the WAL segment is archived")
                      for name in names):
            if time.monotonic() > deadline:
                raise DrillStepError(f"WAL segment {segment} did not reach {prefix} within {ARCHIVE_WAIT_SECONDS} s",
                                     f"check archive_command (`drtui wal push %p`) and pg_stat_archiver on "
                                     f"{self.source.name}")
            if ctx.cancel.wait(0.2):
                raise DrillStepError("the drill was cancelled", "nothing was restored")

    # -- 7. data integrity --------------------------------------------------------------------------
    def _integrity(self, ctx: StepContext) -> None:
        assert self.target and self.marker
        tables = list(self.source.sample_tables)
        with connect(self.env) as conn:
            table = self.marker.table
            present = conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()[0] and (
                conn.execute(sql.SQL("select 1 from {} where drill_id = %s").format(sql.Identifier(table)),
                             (self.marker.drill_id,)).fetchone() is not None)
            restored = {t: conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(t))).fetchone()[0]
                        for t in tables}
            # what the recovery produced (its last replayed commit), not what staging's app wrote since
            replayed = last_replayed_commit(conn)
            newest, what = (replayed, "last replayed commit") if replayed else (
                max_created_at(conn, tables), "max(created_at)")
        failed = []
        expected = self._marker_expected()
        where = f"drill_id {self.marker.drill_id!r}"
        if expected is None:
            self.check(ctx, MARKER_CHECK, "Drill marker", SKIPPED,
                       f"{where} {'found' if present else 'not found'}; the target falls between the insert and "
                       "its commit and the source does not track commit times, so either is right")
        else:
            ok = present == expected
            failed += [] if ok else [MARKER_CHECK]
            self.check(ctx, MARKER_CHECK, "Drill marker", PASSED if ok else FAILED,
                       f"{where} {'found' if present else 'absent'}, as expected for a target "
                       f"{'after' if expected else 'before'} its commit" if ok else
                       f"{where} {'found' if present else 'absent'}, but the target is "
                       f"{'after' if expected else 'before'} its commit", present=present, expected=expected)
        diff = {t: (self.counts[t], n) for t, n in restored.items() if t in self.counts and self.counts[t] != n}
        detail = "restored " + counts_text(restored) + (
            " = source at the target" if not diff else
            "; source at the target " + counts_text(self.counts)) + f" ({self.counts_basis})"
        outcome = PASSED if not diff else (FAILED if self.counts_exact else SKIPPED)
        failed += [COUNTS_CHECK] if outcome == FAILED else []
        self.check(ctx, COUNTS_CHECK, "Record counts", outcome, detail, restored=restored,
                   source=self.counts, exact=self.counts_exact)
        if newest is None:
            self.check(ctx, CREATED_CHECK, "Data not after the target", SKIPPED,
                       "no replayed transaction and no created_at values in the app tables")
        else:
            ok = newest <= self.target
            failed += [] if ok else [CREATED_CHECK]
            self.check(ctx, CREATED_CHECK, "Data not after the target", PASSED if ok else FAILED,
                       f"{what} = {newest.isoformat()} {'<=' if ok else '>'} target "
                       f"{self.target.isoformat()}", max_created_at=newest.isoformat())
        if self.before:
            failed += self._check_before_xid(ctx)
        self.rpo = measure_rpo(self.env, self.target, tables=tables)
        ctx.log("integrity", f"RPO achieved: {format_duration(self.rpo.rpo_seconds)} "
                 f"(last commit {self.rpo.last_commit.isoformat() if self.rpo.last_commit else 'unknown'}, "
                 f"{self.rpo.reason})")
        if failed:
            raise DrillStepError(f"data integrity failed: {', '.join(failed)}", "look at the checks above; the "
                                 "restored staging and its preserved data directory are left as they are")

    def _check_before_xid(self, ctx: StepContext) -> list[str]:
        """The transaction the target stops before is not committed in the restored data."""
        assert self.before
        with connect(self.env) as conn:
            status = xact_status(conn, self.before.full_xid)
        ok = status != "committed"
        what = f"transaction {self.before.describe()}"
        self.check(ctx, BEFORE_XID_CHECK, "Transaction before which recovery stopped", PASSED if ok else FAILED,
                   f"{what}: {status or 'unknown'} in the restored data, " + (
                       "as expected just before it" if ok else "but the target was just before it"),
                   xid=self.before.target.xid, status=status)
        return [] if ok else [BEFORE_XID_CHECK]

    def _marker_expected(self) -> bool | None:
        """Whether the marker must be in the restored data: it must when it committed by the target."""
        assert self.marker and self.target
        if self.marker.committed_at:
            return self.marker.committed_at <= self.target
        if self.target >= self.marker.committed_by:
            return True
        if self.target < self.marker.inserted_after:
            return False
        return None

    # -- 8. smoke tests -----------------------------------------------------------------------------
    def _smoke(self, ctx: StepContext) -> str | None:
        command = self.env.smoke_command
        if not command:
            self.check(ctx, SMOKE_CHECK, "Smoke tests", SKIPPED,
                       f"no smoke_command configured for {self.env.name} (the runbook's smoke.sh)")
            return f"no smoke_command configured for {self.env.name}"
        extra = {"TARGET_ENV": self.env.name, "DRILL_ID": self.run_id}
        if self.env.api_base_url:
            extra["API_BASE_URL"] = self.env.api_base_url
        try:
            done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_SECONDS,
                                  env={**os.environ, **extra}, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            self.check(ctx, SMOKE_CHECK, "Smoke tests", FAILED,
                       f"{command!r} did not finish within {SMOKE_TIMEOUT_SECONDS} s")
            raise DrillStepError("the smoke tests timed out", "run the smoke command by hand against staging") from None
        lines = (done.stdout + done.stderr).splitlines()
        if lines:
            ctx.log("smoke", *lines[-SMOKE_LOG_LINES:])
        if done.returncode != 0:
            self.check(ctx, SMOKE_CHECK, "Smoke tests", FAILED, f"{command!r} exited {done.returncode}",
                       exit_code=done.returncode)
            raise DrillStepError(f"the smoke tests failed (exit {done.returncode})", "read their output above")
        self.check(ctx, SMOKE_CHECK, "Smoke tests", PASSED, f"{command!r} exited 0", exit_code=0)
        return None
