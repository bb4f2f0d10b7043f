"""The paused candidate's row counts against production's, printed after a paused run and by `drtui status`."""

from __future__ import annotations

from drtui.core.compare import Comparison, compare_with_production
from drtui.core.config import Config
from drtui.core.errors import PostgresError


def paused_comparison(config: Config, env_name: str) -> Comparison | str:
    """The comparison, or why the candidate could not be counted."""
    try:
        return compare_with_production(config, config.environment(env_name))
    except PostgresError as exc:
        return exc.title


def paused_lines(config: Config, env_name: str, found: Comparison | str | None = None) -> list[str]:
    """The comparison in words (`found` when already made)."""
    found = found if found is not None else paused_comparison(config, env_name)
    if isinstance(found, str):
        return [f"Rows per table in {env_name}: not counted ({found})"]
    return found.lines()
