"""The settings a restored copy replays with (issue 17 point 4): production's base backup and archive restored
into the sandbox's staging environment, read in pg_settings while the copy is paused in recovery and again after
its promotion, when they are the backup's own once more (shared_buffers from the next restart)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.events import StepLogged
from drtui.core.journal import read_events
from drtui.core.postgres import connect, query
from drtui.core.recovery_conf import shared_buffers_bytes
from drtui.sandbox import Insert, Sandbox
from tests.conftest import run_drtui

CONFIRM = {"CONFIRM_PITR_RESTORE": "YES"}
NAMES = ("recovery_prefetch", "maintenance_io_concurrency", "shared_buffers")
TUNED = 'replay_settings = {maintenance_io_concurrency = 64, shared_buffers = "auto"}'
BACKUP_OWN = {"recovery_prefetch": "try", "maintenance_io_concurrency": "7", "shared_buffers": "32MB"}


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Sandbox, Insert, datetime]]:
    """A production whose own postgresql.auto.conf sets maintenance_io_concurrency = 7 (its postgresql.conf
    sets shared_buffers = 32MB; recovery_prefetch is PostgreSQL's default), backed up with one row committed
    after the backup and a target time after it, and a staging environment that replays with
    maintenance_io_concurrency = 64 and shared_buffers sized to the host on top of drtui's default."""
    with Sandbox() as sandbox:
        config, prod = sandbox.config(), sandbox.env("production")
        with connect(prod) as conn:
            conn.execute("alter system set maintenance_io_concurrency = 7")
            conn.execute("select pg_reload_conf()")
        backup.dump(config, prod, SystemClock())  # verify's /healthz/backup wants a dump's heartbeat
        backup.base(config, prod, SystemClock())
        row = sandbox.insert("bookings")
        sandbox.switch_wal()
        time.sleep(0.2)
        after = sandbox.insert("bookings")
        sandbox.switch_wal()
        backup.wal_sync(config, SystemClock())
        text = sandbox.config_path.read_text()
        assert text.count("[environments.staging]\n") == 1
        sandbox.config_path.write_text(text.replace("[environments.staging]\n", "[environments.staging]\n"
                                                    f"{TUNED}\n"))
        yield sandbox, row, row.committed_at + (after.committed_at - row.committed_at) / 2


def restore(sandbox: Sandbox, *args: str):
    return run_drtui("restore", "pitr", "--env", "staging", *args, "--json", config=sandbox.config_path, env=CONFIRM,
                     timeout=180)


def settings(sandbox: Sandbox) -> dict[str, str]:
    return dict(query(sandbox.env("staging"), "select name, current_setting(name) from pg_settings "
                                              "where name = any(%s)", (list(NAMES),)))


def logged(summary: dict, step: str) -> list[str]:
    return [line for e in read_events(Path(summary["journal"])) if isinstance(e, StepLogged) and e.step == step
            for line in e.lines]


def wait_for_reload(sandbox: Sandbox) -> dict[str, str]:
    """pg_reload_conf() signals the postmaster, which rereads the files on its own time: poll (never a timed
    assertion: the deadline only ends a wait that would hang)."""
    deadline = time.monotonic() + 60
    while (now := settings(sandbox))["recovery_prefetch"] != "try" and time.monotonic() < deadline:
        time.sleep(0.1)
    return now


def test_a_paused_copy_replays_tuned_and_runs_with_the_backups_own_settings_after_promotion(world) -> None:
    sandbox, row, target = world
    done = restore(sandbox, "--target-time", target.isoformat(), "--pause-at-target")
    assert done.exit_code == 0, done.output
    during = settings(sandbox)
    assert during["recovery_prefetch"] == "off" and during["maintenance_io_concurrency"] == "64"
    assert shared_buffers_bytes(during["shared_buffers"]) > 32 << 20  # raised to a quarter of the host
    said = " ".join(logged(json.loads(done.stdout), "write_recovery"))
    assert "recovery_prefetch = off (the backup's: not set)" in said
    assert "maintenance_io_concurrency = 64 (the backup's: '7')" in said

    promoted = run_drtui("restore", "promote", "--env", "staging", "--json", config=sandbox.config_path)
    assert promoted.exit_code == 0, promoted.output
    assert row.id in {r[0] for r in query(sandbox.env("staging"), "select id from bookings")}
    after = wait_for_reload(sandbox)
    assert after == {**BACKUP_OWN, "shared_buffers": during["shared_buffers"]}  # that one needs a restart
    said = "\n".join(logged(json.loads(promoted.stdout), "promote"))
    assert "recovery_prefetch back to the backup's own value: PostgreSQL default" in said
    assert "maintenance_io_concurrency back to the backup's own value: 7 (postgresql.auto.conf)" in said
    assert (f"shared_buffers back to the backup's own value: 32MB (postgresql.conf), from the next restart; "
            f"until then the server runs with the replay's {during['shared_buffers']}") in said
    assert query(sandbox.env("staging"), "select pending_restart from pg_settings where name = 'shared_buffers'",
                 ) == [(True,)]

    sandbox.server("staging").stop()
    sandbox.server("staging").start()
    assert settings(sandbox) == BACKUP_OWN


def test_a_promoted_copy_returns_to_the_backups_own_settings_and_tuning_can_be_switched_off(world) -> None:
    sandbox, _, target = world
    done = restore(sandbox, "--recovery-target", "latest")
    assert done.exit_code == 0, done.output
    assert wait_for_reload(sandbox)["maintenance_io_concurrency"] == "7"
    said = "\n".join(logged(json.loads(done.stdout), "follow_recovery"))
    assert "replay tuning ended:" in said and "recovery_prefetch back to the backup's own value" in said

    original = sandbox.config_path.read_text()
    sandbox.config_path.write_text(original.replace(f"{TUNED}\n",
                                                    "replay_tuning = false\n"))
    try:
        done = restore(sandbox, "--target-time", target.isoformat(), "--pause-at-target")
        assert done.exit_code == 0, done.output
        assert settings(sandbox) == BACKUP_OWN  # replayed as backed up
        assert "replay tuning: none" in " ".join(logged(json.loads(done.stdout), "write_recovery"))
        promoted = run_drtui("restore", "promote", "--env", "staging", "--json", config=sandbox.config_path)
        assert promoted.exit_code == 0, promoted.output
        assert "replay tuning ended" not in " ".join(logged(json.loads(promoted.stdout), "promote"))
        assert settings(sandbox) == BACKUP_OWN
    finally:
        sandbox.config_path.write_text(original)
