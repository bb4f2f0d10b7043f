"""Where PostgreSQL runs, behind one interface: `local` (pg_ctl on a data directory) now, `compose` later."""

from __future__ import annotations

from pathlib import Path

from drtui.core.backends.base import Backend, RecoveryStatus
from drtui.core.config import Environment

__all__ = ["Backend", "RecoveryStatus", "backend_for"]


def backend_for(env: Environment, state_dir: Path) -> Backend:
    """The backend that drives this environment's PostgreSQL."""
    if env.backend == "compose":
        from drtui.core.backends.compose import ComposeBackend

        return ComposeBackend(env, state_dir)
    from drtui.core.backends.local import LocalBackend

    return LocalBackend(env, state_dir)
