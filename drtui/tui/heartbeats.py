"""Heartbeat rows for Home and Status, read through the inventory helper's `drtui.core.status`."""

from __future__ import annotations

from drtui.core.clock import Clock
from drtui.core.config import Config
from drtui.tui.format import duration

Row = tuple[str, str, str, str]  # name, state, last (age), limit


def heartbeat_rows(config: Config, clock: Clock) -> list[Row]:
    """(name, state, age, limit) per heartbeat."""
    from drtui.core.status import heartbeats

    rows = []
    for beat in heartbeats(config, clock):
        age = getattr(beat, "age_seconds", None)
        limit = getattr(beat, "limit_seconds", None)
        if age is None and getattr(beat, "age", None) is not None:
            age = beat.age.total_seconds()
        if limit is None and getattr(beat, "limit", None) is not None:
            limit = beat.limit.total_seconds()
        rows.append((str(getattr(beat, "name", "?")), str(getattr(beat, "state", "unknown")),
                     f"{duration(age)} ago" if age is not None else "never", duration(limit)))
    return rows
