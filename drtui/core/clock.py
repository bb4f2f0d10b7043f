"""Time, injected: the core never calls datetime.now() directly, so tests and snapshots can freeze it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class FrozenClock:
    """A clock that only moves when told to."""

    at: datetime = field(default_factory=lambda: datetime(2026, 1, 25, 14, 30, tzinfo=UTC))
    ticks: float = 0.0

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.ticks

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
        self.ticks += seconds


def format_duration(seconds: float | None) -> str:
    """A duration as every face writes it (logs, records, printer, screens): tenths of a second below ten
    seconds, whole seconds below a minute, then `3m 05s`, `1h 02m`, `2d 03h`."""
    if seconds is None:
        return "—"
    seconds = max(seconds, 0.0)
    if round(seconds, 1) < 10:
        return f"{round(seconds, 1):.1f}s"
    total = round(seconds)
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def stamp(moment: datetime) -> str:
    """The runbook's file-name timestamp: YYYYMMDDTHHMMSSZ, in UTC."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def isoformat(moment: datetime) -> str:
    """ISO-8601 in UTC with a Z, seconds precision: what heartbeats and reports hold."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
