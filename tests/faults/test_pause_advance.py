"""Pause, advance and promote never strand a server: a target past the WAL is refused before anything moves, a
recovery that ends early during an advance comes back paused, and a server that is down, crashed or not in
recovery is named as such, with what to do.

One production history for the module: base backup, row A, restore point `p1`, WAL switch, row B, WAL switch,
row C, WAL switch. Each case first restores staging paused at `p1` (A in, B not)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.events import RunFinished
from drtui.core.journal import list_runs, read_events
from drtui.core.postgres import connect, query
from drtui.core.recovery_conf import PREFETCH_SPOOL
from drtui.sandbox import Insert, Sandbox
from tests.conftest import Result
from tests.faults.conftest import FaultWorld, Sentinel, assert_message, leftovers


@dataclass
class History:
    world: FaultWorld
    a: Insert
    b: Insert
    c: Insert
    segment_of_a: str  # holds A and p1
    segment_of_b: str

    @property
    def sandbox(self) -> Sandbox:
        return self.world.sandbox

    def pause_at_p1(self) -> None:
        done = self.world.restore_staging_pitr("--target-name", "p1", "--pause-at-target")
        assert done.exit_code == 0, done.output
        assert self.paused() and self.ids() == {self.a.id}
        self.world.before()

    def ids(self) -> set[int]:
        wanted = (self.a.id, self.b.id, self.c.id)
        return {row[0] for row in query(self.sandbox.env("staging"), "select id from bookings where id = any(%s)",
                                        (list(wanted),))}

    def paused(self) -> bool:
        rows = query(self.sandbox.env("staging"), "select pg_is_in_recovery() and "
                     "pg_get_wal_replay_pause_state() = 'paused'")
        return rows == [(True,)]

    def replayed_to(self) -> datetime:
        return query(self.sandbox.env("staging"), "select pg_last_xact_replay_timestamp()")[0][0]

    def postmaster_pid(self) -> int:
        return int((self.sandbox.env("staging").data_dir / "postmaster.pid").read_text().split("\n", 1)[0])

    def advance(self, *args: str) -> Result:
        return self.world.drtui("restore", "advance", "--env", "staging", *args)

    def journals(self) -> list[Path]:
        return list_runs(self.sandbox.config().state_dir)


@pytest.fixture(scope="module")
def history() -> Iterator[History]:
    with Sandbox() as sandbox:
        config, prod, clock = sandbox.config(), sandbox.env("production"), SystemClock()
        base = backup.base(config, prod, clock).artifacts[0].path
        a = sandbox.insert("bookings")
        with connect(prod) as conn:
            conn.execute("select pg_create_restore_point('p1')")
            segment_of_a = conn.execute("select pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
        assert sandbox.switch_wal() == segment_of_a
        time.sleep(0.2)
        b = sandbox.insert("bookings")
        with connect(prod) as conn:
            segment_of_b = conn.execute("select pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
        segment = sandbox.switch_wal()
        assert segment == segment_of_b
        time.sleep(0.2)
        c = sandbox.insert("bookings")
        sandbox.switch_wal()
        world = FaultWorld(sandbox, base, [a, b, c], Sentinel.plant(sandbox, "staging"))
        yield History(world, a, b, c, segment_of_a, segment_of_b)


def test_an_advance_past_the_end_of_the_wal_is_refused_before_anything_moves(history: History) -> None:
    history.pause_at_p1()
    pid, was, journals = history.postmaster_pid(), history.replayed_to(), history.journals()
    beyond = history.c.committed_at + timedelta(hours=1)
    done = history.advance("--target-time", beyond.isoformat())
    assert_message(done, "after the last recoverable moment", "window", "sync the WAL archive",
                   "nothing was touched", "still paused", code=2)
    assert beyond.strftime("%Y-%m-%d") in done.output
    # the server was never restarted: the same postmaster, still paused where it was
    assert history.postmaster_pid() == pid
    assert history.paused() and history.replayed_to() == was and history.ids() == {history.a.id}
    assert history.journals() == journals  # a refusal leaves no journal
    history.world.unchanged()
    assert leftovers(history.sandbox) == []


@contextlib.contextmanager
def _damaged_for_the_server(history: History, name: str) -> Iterator[None]:
    """A segment whose first record is damaged in the archive (its size, mode and page header intact, so the
    inventory and the window check still see it whole), and the copy the paused restore fetched into pg_wal
    gone: replay ends early there. The archive's bytes are put back afterwards, and the damaged copy fetched."""
    data_dir = history.sandbox.env("staging").data_dir

    def forget_the_fetched_copy() -> None:
        (data_dir / "pg_wal" / name).unlink(missing_ok=True)
        (data_dir / PREFETCH_SPOOL / f"{name}.ok").unlink(missing_ok=True)

    forget_the_fetched_copy()
    archived = history.sandbox.wal_archive / name
    original = archived.read_bytes()
    with archived.open("r+b") as handle:
        handle.seek(61)  # inside the CRC of the segment's first record
        handle.write(b"\xff\xff")
    try:
        yield
    finally:
        archived.write_bytes(original)
        forget_the_fetched_copy()  # the damaged copy replay fetched, so the good one is fetched next time


def test_an_advance_whose_recovery_ends_early_is_back_paused_at_the_previous_target(history: History) -> None:
    history.pause_at_p1()
    was = history.replayed_to()
    target = history.b.committed_at + (history.c.committed_at - history.b.committed_at) / 2
    with _damaged_for_the_server(history, history.segment_of_b):
        done = history.advance("--target-time", target.isoformat())
    assert_message(done, "recovery ended before", history.segment_of_b, "back, paused at",
                   "no transaction after the previous target", "put the missing WAL back", "advance again",
                   code=1)
    assert history.paused() and history.replayed_to() == was and history.ids() == {history.a.id}
    events = read_events(history.journals()[0])
    assert events[0].journey == "advance" and isinstance(events[-1], RunFinished) and not events[-1].ok
    history.world.unchanged()
    assert leftovers(history.sandbox) == []

    # with the segment readable again the same paused recovery goes on to the target
    again = history.advance("--target-time", target.isoformat())
    assert again.exit_code == 0, again.output
    assert history.paused() and history.ids() == {history.a.id, history.b.id}


def test_an_advance_that_cannot_come_back_says_why_and_what_to_do(history: History) -> None:
    """The WAL up to the paused point itself goes missing: PostgreSQL cannot replay to the new target nor back
    to the old one. The server is down mid-recovery, and the message says so, why, and what to do."""
    history.pause_at_p1()
    with _damaged_for_the_server(history, history.segment_of_a):
        done = history.advance("--target-time", history.b.committed_at.isoformat())
    assert_message(done, "could not be brought back paused at its previous target", history.segment_of_a,
                   "not running: it was stopped in the middle of a recovery", "put the missing WAL back",
                   "pg_ctl start", "drtui rollback --env staging", code=1)
    promoted = history.world.drtui("restore", "promote", "--env", "staging")
    assert_message(promoted, "stopped in the middle of a recovery", code=2)
    history.world.unchanged()
    assert leftovers(history.sandbox) == []

    # with the WAL back, the hint's command brings it back paused at p1
    history.sandbox.server("staging").start()
    deadline = time.monotonic() + 30
    while not history.paused() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert history.paused() and history.ids() == {history.a.id}


def test_an_advance_the_server_cannot_start_for_names_its_error_not_missing_wal(history: History) -> None:
    """A start-up error of the server's own (here a broken postgresql.conf; in life, the programs of another
    major version) is not blamed on missing WAL: the message gives the FATAL line and says to fix it."""
    history.pause_at_p1()
    conf = history.sandbox.env("staging").data_dir / "postgresql.conf"
    original = conf.read_text()
    conf.write_text(original + "\nno_such_setting_anywhere = 1\n")
    try:
        done = history.advance("--target-time", history.b.committed_at.isoformat())
    finally:
        conf.write_text(original)
    assert_message(done, "did not come up with", "configuration file", "contains errors",
                   "could not be brought back paused", "fix what the server log's FATAL line names", code=1)
    assert "missing WAL" not in done.output and "WAL ran out" not in done.output, done.output
    history.sandbox.server("staging").start()  # the file mended: it comes back paused at its previous target
    deadline = time.monotonic() + 30
    while not history.paused() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert history.paused() and history.ids() == {history.a.id}
    history.world.unchanged()
    assert leftovers(history.sandbox) == []


def test_an_advance_to_a_restore_point_the_wal_lacks_pauses_at_the_end_of_the_wal(history: History) -> None:
    """A restore point cannot be checked against a window: recovery replays the whole WAL looking for it and
    ends; the server is started again paused at the last record, with everything replayed so far."""
    history.pause_at_p1()
    done = history.advance("--target-name", "no_such_point")
    assert_message(done, "recovery ended before restore point 'no_such_point' was reached", "back, paused at",
                   "advance again", "or promote here", code=1)
    assert history.paused() and history.ids() == {history.a.id, history.b.id, history.c.id}
    history.world.unchanged()
    assert leftovers(history.sandbox) == []


def _children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _kill_postmaster(pid: int) -> None:
    """A crash: SIGKILL to the postmaster, then wait until its children have noticed and exited."""
    children = _children(pid)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{child}").exists() for child in children) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_server_that_crashed_while_paused_is_named_as_crashed_and_the_hint_brings_it_back(
        history: History) -> None:
    history.pause_at_p1()
    _kill_postmaster(history.postmaster_pid())
    journals = history.journals()
    data_dir = str(history.sandbox.env("staging").data_dir)
    promoted = history.world.drtui("restore", "promote", "--env", "staging")
    assert_message(promoted, "not running", "stopped unexpectedly", "half-recovered", "pg_ctl start", data_dir,
                   "drtui rollback --env staging", code=2)
    assert "nothing to promote" not in promoted.output
    advanced = history.advance("--target-time", history.b.committed_at.isoformat())
    assert_message(advanced, "stopped unexpectedly", "pg_ctl start", code=2)
    shown = history.world.drtui("status", "--json")
    recovery = {r["environment"]: r for r in json.loads(shown.stdout)["recovery"]}
    assert recovery["staging"]["state"] == "crashed" and "pg_ctl start" in recovery["staging"]["next"]
    assert history.journals() == journals

    history.sandbox.server("staging").start()  # what the hint says: pg_ctl start on the data directory
    deadline = time.monotonic() + 30
    while not history.paused() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert history.paused() and history.ids() == {history.a.id}
    shown = history.world.drtui("status")
    assert shown.exit_code == 0, shown.output
    assert "staging: running, paused in recovery at LSN" in shown.stdout
    assert "drtui restore promote --env staging" in shown.stdout
    assert "drtui restore advance --env staging" in shown.stdout
    history.world.unchanged()
    assert leftovers(history.sandbox) == []


def test_promote_says_not_in_recovery_or_not_running_and_what_to_do(history: History) -> None:
    history.pause_at_p1()
    staging = history.sandbox.server("staging")
    moved = history.advance("--recovery-target", "latest")
    assert moved.exit_code == 0, moved.output  # now out of recovery
    promoted = history.world.drtui("restore", "promote", "--env", "staging")
    assert_message(promoted, "running and not in recovery", "nothing to promote", "drtui verify --env staging",
                   code=2)
    staging.stop()
    try:
        down = history.world.drtui("restore", "promote", "--env", "staging")
        assert_message(down, "not running, and not in recovery", "nothing to promote", code=2)
    finally:
        staging.start()
    assert leftovers(history.sandbox) == []
