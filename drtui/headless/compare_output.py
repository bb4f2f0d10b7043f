"""The paused candidate's row counts against production's, printed after a paused run and by `drtui status`."""

from __future__ import annotations

from drtui.core.compare import compare_with_production
from drtui.core.config import Config
from drtui.core.errors import PostgresError


def paused_lines(config: Config, env_name: str) -> list[str]:
    """The comparison in words, or why the candidate could not be counted."""
    try:
        return compare_with_production(config, config.environment(env_name)).lines()
    except PostgresError as exc:
        return [f"Rows per table in {env_name}: not counted ({exc.title})"]
