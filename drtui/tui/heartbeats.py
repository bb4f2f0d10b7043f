"""Heartbeat rows for Home and Status, from `drtui.core.status` (the same states `drtui status` prints)."""

from __future__ import annotations

from drtui.core.clock import Clock
from drtui.core.config import Config
from drtui.core.status import Level, heartbeats, overall
from drtui.tui.format import age, duration, short_time

Row = tuple[str, str, str, str, str]  # state, name, last (age), limit, detail


def heartbeat_rows(config: Config, clock: Clock) -> tuple[list[Row], str]:
    """One row per heartbeat, and the one-line summary `status --check` starts with."""
    states = heartbeats(config, clock)
    rows = []
    for beat in states:
        state = "warning" if beat.state == "ok" and beat.level is Level.WARNING else beat.state
        age = f"{duration(beat.age.total_seconds())} ago" if beat.age is not None else "never"
        rows.append((state, beat.name, age, duration(beat.limit.total_seconds()), beat.detail))
    return rows, overall(states)[1]


def recovery_summary(config: Config, clock: Clock) -> list[str]:
    """The newest base backup and dump, and how far the newest usable backup can take a recovery."""
    from drtui.core.inventory import scan

    inventory = scan(config, clock=clock)
    now = clock.now()
    lines = []
    if inventory.base_backups:
        newest = inventory.base_backups[0]
        lines.append(f"newest base backup  {newest.path.name} ({age(newest.start_time, now)})")
    else:
        lines.append("newest base backup  [red]✘ none[/]")
    if inventory.dumps:
        lines.append(f"newest dump         {inventory.dumps[0].path.name}")
    window = next((w for w in inventory.windows if w.usable), None)
    if window is not None:
        lines.append(f"recoverable window  {short_time(window.earliest)} → {short_time(window.latest)} UTC")
    else:
        lines.append("recoverable window  [red]✘ none[/] (no usable base backup)")
    lines += [f"[yellow]▲[/] {problem.message}" for problem in inventory.problems[:3]]
    return lines
