"""The read-only heartbeat view behind `drtui status` and the TUI's status screen.

Each heartbeat file holds one timestamp written by a successful backup job. Its state is ok, stale (older than
its limit from [objectives]), missing or unreadable; its level follows the monitoring-plugin convention
(0 OK, 1 WARNING past 80 % of the limit, 2 CRITICAL stale or missing, 3 UNKNOWN unreadable).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drtui.core.backup import LAST_BASEBACKUP, LAST_SUCCESS
from drtui.core.clock import Clock
from drtui.core.config import Config
from drtui.core.files import open_to_others

WARNING_FRACTION = 0.8
FUTURE_TOLERANCE = timedelta(minutes=5)


class Level(enum.IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class HeartbeatState:
    name: str  # "dump", "base backup", "WAL sync"
    path: Path
    limit: timedelta
    state: str  # "ok", "stale", "missing", "unreadable"
    level: Level
    last: datetime | None = None
    age: timedelta | None = None
    detail: str = ""  # why it is unreadable or missing, in plain words

    def as_json(self) -> dict:
        return {"name": self.name, "file": str(self.path), "state": self.state, "level": self.level.name,
                "last": self.last.isoformat() if self.last else None,
                "age_seconds": round(self.age.total_seconds()) if self.age is not None else None,
                "limit_seconds": round(self.limit.total_seconds()), "detail": self.detail or None}


class HeartbeatError(ValueError):
    pass


def parse_heartbeat(text: str) -> datetime:
    """A heartbeat's content: an ISO-8601 time (UTC when no offset is written) or POSIX seconds."""
    lines = text.strip().splitlines()
    if not lines or not lines[0].strip():
        raise HeartbeatError("the file is empty")
    value = lines[0].strip()
    if value.replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(value), UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise HeartbeatError(f"not a timestamp: {shown!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def heartbeat(name: str, path: Path, limit: timedelta, now: datetime,
              warning: timedelta | None = None) -> HeartbeatState:
    """The state of one heartbeat file at `now`: WARNING past `warning` (80 % of the limit by default)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return HeartbeatState(name, path, limit, "missing", Level.CRITICAL, detail="no such file")
    except IsADirectoryError:
        return HeartbeatState(name, path, limit, "unreadable", Level.UNKNOWN, detail="a folder, not a file")
    except OSError as exc:
        return HeartbeatState(name, path, limit, "unreadable", Level.UNKNOWN,
                              detail=f"cannot read it ({exc.strerror})")
    try:
        last = parse_heartbeat(text)
    except HeartbeatError as exc:
        return HeartbeatState(name, path, limit, "unreadable", Level.UNKNOWN, detail=str(exc))
    age = now - last
    if age < -FUTURE_TOLERANCE:
        return HeartbeatState(name, path, limit, "unreadable", Level.UNKNOWN, last, age,
                              "the time is in the future (clock skew?)")
    age = max(age, timedelta(0))
    if age > limit:
        return HeartbeatState(name, path, limit, "stale", Level.CRITICAL, last, age)
    level = Level.WARNING if age > (limit * WARNING_FRACTION if warning is None else warning) else Level.OK
    return HeartbeatState(name, path, limit, "ok", level, last, age)


def heartbeats(config: Config, clock: Clock) -> list[HeartbeatState]:
    """The runbook's three heartbeats: the dump, the base backup and the WAL sync."""
    now = clock.now()
    limits = config.objectives
    return [
        heartbeat("dump", config.backup_dir / LAST_SUCCESS, limits.dump_max_age, now),
        heartbeat("base backup", config.backup_dir / LAST_BASEBACKUP, limits.basebackup_max_age, now),
        heartbeat("WAL sync", config.wal_sync_heartbeat, limits.wal_sync_max_age, now),
    ]


def open_folders(config: Config) -> list[str]:
    """Sentences for the folders of backups and run journals that every local user may read."""
    found = []
    for key, folder in (("backup_dir", config.backup_dir), ("state_dir", config.state_dir)):
        mode = open_to_others(folder)
        if mode:
            found.append(f"{folder}: {key} is open to every local user (mode {mode}), and it holds production's "
                         f"data: `chmod o-rwx {folder}` (drtui creates its folders 0750 and its files 0640)")
    return found


def short_duration(delta: timedelta) -> str:
    """A monitoring line's duration: '45s', '9m', '1h30m', '27h', '3d4h' (whole units, rounded down; hours
    up to two days, as the limits are written)."""
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 48:
        days, hours = divmod(hours, 24)
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes and hours < 10 else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _age_against(age: timedelta, limit: timedelta) -> str:
    """An age shown beside its limit, precise enough that the two never read the same ('10m30s', not '10m')."""
    text = short_duration(age)
    if text != short_duration(limit):
        return text
    minutes, seconds = divmod(int(age.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m" if hours and minutes else f"{hours * 60 + minutes}m{seconds}s"


def describe(state: HeartbeatState) -> str:
    """A heartbeat in a few words, as the summary line and the status rows say it."""
    if state.state == "missing":
        return f"{state.name} missing ({state.path.name})"
    if state.state == "unreadable":
        return f"{state.name} unreadable ({state.detail})"
    assert state.age is not None
    if state.state == "stale":
        return f"{state.name} stale ({_age_against(state.age, state.limit)}, limit {short_duration(state.limit)})"
    if state.level == Level.WARNING:
        return f"{state.name} aging ({_age_against(state.age, state.limit)}, limit {short_duration(state.limit)})"
    return f"{state.name} ok ({short_duration(state.age)})"


# A known failure outranks not knowing; not knowing outranks a warning.
SEVERITY = {Level.OK: 0, Level.WARNING: 1, Level.UNKNOWN: 2, Level.CRITICAL: 3}


def overall(states: list[HeartbeatState]) -> tuple[Level, str]:
    """The exit code for --check and its one-line summary, worst heartbeat first."""
    level = max((s.level for s in states), key=SEVERITY.__getitem__, default=Level.UNKNOWN)
    ordered = sorted(states, key=lambda s: -SEVERITY[s.level])
    return level, f"DRTUI {level.name} - " + "; ".join(describe(s) for s in ordered)


@dataclass(frozen=True)
class InRecovery:
    """An environment whose data directory is in the middle of a recovery, and what to do about it."""

    environment: str
    state: str  # a RecoveryState kind: "paused", "replaying", "starting", "stopped in recovery", "crashed"
    detail: str
    next: str

    def as_json(self) -> dict:
        return {"environment": self.environment, "state": self.state, "detail": self.detail, "next": self.next}


def environments_in_recovery(config: Config) -> list[InRecovery]:
    """Environments paused, replaying, or down in the middle of a recovery. Only a data directory of this host
    that holds a signal file is asked: a server in normal operation is never connected to."""
    from drtui.core.backends import backend_for
    from drtui.core.promote import SIGNAL_FILES, next_step, recovery_state

    found = []
    for env in config.environments.values():
        try:
            recovering = env.data_dir.is_absolute() and any((env.data_dir / n).exists() for n in SIGNAL_FILES)
        except OSError:
            continue
        if not recovering:
            continue
        backend = backend_for(env, config.state_dir)
        state = recovery_state(backend)
        if state.in_recovery:
            found.append(InRecovery(env.name, state.kind, state.describe(),
                                    next_step(state, env, backend, "promote or advance")))
    return found
