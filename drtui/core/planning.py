"""Recovery plans: what a restore will do, checked against the inventory before anything is touched.

A `Target` says where recovery stops; `make_plan` picks the base backup and WAL source, and refuses (PlanError,
exit 2) a target outside the backup's recoverable window, a gap in the WAL before the target, a PostgreSQL
major version that differs from `pg_bin`'s, or too little free disk. A `Plan` is plain data: it is printed by
`--dry-run`, approved by the gates, written to a plan file for a detached run and read back by the runner.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from drtui.core.backends import backend_for
from drtui.core.clock import Clock, isoformat
from drtui.core.config import PRODUCTION, Config, Environment
from drtui.core.errors import DrError, PlanError, UsageError
from drtui.core.incident import known_change
from drtui.core.incremental import ChainError, chain_of
from drtui.core.inventory.basebackup import backup_from_json
from drtui.core.models import BaseBackup, Gap, WalCoverage, Window, format_lsn, location, parse_lsn
from drtui.core.objectstore import S3Url, refusing
from drtui.core.prediction import measured_rates
from drtui.core.programs import pg_bin_for
from drtui.core.tablespaces import Place, place_tablespaces

PITR_STEPS = ("preflight", "extract", "stage_wal", "write_recovery", "stop_app", "stop_postgres", "preserve",
              "swap_in", "start_postgres", "follow_recovery", "start_app", "verify")


class TargetKind(enum.StrEnum):
    TIME = "time"
    IMMEDIATE = "immediate"
    LATEST = "latest"
    LSN = "lsn"
    XID = "xid"
    NAME = "name"


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    time: datetime | None = None
    lsn: int | None = None
    xid: int | None = None
    name: str | None = None
    inclusive: bool = True
    timeline: str = "latest"
    about: str = ""  # what the transaction of an exclusive xid target did, when its events are known
    # What the operator typed ("3 minutes ago", "14:30"), kept so a face can show it again; `time` is the one
    # instant it was resolved to when parsed, and nothing evaluates the text again.
    typed: str | None = field(default=None, compare=False)

    def settings(self) -> dict[str, str]:
        """The recovery_target_* settings for this target (values unquoted)."""
        values: dict[str, str] = {"recovery_target_timeline": self.timeline}
        if self.kind is TargetKind.TIME:
            assert self.time
            values["recovery_target_time"] = self.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        elif self.kind is TargetKind.IMMEDIATE:
            values["recovery_target"] = "immediate"
        elif self.kind is TargetKind.LSN:
            assert self.lsn is not None
            values["recovery_target_lsn"] = format_lsn(self.lsn)
        elif self.kind is TargetKind.XID:
            values["recovery_target_xid"] = str(self.xid)
        elif self.kind is TargetKind.NAME:
            assert self.name
            values["recovery_target_name"] = self.name
        if self.kind in (TargetKind.TIME, TargetKind.LSN, TargetKind.XID):
            values["recovery_target_inclusive"] = "on" if self.inclusive else "off"
        return values

    def describe(self) -> str:
        edge = "" if self.inclusive else " (exclusive)"
        timeline = "" if self.timeline == "latest" else f" on timeline {self.timeline}"
        match self.kind:
            case TargetKind.TIME:
                assert self.time
                what = f"time {isoformat(self.time)}{edge}"
            case TargetKind.IMMEDIATE:
                what = "the end of the base backup (immediate)"
            case TargetKind.LATEST:
                what = "the end of the archived WAL (latest)"
            case TargetKind.LSN:
                assert self.lsn is not None
                what = f"LSN {format_lsn(self.lsn)}{edge}"
            case TargetKind.XID if self.about and not self.inclusive:
                what = f"just before transaction {self.xid} ({self.about})"
            case TargetKind.XID:
                what = f"transaction {self.xid}{edge}"
            case TargetKind.NAME:
                what = f"restore point {self.name!r}"
        return what + timeline

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "time": self.time.isoformat() if self.time else None, "lsn": self.lsn,
                "xid": self.xid, "name": self.name, "inclusive": self.inclusive, "timeline": self.timeline,
                **({"about": self.about} if self.about else {})}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Target:
        return cls(TargetKind(data["kind"]), datetime.fromisoformat(data["time"]) if data["time"] else None,
                   data["lsn"], data["xid"], data["name"], data["inclusive"], data["timeline"], data.get("about", ""))

    @classmethod
    def parse(cls, kind: str, text: str | None, clock: Clock, *, inclusive: bool = True,
              timeline: str = "latest") -> Target:
        """A target from what an operator gave, whatever the face: a kind (time, lsn, xid, name, immediate,
        latest), the text of its value (none for immediate and latest) and the timeline. The errors name no
        face's field; each face adds its own wording from `TargetError.part`."""
        tl = timeline.strip().lower()
        if tl not in ("latest", "current") and not tl.isdigit():
            raise TargetError(f"target timeline {timeline!r} is not a timeline", "use latest, current or a number",
                              part="timeline")
        try:
            chosen = TargetKind(kind.strip().lower())
        except ValueError:
            raise TargetError(f"recovery target {kind!r} is not known",
                              "a target is a time, an LSN, a transaction id, a restore point name, immediate "
                              "or latest", part="kind") from None
        value = (text or "").strip()
        if chosen in (TargetKind.IMMEDIATE, TargetKind.LATEST):
            return cls(chosen, timeline=tl)
        if not value:
            raise TargetError(f"the target {_VALUE_NAMES[chosen]} is empty", _VALUE_FORMS[chosen], part="value")
        match chosen:
            case TargetKind.TIME:
                try:
                    moment = parse_target_time(value, clock)
                except UsageError as exc:
                    raise TargetError(exc.title, exc.hint, part="value") from None
                return cls(chosen, time=moment, inclusive=inclusive, timeline=tl, typed=value)
            case TargetKind.LSN:
                try:
                    lsn = parse_lsn(value)
                except ValueError:
                    raise TargetError(f"target LSN {text!r} is not an LSN", _VALUE_FORMS[chosen],
                                      part="value") from None
                return cls(chosen, lsn=lsn, inclusive=inclusive, timeline=tl)
            case TargetKind.XID:
                if not value.isdigit():
                    raise TargetError(f"target xid {text!r} is not a transaction id", _VALUE_FORMS[chosen],
                                      part="value")
                return cls(chosen, xid=int(value), inclusive=inclusive, timeline=tl)
        return cls(chosen, name=value, timeline=tl)


class TargetError(UsageError):
    """A target that cannot be read. `part` names the input that is wrong ("kind", "value" or "timeline"), so
    that each face can say which of its own fields to change."""

    def __init__(self, title: str, hint: str, *, part: str) -> None:
        super().__init__(title, hint)
        self.part = part


TIME_FORMS = ("ISO-8601 (2026-01-25T14:30:00Z), '2026-01-25 14:30:00 UTC', a time of day in UTC ('14:30'), or "
              "relative ('15 minutes ago', '2h ago')")
_VALUE_NAMES = {TargetKind.TIME: "time", TargetKind.LSN: "LSN", TargetKind.XID: "transaction id",
                TargetKind.NAME: "restore point name"}
_VALUE_FORMS = {TargetKind.TIME: f"write it as {TIME_FORMS}", TargetKind.LSN: "write it like 0/3000060",
                TargetKind.XID: "use a number such as 7421",
                TargetKind.NAME: "use the name given to pg_create_restore_point"}
_RELATIVE = re.compile(r"^\s*(?P<amount>(?:\d+(?:\.\d+)?\s*[a-z]+\s*)+)\s+ago\s*$")
_TIME_OF_DAY = re.compile(r"^(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?(?:\s*(?:utc|z))?$")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60, "minute": 60,
          "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600, "d": 86400,
          "day": 86400, "days": 86400}


def parse_target_time(text: str, clock: Clock) -> datetime:
    """A target time from what an operator types: ISO-8601, 'YYYY-MM-DD HH:MM:SS UTC', or 'N units ago'.
    A time without a zone is read as UTC (the runbook's times are all UTC)."""
    raw = text.strip()
    if not raw:
        raise UsageError(f"target time {text!r} (TARGET_TIME, --target-time) is empty",
                         f"write it as {TIME_FORMS}, or leave TARGET_TIME unset")
    lowered = raw.lower()
    if lowered == "now":
        return clock.now()
    relative = _RELATIVE.match(lowered)
    if relative:
        seconds = 0.0
        for amount, unit in _PART.findall(relative.group("amount")):
            if unit not in _UNITS:
                break
            seconds += float(amount) * _UNITS[unit]
        else:
            try:
                return clock.now() - timedelta(seconds=seconds)
            except OverflowError:
                raise UsageError(f"target time {text!r} is before the year 1",
                                 "give a time inside the backups' windows (see `drtui inventory`)") from None
    time_of_day = _TIME_OF_DAY.match(lowered)
    if time_of_day:
        return _last_time_of_day(time_of_day, clock.now())
    candidate = re.sub(r"\s*(UTC|GMT|Z)$", "+00:00", raw, flags=re.IGNORECASE)
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        raise UsageError(f"target time {text!r} is not a time I can read", f"write it as {TIME_FORMS}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _last_time_of_day(match: re.Match[str], now: datetime) -> datetime:
    """'14:30' (UTC, as every target time without a zone): the latest such moment not after now, so a time
    of day later than now means yesterday's."""
    hour, minute, second = (int(match.group(g) or 0) for g in ("hour", "minute", "second"))
    try:
        moment = now.astimezone(UTC).replace(hour=hour, minute=minute, second=second, microsecond=0)
    except ValueError:
        raise UsageError(f"target time {match.string!r} is not a time of day", f"write it as {TIME_FORMS}") from None
    return moment - timedelta(days=1) if moment > now else moment


def target_time_option(value: str | None, environ: Mapping[str, str]) -> str | None:
    """--target-time as given, or TARGET_TIME even when it is set but empty (click drops an empty variable,
    and an empty TARGET_TIME must be refused, not read as latest)."""
    return environ.get("TARGET_TIME") if value is None else value


class InventoryView(Protocol):
    base_backups: list[BaseBackup]
    windows: list[Window]
    wal: WalCoverage | None


@dataclass(frozen=True)
class BackupChoice:
    """A base backup and its recoverable window, chosen together (the wizard's pick, a plan's backup)."""

    backup: BaseBackup
    window: Window


def backup_choices(inventory: InventoryView) -> list[BackupChoice]:
    """The inventory's base backups with their windows, newest first."""
    return [BackupChoice(b, w) for b, w in zip(inventory.base_backups, inventory.windows, strict=False)]


@dataclass(frozen=True)
class Plan:
    journey: str
    environment: str
    config_path: Path | None
    data_dir: Path
    base_backup: BaseBackup
    wal_source: Path | S3Url
    wal_kind: str  # "directory", "tarball" or "s3" (a WAL prefix, fed into a staged folder as it is replayed)
    target: Target
    created_at: datetime
    window_earliest: datetime | None = None
    window_latest: datetime | None = None
    pause_at_target: bool = False
    incident_start: datetime | None = None
    required_bytes: int = 0
    free_bytes: int = 0
    predicted_seconds: float = 0.0
    prediction_basis: str = ""  # "from 6 runs on this host since 2026-11-24", or the built-in rates
    steps: tuple[str, ...] = PITR_STEPS
    notes: tuple[str, ...] = field(default_factory=tuple)
    chain: tuple[BaseBackup, ...] = ()  # an incremental base_backup: the backups it builds on, full first
    tablespaces: tuple[Place, ...] = ()  # where each tablespace of the backup goes
    pg_bin: Path | None = None  # the programs of the backup's major version, when not the environment's pg_bin

    def describe(self) -> list[str]:
        """The plan in words, one line each."""
        bb = self.base_backup
        window = (f"{isoformat(self.window_earliest)} → {isoformat(self.window_latest)}"
                  if self.window_earliest and self.window_latest else "not known")
        lines = [
            f"Restore {self.environment} ({self.data_dir}) to {self.target.describe()}",
            f"  base backup  {bb.path} ({bb.layout.value}, PostgreSQL {bb.pg_version}, "
            f"started {isoformat(bb.start_time)}, {bb.size_bytes} bytes of data)",
            *(f"  builds on    {member.path} (rebuilt with pg_combinebackup)" for member in self.chain),
            *([f"  programs     {self.pg_bin} (PostgreSQL {bb.pg_version})"] if self.pg_bin else []),
            f"  window       {window}",
            f"  WAL from     {self.wal_source} ({self.wal_kind})",
            f"  at target    {'pause for inspection' if self.pause_at_target else 'promote'}",
            f"  disk         needs {self.required_bytes} bytes, {self.free_bytes} free",
            f"  the current data directory is kept, renamed {self.data_dir.name}.pre_pitr_<stamp>",
            f"  predicted    about {self.predicted_seconds:.0f} s ({self.prediction_basis or 'built-in rates'})",
            "  steps        " + ", ".join(self.steps),
        ]
        lines += [f"  tablespace   {place.oid} → {place.location} (was {place.original}; a folder there now is "
                  f"kept, renamed {place.location.name}.pre_pitr_<stamp>)" for place in self.tablespaces]
        return lines + [f"  note         {note}" for note in self.notes]

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["base_backup"] = _backup_json(self.base_backup)
        data["chain"] = [_backup_json(member) for member in self.chain]
        data["target"] = self.target.to_json()
        data["steps"] = list(self.steps)
        data["notes"] = list(self.notes)
        data["tablespaces"] = [dataclasses.asdict(place) for place in self.tablespaces]
        if self.pg_bin is None:  # the environment's own pg_bin: the plan's JSON stays as it was
            del data["pg_bin"]
        return _encode(data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            journey=data["journey"], environment=data["environment"],
            config_path=Path(data["config_path"]) if data["config_path"] else None,
            data_dir=Path(data["data_dir"]), base_backup=backup_from_json(data["base_backup"]),
            chain=tuple(backup_from_json(member) for member in data.get("chain", ())),
            wal_source=location(data["wal_source"]),
            wal_kind=data["wal_kind"], target=Target.from_json(data["target"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            window_earliest=_time(data["window_earliest"]), window_latest=_time(data["window_latest"]),
            pause_at_target=data["pause_at_target"], incident_start=_time(data["incident_start"]),
            required_bytes=data["required_bytes"], free_bytes=data["free_bytes"],
            predicted_seconds=data["predicted_seconds"], prediction_basis=data.get("prediction_basis", ""),
            steps=tuple(data["steps"]), notes=tuple(data["notes"]),
            tablespaces=tuple(Place(t["oid"], t["original"], Path(t["location"])) for t in data.get("tablespaces", ())),
            pg_bin=Path(data["pg_bin"]) if data.get("pg_bin") else None)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _backup_json(backup: BaseBackup) -> dict[str, Any]:
    # asdict would take an S3Url (a dataclass) apart: the location stays whole, as its URL
    return _encode({**dataclasses.asdict(backup), "path": backup.path})


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path | S3Url):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _free_bytes(data_dir: Path) -> int:
    probe = data_dir.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _fmt(moment: datetime | None) -> str:
    return isoformat(moment) if moment else "unknown"


def _window_text(window: Window) -> str:
    return f"{_fmt(window.earliest)} → {_fmt(window.latest)}"


def _reaching(inventory: InventoryView, moment: datetime) -> str:
    for backup, window in zip(inventory.base_backups, inventory.windows, strict=False):
        if window.contains(moment):
            return f"base backup {backup.path.name} reaches it (window {_window_text(window)}): pass --base-backup"
    return "no base backup at hand reaches it; pick a time inside a window shown by `drtui inventory`"


def _segment_end(window: Window, segment_size: int) -> int | None:
    if not window.last_segment:
        return None
    name = window.last_segment
    per_id = 0x100000000 // segment_size
    segno = int(name[8:16], 16) * per_id + int(name[16:24], 16)
    return (segno + 1) * segment_size


def check_target(target: Target, backup: BaseBackup, window: Window, inventory: InventoryView) -> None:
    """Refuse a target the backup and WAL at hand cannot reach (PlanError naming the window)."""
    gap = window.cut_by_gap
    gap_hint = _gap_hint(gap)
    if not window.usable:
        raise PlanError(f"base backup {backup.path.name} cannot be restored: {window.reason}",
                        gap_hint if gap and gap.damaged else
                        "choose another base backup with --base-backup, or take a new one")
    gap_text = _gap_text(gap) if gap else ""
    if target.kind is TargetKind.TIME:
        assert target.time
        moment = target.time
        if window.earliest and moment < window.earliest:
            raise PlanError(f"target {isoformat(moment)} is before base backup {backup.path.name} became "
                            f"consistent ({isoformat(window.earliest)}); its window is {_window_text(window)}",
                            _reaching(inventory, moment))
        if window.latest and moment > window.latest:
            reason = gap_text or "the archived WAL ends before it"
            raise PlanError(f"target {isoformat(moment)} is after the last recoverable moment "
                            f"({isoformat(window.latest)}): {reason}; window {_window_text(window)}",
                            "pick a time inside the window, or sync the WAL archive (`drtui backup wal-sync`)"
                            if not gap else f"pick a time before the gap, or {gap_hint}")
    elif target.kind is TargetKind.LSN:
        assert target.lsn is not None
        consistent = backup.stop_lsn or backup.start_lsn
        if target.lsn < consistent:
            raise PlanError(f"target LSN {format_lsn(target.lsn)} is before base backup {backup.path.name} "
                            f"became consistent (LSN {format_lsn(consistent)})",
                            "choose an older base backup with --base-backup, or a later LSN")
        end = _segment_end(window, backup.segment_size)
        if end is not None and target.lsn > end:
            raise PlanError(f"target LSN {format_lsn(target.lsn)} is after the last archived WAL "
                            f"(ends at {format_lsn(end)}{'; ' + gap_text if gap_text else ''})",
                            "pick an LSN inside the archive, or sync the WAL archive")
    elif target.kind is TargetKind.LATEST and gap:
        raise PlanError(f"{gap_text}: recovery to 'latest' would stop silently at {_fmt(window.latest)}",
                        f"restore to a time before the gap explicitly (--target-time), or {gap_hint}")
    elif target.kind in (TargetKind.XID, TargetKind.NAME) and gap:
        # Where a transaction or restore point lies is only known by replaying: past the gap it is never reached.
        raise PlanError(f"{target.describe()} cannot be checked against the WAL of base backup "
                        f"{backup.path.name}: {gap_text}, and recovery cannot go past "
                        f"{_fmt(window.latest)} (window {_window_text(window)})",
                        f"restore to a time or LSN before the gap (--target-time, --target-lsn), or {gap_hint}")


def _gap_hint(gap: Gap | None) -> str:
    if gap and any("unreadable by" in why for why in gap.damaged):
        return "let that user read the segment (chown it to that user, or chmod o+r it), then plan again"
    if gap and gap.damaged:
        return "replace the damaged segment with a good copy (from the server's pg_wal or another archive)"
    return "find the missing WAL"


def _gap_text(gap: Gap) -> str:
    if gap.damaged:
        return f"the WAL has a segment that cannot be replayed ({gap.describe()})"
    return f"the WAL archive has a gap ({gap.from_name} … {gap.to_name} missing)"


@refusing
def make_plan(config: Config, env: Environment, target: Target, *, clock: Clock, journey: str = "pitr",
              base_backup: Path | S3Url | BackupChoice | None = None, wal_source: Path | S3Url | None = None,
              inventory: InventoryView | None = None, pause_at_target: bool = False,
              incident_start: datetime | None = None, pg_version: int | None = None,
              free_bytes: int | None = None, tablespace_mapping: Iterable[tuple[str, str]] = ()) -> Plan:
    """Choose the base backup and WAL, and check everything that can be checked before touching anything.
    `base_backup` is a path (BASE_BACKUP) or the backup and window already chosen (the wizard's pick);
    `inventory`, `pg_version` and `free_bytes` are looked up when not given. `tablespace_mapping` (OLD, NEW)
    pairs move tablespaces, after the environment's own tablespace_mapping."""
    source = wal_source or (config.repository.wal if config.repository else config.wal_archive)
    if isinstance(source, Path) and not source.exists():
        raise PlanError(f"{source}: no such WAL archive (folder or wal_archive_*.tar.gz)",
                        "check WAL_ARCHIVE / --wal-archive, or wal_archive in the config")
    if inventory is None:
        from drtui.core.inventory import scan

        inventory = scan(config, wal_source=source, env=env, clock=clock)
    backup, window = _choose_backup(inventory, target, base_backup, env, config)
    check_target(target, backup, window, inventory)
    try:
        chain = chain_of(backup, inventory.base_backups)[:-1]
    except ChainError as exc:
        raise PlanError(exc.title, exc.hint) from None
    try:
        pg_bin = pg_bin_for(config, env, backup.pg_version, pg_version,
                            on_host=backend_for(env, config.state_dir).runs_host_programs)
    except PlanError as exc:
        raise PlanError(f"base backup {backup.path.name} is PostgreSQL {backup.pg_version}: {exc.title}",
                        exc.hint) from None
    places = place_tablespaces(backup, (*env.tablespace_mapping, *tablespace_mapping), env.data_dir)
    if places and not backend_for(env, config.state_dir).restores_tablespaces:
        raise PlanError(f"base backup {backup.path.name} has tablespaces, and the {env.backend} backend restores "
                        "none", "restore it on a host with the local backend, or take a backup without them")
    wal_kind = "s3" if isinstance(source, S3Url) else "directory" if source.is_dir() else "tarball"
    wal_bytes = _wal_bytes(inventory.wal, wal_kind, backup, window, target)
    required = backup.size_bytes + wal_bytes + sum(member.size_bytes for member in chain)
    free = free_bytes if free_bytes is not None else _free_bytes(env.data_dir)
    if free < required:
        raise PlanError(f"not enough disk beside {env.data_dir}: the restore needs {required} bytes "
                        f"(base backup {backup.size_bytes} + WAL {wal_bytes}), {free} are free",
                        "free some space (the current data directory is kept, not overwritten)")
    notes = []
    if env.is_production:
        notes.append("restoring over production: the environment must be named (--env production)")
    else:
        notes.append("archiving is switched off in the restored copy (it must never write into the "
                     "production WAL archive)")
    rates = measured_rates(config.state_dir)
    return Plan(journey=journey, environment=env.name, config_path=config.path, data_dir=env.data_dir,
                base_backup=backup, wal_source=source, wal_kind=wal_kind, target=target, created_at=clock.now(),
                window_earliest=window.earliest, window_latest=window.latest, pause_at_target=pause_at_target,
                incident_start=incident_start, required_bytes=required, free_bytes=free,
                predicted_seconds=rates.predict(backup.size_bytes, wal_bytes), prediction_basis=rates.basis(),
                notes=tuple(notes), chain=chain, tablespaces=places,
                pg_bin=None if pg_bin == env.pg_bin else pg_bin)


def _wal_bytes(coverage: WalCoverage | None, wal_kind: str, backup: BaseBackup, window: Window,
               target: Target) -> int:
    """WAL the restore writes beside the data directory: a tarball is staged whole (and linked into pg_wal);
    from a folder, the restore_command copies into pg_wal every segment from the backup's start to the
    target (its LSN, the backup's end for immediate, else the end of the reachable WAL)."""
    if coverage is None:
        return 0
    size = coverage.segment_size
    if wal_kind == "tarball":
        return (coverage.segment_count + sum(len(bad) for bad in coverage.damaged.values())) * size
    end = _segment_end(window, size)
    if end is None:
        return 0
    last = end // size - 1
    if target.kind is TargetKind.LSN and target.lsn is not None:
        last = min(last, target.lsn // size)
    elif target.kind is TargetKind.IMMEDIATE:
        last = min(last, (backup.stop_lsn or backup.start_lsn) // size)
    return max(0, last - backup.start_lsn // size + 1) * size


def _choose_backup(inventory: InventoryView, target: Target, chosen: Path | S3Url | BackupChoice | None,
                   env: Environment, config: Config | None = None) -> tuple[BaseBackup, Window]:
    if isinstance(chosen, BackupChoice):
        return chosen.backup, chosen.window
    pairs = list(zip(inventory.base_backups, inventory.windows, strict=False))
    if isinstance(chosen, S3Url):
        for backup, window in pairs:
            if backup.path == chosen:
                return backup, window
        return _read_outside(chosen, inventory, env, config)
    if chosen is not None:
        wanted = chosen.resolve()
        for backup, window in pairs:
            if backup.path.resolve() == wanted:
                return backup, window
        if not chosen.exists():
            raise PlanError(f"{chosen}: no such base backup", "check BASE_BACKUP / --base-backup")
        return _read_outside(chosen, inventory, env, config)
    if not pairs:
        unread = "; ".join(f"{p.path}: {p.message}" for p in getattr(inventory, "problems", ()))
        raise PlanError("no base backup found" + (f" that could be read ({unread})" if unread else ""),
                        "take one with `drtui backup base`, or name one with BASE_BACKUP")
    usable = [(b, w) for b, w in pairs if w.usable]
    if target.kind is TargetKind.TIME:
        assert target.time
        for backup, window in usable:
            if window.contains(target.time):
                return backup, window
        # None reaches it: check against the newest backup that starts before the target, for its message.
        before = [(b, w) for b, w in usable if w.earliest and w.earliest <= target.time]
        return (before or usable or pairs)[0]
    if target.kind is TargetKind.LSN:
        assert target.lsn is not None
        for backup, window in usable:
            if (backup.stop_lsn or backup.start_lsn) <= target.lsn:
                return backup, window
    if target.kind is TargetKind.XID and (committed := _known_commit(config, target)):
        # a backup that starts after the transaction cannot stop just before (or after) it: the newest that
        # reaches its commit, as `drtui events` found it
        for backup, window in usable:
            if window.contains(committed):
                return backup, window
    return (usable or pairs)[0]


def _known_commit(config: Config | None, target: Target) -> datetime | None:
    """When transaction `target.xid` committed: as a listing of `drtui events` found it, else as production
    says (track_commit_timestamp), when it answers; None when neither knows."""
    if config is None or target.xid is None:
        return None
    change = known_change(config.state_dir, PRODUCTION, target.xid)
    if change:
        return change.committed_at
    if PRODUCTION not in config.environments:
        return None
    import psycopg

    from drtui.core.drill_source import commit_time
    from drtui.core.postgres import connect

    try:
        with connect(config.environments[PRODUCTION]) as conn:
            return commit_time(conn, target.xid)
    except (DrError, psycopg.Error):  # production down, or the xid unknown to it: the newest backup is tried
        return None


def _read_outside(path: Path | S3Url, inventory: InventoryView, env: Environment,
                  config: Config | None = None) -> tuple[BaseBackup, Window]:
    """A base backup outside backup_dir (BASE_BACKUP names it, a file or an object): read it, and its window in
    the same WAL."""
    from drtui.core.inventory import InventoryError, compute_windows, read_base_backup
    from drtui.core.inventory.remote import head, read_remote_backup, settings_for
    from drtui.core.inventory.wal import Reader

    try:
        if isinstance(path, S3Url):
            settings = settings_for(config, path)
            backup = read_remote_backup(head(path, settings), settings)
        else:
            backup = read_base_backup(path)
    except InventoryError as exc:
        raise PlanError(f"{path}: not a base backup that can be read ({exc.title})",
                        exc.hint or "choose another with --base-backup") from None
    wal = inventory.wal
    remote = settings_for(config, wal.source) if wal is not None and isinstance(wal.source, S3Url) else None
    return backup, compute_windows([backup], wal, env.pg_bin, reader=Reader.of(env.os_user), settings=remote)[0]



DUMP_STEPS = ("preflight", "stop_app", "pre_restore_dump", "restore_database", "restore_uploads", "start_app",
              "verify")


@dataclass(frozen=True)
class DumpPlan:
    """A dump restore into staging (the runbook's restore_to_staging.sh)."""

    journey: str
    environment: str
    config_path: Path | None
    data_dir: Path
    dump_file: Path
    uploads_archive: Path | None
    created_at: datetime
    dump_time: datetime | None = None
    incident_start: datetime | None = None
    steps: tuple[str, ...] = DUMP_STEPS
    pause_at_target: bool = False
    source_database: str | None = None  # a dump of another database, named on purpose (--source-database)
    terminate_sessions: bool = False  # end the sessions on the database (--terminate-sessions)

    def describe(self) -> list[str]:
        return [
            f"Restore the dump {self.dump_file} into {self.environment} (database replaced)",
            f"  dump taken   {_fmt(self.dump_time)}",
            f"  uploads      {self.uploads_archive or 'not restored (no UPLOADS_ARCHIVE, or no uploads_dir)'}",
            "  first saved  a dump of the current database (pre_restore), and the uploads folder renamed aside",
            "  steps        " + ", ".join(self.steps),
        ]

    def to_json(self) -> dict[str, Any]:
        return _encode({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DumpPlan:
        return cls(journey=data["journey"], environment=data["environment"],
                   config_path=Path(data["config_path"]) if data["config_path"] else None,
                   data_dir=Path(data["data_dir"]), dump_file=Path(data["dump_file"]),
                   uploads_archive=Path(data["uploads_archive"]) if data["uploads_archive"] else None,
                   created_at=datetime.fromisoformat(data["created_at"]), dump_time=_time(data["dump_time"]),
                   incident_start=_time(data["incident_start"]), steps=tuple(data["steps"]),
                   source_database=data.get("source_database"),
                   terminate_sessions=data.get("terminate_sessions", False))


@refusing
def make_dump_plan(config: Config, env: Environment, *, clock: Clock, dump_file: Path | S3Url | None = None,
                   uploads_archive: Path | S3Url | None = None, incident_start: datetime | None = None) -> DumpPlan:
    """Choose the dump (default: the newest `<database>_<stamp>.sql.gz`) and uploads archive (default: the one
    written with that dump, when the environment has an uploads_dir); check they exist. From an S3 repository
    (or s3:// URLs) both are fetched first (remote_dump)."""
    from drtui.core.backup import newest, uploads_of

    if isinstance(dump_file, S3Url) or (config.repository and dump_file is None):
        from drtui.core.remote_dump import fetch_dump

        dump_file, uploads_archive = fetch_dump(config, env, dump_file, uploads_archive)
    if isinstance(uploads_archive, S3Url):
        raise PlanError(f"UPLOADS_ARCHIVE={uploads_archive} is in a bucket, the dump {dump_file} is not",
                        "give BACKUP_FILE as an s3:// URL too, or both as paths")
    dump = dump_file or newest(config.backup_dir, f"{env.database}_", ".sql.gz")
    if dump is None:
        where = config.repository.backups if config.repository else config.backup_dir
        raise PlanError(f"{where}: no {env.database}_*.sql.gz dump found",
                        "take one with `drtui backup dump`, or name one with BACKUP_FILE")
    if not dump.is_file():
        raise PlanError(f"{dump}: no such dump", "check BACKUP_FILE")
    uploads = uploads_archive or (uploads_of(dump) if env.uploads_dir else None)
    if uploads is not None and uploads_archive is None and not uploads.is_file():
        raise PlanError(f"{dump}: its uploads archive {uploads.name} is missing, so this dump is not a whole backup",
                        "pick a whole dump with BACKUP_FILE (`drtui backup verify` checks one), or name an uploads "
                        "archive with UPLOADS_ARCHIVE")
    if uploads is not None:
        if not uploads.is_file():
            raise PlanError(f"{uploads}: no such uploads archive", "check UPLOADS_ARCHIVE")
        if env.uploads_dir is None:
            raise PlanError(f"UPLOADS_ARCHIVE given, but environment {env.name!r} has no uploads_dir",
                            "set uploads_dir in the config, or leave UPLOADS_ARCHIVE out")
    found = re.search(r"(\d{8}T\d{6}Z)", dump.name)
    dump_time = datetime.strptime(found.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) if found else None
    return DumpPlan("staging", env.name, config.path, env.data_dir, dump, uploads, clock.now(), dump_time,
                    incident_start)


def plan_from_json(data: dict[str, Any]) -> Plan | DumpPlan:
    """Read back either kind of plan."""
    return DumpPlan.from_json(data) if "dump_file" in data else Plan.from_json(data)
