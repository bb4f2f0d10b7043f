"""Restore steps: each has a name, a `run` that reports only through events, and an `undo` that says (and does)
what undoing it means. The runner runs them in order; on a failure before the restored cluster is up it undoes
the completed steps in reverse, so the old data directory is back in place and running as before.

`StepContext` is what the steps share: the plan, the backend, the clock, the cancel event, `emit`, and the
facts one step leaves for the next (where the restore was extracted, where the old data went, ...).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from drtui.core.backends.base import Backend
from drtui.core.clock import Clock
from drtui.core.config import Config, Environment
from drtui.core.errors import DrError
from drtui.core.events import CheckCompleted, Event, StepLogged, StepProgressed
from drtui.core.planning import DumpPlan, Plan

PROGRESS_INTERVAL = 0.25


class StepError(DrError):
    """A step could not do its work."""


class Cancelled(DrError):
    """The operator cancelled the run."""


@dataclass
class StepContext:
    plan: Plan | DumpPlan | None  # None until a step makes it (the drill's plan step)
    config: Config
    env: Environment
    backend: Backend
    clock: Clock
    cancel: threading.Event
    emit: Callable[[Event], None]
    run_id: str
    stamp: str
    restored_dir: Path | None = None
    wal_folder: Path | None = None
    staged_wal: Path | None = None
    preserved: Path | None = None
    failed_aside: Path | None = None
    server_was_running: bool = False
    app_stopped: bool = False
    log_offset: int = 0
    recovered_to: datetime | None = None
    paused: bool = False
    checks: list[CheckCompleted] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def log(self, step: str, *lines: str, source: str = "engine") -> None:
        if lines:
            self.emit(StepLogged(self.clock.now(), step, list(lines), source))

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("the run was cancelled", "the steps done so far are being undone")

    def progress_reporter(self, step: str, unit: str) -> Callable[..., None]:
        """A progress(done, total, **detail) callback that emits at most every PROGRESS_INTERVAL seconds
        (and always the final value)."""
        last = [float("-inf")]

        def report(done: float, total: float | None, **detail: Any) -> None:
            now = self.clock.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL or (total is not None and done >= total):
                last[0] = now
                self.emit(StepProgressed(self.clock.now(), step, done, total, unit, detail))

        return report


class Step:
    name = "step"
    title = ""
    # After this step succeeds the restored cluster is up: a later failure is not undone automatically.
    commits = False

    def run(self, ctx: StepContext) -> str | None:
        """Do the step's work; return why there was nothing to do, if there was not (the step is then
        skipped, never done)."""
        raise NotImplementedError

    def undo(self, ctx: StepContext) -> str | None:
        """Undo what `run` did (also after a partial run); returns what was done, None if nothing."""
        return None
