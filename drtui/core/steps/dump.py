"""The dump restore into staging (restore_to_staging.sh): check the dump and uploads archive whole, save a dump
of the current database and rename the uploads folder aside, replace the database from the dump and the uploads
from the archive, then verify. Undoing puts the uploads folder back; the database is put back from the
pre-restore dump, whose path every failure names."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import subprocess
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Any

from drtui.core.backup import CHUNK, LAST_SUCCESS, verify_dump, verify_tarball
from drtui.core.config import Environment
from drtui.core.postgres import query
from drtui.core.steps import Step, StepContext, StepError


def _client_env(env: Environment) -> dict[str, str]:
    password = env.password()
    return {**os.environ, "PGCONNECT_TIMEOUT": "10", **({"PGPASSWORD": password} if password else {})}


def _client(env: Environment, name: str, *args: str) -> list[str]:
    return [str(env.pg_bin / name), "-h", env.host, "-p", str(env.port), "-U", env.user, "--no-password", *args]


def _failed(what: str, stderr: bytes) -> StepError:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return StepError(f"{what} failed: {lines[-1] if lines else 'no output'}", "read the step's log lines")


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
    name, title = "preflight", "Check the dump and the uploads archive are whole"

    def run(self, ctx: StepContext) -> None:
        plan = ctx.plan
        rpo = dump_rpo(plan.dump_time, ctx.config.backup_dir, ctx.facts["started"], plan.incident_start)
        if rpo is not None:
            ctx.facts["rpo"] = rpo
            ctx.log(self.name, f"RPO: {rpo['rpo_seconds']:.0f} s, the dump's age at the restore "
                               f"(taken {rpo['last_commit']})")
        size = verify_dump(plan.dump_file)
        ctx.facts["dump_bytes"] = size
        ctx.log(self.name, f"dump {plan.dump_file}: whole, {size} bytes of SQL")
        if plan.uploads_archive:
            members = verify_tarball(plan.uploads_archive)
            ctx.log(self.name, f"uploads archive {plan.uploads_archive}: whole, {members} members")


class PreRestoreDump(Step):
    name, title = "pre_restore_dump", "Save a dump of the current database"

    def run(self, ctx: StepContext) -> None:
        env = ctx.env
        exists = query(env, "select 1 from pg_database where datname = %s", (env.database,), dbname="postgres")
        if not exists:
            ctx.log(self.name, f"database {env.database!r} does not exist yet: nothing to save")
            return
        folder = ctx.config.state_dir / "pre_restore"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{env.database}_{env.name}_pre_restore_{ctx.stamp}.sql.gz"
        proc = subprocess.Popen(_client(env, "pg_dump", "-d", env.database), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=_client_env(env))
        assert proc.stdout and proc.stderr
        with gzip.open(path, "wb", compresslevel=1) as out:
            shutil.copyfileobj(proc.stdout, out, CHUNK)
        stderr = proc.stderr.read()
        if proc.wait() != 0:
            path.unlink(missing_ok=True)
            raise _failed("pg_dump of the current database", stderr)
        ctx.facts["pre_restore_dump"] = str(path)
        ctx.log(self.name, f"saved {path} ({path.stat().st_size} bytes)")


class RestoreDatabase(Step):
    name, title = "restore_database", "Replace the database from the dump"

    def run(self, ctx: StepContext) -> None:
        env = ctx.env
        admin = _client(env, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres")
        for sql in (f'drop database if exists "{env.database}" with (force)', f'create database "{env.database}"'):
            done = subprocess.run([*admin, "-c", sql], capture_output=True, env=_client_env(env), check=False)
            if done.returncode != 0:
                raise _failed(sql, done.stderr)
        proc = subprocess.Popen(_client(env, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", env.database),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=_client_env(env))
        assert proc.stdin and proc.stderr
        report = ctx.progress_reporter(self.name, "bytes")
        total = ctx.facts.get("dump_bytes")
        done_bytes = 0
        try:
            with gzip.open(ctx.plan.dump_file, "rb") as dump:
                while chunk := dump.read(CHUNK):
                    ctx.check_cancel()
                    proc.stdin.write(chunk)
                    done_bytes += len(chunk)
                    report(done_bytes, total)
        except BrokenPipeError:
            pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        stderr = proc.stderr.read()
        if proc.wait() != 0:
            raise _failed("psql restoring the dump", stderr)
        report(done_bytes, done_bytes)
        ctx.log(self.name, f"restored {done_bytes} bytes of SQL into {env.database}")

    def undo(self, ctx: StepContext) -> str | None:
        saved = ctx.facts.get("pre_restore_dump")
        return f"the database is NOT put back automatically; the pre-restore dump is {saved}" if saved else None


class RestoreUploads(Step):
    name, title = "restore_uploads", "Replace the uploads folder from the archive"

    def run(self, ctx: StepContext) -> None:
        archive, uploads = ctx.plan.uploads_archive, ctx.env.uploads_dir
        if archive is None or uploads is None:
            ctx.log(self.name, "no uploads archive to restore: skipped")
            return
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

    def undo(self, ctx: StepContext) -> str | None:
        aside, uploads = ctx.facts.get("uploads_aside"), ctx.env.uploads_dir
        if not aside or uploads is None or not Path(aside).exists():
            return None
        if uploads.exists():
            os.rename(uploads, uploads.with_name(f"{uploads.name}.failed_{ctx.stamp}"))
        os.rename(aside, uploads)
        return f"renamed {aside} back to {uploads}"
