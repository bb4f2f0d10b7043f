"""Following WAL replay until promotion (or the pause at the target): progress in LSN against the target or the
end of the archived WAL, the last replayed transaction time, the replay rate and an ETA, the server log as it
is written, and PostgreSQL's recovery errors translated into plain causes and next steps.

Health is never read from a server in recovery: it accepts read-only connections and shows old data. The step
ends only when `pg_is_in_recovery()` is false (or, with --pause-at-target, when replay is paused there).
Without --pause-at-target the server runs as a standby that is asked to promote as soon as it is up (see
pitr.signal_file): it still replays to the target, then promotes without an end-of-recovery checkpoint.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path

from drtui.core.errors import DrError
from drtui.core.models import DEFAULT_SEGMENT_SIZE, format_lsn
from drtui.core.planning import TargetKind
from drtui.core.steps import Step, StepContext, StepError

POLL_SECONDS = 0.1
HEX = frozenset("0123456789ABCDEF")
# (pattern in the server log, plain cause, next step)
TRANSLATIONS = (
    (re.compile(r"requested recovery stop point is before consistent recovery point"),
     "the target lies before the moment the base backup became consistent",
     "choose an older base backup (--base-backup) or a later target"),
    (re.compile(r"recovery ended before configured recovery target was reached"),
     "the WAL ran out before the target was reached (the archive does not reach it, or the restore point "
     "/ transaction does not exist)",
     "sync the WAL archive (`drtui backup wal-sync`), or choose an earlier target"),
    (re.compile(r"insufficient parameter settings|hot standby is not possible because"),
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
_PARAMETERS = TRANSLATIONS[2][0]
_LAST_TX = re.compile(r"last completed transaction was at log time (\S+ \S+(?: \S+)?)")


def translate(lines: list[str]) -> tuple[str, str] | None:
    """The plain cause and next step for the first recognised recovery error in server log lines."""
    for line in lines:
        for pattern, cause, hint in TRANSLATIONS:
            if pattern.search(line):
                return cause, hint
    return None


def _log_time(text: str) -> datetime | None:
    text = re.sub(r"\s+(UTC|GMT)$", "+00:00", text.strip())
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def archive_end_lsn(folder: Path, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int | None:
    """The end LSN of the newest segment in a WAL folder (names only, no stat)."""
    names = [e.name for e in os.scandir(folder) if len(e.name) == 24 and all(c in HEX for c in e.name)]
    if not names:
        return None
    newest = max(names, key=lambda n: (n[8:], n[:8]))
    per_id = 0x100000000 // segment_size
    segno = int(newest[8:16], 16) * per_id + int(newest[16:24], 16)
    return (segno + 1) * segment_size


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
            if promotion and alive:
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
            if promotion:
                promotion.insist()
            elif status.paused:
                ctx.paused = True
                break
            time.sleep(POLL_SECONDS)
        if last_status and last_status.replay_time and ctx.recovered_to is None:
            ctx.recovered_to = last_status.replay_time
        if ctx.paused:
            from drtui.core.promote import pause_hint

            ctx.log(self.name, f"recovery is paused at the target: {pause_hint(ctx.env.name)}")
        else:
            from drtui.core.extract import clear_prefetch

            clear_prefetch(backend.data_dir)
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
