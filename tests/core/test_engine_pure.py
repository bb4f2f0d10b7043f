"""Engine pieces that need no server: recovery error translation, the lock, recovery settings."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drtui.core.clock import FrozenClock
from drtui.core.config import Environment
from drtui.core.lock import EnvLock, LockBusy, process_start
from drtui.core.models import BaseBackup, Layout
from drtui.core.planning import Plan, Target, TargetKind
from drtui.core.recovery_conf import recovery_settings, signal_file
from drtui.core.steps.recovery import translate

CLOCK = FrozenClock()


@pytest.mark.parametrize(("line", "cause"), [
    ("FATAL:  requested recovery stop point is before consistent recovery point", "before the moment the base"),
    ("FATAL:  recovery ended before configured recovery target was reached", "WAL ran out"),
    ("WARNING:  hot standby is not possible because of insufficient parameter settings", "max_connections"),
    ("FATAL:  could not restore file \"00000001000000000000000A\" from archive: command not found",
     "restore_command fails"),
    ("PANIC:  could not locate required checkpoint record", "starts from is missing"),
])
def test_recovery_errors_are_translated(line: str, cause: str) -> None:
    found = translate(["LOG:  starting point-in-time recovery", line])
    assert found is not None and cause in found[0] and found[1]


def test_ordinary_log_lines_are_not_errors() -> None:
    assert translate(["LOG:  redo starts at 0/2000028", "LOG:  database system is ready to accept connections"]) is None


def test_the_lock_refuses_a_live_holder_and_takes_over_a_stale_one(tmp_path: Path) -> None:
    first = EnvLock(tmp_path, "staging")
    first.acquire("run-1", CLOCK)
    with pytest.raises(LockBusy, match="run-1"):
        EnvLock(tmp_path, "staging").acquire("run-2", CLOCK)
    assert EnvLock(tmp_path, "staging").holder().run_id == "run-1"
    first.release()
    assert not first.path.exists()

    dead = subprocess.Popen(["true"])
    dead.wait()
    first.path.write_text(json.dumps({"pid": dead.pid, "proc_start": "1", "run_id": "crashed",
                                      "started_at": "2026-01-25T14:30:00Z"}))
    assert EnvLock(tmp_path, "staging").holder() is None
    second = EnvLock(tmp_path, "staging")
    second.acquire("run-3", CLOCK)
    assert second.read().run_id == "run-3" and second.read().proc_start == process_start(second.read().pid)
    second.release()


def _plan(env: str, pause: bool = False) -> Plan:
    backup = BaseBackup(Path("/b.tar.gz"), Layout.PLAIN_TARBALL, "x", 0, "000000010000000000000001", 0,
                        datetime(2026, 1, 25, tzinfo=UTC), 1, 15, 1, 1)
    return Plan("pitr", env, None, Path("/d"), backup, Path("/wal"), "directory",
                Target(TargetKind.TIME, time=datetime(2026, 1, 25, 14, 30, tzinfo=UTC)), CLOCK.now(),
                pause_at_target=pause)


def test_a_restored_copy_never_archives_and_listens_where_its_environment_says() -> None:
    env = Environment(name="staging", host="/run/staging", port=5433)
    settings = recovery_settings(_plan("staging"), env, "cp /wal/%f %p")
    assert settings["archive_mode"] == "off" and settings["archive_command"] == ""
    assert settings["port"] == "5433" and settings["unix_socket_directories"] == "/run/staging"
    assert settings["listen_addresses"] == ""
    assert settings["recovery_target_time"].startswith("2026-01-25 14:30:00")
    # A standby asked to promote at once: it pauses at the target only to promote there without a checkpoint,
    # and never streams from an upstream the backup may name.
    assert signal_file(_plan("staging")) == "standby.signal" and settings["recovery_target_action"] == "pause"
    assert settings["primary_conninfo"] == "" and settings["primary_slot_name"] == ""


def test_production_keeps_its_archiving_and_pause_at_target_pauses() -> None:
    env = Environment(name="production", host="127.0.0.1", port=5432)
    settings = recovery_settings(_plan("production", pause=True), env, "cp /wal/%f %p")
    assert "archive_mode" not in settings and settings["listen_addresses"] == "127.0.0.1"
    assert settings["recovery_target_action"] == "pause"
    assert signal_file(_plan("production", pause=True)) == "recovery.signal"
