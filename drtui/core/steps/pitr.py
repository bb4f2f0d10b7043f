"""The PITR restore steps. The base backup is extracted and prepared beside the live data directory while
the old cluster still runs; only then are the app and PostgreSQL stopped, the old data directory renamed
aside (`.pre_pitr_<stamp>`) and the restored one renamed into place. A corrupt tarball found during extraction
therefore never touches the old data, and the downtime is the swap plus the WAL replay.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from drtui.core import tablespaces
from drtui.core.backends import backend_for
from drtui.core.clock import format_duration
from drtui.core.config import REPLAY_SETTINGS
from drtui.core.objectstore import S3Url
from drtui.core.planning import Plan, TargetKind
from drtui.core.postgres import run_as
from drtui.core.programs import with_programs_of_data
from drtui.core.recovery_conf import (
    carried_settings,
    host_memory,
    mark_wal_archived,
    overridden,
    recovery_settings,
    signal_file,
)
from drtui.core.steps import Step, StepContext, StepError


class Preflight(Step):
    name, title = "preflight", "Check the backup, the WAL source and the disk"

    def run(self, ctx: StepContext) -> None:
        plan, backend = ctx.plan, ctx.backend
        backup = plan.base_backup
        if isinstance(backup.path, S3Url) or isinstance(plan.wal_source, S3Url):
            _check_objects(ctx)
        local = isinstance(backup.path, Path)
        if local and not os.access(backup.path, os.R_OK):
            raise StepError(f"{backup.path}: the base backup is gone or unreadable", "check BASE_BACKUP")
        if local and backup.path.is_file() and backup.path.stat().st_size != backup.file_size:
            raise StepError(f"{backup.path}: the base backup changed size since it was planned "
                            f"({backup.file_size} → {backup.path.stat().st_size} bytes)",
                            "it may be incomplete or still being written; plan again")
        if isinstance(plan.wal_source, Path) and not plan.wal_source.exists():
            raise StepError(f"{plan.wal_source}: the WAL source is gone", "check WAL_ARCHIVE")
        if isinstance(plan.wal_source, Path) and plan.wal_source.is_dir() and backend.server_reads_host_wal:
            _check_readable_by(ctx.env.os_user, plan.wal_source, backup.start_wal_file)
        parent = backend.data_dir.parent
        if not os.access(parent, os.W_OK):
            raise StepError(f"{parent}: cannot write beside the data directory", "run drtui as root or os_user")
        for kind in ("restoring", "pre_pitr", "failed", "pitr_wal"):
            if backend.sibling(kind, ctx.stamp).exists():
                raise StepError(f"{backend.sibling(kind, ctx.stamp)} already exists", "wait a second and retry")
        for member in plan.chain:
            if isinstance(member.path, Path) and not os.access(member.path, os.R_OK):
                raise StepError(f"{member.path}: a backup the incremental {backup.path.name} builds on is gone or "
                                "unreadable", "put it back, or plan again with a full base backup")
            ctx.log(self.name, f"builds on {member.path} (the chain is rebuilt with pg_combinebackup)")
        running = backend.server_running()
        ctx.log(self.name, f"base backup {backup.path} ({backup.layout.value}, {backup.file_size} bytes)",
                f"WAL from {plan.wal_source} ({plan.wal_kind})",
                f"PostgreSQL on {backend.data_dir} is {'running' if running else 'not running'}",
                "app commands: " + ("configured" if backend.has_app_commands else "none configured"))


def _check_objects(ctx: StepContext) -> None:
    """A base backup object must still be there at its planned size; a WAL prefix must still list."""
    from drtui.core.inventory.remote import head, list_prefix, settings_for

    backup, source = ctx.plan.base_backup, ctx.plan.wal_source
    if isinstance(backup.path, S3Url):
        found = head(backup.path, settings_for(ctx.config, backup.path))
        if found.size != backup.file_size:
            raise StepError(f"{backup.path}: the base backup changed size since it was planned "
                            f"({backup.file_size} → {found.size} bytes)", "it may have been replaced; plan again")
    if isinstance(source, S3Url):
        segments = [o for o in list_prefix(source, settings_for(ctx.config, source), "list the WAL to restore")
                    if o.url.name.startswith(backup.start_wal_file)]
        if not segments:
            raise StepError(f"{source}: the WAL segment {backup.start_wal_file} the backup starts in is gone "
                            "from the bucket", "check WAL_ARCHIVE / the repository, and plan again")


def _check_readable_by(os_user: str, folder: Path, first_segment: str) -> None:
    """PostgreSQL reads a WAL folder as os_user, and takes a file it cannot read for the end of the WAL: a
    restore to 'latest' would stop early without a word."""
    probe = folder / first_segment if (folder / first_segment).exists() else folder
    done = run_as(os_user, ["test", "-r", str(probe), "-a", "-x", str(folder)], check=False, timeout=30)
    if done.returncode != 0:
        raise StepError(f"{probe}: not readable by {os_user}, the user PostgreSQL restores WAL as",
                        f"let {os_user} read the WAL archive (for example: chmod o+rx {folder})")


class ExtractBaseBackup(Step):
    """Extracts the base backup; a WAL tarball is staged at the same time in a thread of its own, so the two
    overlap (StageWal then only waits for it)."""

    name, title = "extract", "Extract the base backup beside the data directory"

    def run(self, ctx: StepContext) -> None:
        from drtui.core.extract import extract_base_backup

        if ctx.plan.wal_kind == "tarball":
            _start_wal_staging(ctx)
        elif ctx.plan.wal_kind == "s3":
            _start_wal_feeder(ctx)
        dest = ctx.backend.sibling("restoring", ctx.stamp)
        ctx.restored_dir = dest
        report = ctx.progress_reporter(self.name, "bytes")
        backup = ctx.plan.base_backup
        places = ctx.plan.tablespaces
        for place in places:
            place.location.parent.mkdir(parents=True, exist_ok=True)
        if ctx.plan.chain:
            written = _combine_chain(ctx, dest, report)
        else:
            written = extract_base_backup(backup, dest, ctx.env.os_user, lambda done, total: report(done, total),
                                          ctx.cancel, chunks=_object_chunks(ctx, backup),
                                          tablespaces={p.oid: (p.sibling("restoring", ctx.stamp), p.location)
                                                       for p in places})
        ctx.check_cancel()
        ctx.log(self.name, f"extracted {written} bytes into {dest}",
                *(f"tablespace {p.oid} into {p.sibling('restoring', ctx.stamp)}, for {p.location}" for p in places))

    def undo(self, ctx: StepContext) -> str | None:
        done = []
        stop_wal_staging(ctx)
        if ctx.staged_wal and ctx.staged_wal.exists():
            ctx.backend.discard(ctx.staged_wal)
            done.append(f"removed the staged WAL copy {ctx.staged_wal}")
        if ctx.restored_dir and ctx.restored_dir.exists():
            ctx.backend.discard(ctx.restored_dir)
            done.append(f"removed the partial extraction {ctx.restored_dir} (the old data was never touched)")
        for place in ctx.plan.tablespaces:
            if place.sibling("restoring", ctx.stamp).exists():
                ctx.backend.discard(place.sibling("restoring", ctx.stamp))
                done.append(f"removed the partial tablespace {place.sibling('restoring', ctx.stamp)}")
        return "; ".join(done) or None


def _object_chunks(ctx: StepContext, backup):
    """The bytes of a base backup in a bucket, by ranged GETs; None for one on this host."""
    if not isinstance(backup.path, S3Url):
        return None
    from drtui.core.inventory.remote import head, object_chunks, settings_for

    settings = settings_for(ctx.config, backup.path)
    return object_chunks(head(backup.path, settings), settings, ctx.cancel)


def _combine_chain(ctx: StepContext, dest, report) -> int:
    """An incremental backup: extract its whole chain, then let pg_combinebackup rebuild `dest`."""
    from drtui.core.extract import extract_base_backup
    from drtui.core.incremental import combine

    chain = (*ctx.plan.chain, ctx.plan.base_backup)
    total = sum(member.size_bytes for member in chain)
    written = 0

    def extract_one(member, folder) -> None:
        nonlocal written
        written += extract_base_backup(member, folder, ctx.env.os_user,
                                       lambda done, _total: report(written + done, total), ctx.cancel,
                                       durable=False, chunks=_object_chunks(ctx, member))

    combine(chain, dest, ctx.env.pg_bin, ctx.env.os_user, extract_one, ctx.cancel)
    ctx.log(ExtractBaseBackup.name, f"rebuilt {ctx.plan.base_backup.path.name} from its chain of {len(chain)} "
            "backups with pg_combinebackup")
    return written


def _start_wal_staging(ctx: StepContext) -> None:
    from drtui.core.extract import stage_wal

    dest = ctx.backend.sibling("pitr_wal", ctx.stamp)
    ctx.staged_wal = dest
    cancel = threading.Event()
    report = ctx.progress_reporter(StageWal.name, "bytes")

    def work() -> None:
        try:
            stage_wal(ctx.plan.wal_source, dest, ctx.env.os_user, lambda done, total: report(done, total), cancel)
        except BaseException as exc:  # handed to StageWal.run, which raises it in the runner's thread
            ctx.facts["wal_error"] = exc

    thread = threading.Thread(target=work, name="stage-wal", daemon=True)
    ctx.facts.update(wal_thread=thread, wal_cancel=cancel)
    thread.start()


def stop_wal_staging(ctx: StepContext) -> None:
    """Stop a WAL tarball's staging or the WAL feeder, and wait for it (before its folder is removed)."""
    staging = ctx.facts.get("wal_thread")
    if staging:
        ctx.facts["wal_cancel"].set()
        staging.join()
    feeder = ctx.facts.get("wal_feeder")
    if feeder:
        feeder.stop()


def _last_fed_segment(plan: Plan) -> int | None:
    """The last segment a restore can ask for: the target's for an LSN or 'immediate' target (and one more,
    which recovery may read ahead into); every segment for a time, a name, 'latest' or a pause (a paused
    restore may be advanced further)."""
    backup, size = plan.base_backup, plan.base_backup.segment_size
    if plan.pause_at_target:
        return None
    if plan.target.kind is TargetKind.LSN and plan.target.lsn is not None:
        return plan.target.lsn // size + 1
    if plan.target.kind is TargetKind.IMMEDIATE and backup.stop_lsn is not None:
        return backup.stop_lsn // size + 1
    return None


def _start_wal_feeder(ctx: StepContext) -> None:
    from drtui.core.inventory.remote import settings_for
    from drtui.core.walfeed import WalFeeder

    plan = ctx.plan
    assert isinstance(plan.wal_source, S3Url)
    dest = ctx.backend.sibling("pitr_wal", ctx.stamp)
    report = ctx.progress_reporter(StageWal.name, "bytes")
    feeder = WalFeeder(plan.wal_source, settings_for(ctx.config, plan.wal_source), plan.base_backup, dest,
                       ctx.env.os_user, _last_fed_segment(plan), lambda done, total: report(done, total))
    ctx.staged_wal = dest
    ctx.facts["wal_feeder"] = feeder.start()


class StageWal(Step):
    name, title = "stage_wal", "Stage the WAL for replay"

    def run(self, ctx: StepContext) -> str | None:
        source = ctx.plan.wal_source
        if isinstance(source, S3Url):
            self._feed(ctx, source)
            return
        if source.is_dir():
            ctx.wal_folder = source
            return f"WAL is read in place from {source} (nothing copied, nothing written there)"
        thread = ctx.facts.get("wal_thread")
        if thread is None:
            _start_wal_staging(ctx)
            thread = ctx.facts["wal_thread"]
        while thread.is_alive():
            if ctx.cancel.is_set():
                ctx.facts["wal_cancel"].set()
            thread.join(0.2)
        if "wal_error" in ctx.facts:
            raise ctx.facts["wal_error"]
        ctx.wal_folder = ctx.staged_wal
        ctx.log(self.name, f"WAL tarball {source.name} staged into {ctx.staged_wal} (while the base backup "
                           "was extracted)")
        return None

    def _feed(self, ctx: StepContext, source: S3Url) -> None:
        """The feeder goes on while PostgreSQL replays (fetch_wal.sh waits for what it has not delivered);
        this waits only for its listing, or, for a paused restore or a server that cannot wait on the
        host's folder (another backend's restore_command), for all of it."""
        from drtui.core.walfeed import FEED_LIST, wait_until_done

        feeder = ctx.facts.get("wal_feeder")
        if feeder is None:
            _start_wal_feeder(ctx)
            feeder = ctx.facts["wal_feeder"]
        assert ctx.staged_wal
        whole = ctx.plan.pause_at_target or not ctx.backend.server_reads_host_wal
        while not whole and feeder.running and not (ctx.staged_wal / FEED_LIST).exists():
            ctx.check_cancel()
            feeder.join(0.1)
        if whole or feeder.error is not None:
            wait_until_done(feeder, ctx.cancel)
        ctx.check_cancel()
        ctx.wal_folder = ctx.staged_wal
        ctx.log(self.name, f"WAL from {source}: {'all' if whole else 'being'} fed into {ctx.staged_wal} "
                           "(one listing; the restored server reads only that folder, never the bucket)")

    def undo(self, ctx: StepContext) -> str | None:
        stop_wal_staging(ctx)
        if ctx.staged_wal and ctx.staged_wal.exists():
            ctx.backend.discard(ctx.staged_wal)
            return f"removed the staged WAL copy {ctx.staged_wal} (the source is never modified)"
        return None


class WriteRecovery(Step):
    name, title = "write_recovery", "Write the recovery settings"

    def run(self, ctx: StepContext) -> None:
        assert ctx.restored_dir and ctx.wal_folder
        marked = mark_wal_archived(ctx.restored_dir, ctx.env.os_user)
        if marked:
            ctx.log(self.name, f"{len(marked)} WAL segment(s) the backup brought marked as archived already "
                               f"({marked[0]} …): the restored cluster never archives them again")
        command = ctx.backend.restore_command(ctx.restored_dir, ctx.wal_folder, ctx.plan.base_backup)
        carried = carried_settings(ctx.restored_dir)
        memory = host_memory() if ctx.backend.server_uses_host_memory else None
        settings = recovery_settings(ctx.plan, ctx.env, command, carried, memory)
        blanked = overridden(ctx.restored_dir, settings)
        signal = signal_file(ctx.plan)
        ctx.backend.write_recovery(ctx.restored_dir, settings, signal)
        ctx.log(self.name, "overridden, so that the restored copy acts on nothing outside its data directory: "
                + ", ".join(blanked))
        tuned = [f"{name} = {value} (the backup's: {carried.get(name, 'not set')})" for name, value in settings.items()
                 if name in REPLAY_SETTINGS]
        ctx.log(self.name, "replay tuning, returned to the backup's own values after promotion: " + ", ".join(tuned)
                if tuned else "replay tuning: none (replay_tuning = false, or replay_settings leave them all)")
        ctx.log(self.name, f"{signal} written; postgresql.auto.conf:",
                *(f"  {key} = {value!r}" for key, value in settings.items()))


class StopApp(Step):
    name, title = "stop_app", "Stop the application"

    def run(self, ctx: StepContext) -> str | None:
        done = ctx.backend.stop_app()
        ctx.app_stopped = done is not None
        if not done:
            return "no application configured to stop (stop_app_command; app_services on compose)"
        ctx.log(self.name, f"ran: {done}")
        return None

    def undo(self, ctx: StepContext) -> str | None:
        if ctx.app_stopped:
            ctx.backend.start_app()
            return "started the application again"
        return None


class StopPostgres(Step):
    name, title = "stop_postgres", "Stop PostgreSQL"

    def run(self, ctx: StepContext) -> str | None:
        ctx.server_was_running = ctx.backend.server_running()
        if not ctx.server_was_running:
            return "PostgreSQL was not running"
        ctx.backend.stop_server()
        ctx.log(self.name, "stopped")
        return None

    def undo(self, ctx: StepContext) -> str | None:
        if ctx.server_was_running and not ctx.backend.server_running():
            # the old cluster's own programs: the run's may be those of a backup of another major version
            own = with_programs_of_data(ctx.config, ctx.config.environment(ctx.env.name),
                                        ctx.backend.runs_host_programs)
            backend_for(own, ctx.config.state_dir).start_server()
            return "started the old cluster again"
        return None


class Preserve(Step):
    name, title = "preserve", "Keep the current data directory (rename, never delete)"

    def run(self, ctx: StepContext) -> str | None:
        ctx.preserved = ctx.backend.preserve(ctx.stamp)
        ctx.facts["tablespaces_kept"] = moved = tablespaces.preserve(ctx.plan.tablespaces, ctx.stamp)
        if moved:
            ctx.log(self.name, *(f"tablespace {old} → {kept}" for old, kept in moved))
        if not ctx.preserved:
            return None if moved else f"{ctx.backend.data_dir} did not exist: nothing to preserve"
        ctx.log(self.name, f"{ctx.backend.data_dir} → {ctx.preserved}")
        return None

    def undo(self, ctx: StepContext) -> str | None:
        tablespaces.move_back(ctx.facts.get("tablespaces_kept", ()))
        if ctx.preserved and ctx.preserved.exists() and not ctx.backend.data_dir.exists():
            ctx.backend.put_in_place(ctx.preserved)
            preserved, ctx.preserved = ctx.preserved, None
            return f"renamed {preserved} back to {ctx.backend.data_dir}"
        return None


class SwapIn(Step):
    name, title = "swap_in", "Put the restored data directory in place"

    def run(self, ctx: StepContext) -> None:
        assert ctx.restored_dir
        ctx.backend.put_in_place(ctx.restored_dir)
        ctx.log(self.name, f"{ctx.restored_dir} → {ctx.backend.data_dir}")
        ctx.log(self.name, *(f"tablespace {path}" for path in tablespaces.swap_in(ctx.plan.tablespaces, ctx.stamp)))

    def undo(self, ctx: StepContext) -> str | None:
        tablespaces.move_back((p.sibling("failed", ctx.stamp), p.location) for p in ctx.plan.tablespaces)
        if ctx.restored_dir and not ctx.restored_dir.exists() and ctx.backend.data_dir.exists():
            ctx.failed_aside = ctx.backend.set_aside(ctx.stamp)
            return f"set the restored data directory aside: {ctx.failed_aside}"
        return None


class StartPostgres(Step):
    name, title = "start_postgres", "Start PostgreSQL in recovery"

    def run(self, ctx: StepContext) -> None:
        log = ctx.backend.server_log()
        ctx.log_offset = log.stat().st_size if log.exists() else 0
        ctx.backend.start_server(wait=False)
        ctx.log(self.name, f"started on port {ctx.env.port}; server log {log}")

    def undo(self, ctx: StepContext) -> str | None:
        if ctx.backend.server_alive():
            ctx.backend.stop_server()
            return "stopped the restored server"
        return None


class StartApp(Step):
    name, title = "start_app", "Start the application"

    def run(self, ctx: StepContext) -> str | None:
        done = ctx.backend.start_app()
        if not done:
            return "no application configured to start (start_app_command; app_services on compose)"
        ctx.log(self.name, f"ran: {done}")
        return None


class Verify(Step):
    name, title = "verify", "Verify the restored environment"

    def run(self, ctx: StepContext) -> None:
        from drtui.core.checks import run_checks

        # The data is judged against the target the plan asked for (a time), not only where replay stopped:
        # a recovery that went past the target must fail its data checks.
        plan = ctx.plan
        target = plan.target.time if isinstance(plan, Plan) and plan.target.time else ctx.recovered_to
        ctx.checks = run_checks(ctx.config, ctx.env, recovered_to=target, emit=ctx.emit,
                                clock=ctx.clock, wait_ready_seconds=60, cancel=ctx.cancel)
        measure_achieved_rpo(ctx)
        failed = [c for c in ctx.checks if c.outcome == "failed"]
        if failed:
            raise StepError("verification failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed),
                            "look at the failed checks above")


def measure_achieved_rpo(ctx: StepContext) -> None:
    """RPO achieved by a PITR, measured on the restored cluster: its last replayed commit against the target
    time, or against the failure time the operator stated (--incident-start), else the run's start. (After a
    dump restore the dump's own timestamp is the better basis; the report takes it from the journal.)"""
    from drtui.core.checks import measure_rpo
    from drtui.core.errors import DrError

    plan = ctx.plan
    if not isinstance(plan, Plan):
        return
    target = plan.target.time
    failure_time = plan.incident_start or (None if target else ctx.facts.get("started"))
    try:
        rpo = measure_rpo(ctx.env, target, failure_time)
    except DrError as exc:
        ctx.log("verify", f"RPO not measured: {exc.title}")
        return
    ctx.facts["rpo"] = rpo.as_dict()
    seconds = "unknown" if rpo.rpo_seconds is None else format_duration(rpo.rpo_seconds)
    ctx.log("verify", f"RPO achieved: {seconds} ({rpo.reason})")


def remove_staged_wal(ctx: StepContext) -> None:
    """The staged WAL copy is only needed until promotion."""
    if ctx.staged_wal and ctx.staged_wal.exists():
        ctx.backend.discard(ctx.staged_wal)

