"""Recipes that put a fresh world into a useful state (the demo's and the screenshot gallery's)."""

from __future__ import annotations

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.sandbox.world import Sandbox


def make_recoverable(world: Sandbox) -> None:
    """Give a fresh world something to recover: a dump, a base backup, rows after it, and a WAL sync."""
    clock = SystemClock()
    config = world.config()
    backup.dump(config, world.env("production"), clock)
    backup.base(config, world.env("production"), clock)
    for _ in range(3):
        world.insert("bookings")
    world.switch_wal()
    backup.wal_sync(config, clock)
