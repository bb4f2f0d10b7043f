"""Rollback of a dump restore: the newest pre-restore dump loaded back into the database, and the uploads
folder set aside by that restore renamed back (the replaced one is kept as `<uploads>.failed_<stamp>`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from drtui.core.clock import Clock, stamp
from drtui.core.config import Config, Environment
from drtui.core.dump_checks import DumpRefused, other_sessions
from drtui.core.events import Event, StepLogged
from drtui.core.lock import EnvLock
from drtui.core.runner import operation_run
from drtui.core.steps.dump import PRE_RESTORE, pre_restore_dumps, put_back

if TYPE_CHECKING:
    from drtui.core.rollback import RollbackResult

STAMP_LENGTH = len("YYYYMMDDTHHMMSSZ")


def _stamp_of(dump: Path) -> str:
    return dump.name.removesuffix(".sql.gz")[-STAMP_LENGTH:]


def pending_dump_restore(config: Config, env: Environment, preserved: list[Path]) -> Path | None:
    """The pre-restore dump a rollback would load back: that of the newest dump restore, when it is newer than
    any preserved data directory."""
    dumps = pre_restore_dumps(config.state_dir / PRE_RESTORE, env)
    if not dumps or (preserved and preserved[-1].name.rsplit("_", 1)[-1] > _stamp_of(dumps[-1])):
        return None
    return dumps[-1]


def roll_back_dump(config: Config, env: Environment, clock: Clock, preserved: list[Path],
                   listener: Callable[[Event], None] | None = None) -> RollbackResult | None:
    """Put the newest dump restore back, when it is newer than any preserved data directory; None when there
    is none (the data-directory rollback then applies)."""
    from drtui.core.rollback import RollbackResult

    saved = pending_dump_restore(config, env, preserved)
    if saved is None:
        return None
    sessions = other_sessions(env)
    if sessions:
        raise DumpRefused(f"{len(sessions)} session(s) on {env.name}'s database {env.database}: "
                          + "; ".join(s.describe() for s in sessions), "end them, then roll back again")
    lock = EnvLock(config.state_dir, env.name)
    lock.acquire(f"rollback-{stamp(clock.now())}", clock)
    try:
        with operation_run(config.state_dir, "rollback", "Put the database and uploads from before the dump "
                           "restore back", env.name, clock, listener) as run:
            def log(line: str) -> None:
                run.emit(StepLogged(clock.now(), "rollback", [line]))

            log(put_back(env, saved, None))
            uploads = env.uploads_dir
            aside = uploads.with_name(f"{uploads.name}.pre_restore_{_stamp_of(saved)}") if uploads else None
            if uploads and aside and aside.is_dir():
                if uploads.exists():
                    failed = uploads.with_name(f"{uploads.name}.failed_{stamp(clock.now())}")
                    os.rename(uploads, failed)
                    log(f"{uploads} → {failed} (kept)")
                os.rename(aside, uploads)
                log(f"{aside} → {uploads}")
            result = RollbackResult(env.name, Path(env.database), saved, None, (), None, True, run.journal.path)
            run.summary = result.as_dict()
        return result
    finally:
        lock.release()
