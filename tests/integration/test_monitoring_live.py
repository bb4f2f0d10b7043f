"""Monitoring against a live sandbox: the WAL archiver failing and recovering, production down, and the window's
lag behind a frozen now."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from drtui.core import backup
from drtui.core.clock import FrozenClock, SystemClock
from drtui.core.inventory import scan
from drtui.core.monitoring import Overrides, RecoverableWindow, window_check
from drtui.core.postgres import connect, query
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui


def _archiver(sandbox: Sandbox) -> tuple:
    return query(sandbox.env("production"), "select failed_count, last_archived_time, last_failed_time "
                                            "from pg_stat_archiver", dbname="postgres")[0]


def _wait(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_failing_archiver_is_critical_then_ok_and_a_dead_database_is_not_reachable() -> None:
    with Sandbox() as sandbox:
        config = sandbox.config_path
        backup.dump(sandbox.config(), sandbox.env("production"), SystemClock())
        ok = run_drtui("status", "--check", "--only", "archiver", config=config)
        assert ok.exit_code == 0, ok.output
        assert "'archiver'=0c;;;0" in ok.stdout

        with connect(sandbox.env("production"), dbname="postgres") as conn:
            conn.execute("alter system set archive_command = 'false'")
            conn.execute("select pg_reload_conf()")
            time.sleep(0.5)
            conn.execute("select pg_switch_wal()")
        _wait(lambda: _archiver(sandbox)[0] > 0)
        failing = run_drtui("status", "--check", "--only", "archiver", config=config)
        assert failing.exit_code == 2, failing.output
        failures = _archiver(sandbox)[0]
        assert failing.stdout.startswith("DRTUI CRITICAL - WAL archiver failing since ")
        count = int(failing.stdout.split("'archiver'=")[1].split("c;")[0])
        assert 1 <= count <= failures + 10 and f"; {count} failures in all)" in failing.stdout

        with connect(sandbox.env("production"), dbname="postgres") as conn:
            conn.execute("alter system reset archive_command")
            conn.execute("select pg_reload_conf()")
        _wait(lambda: (row := _archiver(sandbox))[1] is not None and row[1] > row[2], timeout=90)
        fixed = run_drtui("status", "--check", "--only", "archiver", config=config)
        assert fixed.exit_code == 0 and fixed.stdout.startswith("DRTUI OK - WAL archiver ok: last archived 0000")

        before = json.loads(run_drtui("status", "--json", config=config).stdout)
        sandbox.server("production").stop()
        down = run_drtui("status", "--json", config=config)
        after = json.loads(down.stdout)
        rows = {c["name"]: c for c in after["checks"]}
        assert rows["archiver"]["level"] == "UNKNOWN"
        assert rows["archiver"]["text"].startswith("WAL archiver not reachable: cannot connect to production")
        unchanged = {c["name"]: c["level"] for c in before["checks"] if c["name"] != "archiver"}
        assert {name: rows[name]["level"] for name in unchanged} == unchanged


def test_the_window_lag_is_now_minus_the_last_replayable_commit() -> None:
    with Sandbox(track_commit_timestamp=True) as sandbox:
        config, prod = sandbox.config(), sandbox.env("production")
        backup.base(config, prod, SystemClock())
        with connect(prod) as conn, conn.transaction():
            xid = conn.execute("select txid_current()").fetchone()[0]
            conn.execute("insert into leads (client_id, source) values (1, 'phone')")
        committed = query(prod, "select pg_xact_commit_timestamp(%s::text::xid)", (xid,))[0][0]
        sandbox.switch_wal()
        frozen = FrozenClock(committed + timedelta(minutes=7, seconds=3))
        window = RecoverableWindow.of(scan(config, clock=frozen))
        assert window.last == committed
        check = window_check(window, frozen.now(), timedelta(minutes=5), Overrides())
        assert check.value == 423.0 and check.level.name == "CRITICAL"
        assert "7m behind now (RPO objective 5m)" in check.text
