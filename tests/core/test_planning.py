"""Planning and gates without a server: target parsing, window checks, version and disk refusals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drtui.core.clock import FrozenClock
from drtui.core.config import Config, Environment
from drtui.core.errors import ErrorKind, UsageError
from drtui.core.gates import (
    ApprovedPlan,
    Confirmation,
    Facts,
    GateRefused,
    approve,
    confirmation_from_environ,
    evaluate,
)
from drtui.core.models import BaseBackup, Gap, Layout, WalCoverage, Window
from drtui.core.planning import Plan, PlanError, Target, TargetKind, make_plan, parse_target_time
from drtui.headless.targets import make_target

CLOCK = FrozenClock(datetime(2026, 1, 25, 15, 0, tzinfo=UTC))
T0 = datetime(2026, 1, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-01-25 14:30:00 UTC", datetime(2026, 1, 25, 14, 30, tzinfo=UTC)),
    ("2026-01-25T14:30:00Z", datetime(2026, 1, 25, 14, 30, tzinfo=UTC)),
    ("2026-01-25T14:30:00+02:00", datetime(2026, 1, 25, 12, 30, tzinfo=UTC)),
    ("2026-01-25 14:30:00.250", datetime(2026, 1, 25, 14, 30, 0, 250000, tzinfo=UTC)),
    ("2026-01-25", datetime(2026, 1, 25, tzinfo=UTC)),
    ("15 minutes ago", datetime(2026, 1, 25, 14, 45, tzinfo=UTC)),
    ("2h ago", datetime(2026, 1, 25, 13, 0, tzinfo=UTC)),
    ("1h30m ago", datetime(2026, 1, 25, 13, 30, tzinfo=UTC)),
    ("1 hour 5 minutes ago", datetime(2026, 1, 25, 13, 55, tzinfo=UTC)),
    ("now", datetime(2026, 1, 25, 15, 0, tzinfo=UTC)),
])
def test_parse_target_time_forms(text: str, expected: datetime) -> None:
    assert parse_target_time(text, CLOCK) == expected


@pytest.mark.parametrize("text", ["yesterday-ish", "15 parsecs ago", "2026-13-45 10:00", ""])
def test_parse_target_time_rejects_with_the_value_and_the_forms(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_target_time(text, CLOCK)
    assert repr(text) in caught.value.title
    assert "ago" in caught.value.hint and "ISO-8601" in caught.value.hint


@pytest.mark.parametrize(("kwargs", "kind", "settings"), [
    ({}, TargetKind.LATEST, {"recovery_target_timeline": "latest"}),
    ({"kind": "immediate"}, TargetKind.IMMEDIATE, {"recovery_target": "immediate"}),
    ({"time_text": "2026-01-25 14:30:00 UTC"}, TargetKind.TIME,
     {"recovery_target_time": "2026-01-25 14:30:00.000000+00", "recovery_target_inclusive": "on"}),
    ({"lsn": "0/3000060", "exclusive": True}, TargetKind.LSN,
     {"recovery_target_lsn": "0/3000060", "recovery_target_inclusive": "off"}),
    ({"xid": "742"}, TargetKind.XID, {"recovery_target_xid": "742"}),
    ({"name": "before_migration", "timeline": "2"}, TargetKind.NAME,
     {"recovery_target_name": "before_migration", "recovery_target_timeline": "2"}),
])
def test_targets_become_recovery_settings(kwargs: dict, kind: TargetKind, settings: dict) -> None:
    target = make_target(clock=CLOCK, **kwargs)
    assert target.kind is kind
    assert settings.items() <= target.settings().items()
    assert Target.from_json(target.to_json()) == target


@pytest.mark.parametrize("kwargs", [
    {"kind": "immediate", "time_text": "1h ago"},
    {"kind": "yesterday"},
    {"lsn": "not-an-lsn"},
    {"xid": "abc"},
    {"timeline": "newest"},
])
def test_bad_target_options_are_usage_errors(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        make_target(clock=CLOCK, **kwargs)


def backup(name: str, start: datetime, version: int = 15, size: int = 1000) -> BaseBackup:
    return BaseBackup(path=Path(f"/backups/{name}"), layout=Layout.PLAIN_TARBALL, label="x", start_lsn=0x3000028,
                      start_wal_file="000000010000000000000003", checkpoint_lsn=0x3000060, start_time=start,
                      timeline=1, pg_version=version, size_bytes=size, file_size=100, stop_lsn=0x3000100,
                      stop_time=start + timedelta(minutes=1))


@dataclass
class FakeInventory:
    base_backups: list[BaseBackup]
    windows: list[Window]
    wal: WalCoverage | None = field(default=None)


def world(gap: bool = False, usable: bool = True) -> tuple[Config, Environment, FakeInventory]:
    env = Environment(name="staging", data_dir=Path("/srv/staging/data"))
    config = Config(path=None, backup_dir=Path("/backups"), wal_archive=Path("/"), wal_sync_heartbeat=Path("/x"),
                    report_dir=Path("/r"), state_dir=Path("/s"), environments={"staging": env})
    old, new = backup("basebackup_old.tar.gz", T0), backup("basebackup_new.tar.gz", T0 + timedelta(hours=2))
    cut = Gap(1, 9, 10) if gap else None
    windows = [
        Window(new.path, new.stop_time, T0 + timedelta(hours=2, minutes=50), "waldump", 1,
               "000000010000000000000008", cut_by_gap=cut, reason=None if usable else "its WAL is missing"),
        Window(old.path, old.stop_time, T0 + timedelta(hours=2, minutes=50), "waldump", 1,
               "000000010000000000000008"),
    ]
    return config, env, FakeInventory([new, old], windows, WalCoverage(Path("/"), "directory"))


def plan_for(target: Target, **kwargs) -> Plan:
    config, env, inventory = world(**{k: kwargs.pop(k) for k in ("gap", "usable") if k in kwargs})
    return make_plan(config, env, target, clock=CLOCK, inventory=inventory, pg_version=kwargs.pop("pg_version", 15),
                     free_bytes=kwargs.pop("free_bytes", 10**9), **kwargs)


def at(hours: float) -> Target:
    return Target(TargetKind.TIME, time=T0 + timedelta(hours=hours))


@pytest.mark.parametrize(("target", "chosen"), [
    (at(2.5), "basebackup_new.tar.gz"),
    (at(1), "basebackup_old.tar.gz"),
    (Target(TargetKind.LATEST), "basebackup_new.tar.gz"),
    (Target(TargetKind.IMMEDIATE), "basebackup_new.tar.gz"),
])
def test_the_newest_backup_that_reaches_the_target_is_chosen(target: Target, chosen: str) -> None:
    plan = plan_for(target)
    assert plan.base_backup.path.name == chosen
    assert Plan.from_json(plan.to_json()) == plan
    text = "\n".join(plan.describe())
    assert chosen in text and "predicted" in text and ".pre_pitr_" in text


@pytest.mark.parametrize(("target", "kwargs", "words"), [
    (at(-1), {}, ["before base backup", "no base backup at hand reaches it"]),
    (at(1), {"base_backup": Path("/backups/basebackup_new.tar.gz")},
     ["before base backup basebackup_new.tar.gz", "basebackup_old.tar.gz reaches it"]),
    (at(3), {}, ["after the last recoverable moment", "window"]),
    (at(3), {"gap": True}, ["gap (000000010000000000000009", "before the gap"]),
    (Target(TargetKind.LATEST), {"gap": True}, ["gap", "stop silently"]),
    (Target(TargetKind.LSN, lsn=0x10), {}, ["before base backup"]),
    (Target(TargetKind.LSN, lsn=0x9000001), {}, ["after the last archived WAL"]),
    (at(2.5), {"free_bytes": 10}, ["not enough disk"]),
    (Target(TargetKind.IMMEDIATE), {"base_backup": Path("/nowhere/bb.tar.gz")}, ["no such base backup"]),
])
def test_plans_that_cannot_work_are_refused_with_the_reason(target: Target, kwargs: dict, words: list[str]) -> None:
    with pytest.raises(PlanError) as caught:
        plan_for(target, **kwargs)
    text = str(caught.value)
    assert caught.value.kind is ErrorKind.REFUSED  # exit 2: nothing was touched
    for word in words:
        assert word in text


def test_unusable_newest_backup_falls_back_to_an_older_one() -> None:
    assert plan_for(Target(TargetKind.LATEST), usable=False).base_backup.path.name == "basebackup_old.tar.gz"


GOOD = Facts(target_env="staging", app_env="staging", is_production=False)


@pytest.mark.parametrize(("journey", "facts", "failed"), [
    ("pitr", GOOD, []),
    ("staging", GOOD, []),
    ("staging", Facts(target_env=None, app_env="staging", is_production=False), ["target_env"]),
    ("drill", Facts(target_env="production", app_env="staging", is_production=False), ["target_env"]),
    ("pitr", Facts(target_env="staging", app_env="prod", is_production=False), ["app_env"]),
    ("pitr", Facts(target_env="production", app_env="prod", is_production=True), []),
    ("pitr", Facts(target_env="staging", app_env=None, is_production=False, lock_holder="run x"), ["lock"]),
])
def test_gates(journey: str, facts: Facts, failed: list[str]) -> None:
    plan = plan_for(at(2.5), journey=journey)
    results = evaluate(plan, facts)
    assert [r.name for r in results if not r.passed] == failed


@pytest.mark.parametrize(("journey", "environ", "yes", "named", "env", "refused"), [
    ("pitr", {"CONFIRM_PITR_RESTORE": "YES"}, False, "staging", "staging", None),
    ("pitr", {}, True, None, "staging", None),
    ("pitr", {"CONFIRM_PITR_RESTORE": "yes"}, False, None, "staging", "CONFIRM_PITR_RESTORE=YES"),
    ("staging", {"CONFIRM_PITR_RESTORE": "YES"}, False, None, "staging", "CONFIRM_STAGING_RESTORE=YES"),
    ("pitr", {"CONFIRM_PITR_RESTORE": "YES"}, False, None, "production", "--env production"),
    ("pitr", {"CONFIRM_PITR_RESTORE": "YES"}, False, "production", "production", None),
])
def test_approve_needs_the_confirmation_and_the_production_name(journey, environ, yes, named, env, refused) -> None:
    plan = plan_for(at(2.5), journey=journey)
    plan = Plan.from_json({**plan.to_json(), "environment": env})
    confirmation = confirmation_from_environ(journey, environ, yes, named)
    if refused is None:
        approved = approve(plan, evaluate(plan, GOOD), confirmation, CLOCK)
        assert ApprovedPlan.from_json(approved.to_json()) == approved
    else:
        with pytest.raises(GateRefused) as caught:
            approve(plan, evaluate(plan, GOOD), confirmation, CLOCK)
        assert refused in caught.value.hint


def test_a_failed_gate_refuses_and_an_approved_plan_cannot_be_forged() -> None:
    plan = plan_for(at(2.5))
    with pytest.raises(GateRefused, match="APP_ENV=prod"):
        approve(plan, evaluate(plan, Facts("staging", "prod", False)), Confirmation(True, "staging"), CLOCK)
    with pytest.raises(TypeError):
        ApprovedPlan(plan, (), Confirmation(True), CLOCK.now())


SHORT = "000000010000000000000009: 200 bytes, a segment is 16 MiB"
MIB16 = 16 * 1024 * 1024


def damaged_world_plan(target: Target) -> Plan:
    config, env, inventory = world()
    inventory.windows[0] = Window(inventory.base_backups[0].path, inventory.base_backups[0].stop_time,
                                  T0 + timedelta(hours=2, minutes=50), "waldump", 1, "000000010000000000000008",
                                  cut_by_gap=Gap(1, 9, 9, damaged=(SHORT,)))
    return make_plan(config, env, target, clock=CLOCK, inventory=inventory, pg_version=15, free_bytes=10**9,
                     base_backup=Path("/backups/basebackup_new.tar.gz"))


@pytest.mark.parametrize("target", [at(3), Target(TargetKind.LATEST), Target(TargetKind.XID, xid=7421),
                                    Target(TargetKind.NAME, name="before_migration")])
def test_a_target_past_a_damaged_segment_is_refused_naming_it(target: Target) -> None:
    with pytest.raises(PlanError) as caught:
        damaged_world_plan(target)
    text = str(caught.value)
    assert SHORT in text and "good copy" in text


@pytest.mark.parametrize("target", [Target(TargetKind.XID, xid=7421), Target(TargetKind.NAME, name="before_migration")])
def test_xid_and_restore_point_targets_are_refused_past_a_gap_and_planned_without_one(target: Target) -> None:
    with pytest.raises(PlanError) as caught:
        plan_for(target, gap=True)
    text = str(caught.value)
    for words in ("cannot be checked", "000000010000000000000009 … 00000001000000000000000A missing", "--target-time",
                  "2026-01-25T14:50:00Z"):
        assert words in text
    assert plan_for(target).target == target


@pytest.mark.parametrize(("target", "segments"), [
    (Target(TargetKind.LATEST), 6),  # the backup's start segment 3 to the last reachable one, 8
    (at(2.5), 6),
    (Target(TargetKind.LSN, lsn=0x5000010), 3),
    (Target(TargetKind.IMMEDIATE), 1),
])
def test_the_disk_check_counts_the_wal_the_restore_command_copies_from_a_folder(target: Target, segments: int) -> None:
    plan = plan_for(target)
    assert plan.required_bytes == 1000 + segments * MIB16
    with pytest.raises(PlanError) as caught:
        plan_for(target, free_bytes=plan.required_bytes - 1)
    assert f"WAL {segments * MIB16}" in str(caught.value) and "not enough disk" in str(caught.value)
