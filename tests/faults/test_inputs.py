"""Bad inputs: env files the production-host gate must read as Compose and dotenv read them, a missing env file,
times and durations too large to compute with, a config that is not UTF-8, an empty TARGET_TIME, backup_label
times in an ambiguous zone abbreviation, and hostile or damaged base-backup tarballs. Each is refused with a
message naming the file or value and what to do; staging keeps its data; the WAL archive and backups are as
they were; nothing is left behind.

The cases share one world: every one of them is refused before anything is touched.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from drtui.core.inventory.labels import LabelError, parse_backup_label, parse_pg_time
from drtui.sandbox import PASSWORD, Sandbox
from tests.conftest import Result
from tests.faults.conftest import FaultWorld, Sentinel, assert_message, leftovers, make_fault_world


@pytest.fixture(scope="module")
def world() -> Iterator[FaultWorld]:
    with Sandbox() as sandbox:
        yield make_fault_world(sandbox)


@pytest.fixture
def fault(world: FaultWorld) -> Iterator[FaultWorld]:
    """The shared world, fingerprinted before the case; after it, staging's env file is put back. A case that
    failed by restoring over staging took its sentinel: the next case plants a fresh one, to stand on its own."""
    env_file = world.sandbox.root / "staging" / ".env"
    saved = env_file.read_bytes()
    if not world.sentinel.present():
        world.sentinel = Sentinel.plant(world.sandbox, "staging")
    world.before()
    try:
        yield world
    finally:
        env_file.write_bytes(saved)


def _untouched(world: FaultWorld) -> None:
    assert world.sentinel.present(), "staging lost its data"
    world.unchanged()
    assert leftovers(world.sandbox) == []


# -- the production-host gate -------------------------------------------------------------------------------
@pytest.mark.parametrize("app_env_line", [
    b"APP_ENV=prod # production host\n",
    b'APP_ENV="prod" # comment\n',
    b"export\tAPP_ENV=prod\n",
    b"\xef\xbb\xbfAPP_ENV=prod\n",
    b"APP_ENV=Production\r\n",
], ids=["inline-comment", "quoted-and-comment", "export-tab", "bom", "crlf-mixed-case"])
def test_a_production_env_file_refuses_a_staging_restore(fault: FaultWorld, app_env_line: bytes) -> None:
    env_file = fault.sandbox.root / "staging" / ".env"
    env_file.write_bytes(app_env_line + f"POSTGRES_PASSWORD={PASSWORD}\n".encode())
    result = fault.restore_staging_pitr(env={"RECOVERY_TARGET": "latest"})
    assert_message(result, "APP_ENV=prod", "this host is production", "env_file", code=2)
    _untouched(fault)


def test_a_missing_env_file_is_an_error_not_a_pass(fault: FaultWorld) -> None:
    missing = fault.sandbox.root / "staging" / "no-such.env"
    result = fault.restore_staging_pitr(env={"RECOVERY_TARGET": "latest", "ENV_FILE": str(missing)})
    assert_message(result, str(missing), "does not exist", "ENV_FILE", code=2)
    _untouched(fault)


# -- times, durations, the config's encoding ----------------------------------------------------------------
@pytest.mark.parametrize("target_time", ["1000000 days ago", "99999999999999999999 days ago"])
def test_a_relative_time_too_far_back_is_refused(fault: FaultWorld, target_time: str) -> None:
    result = fault.restore_staging_pitr(env={"TARGET_TIME": target_time})
    assert_message(result, target_time, "before the year 1", "drtui inventory", code=2)
    _untouched(fault)


@pytest.mark.parametrize("target_time", ["", "   "], ids=["empty", "blank"])
def test_an_empty_target_time_is_refused_saying_how_to_ask_for_latest(fault: FaultWorld, target_time: str) -> None:
    result = fault.restore_staging_pitr(env={"TARGET_TIME": target_time})
    assert_message(result, "TARGET_TIME", "is empty", "RECOVERY_TARGET=latest", code=2)
    _untouched(fault)


@pytest.mark.parametrize("command", [("drill",), ("verify", "--env", "staging")], ids=["drill", "verify"])
def test_an_empty_target_time_is_refused_by_the_drill_and_verify_too(fault: FaultWorld, command: tuple) -> None:
    result = fault.drtui(*command, env={"TARGET_TIME": "", "TARGET_ENV": "staging", "CONFIRM_DRILL": "YES"})
    assert_message(result, "TARGET_TIME", "is empty", "leave TARGET_TIME unset", code=2)
    _untouched(fault)


def _with_config(world: FaultWorld, old: bytes, new: bytes, env: dict[str, str]) -> Result:
    """A staging restore with the config edited; the config put back at once (the sentinel's check reads it)."""
    text = world.config.read_bytes()
    assert old in text
    world.config.write_bytes(text.replace(old, new, 1))
    try:
        return world.restore_staging_pitr(env=env)
    finally:
        world.config.write_bytes(text)


def test_a_huge_duration_in_the_config_is_refused(fault: FaultWorld) -> None:
    result = _with_config(fault, b'pitr_rto = "2h"', b'pitr_rto = "99999999999999999999d"',
                          {"RECOVERY_TARGET": "latest"})
    assert_message(result, str(fault.config), "objectives.pitr_rto", "99999999999999999999d", "too long",
                   '"90m"', code=2)
    _untouched(fault)


def test_a_config_that_is_not_utf8_is_refused(fault: FaultWorld) -> None:
    result = _with_config(fault, b"# drtui sandbox", b"# drtui sandbox \xe9t\xe9 (latin-1)",
                          {"RECOVERY_TARGET": "latest"})
    assert_message(result, str(fault.config), "not UTF-8", "0xe9", "save the config as UTF-8", code=2)
    _untouched(fault)


def test_huge_relative_times_and_durations_as_values() -> None:
    from drtui.core.clock import SystemClock
    from drtui.core.config import parse_duration
    from drtui.core.errors import UsageError
    from drtui.headless.targets import make_target

    with pytest.raises(ValueError, match="too long"):
        parse_duration("3651d")
    assert parse_duration("3650d") == timedelta(days=3650)
    with pytest.raises(UsageError, match="before the year 1"):
        make_target(time_text="1000000 days ago", clock=SystemClock())
    assert make_target(time_text="2 days ago", clock=SystemClock()).time is not None


# -- backup_label times in a zone abbreviation ---------------------------------------------------------------
def test_unambiguous_abbreviations_and_numeric_offsets_are_read() -> None:
    assert parse_pg_time("2026-01-25 14:30:00 UTC") == datetime(2026, 1, 25, 14, 30, tzinfo=UTC)
    assert parse_pg_time("2026-01-25 14:30:00 GMT") == datetime(2026, 1, 25, 14, 30, tzinfo=UTC)
    assert parse_pg_time("2026-01-25 14:30:00 +0530").utcoffset() == timedelta(hours=5, minutes=30)
    assert parse_pg_time("2026-01-25 14:30:00 -03").utcoffset() == timedelta(hours=-3)
    assert parse_pg_time("2026-01-25 14:30:00 CET").utcoffset() == timedelta(hours=1)
    assert parse_pg_time("2026-07-25 14:30:00 CEST").utcoffset() == timedelta(hours=2)
    assert parse_pg_time("2026-07-25 14:30:00 EDT").utcoffset() == timedelta(hours=-4)


@pytest.mark.parametrize(("text", "offsets"), [
    ("2026-07-25 14:30:00 IST", ["+01:00", "+05:30"]),
    ("2026-01-25 14:30:00 IST", ["+02:00", "+05:30"]),
    ("2026-01-25 14:30:00 CST", ["-06:00", "+08:00"]),
    ("2026-01-25 14:30:00 PST", ["-08:00", "+08:00"]),
])
def test_an_ambiguous_abbreviation_is_refused_naming_it_and_the_fix(text: str, offsets: list[str]) -> None:
    with pytest.raises(LabelError) as caught:
        parse_pg_time(text)
    message = str(caught.value)
    assert text.split()[-1] in message and "ambiguous" in message
    for offset in offsets:
        assert offset in message
    assert "log_timezone = 'UTC'" in caught.value.hint


def test_an_unknown_abbreviation_is_refused() -> None:
    with pytest.raises(LabelError, match="unknown time zone abbreviation 'XYZ'"):
        parse_pg_time("2026-01-25 14:30:00 XYZ")


LABEL = """START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-07-25 14:30:00 {zone}
LABEL: pg_basebackup base backup
START TIMELINE: 1
"""


def test_an_ambiguous_abbreviation_is_resolved_by_a_numeric_time_near_it() -> None:
    """The backup's UTC name stamp (basebackup_YYYYMMDDTHHMMSSZ) taken just before PostgreSQL's START TIME
    picks the one reading within minutes of it; the STOP TIME in the same zone follows it."""
    near = datetime(2026, 7, 25, 9, 0, 0, tzinfo=UTC)  # 14:30 IST (+05:30) is 09:00 UTC
    info = parse_backup_label(LABEL.format(zone="IST") + "STOP TIME: 2026-07-25 15:00:00 IST\n", near=near)
    assert info.start_time == datetime(2026, 7, 25, 9, 0, tzinfo=UTC)
    assert info.start_time.utcoffset() == timedelta(hours=5, minutes=30)
    assert info.stop_time == datetime(2026, 7, 25, 15, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    dublin = parse_backup_label(LABEL.format(zone="IST"), near=datetime(2026, 7, 25, 13, 29, tzinfo=UTC))
    assert dublin.start_time.utcoffset() == timedelta(hours=1)
    for far in (datetime(2026, 7, 20, tzinfo=UTC), datetime(2026, 7, 25, 9, 5, tzinfo=UTC)):  # days off; after it
        with pytest.raises(LabelError, match="ambiguous"):
            parse_backup_label(LABEL.format(zone="IST"), near=far)


def test_the_inventory_resolves_an_ambiguous_label_by_the_backups_name_stamp_or_refuses_it(tmp_path: Path) -> None:
    from drtui.core.inventory import InventoryError, read_base_backup

    label = LABEL.format(zone="IST").encode()
    named = tmp_path / "basebackup_20260725T090000Z"  # 09:00 UTC, taken just before 14:30 IST (+05:30)
    unnamed = tmp_path / "monday-backup"
    for folder in (named, unnamed):
        folder.mkdir()
        (folder / "backup_label").write_bytes(label)
        (folder / "PG_VERSION").write_text("15\n")
    assert read_base_backup(named).start_time == datetime(2026, 7, 25, 9, 0, tzinfo=UTC)
    with pytest.raises(InventoryError) as caught:
        read_base_backup(unnamed)
    assert str(unnamed) in caught.value.title and "'IST'" in caught.value.title
    assert "ambiguous" in caught.value.title and "log_timezone = 'UTC'" in caught.value.hint


# -- damaged and hostile base-backup tarballs (regression: refused today, kept so) ----------------------------
def _label(world: FaultWorld) -> bytes:
    with tarfile.open(world.base_backup) as outer:
        for member in outer.getmembers():
            if member.name.endswith("base.tar") or member.name.endswith("base.tar.gz"):
                inner = outer.extractfile(member)
                assert inner
                data = inner.read()
                if member.name.endswith(".gz"):
                    data = gzip.decompress(data)
                with tarfile.open(fileobj=io.BytesIO(data)) as base:
                    label = base.extractfile("backup_label")
                    assert label
                    return label.read()
            if member.name.endswith("backup_label"):
                label = outer.extractfile(member)
                assert label
                return label.read()
    raise AssertionError(f"no backup_label in {world.base_backup}")


def _member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def _hostile(world: FaultWorld, folder: Path, *members: tuple) -> Path:
    """A plain data-directory tarball holding the world's real backup_label, then `members`."""
    path = folder / "basebackup_20260101T000000Z.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info, data in (_member("backup_label", _label(world)), _member("PG_VERSION", b"15\n"), *members):
            tar.addfile(info, io.BytesIO(data))
    return path


HOSTILE = {
    "traversal": ([_member("../escaped", b"x")], "points outside the destination"),
    "nested-traversal": ([_member("base/../../escaped", b"x")], "points outside the destination"),
    "absolute": ([_member("/tmp/drtui-escaped-absolute", b"x")], "absolute or invalid name"),
    "symlink-out": ([_member("evil", kind=tarfile.SYMTYPE, link="../../.."), _member("evil/escaped", b"x")],
                    "links are refused"),
    "hardlink": ([_member("hard", kind=tarfile.LNKTYPE, link="/etc/passwd")], "links are refused"),
    "fifo": ([_member("fifo", kind=tarfile.FIFOTYPE)], "special file"),
    "device": ([_member("dev", kind=tarfile.CHRTYPE)], "special file"),
}


def _restore_from(world: FaultWorld, backup: Path) -> Result:
    return world.restore_staging_pitr(env={"BASE_BACKUP": str(backup), "RECOVERY_TARGET": "immediate"})


@pytest.mark.parametrize(("members", "says"), HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_tarball_is_refused_and_nothing_is_touched(fault: FaultWorld, open_tmp: Path,
                                                              members: list, says: str) -> None:
    evil = _hostile(fault, open_tmp, *members)
    before = sorted(open_tmp.parent.glob("escaped*"))
    result = _restore_from(fault, evil)
    assert_message(result, str(evil), says, "do not restore from it", code=1)
    assert sorted(open_tmp.parent.glob("escaped*")) == before
    assert not Path("/tmp/drtui-escaped-absolute").exists()
    _untouched(fault)


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_damaged_base_backup_is_refused_and_nothing_is_touched(fault: FaultWorld, open_tmp: Path,
                                                                  damage: str) -> None:
    data = bytearray(fault.base_backup.read_bytes())
    if damage == "truncated":
        data = data[: len(data) * 2 // 3]
    else:
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(64)
    broken = open_tmp / fault.base_backup.name
    broken.write_bytes(bytes(data))
    result = _restore_from(fault, broken)
    assert result.exit_code in (1, 2), result.output
    assert_message(result, str(broken), "do not restore from it", code=result.exit_code)
    _untouched(fault)
