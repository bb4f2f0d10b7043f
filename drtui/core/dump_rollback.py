"""Rollback of a dump restore: the newest pre-restore dump loaded back into the database, and the uploads
folder set aside by that restore renamed back (the replaced one is kept as `<uploads>.failed_<stamp>`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from drtui.core.clock import Clock, stamp
from drtui.core.config import Config, Environment
from drtui.core.dump_checks import DumpRefused, other_sessions
from drtui.core.events import Event
from drtui.core.run_summary import RollbackFacts, RunSummary
from drtui.core.runner import run_operation
from drtui.core.steps import Step, StepContext
from drtui.core.steps.dump import PRE_RESTORE, pre_restore_dumps, put_back

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
                   listener: Callable[[Event], None] | None = None, run_id: str | None = None) -> RunSummary | None:
    """Put the newest dump restore back, when it is newer than any preserved data directory; None when there
    is none (the data-directory rollback then applies)."""
    saved = pending_dump_restore(config, env, preserved)
    if saved is None:
        return None
    sessions = other_sessions(env)
    if sessions:
        raise DumpRefused(f"{len(sessions)} session(s) on {env.name}'s database {env.database}: "
                          + "; ".join(s.describe() for s in sessions), "end them, then roll back again")
    return run_operation("rollback", env, [LoadDump(saved), PutUploadsBack(saved)], config, clock, listener,
                         run_id)


class LoadDump(Step):
    name, title = "load_dump", "Load the database from before the dump restore back"

    def __init__(self, saved: Path) -> None:
        self.saved = saved

    def run(self, ctx: StepContext) -> None:
        ctx.log(self.name, put_back(ctx.env, self.saved, None))
        ctx.facts["rollback"] = RollbackFacts(Path(ctx.env.database), self.saved, None, (), None, True)


class PutUploadsBack(Step):
    """Rename the uploads folder the dump restore set aside back into place; the one in place is kept."""

    name, title = "put_uploads_back", "Put the uploads from before the dump restore back"

    def __init__(self, saved: Path) -> None:
        self.saved = saved

    def run(self, ctx: StepContext) -> None:
        uploads = ctx.env.uploads_dir
        aside = uploads.with_name(f"{uploads.name}.pre_restore_{_stamp_of(self.saved)}") if uploads else None
        if not (uploads and aside and aside.is_dir()):
            ctx.log(self.name, "no uploads folder set aside by that restore: nothing to put back")
            return
        if uploads.exists():
            failed = uploads.with_name(f"{uploads.name}.failed_{stamp(ctx.clock.now())}")
            os.rename(uploads, failed)
            ctx.log(self.name, f"{uploads} → {failed} (kept)")
        os.rename(aside, uploads)
        ctx.log(self.name, f"{aside} → {uploads}")
