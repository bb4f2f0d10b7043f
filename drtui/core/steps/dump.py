"""The dump restore into staging (restore_to_staging.sh): check the dump and uploads archive whole and safe,
save a dump of the current database (checked complete) and rename the uploads folder aside, replace the
database from the dump and the uploads from the archive, then verify. A failure once the database was
dropped puts both back: the database from the pre-restore dump, the uploads folder renamed back.

Dumps are loaded as the cluster's OS user, never as root, and psql runs them in its restricted mode (no
meta-commands): a dump is data, never a program. Every wait is bounded: sessions on the database are named
and the restore refused (or, with --terminate-sessions, ended and journaled by pid); pg_dump waits for locks
at most LOCK_WAIT_TIMEOUT.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drtui.core.backup import CHUNK, LAST_SUCCESS, verify_dump
from drtui.core.clock import format_duration
from drtui.core.config import Environment
from drtui.core.dump_checks import (
    RESTRICT_LINE,
    STATEMENT_TIMEOUT,
    DumpRefused,
    check_dump,
    check_uploads,
    hint_for,
    other_sessions,
    terminate,
    tool_error,
)
from drtui.core.errors import BackupError, DrError
from drtui.core.files import atomic_path
from drtui.core.planning import DumpPlan
from drtui.core.postgres import as_user, query
from drtui.core.steps import Step, StepContext, StepError

if TYPE_CHECKING:
    from drtui.core.run_record import RunRecord

LOCK_WAIT_TIMEOUT = "30s"
# Safety copies kept of each kind (pre-restore dumps, uploads.pre_restore_*, uploads.failed_*): the newest
# ones, which are the ones a rollback uses.
KEEP_SAFETY_COPIES = 3
PRE_RESTORE = "pre_restore"


def _client_env(env: Environment, bounded: bool = True) -> dict[str, str]:
    """libpq's environment; `bounded` caps every statement of drtui's own sessions (a dump being loaded sets
    its own statement_timeout, as pg_dump does)."""
    password = env.password()
    return {**os.environ, "PGCONNECT_TIMEOUT": "10",
            **({"PGOPTIONS": f"-c statement_timeout={STATEMENT_TIMEOUT}"} if bounded else {}),
            **({"PGPASSWORD": password} if password else {})}


def _client(env: Environment, name: str, *args: str) -> list[str]:
    return [str(env.pg_bin / name), "-h", env.host, "-p", str(env.port), "-U", env.user, "--no-password", *args]


def _unprivileged(env: Environment, argv: list[str]) -> list[str]:
    """A dump loader never runs as root: as os_user, or `nobody` on a host without that user (a compose host);
    a drtui that is not root runs it as itself."""
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam(env.os_user)
    except KeyError:
        return as_user("nobody", argv)
    return as_user(env.os_user, argv)


def _failed(what: str, stderr: bytes, env: Environment) -> StepError:
    error = tool_error(stderr)
    return StepError(f"{what} failed: {error}", hint_for(error, env))


def pre_restore_dumps(folder: Path, env: Environment) -> list[Path]:
    """The pre-restore dumps of an environment, oldest first (by the stamp in their names)."""
    return sorted(folder.glob(f"{env.database}_{env.name}_pre_restore_*.sql.gz"))


def age_out(copies: Iterable[Path], keep: int = KEEP_SAFETY_COPIES) -> list[Path]:
    """Delete all but the newest `keep` of same-named safety copies (sorted by the stamp in their names)."""
    old = sorted(copies)[:-keep]
    for path in old:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return old


def check_inputs(plan: DumpPlan, env: Environment) -> None:
    """Everything the restore reads, checked before anything is touched (DumpRefused, exit 2)."""
    check_dump(plan.dump_file, env, plan.source_database)
    if plan.uploads_archive and env.uploads_dir:
        check_uploads(plan.uploads_archive, env.uploads_dir)


def _psql_admin(env: Environment, sql: str) -> None:
    done = subprocess.run(_client(env, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql),
                          capture_output=True, env=_client_env(env), stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise _failed(sql, done.stderr, env)


def _drop(env: Environment, *, force: bool) -> None:
    """Without force a session on the database makes this fail: sessions are never ended silently."""
    _psql_admin(env, f'drop database if exists "{env.database}"' + (" with (force)" if force else ""))


def _drop_half_restored(env: Environment) -> str:
    """Drop a database drtui restored itself, ending the sessions on it (the app's, after a failed verify);
    returns the sessions it ended, in words."""
    ended = other_sessions(env)
    _drop(env, force=True)
    return f"; ended the sessions on the database it replaced: {', '.join(s.describe() for s in ended)}" \
        if ended else ""


def _create(env: Environment) -> None:
    _psql_admin(env, f'create database "{env.database}"')


def _carries_restrict(dump: Path) -> bool:
    """Whether a plain dump enters psql's restricted mode itself (pg_dump 15.14 and later write it at the top)."""
    with gzip.open(dump, "rb") as sql:
        return any(RESTRICT_LINE.fullmatch(line.strip()) for line in sql.read(1 << 16).splitlines()[:50])


def _user_tables(env: Environment) -> int:
    sql = "select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')"
    return query(env, sql)[0][0]


def load_dump(ctx: StepContext | None, env: Environment, dump: Path, dump_format: str, *, restricted: bool) -> int:
    """Load a dump into the (new, empty) database as the cluster's OS user: a plain one through psql in
    restricted mode, a custom one through pg_restore. Returns the bytes read."""
    if dump_format == "custom":
        argv = _client(env, "pg_restore", "--exit-on-error", "-d", env.database)
    else:
        argv = _client(env, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", env.database)
    proc = subprocess.Popen(_unprivileged(env, argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=_client_env(env, bounded=False), cwd="/")
    assert proc.stdin and proc.stderr
    report = ctx.progress_reporter(RestoreDatabase.name, "bytes") if ctx else None
    total = ctx.facts.get("dump_bytes") if ctx else None
    done_bytes = 0
    try:
        if dump_format == "plain" and not restricted:  # pg_dump before 15.14 wrote no \restrict
            proc.stdin.write(f"\\restrict {secrets.token_hex(32)}\n".encode())
        opener = gzip.open if dump_format == "plain" else open
        with opener(dump, "rb") as source:
            while chunk := source.read(CHUNK):
                if ctx:
                    ctx.check_cancel()
                proc.stdin.write(chunk)
                done_bytes += len(chunk)
                if report:
                    report(done_bytes, total)
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        stderr = proc.stderr.read()
        code = proc.wait()
    if code != 0:
        raise _failed(f"{'pg_restore' if dump_format == 'custom' else 'psql'} restoring {dump}", stderr, env)
    if report:
        report(done_bytes, done_bytes)
    return done_bytes


def put_back(env: Environment, saved: Path, tables: int | None) -> str:
    """Replace the database with a pre-restore dump and check it holds the tables it held; says what it did."""
    ended = _drop_half_restored(env)
    _create(env)
    load_dump(None, env, saved, "plain", restricted=_carries_restrict(saved))
    now = _user_tables(env)
    if tables is not None and now != tables:
        raise StepError(f"{env.database} was loaded from {saved} but holds {now} tables, not {tables} as before",
                        f"look at the database; the pre-restore dump is {saved}")
    return f"the database {env.database} is back from the pre-restore dump {saved} ({now} tables, as before){ended}"


def dump_rpo(dump_time: datetime | None, backup_dir: Path, started: datetime,
             incident_start: datetime | None) -> dict[str, Any] | None:
    """A dump restore's data loss, known before it runs: everything committed after the dump (its name's stamp,
    else LAST_SUCCESS.txt) up to the stated failure time, else the restore's start."""
    source = "dump_time"
    if dump_time is None:
        from drtui.core.status import HeartbeatError, parse_heartbeat

        try:
            dump_time = parse_heartbeat((backup_dir / LAST_SUCCESS).read_text(encoding="utf-8"))
        except (OSError, HeartbeatError):
            return None
        source = LAST_SUCCESS
    reference, against = (incident_start, "failure_time") if incident_start else (started, "run_start")
    return {"last_commit": dump_time.isoformat(), "source": source,
            "reason": "the dump's timestamp: everything committed before it is in the dump",
            "target": None, "failure_time": incident_start.isoformat() if incident_start else None,
            "rpo_seconds": max((reference - dump_time).total_seconds(), 0.0), "against": against}


class DumpPreflight(Step):
    name, title = "preflight", "Check the dump and the uploads archive are whole and safe"

    def run(self, ctx: StepContext) -> None:
        plan = ctx.plan
        assert isinstance(plan, DumpPlan)
        rpo = dump_rpo(plan.dump_time, ctx.config.backup_dir, ctx.facts["started"], plan.incident_start)
        if rpo is not None:
            ctx.facts["rpo"] = rpo
            ctx.log(self.name, f"RPO: {format_duration(rpo['rpo_seconds'])}, the dump's age at the restore "
                               f"(taken {rpo['last_commit']})")
        facts = check_dump(plan.dump_file, ctx.env, plan.source_database)
        ctx.facts.update(dump_bytes=facts.size, dump_format=facts.format, restrict_key=facts.restrict_key)
        what = "bytes of SQL, no psql commands" if facts.format == "plain" else "bytes, a pg_dump archive"
        ctx.log(self.name, f"dump {plan.dump_file}: whole, {facts.size} {what}")
        if plan.uploads_archive and ctx.env.uploads_dir:
            members, size = check_uploads(plan.uploads_archive, ctx.env.uploads_dir)
            ctx.log(self.name, f"uploads archive {plan.uploads_archive}: whole, {members} members ({size} bytes), "
                    "only files and folders inside it")


class PreRestoreDump(Step):
    name, title = "pre_restore_dump", "Save a dump of the current database"

    def run(self, ctx: StepContext) -> str | None:
        env = ctx.env
        exists = query(env, "select 1 from pg_database where datname = %s", (env.database,), dbname="postgres")
        if not exists:
            return f"database {env.database!r} does not exist yet: nothing to save"
        self._sessions(ctx)
        ctx.facts["tables_before"] = _user_tables(env)
        folder = ctx.config.state_dir / PRE_RESTORE
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{env.database}_{env.name}_{PRE_RESTORE}_{ctx.stamp}.sql.gz"
        with atomic_path(path) as tmp:
            proc = subprocess.Popen(_client(env, "pg_dump", f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT}", "-d",
                                            env.database), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, env=_client_env(env))
            assert proc.stdout and proc.stderr
            with gzip.open(tmp, "wb", compresslevel=1) as out:
                shutil.copyfileobj(proc.stdout, out, CHUNK)
            stderr = proc.stderr.read()
            if proc.wait() != 0:
                raise _failed("pg_dump of the current database", stderr, env)
            try:
                verify_dump(tmp)
            except BackupError as exc:
                raise StepError(f"the pre-restore dump is not complete: {exc.title}", hint_for(exc.title, env)) \
                    from None
        ctx.facts["pre_restore_dump"] = str(path)
        ctx.log(self.name, f"saved {path} ({path.stat().st_size} bytes, checked complete; "
                f"{ctx.facts['tables_before']} tables)")
        for old in age_out(pre_restore_dumps(folder, env)):
            ctx.log(self.name, f"aged out {old} (the newest {KEEP_SAFETY_COPIES} pre-restore dumps are kept)")

    def _sessions(self, ctx: StepContext) -> None:
        """Name the sessions a restore would end; end them only when asked to, journaling each pid."""
        assert isinstance(ctx.plan, DumpPlan)
        sessions = other_sessions(ctx.env)
        if not sessions:
            return
        named = "; ".join(s.describe() for s in sessions)
        if not ctx.plan.terminate_sessions:
            raise DumpRefused(f"{len(sessions)} session(s) on {ctx.env.name}'s database {ctx.env.database}: {named}",
                              "end them or wait for them, or restore with --terminate-sessions to end them")
        terminate(ctx.env, sessions)
        ctx.log(self.name, *(f"terminated session {s.describe()} (--terminate-sessions)" for s in sessions))


class RestoreDatabase(Step):
    name, title = "restore_database", "Replace the database from the dump"

    def run(self, ctx: StepContext) -> None:
        env = ctx.env
        _drop(env, force=False)
        ctx.facts["database_replaced"] = True
        _create(env)
        done = load_dump(ctx, env, ctx.plan.dump_file, ctx.facts["dump_format"],
                         restricted=ctx.facts["restrict_key"] is not None)
        ctx.log(self.name, f"restored {done} bytes of {ctx.facts['dump_format']} dump into {env.database} "
                "(never as root)")

    def undo(self, ctx: StepContext) -> str | None:
        if not ctx.facts.get("database_replaced"):
            return None
        saved = ctx.facts.get("pre_restore_dump")
        if saved:
            return put_back(ctx.env, Path(saved), ctx.facts.get("tables_before"))
        ended = _drop_half_restored(ctx.env)
        return f"dropped the half-restored database {ctx.env.database} (it did not exist before the restore){ended}"


class RestoreUploads(Step):
    name, title = "restore_uploads", "Replace the uploads folder from the archive"

    def run(self, ctx: StepContext) -> str | None:
        import tarfile

        archive, uploads = ctx.plan.uploads_archive, ctx.env.uploads_dir
        if archive is None or uploads is None:
            return "no uploads archive to restore"
        work = uploads.with_name(f".{uploads.name}.restoring_{ctx.stamp}")
        work.mkdir()
        try:
            with tarfile.open(archive, "r|gz") as tar:
                tar.extractall(work, filter="data")
            entries = list(work.iterdir())
            source = entries[0] if len(entries) == 1 and entries[0].is_dir() else work
            if uploads.exists():
                aside = uploads.with_name(f"{uploads.name}.pre_restore_{ctx.stamp}")
                os.rename(uploads, aside)
                ctx.facts["uploads_aside"] = str(aside)
                ctx.log(self.name, f"{uploads} → {aside}")
            os.rename(source, uploads)
        except (tarfile.TarError, OSError) as exc:
            raise StepError(f"{archive}: cannot restore the uploads ({exc})", "check the archive") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        ctx.log(self.name, f"uploads restored from {archive}")
        for kind in ("pre_restore", "failed"):
            for old in age_out(uploads.parent.glob(f"{uploads.name}.{kind}_*")):
                ctx.log(self.name, f"aged out {old} (the newest {KEEP_SAFETY_COPIES} are kept)")

    def undo(self, ctx: StepContext) -> str | None:
        aside, uploads = ctx.facts.get("uploads_aside"), ctx.env.uploads_dir
        if not aside or uploads is None or not Path(aside).exists():
            return None
        failed = uploads.with_name(f"{uploads.name}.failed_{ctx.stamp}")
        if uploads.exists():
            os.rename(uploads, failed)
        os.rename(aside, uploads)
        return f"renamed {aside} back to {uploads} (the restored one is kept at {failed})"


def recover(ctx: StepContext, failed: Step, completed: list[Step], hint: str, record: RunRecord) -> str:
    """Undo a failed dump restore (database and uploads together); return the hint the operator reads, which
    says what was undone, or what could not be and how to finish it."""
    undone, problems = [], []
    for step in [failed, *reversed(completed)]:
        try:
            done = step.undo(ctx)
        except Exception as exc:  # keep undoing the others; say what failed
            problems.append(f"{step.name}: {exc.title if isinstance(exc, DrError) else exc}")
            continue
        if done:
            ctx.log(step.name, f"undone: {done}")
            undone.append(done)
            record.mark_undone(step.name)
    lead = f"{hint}. " if hint else ""
    if problems:
        saved = ctx.facts.get("pre_restore_dump")
        return (f"{lead}Undoing failed for {'; '.join(problems)}. "
                + (f"The database as it was is saved in {saved}; " if saved else "")
                + f"put it back with `drtui rollback --env {ctx.env.name}`")
    if not ctx.facts.get("database_replaced"):
        return f"{lead}Nothing was changed: {ctx.env.name}'s database and uploads are as they were"
    return f"{lead}The restore undid itself: " + "; ".join(undone)
