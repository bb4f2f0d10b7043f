"""Following WAL replay until promotion (or the pause at the target): progress in LSN against the target or the
end of the archived WAL, the last replayed transaction time, the replay rate and an ETA, the server log as it
is written, and PostgreSQL's recovery errors translated into plain causes and next steps.

Health is never read from a server in recovery: it accepts read-only connections and shows old data. The step
ends only when `pg_is_in_recovery()` is false (or, with --pause-at-target, when replay is paused there).
Without --pause-at-target the server runs as a standby that is asked to promote as soon as it is up (see
recovery_conf.signal_file): it still replays to the target, then promotes without an end-of-recovery checkpoint.
For 'latest' the request waits until replay has reached the end of the WAL source (_EndOfWal).
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path

from drtui.core.backends.base import RecoveryStatus
from drtui.core.errors import DrError
from drtui.core.models import DEFAULT_SEGMENT_SIZE, format_lsn, segment_name
from drtui.core.planning import TargetKind
from drtui.core.recovery_conf import FETCHER_COPY, clear_prefetch, fetcher_misses, return_replay_settings
from drtui.core.steps import Step, StepContext, StepError
from drtui.core.walfeed import feed_names

POLL_SECONDS = 0.1
# Replay of 'latest' that has not moved for this long, short of the end of the WAL source, has stopped there
# (a standby retries a failed read every wal_retrieve_retry_interval, 5 s by default).
STALL_SECONDS = 15
HEX = frozenset("0123456789ABCDEF")
LSN = r"([0-9A-F]+/[0-9A-F]+)"
_DAMAGED_HINT = ("replace that segment in the WAL source with a good copy (another archive, a wal_archive_*.tar.gz "
                 "or the primary's pg_wal) and restore again, or restore to a target before it")
_PARAMETERS = re.compile(r"insufficient parameter settings|hot standby is not possible because")
# (pattern in the server log, plain cause, next step); the cause may name the pattern's groups ({0}, {1}, ...)
TRANSLATIONS = (
    (re.compile(r"drtui fetch_wal: (WAL file \S+ in .*?); recovery stops here"),
     "{0}", "make that file whole and readable by os_user in the WAL source (or put a good copy there), "
            "then restore again; or restore to a target before it"),
    (re.compile(r"No space left on device"),
     "the disk filled up during WAL replay (No space left on device)",
     "free space on the data directory's filesystem (replayed WAL and new data need room beyond the base "
     "backup), then restore again"),
    (re.compile(r"could not (?:map|create) (?:anonymous )?shared memory"),
     "the restored server could not allocate its shared memory (shared_buffers, which drtui raises for replay)",
     "free memory on this host, or give the environment a smaller replay_settings = {shared_buffers = \"…\"} "
     "(or shared_buffers = false, the backup's own) in drtui.toml, then restore again"),
    (re.compile(r"invalid magic number (\w+) in log segment (\w+), offset (\d+)"),
     "WAL segment {1} is damaged: invalid magic number {0} at offset {2}", _DAMAGED_HINT),
    (re.compile(r"unexpected pageaddr " + LSN + r" in log segment (\w+), offset (\d+)"),
     "WAL segment {1} holds the wrong WAL (page address {0} at offset {2}): a damaged or misnamed file",
     _DAMAGED_HINT),
    (re.compile(f"incorrect prev-link {LSN} at {LSN}"),
     "the WAL is damaged at LSN {1}: a record's link to the previous one ({0}) is wrong", _DAMAGED_HINT),
    (re.compile("incorrect resource manager data checksum in record at " + LSN),
     "the WAL is damaged at LSN {0}: a record's checksum does not match", _DAMAGED_HINT),
    (re.compile(r"invalid resource manager ID (\d+) at " + LSN),
     "the WAL is damaged at LSN {1}: invalid resource manager ID {0}", _DAMAGED_HINT),
    # "got 0" is the ordinary end of written WAL (zeros); any other length is damage
    (re.compile(r"(?:invalid record length|record length \d+) at " + LSN + r"(?:: wanted \d+, got [1-9]| too long)"),
     "the WAL is damaged at LSN {0}: invalid record length", _DAMAGED_HINT),
    (re.compile(r"requested recovery stop point is before consistent recovery point"),
     "the target lies before the moment the base backup became consistent",
     "choose an older base backup (--base-backup) or a later target"),
    (re.compile(r"recovery ended before configured recovery target was reached"),
     "the WAL ran out before the target was reached (the archive does not reach it, or the restore point "
     "/ transaction does not exist)",
     "sync the WAL archive (`drtui backup wal-sync`), or choose an earlier target"),
    (_PARAMETERS,
     "recovery paused: a setting such as max_connections is lower here than on the primary",
     "raise the setting named in the server log to at least the primary's value in the target environment's "
     "postgresql.conf, then restore again"),
    (re.compile(r"could not restore file .* from archive|restore_command .*(failed|terminated|not found)"),
     "the restore_command fails",
     "check that the WAL source is readable by os_user and that the command in the log works when run by hand"),
    (re.compile(r"could not locate required checkpoint record|could not find redo location"),
     "the WAL the base backup starts from is missing from the WAL source",
     "point --wal-archive at the archive that holds the backup's start segment"),
)
_LAST_TX = re.compile(r"last completed transaction was at log time (\S+ \S+(?: \S+)?)")


def translate(lines: list[str]) -> tuple[str, str] | None:
    """The plain cause and next step for the first recognised recovery error in server log lines."""
    for line in lines:
        for pattern, cause, hint in TRANSLATIONS:
            found = pattern.search(line)
            if found:
                return cause.format(*(group or "?" for group in found.groups())), hint
    return None


def _log_time(text: str) -> datetime | None:
    text = re.sub(r"\s+(UTC|GMT)$", "+00:00", text.strip())
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _segments(folder: Path, segment_size: int) -> list[tuple[int, int]]:
    """(timeline, segment number) of every segment in a WAL folder (names only, no stat), and of those a WAL
    feeder is still to deliver into it."""
    per_id = 0x100000000 // segment_size
    names = {e.name for e in os.scandir(folder)} | set(feed_names(folder))
    return [(int(name[:8], 16), int(name[8:16], 16) * per_id + int(name[16:24], 16))
            for name in names if len(name) == 24 and all(c in HEX for c in name)]


def newest_segment(folder: Path, segment_size: int = DEFAULT_SEGMENT_SIZE) -> tuple[int, int] | None:
    """(timeline, segment number) of the newest segment on the newest timeline of a WAL folder: where
    recovery to the latest timeline ends."""
    return max(_segments(folder, segment_size), default=None)


def archive_end_lsn(folder: Path, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int | None:
    """The end LSN of the newest segment in a WAL folder (see newest_segment)."""
    newest = newest_segment(folder, segment_size)
    return None if newest is None else (newest[1] + 1) * segment_size


class FollowRecovery(Step):
    name, title = "follow_recovery", "Replay WAL until the target"
    undo_text = "stop the restored server, set it aside and put the old data back"
    commits = True

    def run(self, ctx: StepContext) -> None:
        backend, plan = ctx.backend, ctx.plan
        log_path = backend.server_log()
        offset = ctx.log_offset
        seen: list[str] = []
        target_lsn = plan.target.lsn if plan.target.kind is TargetKind.LSN else None
        folder = ctx.wal_folder
        end_lsn = target_lsn or (archive_end_lsn(folder, plan.base_backup.segment_size) if folder else None)
        start_lsn = plan.base_backup.start_lsn
        report = ctx.progress_reporter(self.name, "lsn")
        first: tuple[float, int] | None = None
        last_status = None
        promotion = _Promotion(ctx) if not plan.pause_at_target else None
        end = _EndOfWal.of(ctx) if promotion and plan.target.kind is TargetKind.LATEST else None
        while True:
            ctx.check_cancel()
            offset, lines = _read_new(log_path, offset)
            if lines:
                seen += lines
                ctx.log(self.name, *lines, source="server")
                for line in lines:
                    found = _LAST_TX.search(line)
                    if found and _log_time(found.group(1)):
                        ctx.recovered_to = _log_time(found.group(1))
                if any(_PARAMETERS.search(line) for line in lines):
                    # Replay is paused and no connection will be allowed: waiting would hang forever.
                    self._fail(seen, "recovery paused")
            alive = backend.server_alive()  # start_server returned once the postmaster was up
            if promotion and alive and (end is None or end.reached()):
                promotion.request()
            status = backend.recovery_status()
            if status is None:
                if not alive:
                    offset, lines = _read_new(log_path, offset)
                    seen += lines
                    ctx.log(self.name, *lines, source="server")
                    self._fail(seen, "PostgreSQL stopped during recovery")
                time.sleep(POLL_SECONDS)
                continue
            last_status = status
            if status.replay_lsn is not None:
                now = ctx.clock.monotonic()
                first = first or (now, status.replay_lsn)
                elapsed = now - first[0]
                rate = (status.replay_lsn - first[1]) / elapsed if elapsed > 0.5 else None
                done = status.replay_lsn - start_lsn
                total = end_lsn - start_lsn if end_lsn else None
                eta = (total - done) / rate if rate and total and total > done else None
                report(max(done, 0), total, replay_lsn=format_lsn(status.replay_lsn),
                       replay_time=status.replay_time.isoformat() if status.replay_time else None,
                       bytes_per_second=rate, eta_seconds=eta)
            if not status.in_recovery:
                break
            if end and not promotion.requested and not end.reached():
                end.check_progress(status, seen)
            elif promotion:
                promotion.insist()
            elif status.paused:
                ctx.paused = True
                break
            time.sleep(POLL_SECONDS)
        offset, lines = _read_new(log_path, offset)  # what the server logged while it left recovery
        if lines:
            ctx.log(self.name, *lines, source="server")
        if last_status and last_status.replay_time and ctx.recovered_to is None:
            ctx.recovered_to = last_status.replay_time
        if ctx.paused:
            from drtui.core.promote import pause_hint

            ctx.log(self.name, f"recovery is paused at the target: {pause_hint(ctx.env.name)}")
        else:
            clear_prefetch(backend.data_dir)
            end_replay_tuning(ctx, self.name)
            if last_status and last_status.replay_lsn is not None:  # replay is complete: its bar ends at 100 %
                replayed = max(last_status.replay_lsn - start_lsn, 0)
                report(replayed, replayed, replay_lsn=format_lsn(last_status.replay_lsn))
            ctx.log(self.name, "promoted: PostgreSQL is out of recovery"
                    + (f"; recovered to {ctx.recovered_to.isoformat()}" if ctx.recovered_to else ""))

    def _fail(self, lines: list[str], fallback: str) -> None:
        found = translate(lines)
        if found:
            raise StepError(f"recovery failed: {found[0]}", found[1])
        fatal = [line for line in lines if "FATAL" in line or "PANIC" in line]
        raise StepError(f"{fallback}: {fatal[-1].strip() if fatal else 'see the server log'}",
                        "read the server log lines above")

    def undo(self, ctx: StepContext) -> str | None:
        if ctx.backend.server_alive():
            ctx.backend.stop_server()
            return "stopped the restored server"
        return None


def end_replay_tuning(ctx: StepContext, step: str) -> None:
    """Once promoted: the replay settings back to the backup's own values, and the run's log says which."""
    returned = return_replay_settings(ctx.env)
    if returned:
        ctx.log(step, "replay tuning ended:", *(f"  {line}" for line in returned))


class _EndOfWal:
    """For 'latest': PostgreSQL takes any file it cannot fetch for the end of the WAL, and a standby asked to
    promote promotes wherever that was. So the promotion is asked for only once replay has reached the end of
    the WAL source: when PostgreSQL has asked the fetcher for a segment past the newest one there when replay
    began (the fetcher records each miss; a live archive may have grown since). Replay that stops moving
    before that has stopped short, and fails the step, before any promotion, with what would be lost."""

    def __init__(self, ctx: StepContext, folder: Path, newest: tuple[int, int]) -> None:
        self.ctx, self.folder = ctx, folder
        self.segment_size = ctx.plan.base_backup.segment_size
        self.newest = segment_name(newest[0], newest[1], self.segment_size)
        self.newest_segno = newest[1]
        self.end_lsn = (newest[1] + 1) * self.segment_size
        self.replay_lsn: int | None = None
        self.since = ctx.clock.monotonic()

    @classmethod
    def of(cls, ctx: StepContext) -> _EndOfWal | None:
        """None when the fetcher does not record its misses (another backend's restore_command)."""
        folder = ctx.wal_folder
        if folder is None or not (ctx.backend.data_dir / FETCHER_COPY).is_file():
            return None
        newest = newest_segment(folder, ctx.plan.base_backup.segment_size)
        return cls(ctx, folder, newest) if newest else None

    def reached(self) -> bool:
        per_id = 0x100000000 // self.segment_size
        return any(int(name[8:16], 16) * per_id + int(name[16:24], 16) > self.newest_segno
                   for name in fetcher_misses(self.ctx.backend.data_dir))

    def check_progress(self, status: RecoveryStatus, log: list[str]) -> None:
        now = self.ctx.clock.monotonic()
        if status.replay_lsn != self.replay_lsn:
            self.replay_lsn, self.since = status.replay_lsn, now
        elif status.replay_lsn is not None and now - self.since > STALL_SECONDS:
            self.fail(status.replay_lsn, status.replay_time, log)

    def fail(self, replay_lsn: int, replay_time: datetime | None, log: list[str]) -> None:
        lost = max(self.end_lsn - replay_lsn, 0)
        segno = replay_lsn // self.segment_size
        timeline = max((tl for tl, no in _segments(self.folder, self.segment_size) if no == segno),
                       default=int(self.newest[:8], 16))
        found = translate(log)
        cause = found[0] if found else f"nothing was replayed past it (server log: {self.ctx.backend.server_log()})"
        raise StepError(
            f"replay stopped short of the end of the WAL source, at LSN {format_lsn(replay_lsn)} in segment "
            f"{segment_name(timeline, segno, self.segment_size)}: {cause}. The source holds WAL up to "
            f"{format_lsn(self.end_lsn)} (segment {self.newest}): up to {lost / 2**20:.1f} MiB ({lost:,} bytes) "
            "of WAL would be lost, so the restored copy was not promoted",
            (found[1] + "; " if found else "")
            + "to accept the loss, restore again to the last transaction replayed ("
            + (f"--target-time {replay_time.isoformat()}" if replay_time else "--recovery-target immediate")
            + ", with --pause-at-target to look first, then `drtui restore promote`)")


class _Promotion:
    """Asks the restored standby to promote as early as it will listen. Until PostgreSQL has begun archive
    recovery, pg_ctl refuses ("not in standby mode"); that is retried. Once the server answers queries in
    recovery, a refusal is a real failure: without the request it would wait for more WAL forever."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.requested = False
        self.refusal: DrError | None = None

    def request(self) -> None:
        if self.requested:
            return
        try:
            self.ctx.backend.promote(wait=False)
        except DrError as exc:
            self.refusal = exc
            return
        self.requested = True
        self.ctx.log(FollowRecovery.name, "promotion requested: PostgreSQL replays the WAL up to the target, "
                                          "then promotes without waiting for a checkpoint")

    def insist(self) -> None:
        """Called while the server answers in recovery: the request must have been taken by now."""
        self.request()
        if not self.requested:
            assert self.refusal
            raise StepError(f"could not ask PostgreSQL to promote: {self.refusal.title}", self.refusal.hint)


def _read_new(path: Path, offset: int) -> tuple[int, list[str]]:
    """Complete lines appended to a log since `offset`."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return offset, []
    end = data.rfind(b"\n")
    if end < 0:
        return offset, []
    chunk = data[:end + 1]
    return offset + len(chunk), chunk.decode(errors="replace").splitlines()
