"""Heartbeat rows for Home, from `drtui.core.status` (the same states `drtui status` prints)."""

from __future__ import annotations

from drtui.core.clock import Clock, format_duration
from drtui.core.config import Config
from drtui.core.status import Level, heartbeats, overall

Row = tuple[str, str, str, str, str]  # state, name, last (age), limit, detail


def heartbeat_rows(config: Config, clock: Clock) -> tuple[list[Row], str]:
    """One row per heartbeat, and the one-line summary `status --check` starts with."""
    states = heartbeats(config, clock)
    rows = []
    for beat in states:
        state = "warning" if beat.state == "ok" and beat.level is Level.WARNING else beat.state
        age = f"{format_duration(beat.age.total_seconds())} ago" if beat.age is not None else "never"
        rows.append((state, beat.name, age, format_duration(beat.limit.total_seconds()), beat.detail))
    return rows, overall(states)[1]

