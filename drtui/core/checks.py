"""Verification of one environment: the runbook's `pitr_verify.sh` and its validation checklist.

Each check ends in exactly one `CheckCompleted` (passed, failed or skipped), emitted as soon as it is known so
a face can show it live. A check with nothing to check against (no `api_base_url`, no `uploads_dir`, no
recovery target) is skipped and says why: a skipped check is never counted as passed.

`/readyz` turning healthy is the moment service is restored, so that check carries `data["healthy_at"]` and
the engine stops the RTO clock there. Without an API, the database leaving recovery is the best proof of
service there is; that check then carries `healthy_at` instead, marked with `data["healthy_basis"]`.

The data checks judge what the recovery produced, not what the app writes after the promotion:
`data_timestamp` compares the last transaction the server replayed with the target (max(created_at) only when
the server replayed none, after a restart or a dump restore).

`measure_rpo` measures the data a recovery lost from what the restored cluster holds, never from what the
backup schedule promises.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from drtui.core.backends import backend_for
from drtui.core.clock import Clock, isoformat
from drtui.core.config import Config, Environment
from drtui.core.errors import DrError
from drtui.core.events import CheckCompleted, Event
from drtui.core.postgres import connect

if TYPE_CHECKING:
    import httpx

HTTP_TIMEOUT_SECONDS = 5.0
QUERY_TIMEOUT_SECONDS = 120  # a count(*) of a very large table must fail the check, never hang the run
UPLOADS_COUNT_LIMIT = 10_000
READY_POLL_SECONDS = 0.5

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"

# Names of the checks, in the order they run (the reports and faces key on them).
CONNECT = "postgres_connect"
RECOVERY = "out_of_recovery"
ARCHIVING = "wal_archiving"
HEALTHZ = "healthz"
READYZ = "readyz"
BACKUP = "healthz_backup"
SAMPLES = "sample_queries"
DATA_TIME = "data_timestamp"
UPLOADS = "uploads"
SERVICES = "compose_services"  # only on the compose backend

TITLES = {
    CONNECT: "PostgreSQL accepts connections",
    RECOVERY: "PostgreSQL is out of recovery",
    ARCHIVING: "WAL archiving",
    HEALTHZ: "/healthz",
    READYZ: "/readyz",
    BACKUP: "/healthz/backup",
    SAMPLES: "Sample queries",
    DATA_TIME: "Data timestamp",
    UPLOADS: "Uploads",
    SERVICES: "Compose services running",
}


def run_checks(config: Config, env: Environment, *, recovered_to: datetime | None,
               emit: Callable[[Event], None], clock: Clock, tables: Sequence[str] | None = None,
               wait_ready_seconds: float = 0, expect_archiving: bool | None = None,
               cancel: threading.Event | None = None) -> list[CheckCompleted]:
    """Run every check against `env`, emitting each result; with `wait_ready_seconds`, first wait that long
    at most for /readyz (or, without an API, the database) to become healthy.

    `expect_archiving` says whether the cluster should archive WAL. By default the production environment
    should (unless it has just been restored in place: then archiving off passes, with a follow-up), and any
    other environment, a restored copy, must not archive into the production archive.
    """
    checker = _Checker(config, env, clock, emit, cancel or threading.Event())
    try:
        healthy_at = checker.wait_until_healthy(wait_ready_seconds) if wait_ready_seconds > 0 else None
        checker.database(list(tables or env.sample_tables), recovered_to, expect_archiving, healthy_at)
        checker.api(healthy_at)
        checker.uploads()
        checker.services()
    finally:
        checker.close()
    return checker.results


def healthy_at(checks: Sequence[CheckCompleted]) -> datetime | None:
    """When service was first healthy, from a run's checks (the moment the RTO clock stops)."""
    for check in checks:
        if check.outcome == PASSED and check.data.get("healthy_at"):
            return datetime.fromisoformat(check.data["healthy_at"])
    return None


def summarize(checks: Sequence[CheckCompleted]) -> dict[str, int]:
    counts = {PASSED: 0, FAILED: 0, SKIPPED: 0}
    for check in checks:
        counts[check.outcome] += 1
    return counts


class _Checker:
    def __init__(self, config: Config, env: Environment, clock: Clock, emit: Callable[[Event], None],
                 cancel: threading.Event) -> None:
        self.config = config
        self.env = env
        self.clock = clock
        self.emit = emit
        self.cancel = cancel
        self.results: list[CheckCompleted] = []
        self._http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        # httpx is imported on first use: its package loads its optional CLI (rich, pygments), which costs
        # a few hundred milliseconds and has no place in the core's import.
        if self._http is None:
            import httpx

            self._http = httpx.Client(timeout=HTTP_TIMEOUT_SECONDS)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def record(self, name: str, outcome: str, detail: str, **data: Any) -> CheckCompleted:
        check = CheckCompleted(at=self.clock.now(), name=name, outcome=outcome, detail=detail,
                               data={"title": TITLES[name], **data})
        self.results.append(check)
        self.emit(check)
        return check

    # -- waiting for services (drill step 5) -------------------------------------------------------
    def wait_until_healthy(self, seconds: float) -> datetime | None:
        """Poll until healthy or `seconds` have passed; the moment it was first seen healthy, or None."""
        deadline = time.monotonic() + seconds
        while True:
            if self._api_ready() if self.env.api_base_url else self._database_serving():
                return self.clock.now()
            if time.monotonic() >= deadline or self.cancel.wait(READY_POLL_SECONDS):
                return None

    def _api_ready(self) -> bool:
        import httpx

        try:
            response = self.http.get(self._url("/readyz"))
            return response.status_code == 200 and _json(response).get("database", {}).get(
                "migrations_current") is True
        except httpx.HTTPError:
            return False

    def _database_serving(self) -> bool:
        try:
            with connect(self.env) as conn:
                return conn.execute("select not pg_is_in_recovery()").fetchone()[0]
        except (DrError, psycopg.Error):
            return False

    # -- the database -----------------------------------------------------------------------------
    def database(self, tables: list[str], recovered_to: datetime | None, expect_archiving: bool | None,
                 healthy_at: datetime | None) -> None:
        where = f"{self.env.host}:{self.env.port}/{self.env.database}"
        try:
            conn = connect(self.env)
        except DrError as exc:
            self.record(CONNECT, FAILED, exc.title, hint=exc.hint)
            for name in (RECOVERY, ARCHIVING, SAMPLES, DATA_TIME):
                self.record(name, FAILED, "not checked: the database does not accept connections")
            return
        try:
            with conn:
                conn.execute(f"set statement_timeout = '{QUERY_TIMEOUT_SECONDS}s'")
                version = conn.execute("show server_version").fetchone()[0]
                self.record(CONNECT, PASSED, f"{where} (PostgreSQL {version})", server_version=version)
                self._recovery(conn, healthy_at)
                self._archiving(conn, expect_archiving)
                self._samples(conn, tables, recovered_to)
        except psycopg.Error as exc:
            done = {check.name for check in self.results}
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            for name in (RECOVERY, ARCHIVING, SAMPLES, DATA_TIME):
                if name not in done:
                    self.record(name, FAILED, f"the database connection failed: {reason}")

    def _recovery(self, conn: psycopg.Connection, healthy_at: datetime | None) -> None:
        if conn.execute("select pg_is_in_recovery()").fetchone()[0]:
            self.record(RECOVERY, FAILED, "pg_is_in_recovery() is true: still replaying WAL or paused",
                        hint="wait for promotion, or promote with pg_ctl promote / pg_wal_replay_resume()")
            return
        extra = {}
        if not self.env.api_base_url:
            at = healthy_at or self.clock.now()
            extra = {"healthy_at": at.isoformat(), "healthy_basis": "database"}
        self.record(RECOVERY, PASSED, "pg_is_in_recovery() is false", **extra)

    def _archiving(self, conn: psycopg.Connection, expected: bool | None) -> None:
        mode, command = (conn.execute(f"show {name}").fetchone()[0] for name in ("archive_mode", "archive_command"))
        stats = conn.execute("select archived_count, last_archived_wal, failed_count, last_failed_wal "
                             "from pg_stat_archiver").fetchone()
        archive = str(self.config.wal_archive)
        into_production = mode != "off" and bool(command) and archive in command
        described = f"archive_mode={mode}, archive_command={command or '(empty)'!r}"
        data = {"archive_mode": mode, "archive_command": command, "archived_count": stats[0],
                "last_archived_wal": stats[1], "failed_count": stats[2], "last_failed_wal": stats[3]}
        if expected is None and self.env.is_production:
            # Production should archive, but a copy restored in place has archiving off on purpose (it must not
            # write into the archive it was restored from) until the operator has confirmed it.
            restored = conn.execute("select pg_last_xact_replay_timestamp() is not null").fetchone()[0]
            if restored and mode == "off":
                self.record(ARCHIVING, PASSED, f"{described}: off on this restored copy, as it must be until the "
                            "restore is confirmed", **data, follow_up="re-enable WAL archiving (a fresh archive or "
                            "the new timeline) and take a new base backup: until then nothing can be recovered")
                return
        if expected is None:
            expected = self.env.is_production
        if expected:
            ok = mode != "off" and bool(command)
            self.record(ARCHIVING, PASSED if ok else FAILED, described if ok else
                        f"{described}: archiving is off, so nothing after this point can be recovered",
                        **data, hint="" if ok else "turn archive_mode on with an archive_command into the archive")
        elif into_production:
            self.record(ARCHIVING, FAILED, f"{described}: this copy archives into the production WAL archive "
                        f"{archive}", **data, hint="set archive_mode = off (or an archive_command pointing "
                        "elsewhere) in postgresql.auto.conf and restart")
        else:
            self.record(ARCHIVING, PASSED, f"{described}: not archiving into the production archive", **data)

    def _samples(self, conn: psycopg.Connection, tables: list[str], recovered_to: datetime | None) -> None:
        counts: dict[str, int] = {}
        newest: dict[str, str | None] = {}
        errors: list[str] = []
        latest: datetime | None = None
        for table in tables:
            try:
                with conn.transaction():
                    counts[table] = conn.execute(
                        sql.SQL("select count(*) from {}").format(sql.Identifier(table))).fetchone()[0]
                    if _has_created_at(conn, table):
                        value = conn.execute(sql.SQL("select max(created_at) from {}").format(
                            sql.Identifier(table))).fetchone()[0]
                        newest[table] = value.isoformat() if value else None
                        if value and (latest is None or value > latest):
                            latest = value
            except psycopg.Error as exc:
                errors.append(f"{table}: {str(exc).strip().splitlines()[0]}")
        detail = ", ".join(f"{t}={n}" for t, n in counts.items())
        if errors:
            self.record(SAMPLES, FAILED, "; ".join([*errors, detail] if detail else errors), counts=counts)
        else:
            self.record(SAMPLES, PASSED, detail, counts=counts)
        replayed = last_replayed_commit(conn)
        data = {"max_created_at": latest.isoformat() if latest else None, "per_table": newest,
                "last_replayed_commit": replayed.isoformat() if replayed else None,
                "recovered_to": recovered_to.isoformat() if recovered_to else None}
        # What the recovery produced is judged, never what the application wrote after the promotion: the last
        # transaction the server replayed when it has one, else the newest created_at.
        judged, what = (replayed, "the last replayed commit") if replayed else (latest, "max(created_at)")
        later = (f"; max(created_at) = {isoformat(latest)} is of rows written after the promotion"
                 if replayed and latest and recovered_to and latest > recovered_to else "")
        if judged is None:
            self.record(DATA_TIME, SKIPPED, "no replayed transaction and no created_at values in the sample "
                        "tables", **data)
        elif recovered_to is None:
            self.record(DATA_TIME, SKIPPED, f"{what} = {isoformat(judged)}; no recovery target to compare it "
                        "with", **data)
        elif judged > recovered_to:
            self.record(DATA_TIME, FAILED, f"{what} = {isoformat(judged)} is later than the recovery target "
                        f"{isoformat(recovered_to)}", **data,
                        hint="the data is not as of the target: restore again to the right target, or roll back")
        else:
            self.record(DATA_TIME, PASSED, f"{what} = {isoformat(judged)}, not later than the target "
                        f"{isoformat(recovered_to)}{later}", **data)

    # -- the API ----------------------------------------------------------------------------------
    def api(self, healthy_at: datetime | None) -> None:
        if not self.env.api_base_url:
            for name in (HEALTHZ, READYZ, BACKUP):
                self.record(name, SKIPPED, f"no api_base_url configured for {self.env.name}")
            return
        self._healthz()
        self._readyz(healthy_at)
        self._backup()

    def _get(self, name: str, path: str) -> tuple[int, dict] | None:
        import httpx

        url = self._url(path)
        try:
            response = self.http.get(url)
        except httpx.HTTPError as exc:
            self.record(name, FAILED, f"GET {url}: {type(exc).__name__}: {exc}", url=url)
            return None
        return response.status_code, _json(response)

    def _healthz(self) -> None:
        got = self._get(HEALTHZ, "/healthz")
        if got is None:
            return
        code, body = got
        ok = code == 200 and body.get("status") == "ok" and body.get("db_connected", True) is not False
        self.record(HEALTHZ, PASSED if ok else FAILED, f"HTTP {code}, status={body.get('status')!r}, "
                    f"db_connected={body.get('db_connected')!r}", http_status=code, body=body)

    def _readyz(self, healthy_at: datetime | None) -> None:
        got = self._get(READYZ, "/readyz")
        if got is None:
            return
        code, body = got
        database = body.get("database") if isinstance(body.get("database"), dict) else {}
        current = database.get("migrations_current")
        detail = f"HTTP {code}, status={body.get('status')!r}, database.migrations_current={current!r}"
        if code == 200 and current is True:
            at = healthy_at or self.clock.now()
            self.record(READYZ, PASSED, detail, http_status=code, body=body, healthy_at=at.isoformat())
            return
        data: dict[str, Any] = {"http_status": code, "body": body}
        if database.get("connected") is not False and current is False:
            detail += f": migrations are not current (revision {database.get('revision')!r})"
            if self.env.migrate_command:
                data["migrate_command"] = self.env.migrate_command
                data["hint"] = f"run the migrate command ({self.env.migrate_command}) and check again"
            else:
                data["hint"] = ("run the app's migrations (the runbook: alembic upgrade head), or set "
                                "migrate_command in the environment's config")
        else:
            data["hint"] = "read the app's and the server's logs"
        self.record(READYZ, FAILED, detail, **data)

    def _backup(self) -> None:
        got = self._get(BACKUP, "/healthz/backup")
        if got is None:
            return
        code, body = got
        stamp = body.get("last_success")
        limit = self.config.objectives.dump_max_age
        try:
            at = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
        except ValueError:
            at = None
        age = self.clock.now() - at if at and at.tzinfo else None
        data = {"http_status": code, "last_success": stamp,
                "age_seconds": age.total_seconds() if age is not None else None}
        recent = age is not None and age <= limit
        ok = code == 200 and recent
        detail = f"HTTP {code}, LAST_SUCCESS {stamp or 'missing'}"
        if age is not None:
            detail += f" ({_hours(age)} old, limit {_hours(limit)})"
        self.record(BACKUP, PASSED if ok else FAILED, detail, **data)

    def _url(self, path: str) -> str:
        return (self.env.api_base_url or "").rstrip("/") + path

    # -- uploads ----------------------------------------------------------------------------------
    def uploads(self) -> None:
        folder = self.env.uploads_dir
        if folder is None:
            self.record(UPLOADS, SKIPPED, f"no uploads_dir configured for {self.env.name}")
            return
        if not folder.is_dir():
            self.record(UPLOADS, FAILED, f"{folder}: no such folder", path=str(folder))
            return
        count, sample = _count_files(folder, UPLOADS_COUNT_LIMIT)
        if sample is None:
            self.record(UPLOADS, FAILED, f"{folder}: the folder holds no files", path=str(folder), files=0)
            return
        readable = _readable(sample)
        shown = f"{count}+" if count >= UPLOADS_COUNT_LIMIT else str(count)
        self.record(UPLOADS, PASSED if readable else FAILED,
                    f"{shown} files; spot-checked {sample.relative_to(folder)} "
                    f"({sample.stat().st_size} bytes{'' if readable else ', NOT readable'})",
                    path=str(folder), files=count, sample=str(sample))

    def services(self) -> None:
        """The runbook's "db, api, web, jobs running": each service's state, where the backend runs services
        (the compose backend's containers)."""
        try:
            states = backend_for(self.env, self.config.state_dir).services()
        except DrError as exc:
            self.record(SERVICES, FAILED, exc.title)
            return
        if states is None:
            return
        running = all(state == "running" for state in states.values())
        self.record(SERVICES, PASSED if running else FAILED,
                    ", ".join(states) + " running" if running
                    else "; ".join(f"{service} {state}" for service, state in states.items()), services=states)


def _count_files(folder: Path, limit: int) -> tuple[int, Path | None]:
    """Files under `folder` (counting stops at `limit`: an uploads folder may hold millions) and the first one
    in name order, the one spot-checked."""
    count, first = 0, None
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            if not path.is_file():
                continue
            first = first or path
            count += 1
            if count >= limit:
                return count, first
    return count, first


def _readable(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.read(4096)
        return True
    except OSError:
        return False


def _has_created_at(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("select 1 from information_schema.columns where table_schema = any(current_schemas(false)) "
                        "and table_name = %s and column_name = 'created_at'", (table,)).fetchone() is not None


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


# -- RPO ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RpoMeasure:
    """The data a recovery lost, measured on the restored cluster.

    `last_commit` is the commit time of the newest transaction the cluster holds; `source` says where it came
    from. `rpo_seconds` is the gap from it to the time of failure when one is stated (an incident), else to
    the recovery target (a drill): everything committed in that gap is not in the restored cluster.
    """

    last_commit: datetime | None
    source: str  # "replay" | "commit_timestamp" | "created_at" | "none"
    reason: str
    target: datetime | None
    failure_time: datetime | None
    rpo_seconds: float | None
    against: str | None  # "failure_time" | "target"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("last_commit", "target", "failure_time"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def measure_rpo(env: Environment, target: datetime | None, failure_time: datetime | None = None,
                tables: Sequence[str] | None = None, *, replayed: bool = True) -> RpoMeasure:
    """RPO achieved: the newest commit the restored cluster holds, against the failure time or the target.

    Sources, best first: pg_last_xact_replay_timestamp(), the commit time of the last transaction this cluster
    replayed in its recovery (exact, any table; it survives promotion but not a restart); then
    pg_last_committed_xact() when track_commit_timestamp is on (exact, but also counts commits made after
    promotion); then max(created_at) over the sample tables (the app's own clock, and only those tables).
    After a dump restore (`replayed=False`) the commit times are the restore's own, so only created_at counts.
    """
    with connect(env) as conn:
        last, source, reason = None, "none", ""
        if replayed:
            last = last_replayed_commit(conn)
            source, reason = "replay", ("pg_last_xact_replay_timestamp(): the last transaction replayed by this "
                                        "cluster's recovery")
        if last is None and replayed and conn.execute("show track_commit_timestamp").fetchone()[0] == "on":
            row = conn.execute("select (pg_last_committed_xact()).timestamp").fetchone()
            last, source, reason = row[0], "commit_timestamp", (
                "pg_last_committed_xact() (track_commit_timestamp is on; no replay since the server started)")
        if last is None:
            last = max_created_at(conn, list(tables or env.sample_tables))
            source, reason = "created_at", (
                "max(created_at) of the sample tables: the server replayed no transaction since it started and "
                "track_commit_timestamp is off" if replayed else
                "max(created_at) of the sample tables: a dump restore's commit times are the restore's own")
    if last is None:
        source, reason = "none", "no replayed transaction, no commit timestamps and no created_at values"
    reference, against = (failure_time, "failure_time") if failure_time else (target, "target")
    rpo = max((reference - last).total_seconds(), 0.0) if reference and last else None
    return RpoMeasure(last, source, reason, target, failure_time, rpo, against if reference else None)


def last_replayed_commit(conn: psycopg.Connection) -> datetime | None:
    """The commit time of the last transaction this server replayed in its recovery: the newest data the recovery
    produced, whatever is written after the promotion (None after a restart, or when nothing was replayed)."""
    return conn.execute("select pg_last_xact_replay_timestamp()").fetchone()[0]


def max_created_at(conn: psycopg.Connection, tables: list[str]) -> datetime | None:
    latest = None
    for table in tables:
        if not _has_created_at(conn, table):
            continue
        value = conn.execute(sql.SQL("select max(created_at) from {}").format(sql.Identifier(table))).fetchone()[0]
        if value and (latest is None or value > latest):
            latest = value
    return latest
