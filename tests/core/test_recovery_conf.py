"""Recovery settings and log explanations that need no server: what a restored copy overrides, the settings it
replays with (replay_tuning, replay_settings), and how PostgreSQL's complaints about WAL are put in words."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drtui.core.clock import FrozenClock
from drtui.core.config import Environment, load_config
from drtui.core.errors import ConfigError
from drtui.core.models import BaseBackup, Layout
from drtui.core.planning import Plan, Target, TargetKind
from drtui.core.recovery_conf import (
    OUTSIDE_SETTINGS,
    carried_settings,
    host_shared_buffers,
    overridden,
    recovery_settings,
    replay_settings,
)
from drtui.core.steps.recovery import translate


def test_the_settings_a_backup_carried_are_named_without_their_values(tmp_path: Path) -> None:
    (tmp_path / "postgresql.conf").write_text(
        "archive_cleanup_command = 'pg_archivecleanup /archive %r'   # HA template\n"
        "#recovery_end_command = 'rm -rf /'\n"
        "primary_conninfo = 'host=db password=it''s-secret'\n"
        "archive_mode = on\n")
    (tmp_path / "postgresql.auto.conf").write_text("archive_mode = 'off'\n")
    carried = carried_settings(tmp_path)
    assert carried["primary_conninfo"] == "'host=db password=it''s-secret'"
    assert "recovery_end_command" not in carried
    names = overridden(tmp_path, {**OUTSIDE_SETTINGS, "archive_mode": "off"})
    assert names == ["archive_cleanup_command (the backup set it)", "recovery_end_command",
                     "primary_conninfo (the backup set it)", "primary_slot_name", "promote_trigger_file",
                     "archive_mode"]
    assert not any("secret" in name for name in names)


@pytest.mark.parametrize(("line", "words"), [
    ('drtui fetch_wal: WAL file 000000010000000000000005 in /wal has the wrong size: 200 bytes, a WAL segment has '
     '16777216; recovery stops here instead of ending the WAL early',
     ["WAL file 000000010000000000000005", "wrong size: 200 bytes"]),
    ("LOG:  invalid magic number 0000 in log segment 000000010000000000000005, offset 0",
     ["000000010000000000000005 is damaged", "magic number 0000"]),
    ("LOG:  record with incorrect prev-link 0/4000028 at 0/5000028", ["LSN 0/5000028", "link"]),
    ("LOG:  incorrect resource manager data checksum in record at 0/5000028", ["LSN 0/5000028", "checksum"]),
    ("LOG:  invalid resource manager ID 200 at 0/5000028", ["LSN 0/5000028", "resource manager ID 200"]),
    ("LOG:  invalid record length at 0/5000028: wanted 24, got 7", ["LSN 0/5000028", "record length"]),
    ("PANIC:  could not write to file \"pg_wal/xlogtemp.123\": No space left on device", ["disk filled up"]),
])
def test_damaged_wal_and_a_full_disk_are_explained(line: str, words: list[str]) -> None:
    # the damage comes before PostgreSQL's conclusion, which alone would blame a short archive
    found = translate(["LOG:  redo starts at 0/2000028", line,
                       "FATAL:  recovery ended before configured recovery target was reached"])
    assert found is not None
    for word in words:
        assert word in found[0]
    assert "sync the WAL archive" not in found[1]


def test_the_ordinary_end_of_the_wal_is_not_damage() -> None:
    found = translate(["LOG:  invalid record length at 0/5000028: wanted 24, got 0",
                       "FATAL:  recovery ended before configured recovery target was reached"])
    assert found is not None and "WAL ran out" in found[0]


GIB = 1 << 30
AUTO = 'replay_settings = {shared_buffers = "auto"}'
HOST = (16 * GIB, 12 * GIB)  # (total, available) memory


def _env(tmp_path: Path, table: str = "") -> Environment:
    """The staging environment of a drtui.toml whose [environments.staging] table ends with `table`."""
    path = tmp_path / "drtui.toml"
    path.write_text(f"[environments.staging]\nport = 5433\n{table}\n")
    return load_config(str(path), environ={}).environment("staging")


def _plan(pg_version: int) -> Plan:
    backup = BaseBackup(Path("/b.tar.gz"), Layout.PLAIN_TARBALL, "x", 0, "000000010000000000000001", 0,
                        datetime(2026, 1, 25, tzinfo=UTC), 1, pg_version, 1, 1)
    return Plan("pitr", "staging", None, Path("/d"), backup, Path("/wal"), "directory",
                Target(TargetKind.TIME, time=datetime(2026, 1, 25, 14, 30, tzinfo=UTC)), FrozenClock().now())


def test_a_restored_copy_replays_without_prefetch_and_shared_buffers_auto_sizes_it_to_the_host(tmp_path: Path
                                                                                            ) -> None:
    assert replay_settings(_env(tmp_path), {}, HOST) == {"recovery_prefetch": "off"}  # the default
    env = _env(tmp_path, AUTO)
    assert replay_settings(env, {}, HOST) == {"recovery_prefetch": "off", "shared_buffers": "4096MB"}
    # a quarter of the host, but no more than half of what is free now (shared memory is allocated whole)
    assert host_shared_buffers((16 * GIB, 2 * GIB)) == GIB
    assert replay_settings(env, {}, None) == {"recovery_prefetch": "off"}  # a server with memory of its own
    assert replay_settings(env, {"shared_buffers": "'16384'"}, HOST)["shared_buffers"] == "4096MB"  # 128 MB
    written = recovery_settings(_plan(15), env, "cp /wal/%f %p", {}, HOST)
    assert written["recovery_prefetch"] == "off" and written["shared_buffers"] == "4096MB"
    # PostgreSQL 14 has no recovery_prefetch: naming it would stop the server
    assert "recovery_prefetch" not in recovery_settings(_plan(14), env, "cp /wal/%f %p", {}, HOST)


@pytest.mark.parametrize("carried", [
    {"shared_buffers": "'8GB'"},  # the backup's own is larger: never lowered
    {"shared_buffers": "4096MB"},  # the same
    {"huge_pages": "on"},  # reserved huge pages may not hold more
    {"shared_buffers": "'lots'"},  # unreadable: left alone
])
def test_shared_buffers_is_only_ever_raised_and_only_where_that_is_safe(tmp_path: Path,
                                                                       carried: dict[str, str]) -> None:
    assert replay_settings(_env(tmp_path, AUTO), carried, HOST) == {"recovery_prefetch": "off"}


def test_replay_tuning_can_be_switched_off_and_each_setting_overridden(tmp_path: Path) -> None:
    off = _env(tmp_path, "replay_tuning = false")
    assert replay_settings(off, {}, HOST) == {}
    assert not {"recovery_prefetch", "shared_buffers"} & set(recovery_settings(_plan(15), off, "cp %f %p", {}))
    chosen = _env(tmp_path, 'replay_settings = {shared_buffers = "2GB", recovery_prefetch = false, '
                            "maintenance_io_concurrency = 64}")
    assert replay_settings(chosen, {}, HOST) == {"shared_buffers": "2GB", "maintenance_io_concurrency": "64"}
    # an override applies where drtui does not size it too (a container): the operator knows its memory
    assert replay_settings(chosen, {"shared_buffers": "'8GB'"}, None) == {"shared_buffers": "2GB",
                                                                           "maintenance_io_concurrency": "64"}


@pytest.mark.parametrize(("table", "words"), [
    ('replay_tuning = "yes"', ["replay_tuning", "'yes'", "true or false"]),
    ('replay_settings = {recovery_prefetch = "maybe"}', ["replay_settings.recovery_prefetch", "'maybe'",
                                                          "off, on or try"]),
    ('replay_settings = {shared_buffers = "4gb"}', ["replay_settings.shared_buffers", "'4gb'", "unit"]),
    ("replay_settings = {maintenance_io_concurrency = 5000}", ["maintenance_io_concurrency", "5000", "0 to 1000"]),
    ('replay_settings = {work_mem = "1GB"}', ["unknown key", "replay_settings.'work_mem'", "shared_buffers"]),
    ('replay_settings = "fast"', ["replay_settings", "'fast'", "not a table"]),
])
def test_a_bad_replay_setting_is_refused_with_the_file_key_and_value(tmp_path: Path, table: str,
                                                                     words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        _env(tmp_path, table)
    message = f"{caught.value.title} {caught.value.hint}"
    assert str(tmp_path / "drtui.toml") in message
    for word in words:
        assert word in message
