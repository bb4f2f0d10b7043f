"""The read-only heartbeat view behind `drtui status` and the TUI's status screen.

Each heartbeat file holds one timestamp written by a successful backup job. Its state is ok, stale (older than
its limit from [objectives]), missing or unreadable; its level follows the monitoring-plugin convention
(0 OK, 1 WARNING past 80 % of the limit, 2 CRITICAL stale or missing, 3 UNKNOWN unreadable).

It also finds a run that was killed (kill -9, a crash) before its end, and what it left behind, for `drtui
status`, the next restore (which refuses until it is undone) and `drtui rollback` (which undoes it).
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drtui.core.backup import LAST_BASEBACKUP, LAST_SUCCESS
from drtui.core.clock import Clock
from drtui.core.config import Config, Environment
from drtui.core.events import Event, RunFinished, RunStarted, StepFinished, StepLogged, StepStarted, from_json
from drtui.core.files import open_to_others
from drtui.core.journal import list_runs, read_events
from drtui.core.lock import EnvLock
from drtui.core.objectstore import ObjectStoreError, S3Settings, S3Url

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
    path: Path | S3Url  # a file, or its copy in the repository's heartbeats/
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


def heartbeat(name: str, path: Path | S3Url, limit: timedelta, now: datetime,
              warning: timedelta | None = None, settings: S3Settings | None = None) -> HeartbeatState:
    """The state of one heartbeat file (or object of a repository) at `now`: WARNING past `warning` (80 % of
    the limit by default)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace") if isinstance(path, Path) else \
            _object_text(path, settings or S3Settings())
    except ObjectStoreError as exc:
        if exc.not_found:
            return HeartbeatState(name, path, limit, "missing", Level.CRITICAL, detail="no such object")
        return HeartbeatState(name, path, limit, "unreadable", Level.UNKNOWN, detail=exc.title)
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
    places: list[Path | S3Url] = [config.backup_dir / LAST_SUCCESS, config.backup_dir / LAST_BASEBACKUP,
                                  config.wal_sync_heartbeat]
    settings = None
    if config.repository is not None:  # the backups write a copy of each into the repository's heartbeats/
        places = [config.repository.heartbeats.child(path.name) for path in places]
        settings = config.repository.settings
    return [
        heartbeat("dump", places[0], limits.dump_max_age, now, settings=settings),
        heartbeat("base backup", places[1], limits.basebackup_max_age, now, settings=settings),
        heartbeat("WAL sync", places[2], limits.wal_sync_max_age, now, settings=settings),
    ]


def _object_text(url: S3Url, settings: S3Settings) -> str:
    from drtui.core.inventory.remote import head, read_range

    found = head(url, settings)
    return read_range(found, settings, 0, found.size - 1, what="read the heartbeat").decode(errors="replace") \
        if found.size else ""


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


# -- a run that was killed (kill -9, a crash): its journal has no end and its process is gone -------------------

_STAMPED = re.compile(r"\.(?:pre_pitr|restoring|pitr_wal)_(\d{8}T\d{6}Z)")
LEFTOVER_KINDS = ("restoring", "pitr_wal")


@dataclass(frozen=True)
class InterruptedRun:
    """The newest run of an environment, killed before it ended, and what it left behind."""

    run_id: str
    journey: str
    environment: str
    journal: Path
    pid: int
    started: datetime
    in_step: str | None  # the step it was in when it died (None: between steps)
    finished_steps: tuple[str, ...]
    data_dir: Path
    preserved: Path | None  # the data directory as it was before the run, if the run had moved it aside
    leftovers: tuple[Path, ...]  # its partial extraction, its staged WAL
    server_running: bool

    @property
    def swapped_in(self) -> bool:
        """Whether the data directory in place is the run's restored copy, not the data from before it."""
        return self.preserved is not None and self.data_dir.exists()

    @property
    def needs_rollback(self) -> bool:
        """Whether something it did is still to be undone (else there is only its journal)."""
        stopped = "stop_postgres" in self.finished_steps and not self.server_running
        app = "stop_app" in self.finished_steps and "start_app" not in self.finished_steps
        return bool(self.preserved or self.leftovers or stopped or app or not self.data_dir.exists())

    def describe(self) -> list[str]:
        """What happened and what is where, in words."""
        where = f"during {self.in_step!r}" if self.in_step else "between two steps"
        lines = [f"run {self.run_id} ({self.journey} of {self.environment}, pid {self.pid}, started "
                 f"{self.started.isoformat()}) was interrupted {where}: its process is gone and its journal "
                 f"{self.journal} has no end"]
        if self.swapped_in:
            lines.append(f"{self.data_dir} holds that run's unfinished restored copy"
                         + (" (its server is running)" if self.server_running else ""))
        elif self.preserved is not None:
            lines.append(f"{self.data_dir} is missing: the run had moved it aside")
        if self.preserved is not None:
            lines.append(f"the data from before that run is {self.preserved}")
        lines += [f"{path} is its unfinished {'extraction' if '.restoring_' in path.name else 'WAL copy'}"
                  for path in self.leftovers]
        if not self.server_running and self.data_dir.exists() and not self.swapped_in:
            lines.append(f"PostgreSQL on {self.data_dir} is not running")
        return lines

    def as_json(self) -> dict:
        return {"run_id": self.run_id, "journey": self.journey, "environment": self.environment,
                "journal": str(self.journal), "pid": self.pid, "started": self.started.isoformat(),
                "in_step": self.in_step, "finished_steps": list(self.finished_steps),
                "preserved": str(self.preserved) if self.preserved else None,
                "leftovers": [str(p) for p in self.leftovers], "server_running": self.server_running,
                "needs_rollback": self.needs_rollback, "what_happened": self.describe(),
                "what_to_do": self.what_to_do()}

    def what_to_do(self) -> str:
        if not self.needs_rollback:
            return "nothing was left behind; the journal is kept for the record"
        return (f"undo it with `drtui rollback --env {self.environment}`: it puts "
                + (f"{self.preserved} back" if self.preserved else "nothing back (the data was never moved)")
                + (", removes " + ", ".join(str(p) for p in self.leftovers) if self.leftovers else "")
                + " and starts PostgreSQL; then restore again if you still need to")


def interrupted_run(config: Config, env: Environment) -> InterruptedRun | None:
    """The environment's newest run when it was killed before its end, else None. A run of this process (a
    drill's restore) and a run whose process still holds the environment's lock are not interrupted."""
    from drtui.core.backends import backend_for

    newest = newest_run(config.state_dir, env.name)
    if newest is None:
        return None
    path, events = newest
    started = events[0]
    assert isinstance(started, RunStarted)
    holder = EnvLock(config.state_dir, env.name).holder()
    if any(isinstance(e, RunFinished) for e in events) or started.pid == os.getpid() or (
            holder is not None and holder.pid == started.pid):
        return None
    backend = backend_for(env, config.state_dir)
    stamp = started.plan.get("stamp") or _stamp_in(events)
    preserved = backend.sibling("pre_pitr", stamp) if stamp else None
    leftovers = tuple(p for kind in LEFTOVER_KINDS for p in backend.data_dir.parent.glob(
        f"{backend.data_dir.name}.{kind}_*"))
    finished = tuple(e.step for e in events if isinstance(e, StepFinished))
    begun = [e.step for e in events if isinstance(e, StepStarted)]
    in_step = begun[-1] if begun and begun[-1] not in finished else None
    return InterruptedRun(started.run_id, started.journey, env.name, path, started.pid, started.at, in_step,
                          finished, backend.data_dir, preserved if preserved and preserved.exists() else None,
                          leftovers, backend.server_alive())


def interrupted_runs(config: Config) -> list[InterruptedRun]:
    """The interrupted run of every environment that has one."""
    return [found for env in config.environments.values() if (found := interrupted_run(config, env))]


def newest_run(state_dir: Path, env_name: str) -> tuple[Path, list[Event]] | None:
    """The newest journal of an environment that holds a run (a file without a RunStarted is no run)."""
    for path in list_runs(state_dir):
        try:
            with path.open(encoding="utf-8") as handle:
                first = handle.readline()
            started = from_json(first) if first.endswith("\n") else None
        except (OSError, ValueError, KeyError):
            continue
        if isinstance(started, RunStarted) and started.environment == env_name:
            return path, read_events(path)
    return None


def _stamp_in(events: list[Event]) -> str | None:
    """The run's sibling stamp as its log lines name it (a drill's journal has no restore plan to carry it)."""
    for event in events:
        if isinstance(event, StepLogged):
            for line in event.lines:
                found = _STAMPED.search(line)
                if found:
                    return found.group(1)
    return None
