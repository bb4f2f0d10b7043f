"""Checks for monitoring: the heartbeats, the recoverable window's lag, the WAL archiver and the last drill, each
with a level, a line that says why and what to do, and perfdata; and the same as a Prometheus textfile.

The monitoring-plugin convention (Nagios, Icinga, Sensu): one summary line first, perfdata after a `|` as
`'label'=value[unit];warn;crit;min`, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Every limit comes from the
config's [objectives] and can be overridden per check (`-w NAME=VALUE`, `-c NAME=VALUE`); warnings default to
80 % of the limit, as the heartbeats always had.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from drtui.core import retention
from drtui.core.clock import Clock
from drtui.core.config import Config, Environment, parse_duration
from drtui.core.errors import DrError, UsageError
from drtui.core.inventory import Inventory, folder_size
from drtui.core.inventory.names import classify_artifact
from drtui.core.objectstore import S3Url
from drtui.core.report import DrillEntry, drill_history
from drtui.core.status import (
    SEVERITY,
    WARNING_FRACTION,
    HeartbeatState,
    Level,
    describe,
    heartbeat,
    heartbeats,
    short_duration,
)
from drtui.core.upload import listing

HEARTBEAT_CHECKS = {"dump": "dump_age", "base backup": "basebackup_age", "WAL sync": "wal_sync_age"}
CHECK_NAMES = (*HEARTBEAT_CHECKS.values(), "window_lag", "archiver", "drill_age")
NO_THRESHOLD = {"archiver": "it is CRITICAL while its last attempt failed, OK once one succeeds"}
WHAT_TO_DO = {
    "dump_age": "run `drtui backup dump && drtui backup verify` (cron: 0 3 * * *)",
    "basebackup_age": "run `drtui backup base` (cron: 0 2 * * *)",
    "wal_sync_age": "run `drtui backup wal-sync` (cron: */5 * * * *)",
    "window_lag": "check the WAL archiver and `drtui backup wal-sync`: new WAL is not reaching the archive",
    "archiver": "read the server log for archive_command's error, fix it; PostgreSQL retries by itself",
    "drill_age": "run `drtui drill` on staging",
}


@dataclass(frozen=True)
class Threshold:
    warning: float
    critical: float | None  # None: this check never turns CRITICAL


@dataclass(frozen=True)
class Check:
    """One row of the status: its level, its words, and the number monitoring graphs."""

    name: str  # one of CHECK_NAMES
    level: Level
    text: str  # what is true now, in words
    value: float | None = None  # an age or lag in seconds, or the archiver's failure count
    unit: str = "s"
    threshold: Threshold | None = None
    todo: str = ""  # what to do, when not OK

    def perfdata(self, prefix: str = "") -> str | None:
        """`'label'=value[unit];warn;crit;min`; the archiver's is its failure count, a counter ('c')."""
        if self.value is None:
            return None
        warn = crit = ""
        if self.threshold:
            warn = f"{self.threshold.warning:g}"
            crit = "" if self.threshold.critical is None else f"{self.threshold.critical:g}"
        return f"'{prefix}{self.name}'={self.value:g}{self.unit};{warn};{crit};0"

    def as_json(self) -> dict:
        return {"name": self.name, "level": self.level.name, "code": int(self.level), "text": self.text,
                "value": self.value, "unit": self.unit, "todo": self.todo or None,
                "warning": self.threshold.warning if self.threshold else None,
                "critical": self.threshold.critical if self.threshold else None}


@dataclass(frozen=True)
class Archiver:
    """pg_stat_archiver of the environment, or why it could not be read."""

    reachable: bool
    failed_count: int = 0
    last_archived_wal: str | None = None
    last_archived_time: datetime | None = None
    last_failed_wal: str | None = None
    last_failed_time: datetime | None = None
    why: str = ""

    @property
    def failing(self) -> bool:
        """The last attempt failed: a failure newer than the last success."""
        return self.last_failed_time is not None and (
            self.last_archived_time is None or self.last_failed_time > self.last_archived_time)


ARCHIVER_QUERY = ("select failed_count, last_archived_wal, last_archived_time, last_failed_wal, last_failed_time "
                  "from pg_stat_archiver")


def read_archiver(env: Environment) -> Archiver:
    from drtui.core.postgres import query

    try:
        row = query(env, ARCHIVER_QUERY, dbname="postgres")[0]
    except DrError as exc:
        return Archiver(False, why=exc.title)
    return Archiver(True, int(row[0]), row[1], row[2], row[3], row[4])


@dataclass(frozen=True)
class Overrides:
    """-w/-c given on the command line: check name -> seconds."""

    warning: Mapping[str, float] = field(default_factory=dict)
    critical: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, warning: Sequence[str], critical: Sequence[str]) -> Overrides:
        return cls(_parse_pairs("-w", warning), _parse_pairs("-c", critical))

    def threshold(self, name: str, limit: float) -> Threshold:
        critical = self.critical.get(name, limit)
        return Threshold(self.warning.get(name, critical * WARNING_FRACTION), critical)


def _parse_pairs(flag: str, pairs: Sequence[str]) -> dict[str, float]:
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in CHECK_NAMES:
            raise UsageError(f"{flag} {pair!r}: expected NAME=VALUE with NAME one of {', '.join(CHECK_NAMES)}",
                             f"for example {flag} wal_sync_age=8m")
        if name in NO_THRESHOLD:
            raise UsageError(f"{flag} {pair!r}: the {name} check takes no threshold", NO_THRESHOLD[name])
        try:
            values[name] = parse_duration(text).total_seconds()
        except ValueError:
            raise UsageError(f"{flag} {pair!r}: {text!r} is not a duration", "write it like 90s, 8m or 26h") from None
    return values


def _level(value: float, threshold: Threshold) -> Level:
    if threshold.critical is not None and value >= threshold.critical:
        return Level.CRITICAL
    return Level.WARNING if value >= threshold.warning else Level.OK


def heartbeat_checks(config: Config, clock: Clock, overrides: Overrides) -> tuple[list[Check],
                                                                                  list[HeartbeatState]]:
    """The three heartbeats, with the limits -w/-c set instead of the config's where given."""
    checks, states = [], []
    now = clock.now()
    for state in heartbeats(config, clock):
        name = HEARTBEAT_CHECKS[state.name]
        threshold = overrides.threshold(name, state.limit.total_seconds())
        state = heartbeat(state.name, state.path, timedelta(seconds=threshold.critical or 0), now,
                          timedelta(seconds=threshold.warning),
                          config.repository.settings if config.repository else None)
        age = round(state.age.total_seconds()) if state.age is not None else None
        checks.append(Check(name, state.level, describe(state), age, threshold=threshold,
                            todo="" if state.level == Level.OK else WHAT_TO_DO[name]))
        states.append(state)
    return checks, states


@dataclass(frozen=True)
class RecoverableWindow:
    """Across every usable backup: the first and last moment a recovery can reach."""

    first: datetime | None
    last: datetime | None

    @classmethod
    def of(cls, inventory: Inventory) -> RecoverableWindow:
        usable = [w for w in inventory.windows if w.usable and w.earliest and w.latest]
        if not usable:
            return cls(None, None)
        return cls(min(w.earliest for w in usable), max(w.latest for w in usable))  # type: ignore[type-var]


def window_check(window: RecoverableWindow | None, now: datetime, rpo: timedelta, overrides: Overrides) -> Check:
    threshold = overrides.threshold("window_lag", rpo.total_seconds())
    if window is None:
        return Check("window_lag", Level.UNKNOWN, "recoverable window unknown: the inventory could not be read",
                     threshold=threshold, todo="run `drtui inventory` to see why")
    if window.last is None:
        return Check("window_lag", Level.CRITICAL, "no recoverable window: no usable base backup with its WAL",
                     threshold=threshold, todo="take a base backup: `drtui backup base`")
    lag = max((now - window.last).total_seconds(), 0.0)
    level = _level(lag, threshold)
    text = (f"recoverable to {window.last:%Y-%m-%d %H:%M:%S}Z, {short_duration(timedelta(seconds=lag))} behind now "
            f"(RPO objective {short_duration(rpo)})")
    return Check("window_lag", level, text, round(lag, 1), threshold=threshold,
                 todo="" if level == Level.OK else WHAT_TO_DO["window_lag"])


def archiver_check(archiver: Archiver, overrides: Overrides) -> Check:
    if not archiver.reachable:
        return Check("archiver", Level.UNKNOWN, f"WAL archiver not reachable: {archiver.why}",
                     todo="is production's PostgreSQL running? `drtui verify` checks it")
    if archiver.failing:
        text = (f"WAL archiver failing since {archiver.last_failed_time:%Y-%m-%d %H:%M:%S}Z "
                f"({archiver.last_failed_wal}; {archiver.failed_count} failures in all)")
    else:
        last = (f"{archiver.last_archived_wal} at {archiver.last_archived_time:%Y-%m-%d %H:%M:%S}Z"
                if archiver.last_archived_time else "nothing archived yet")
        text = f"WAL archiver ok: last archived {last}"
    level = Level.CRITICAL if archiver.failing else Level.OK
    return Check("archiver", level, text, archiver.failed_count, unit="c", todo=WHAT_TO_DO["archiver"]
                 if archiver.failing else "")


def drill_check(config: Config, now: datetime, last: DrillEntry | None, overrides: Overrides) -> Check:
    """Overdue is a WARNING (past drill_max_age, or -w drill_age); CRITICAL only when -c drill_age asks."""
    limit = config.objectives.drill_max_age
    threshold = Threshold(overrides.warning.get("drill_age", limit.total_seconds()),
                          overrides.critical.get("drill_age"))
    if last is None or last.date is None:
        return Check("drill_age", Level.WARNING, f"no passing drill on record in {config.report_dir}",
                     threshold=threshold, todo=WHAT_TO_DO["drill_age"])
    age = (now - last.date).total_seconds()
    level = _level(age, threshold)
    text = f"last passing drill {last.date:%Y-%m-%d} ({short_duration(timedelta(seconds=age))} ago)"
    if level != Level.OK:
        text += f", overdue (one every {short_duration(limit)})"
    return Check("drill_age", level, text, round(age), threshold=threshold,
                 todo="" if level == Level.OK else WHAT_TO_DO["drill_age"])


SIZE_KINDS = ("base_backups", "dumps", "wal", "other")
_SIZE_KIND = {"basebackup": "base_backups", "dump": "dumps", "uploads": "dumps", "wal_tarball": "wal"}


def repository_sizes(config: Config) -> dict[Path | S3Url, tuple[str, int]]:
    """Every entry of the repository (backup_dir and wal_archive, or the bucket's backups/ and wal/), with its
    kind (one of SIZE_KINDS) and bytes, keyed by the location retention's plan gives it."""
    def kind_of(name: str) -> str:
        return _SIZE_KIND.get(classify_artifact(name.split("/")[0])[0], "other")

    found: dict[Path | S3Url, tuple[str, int]] = {}
    if config.repository:
        repository = config.repository
        for name, item in listing(repository.backups, repository.settings, "list the backups").items():
            found[repository.backups.child(name)] = (kind_of(name), int(item["Size"]))
        for name, item in listing(repository.wal, repository.settings, "list the WAL").items():
            found[repository.wal.child(name)] = ("wal", int(item["Size"]))
        return found
    for folder in (config.backup_dir, config.wal_archive):
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                size = folder_size(Path(entry.path)) if entry.is_dir(follow_symlinks=False) else \
                    entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:  # removed while listed (a backup's temporary file renamed, say)
                continue
            found[folder / entry.name] = ("wal" if folder == config.wal_archive else kind_of(entry.name), size)
    return found


@dataclass(frozen=True)
class RepositoryUsage:
    """The repository's size by kind, and what `drtui backup expire` would remove under [retention]: the
    retention module's own plan (the one `backup expire --dry-run` prints), with the bytes it frees."""

    bytes_by_kind: dict[str, int]
    expiry: retention.Expiry | None  # None: no [retention] configured, or the plan could not be made
    removed_bytes: int = 0  # of the backups and WAL the plan removes (preserved data directories not counted)
    error: str = ""  # why the repository or the plan could not be read

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_kind.values())

    def as_json(self) -> dict:
        plan = self.expiry
        return {"total_bytes": self.total_bytes, **{f"{kind}_bytes": self.bytes_by_kind.get(kind, 0)
                                                     for kind in SIZE_KINDS},
                "retention": None if plan is None else {
                    "keep": plan.keep, "keep_days": plan.keep_days, "would_remove_bytes": self.removed_bytes,
                    "would_remove": [item.as_dict() for item in plan.removed],
                    "wal_would_remove": len(plan.wal_removed), "wal_floor": plan.wal_floor,
                    "wal_kept_why": plan.wal_kept_why},
                "error": self.error or None}


def repository_usage(config: Config, now: datetime) -> RepositoryUsage:
    """The repository's size and the retention preview; what cannot be read is said in `error`, never raised."""
    try:
        sizes = repository_sizes(config)
    except DrError as exc:
        return RepositoryUsage({}, None, error=exc.title)
    except OSError as exc:
        return RepositoryUsage({}, None, error=f"{exc.filename}: cannot read it ({exc.strerror})")
    by_kind = {kind: sum(size for k, size in sizes.values() if k == kind) for kind in SIZE_KINDS}
    if config.retention is None:
        return RepositoryUsage(by_kind, None)
    try:
        plan = retention.plan(config, now, config.retention.keep, config.retention.keep_days)
    except DrError as exc:
        return RepositoryUsage(by_kind, None, error=f"the retention preview: {exc.title}")
    except OSError as exc:
        return RepositoryUsage(by_kind, None, error=f"the retention preview: {exc.filename}: cannot read it "
                                                    f"({exc.strerror})")
    going = [loc for item in plan.removed for loc in item.locations] + plan.wal_removed
    return RepositoryUsage(by_kind, plan, sum(sizes[loc][1] for loc in going if loc in sizes))


def usage_lines(usage: RepositoryUsage, size: Callable[[int], str]) -> list[str]:
    """The repository's size and what `drtui backup expire` would remove under [retention], in words (each face
    gives its way of writing a size)."""
    sizes = ", ".join(f"{kind.replace('_', ' ')} {size(usage.bytes_by_kind[kind])}" for kind in SIZE_KINDS
                      if usage.bytes_by_kind.get(kind))
    lines = [f"Repository: {size(usage.total_bytes)}" + (f" ({sizes})" if sizes else "")]
    if usage.error:
        lines.append(f"  cannot tell: {usage.error}")
    plan = usage.expiry
    if plan is None:
        if not usage.error:
            lines.append("  retention: none configured ([retention] keep / keep_days in drtui.toml: then this "
                         "shows what `drtui backup expire` would remove)")
        return lines
    rules = " and ".join(([f"keep {plan.keep}"] if plan.keep else []) +
                         ([f"keep_days {plan.keep_days:g}"] if plan.keep_days else []))
    if not plan.removed and not plan.wal_removed:
        return [*lines, f"  retention ({rules}): `drtui backup expire` would remove nothing now"]
    lines.append(f"  retention ({rules}): `drtui backup expire` would remove {len(plan.removed)} backup(s) and "
                 f"{len(plan.wal_removed)} WAL file(s), {size(usage.removed_bytes)}:")
    lines += [f"    {', '.join(location.name for location in item.locations)} ({item.why})" for item in plan.removed]
    lines.append(f"    {plan.wal_kept_why}")
    return lines


@dataclass(frozen=True)
class EnvironmentStatus:
    """Everything the status knows of one config's environment: the checks, and the facts behind them."""

    name: str  # the environment, qualified by its config in a fleet
    checks: list[Check]
    heartbeats: list[HeartbeatState]
    window: RecoverableWindow | None
    archiver: Archiver | None  # None when not checked
    last_drill: DrillEntry | None
    repository: RepositoryUsage | None = None  # None: not asked for (--check)

    @property
    def level(self) -> Level:
        return worst(self.checks)


HOST_CHECKS = frozenset({"archiver", "drill_age"})  # a host's own database and report_dir: not in the repository


def collect(config: Config, env: Environment | None, inventory: Inventory | None, clock: Clock,
            overrides: Overrides, name: str | None = None, only: frozenset[str] = frozenset(CHECK_NAMES),
            archiver: Callable[[Environment], Archiver] = read_archiver,
            usage: bool = False) -> EnvironmentStatus:
    """The checks of one config's environment named in `only`, in the order they are shown. `inventory` is None
    when it could not be read (the window check then says so). `env` is None for a read-only config: only what
    the repository holds is checked (the heartbeats and the window). `usage` adds the repository's size and
    the retention preview."""
    if env is None:
        only = only - HOST_CHECKS
    now = clock.now()
    checks, states = heartbeat_checks(config, clock, overrides)
    window = RecoverableWindow.of(inventory) if inventory is not None else None
    if "window_lag" in only:
        checks.append(window_check(window, now, config.objectives.pitr_rpo, overrides))
    archiver_state = archiver(env) if env is not None and "archiver" in only else None
    if archiver_state is not None:
        checks.append(archiver_check(archiver_state, overrides))
    last_drill = drill_history(config.report_dir, now).last_pass if env is not None else None
    if "drill_age" in only:
        checks.append(drill_check(config, now, last_drill, overrides))
    checks = [c for c in checks if c.name in only]
    return EnvironmentStatus(name or site_name(config), checks, states, window, archiver_state, last_drill,
                             repository_usage(config, now) if usage else None)


def site_name(config: Config, fleet: bool = False) -> str:
    """How the status names a config: its production environment (`production@<config>` in a fleet), or the
    repository a read-only config watches."""
    if config.read_only:
        assert config.repository is not None
        return str(config.repository.url)
    name = config.environment().name
    return f"{name}@{config.source}" if fleet else name


def worst(checks: Sequence[Check]) -> Level:
    return max((c.level for c in checks), key=SEVERITY.__getitem__, default=Level.UNKNOWN)


def summary(statuses: Sequence[EnvironmentStatus]) -> tuple[Level, str]:
    """The plugin's first line: the worst state, every check worst first (named by environment in a fleet),
    and the perfdata."""
    fleet = len(statuses) > 1
    rows = [(status.name, check) for status in statuses for check in status.checks]
    level = worst([c for _, c in rows])
    ordered = sorted(rows, key=lambda row: -SEVERITY[row[1].level])
    words = "; ".join(f"{name}: {c.text}" if fleet else c.text for name, c in ordered)
    perf = " ".join(p for name, c in rows if (p := c.perfdata(f"{name}:" if fleet else "")))
    return level, f"DRTUI {level.name} - {words}" + (f" | {perf}" if perf else "")


def write_prometheus(path: Path, statuses: Sequence[EnvironmentStatus]) -> None:
    """The node-exporter textfile format, written atomically (a temporary file renamed into place)."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()

    def gauge(name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(f"drtui_{name}", doc, ["env", *labels], registry=registry)

    level = gauge("status_level", "Worst check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
    check_level = gauge("check_level", "Each check's level: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN", "check")
    age = gauge("heartbeat_age_seconds", "Age of the heartbeat file's timestamp", "heartbeat")
    limit = gauge("heartbeat_limit_seconds", "The heartbeat's limit from [objectives]", "heartbeat")
    first = gauge("recovery_window_first_timestamp_seconds", "The earliest moment a recovery can reach")
    last = gauge("recovery_window_last_timestamp_seconds", "The latest moment a recovery can reach")
    lag = gauge("recovery_window_lag_seconds", "Now minus the latest recoverable moment (the live RPO exposure)")
    failing = gauge("wal_archiver_failing", "1 when the archiver's last attempt failed")
    failures = gauge("wal_archiver_failed_count", "pg_stat_archiver.failed_count")
    drill_time = gauge("last_drill_timestamp_seconds", "When the last passing drill ran")
    stored = gauge("repository_bytes", "The repository's size by kind (base_backups, dumps, wal, other)", "kind")
    expiring = gauge("retention_would_remove_bytes", "What `drtui backup expire` would remove under [retention]")
    for status in statuses:
        env = status.name
        level.labels(env).set(int(status.level))
        for check in status.checks:
            check_level.labels(env, check.name).set(int(check.level))
            if check.name == "window_lag" and check.value is not None:
                lag.labels(env).set(check.value)
        for state in status.heartbeats:
            limit.labels(env, HEARTBEAT_CHECKS[state.name]).set(state.limit.total_seconds())
            if state.age is not None:
                age.labels(env, HEARTBEAT_CHECKS[state.name]).set(state.age.total_seconds())
        if status.window and status.window.first and status.window.last:
            first.labels(env).set(status.window.first.timestamp())
            last.labels(env).set(status.window.last.timestamp())
        if status.archiver and status.archiver.reachable:
            failing.labels(env).set(int(status.archiver.failing))
            failures.labels(env).set(status.archiver.failed_count)
        if status.last_drill and status.last_drill.date:
            drill_time.labels(env).set(status.last_drill.date.timestamp())
        if status.repository and not status.repository.error:
            for kind in SIZE_KINDS:
                stored.labels(env, kind).set(status.repository.bytes_by_kind.get(kind, 0))
            if status.repository.expiry is not None:
                expiring.labels(env).set(status.repository.removed_bytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
