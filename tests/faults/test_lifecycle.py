"""The run's lifecycle: signals, kill -9, the lock, and rollback, against real restores run as processes.

A signal case starts `drtui restore pitr` as a process, waits in its journal for a step, signals it, and checks
that the one undo ran to its end: exit 1, the journal ends with RunFinished and says what was undone, staging's
sentinel is back, nothing half-made is left, the WAL source and backups are unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drtui.core.clock import SystemClock
from drtui.core.events import Event, RunFinished, StepFailed, StepLogged, StepStarted
from drtui.core.journal import read_events
from drtui.core.lock import EnvLock
from tests.conftest import RUNBOOK_VARIABLES, Result
from tests.faults.conftest import FaultWorld, assert_message, leftovers, tree_digest

SPREAD_TESTS = True  # every case builds its own world: xdist runs them side by side


@pytest.fixture
def world(fault_world: FaultWorld) -> FaultWorld:
    """A world of the case's own: these cases leave locks, runs and rollbacks behind that the next case must not
    see (they ran on one shared world only by accident of the test scheduling; shared, they interfere)."""
    return fault_world


def wal_source_untouched(world: FaultWorld) -> None:
    """`FaultWorld.unchanged`, except that production may archive its own next segments meanwhile (its
    archive_timeout is 60 s and this world lives for minutes): nothing there changed or went, and nothing was
    added on another timeline (a restored copy archiving would add those)."""
    was, now = world.fingerprints["wal_archive"], tree_digest(world.sandbox.wal_archive)
    assert {name: now.get(name) for name in was} == was
    assert all(name.startswith("00000001") and "." not in name for name in set(now) - set(was)), set(now) - set(was)
    assert tree_digest(world.sandbox.backup_dir) == world.fingerprints["backup_dir"]


@contextlib.contextmanager
def preserved_copy(world: FaultWorld, env: str) -> Iterator[Path]:
    """An (empty) preserved data directory, so that a rollback has something to put back and a refusal is
    about its gate; a case using it must never get past the gate."""
    data_dir = world.sandbox.env(env).data_dir
    copy = data_dir.with_name(f"{data_dir.name}.pre_pitr_20260101T000000Z")
    copy.mkdir()
    try:
        yield copy
    finally:
        copy.rmdir()


def start(world: FaultWorld, *args: str, env: dict[str, str] | None = None, group: bool = False
          ) -> subprocess.Popen:
    """`drtui ARGS` as a process; with `group`, in a process group of its own, as a terminal's job is."""
    environ = {k: v for k, v in os.environ.items() if k not in RUNBOOK_VARIABLES}
    environ |= {"DRTUI_CONFIG": str(world.config), "CONFIRM_PITR_RESTORE": "YES", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "drtui", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=environ, process_group=0 if group else None, preexec_fn=_sigint_default)


def _sigint_default() -> None:
    """Ctrl-C as a terminal delivers it: a suite started in the background (`nohup make test &`) has SIGINT
    ignored, and a child would inherit that and never see the signal these cases send."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_restore(world: FaultWorld, *args: str, group: bool = False) -> subprocess.Popen:
    return start(world, "restore", "pitr", "--env", "staging", "--recovery-target", "latest", *args, group=group)


def journal_of(world: FaultWorld, process: subprocess.Popen) -> Path:
    """The journal whose run-started event names the process (run ids end in a random suffix, not the pid)."""
    for path in (world.sandbox.config().state_dir / "runs").glob("*.jsonl"):
        with path.open() as handle:
            first = handle.readline()
        if first.endswith("\n") and json.loads(first).get("pid") == process.pid:
            return path
    raise FileNotFoundError(f"no journal of process {process.pid} yet")


def wait_for(world: FaultWorld, process: subprocess.Popen, until: Callable[[list[Event]], bool],
             timeout: float = 90) -> list[Event]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended early (exit {process.returncode}): {process.communicate()}"
        try:
            events = read_events(journal_of(world, process))
        except (StopIteration, FileNotFoundError):
            events = []
        if until(events):
            return events
        time.sleep(0.02)
    raise AssertionError("the run never got there")


def started(step: str) -> Callable[[list[Event]], bool]:
    return lambda events: any(isinstance(e, StepStarted) and e.step == step for e in events)


def finish(process: subprocess.Popen, timeout: float = 120) -> Result:
    stdout, stderr = process.communicate(timeout=timeout)
    return Result(process.returncode, stdout, stderr)


def logged(events: list[Event]) -> list[str]:
    return [line for e in events if isinstance(e, StepLogged) for line in e.lines]


SET_ASIDE = (".failed_", ".replaced_", ".interrupted_")


def half_made(world: FaultWorld) -> list[str]:
    """Leftovers other than data directories set aside by name (kept on purpose, never deleted)."""
    return [path for path in leftovers(world.sandbox) if not any(kind in path for kind in SET_ASIDE)]


def assert_fully_undone(world: FaultWorld, result: Result, journal: Path, signal_name: str) -> None:
    assert_message(result, f"interrupted by {signal_name}", "nothing was lost", code=1)
    events = read_events(journal)
    assert isinstance(events[-1], RunFinished) and not events[-1].ok
    lines = logged(events)
    ends = [line for line in lines if line.startswith("undo finished: ")]
    assert len(ends) == 1 and "NOT undone" not in ends[0], lines
    assert world.sentinel.present()
    assert world.sandbox.server("staging").state().value == "running"
    assert half_made(world) == []  # no extraction, no staged WAL, no lock; set-aside copies are named
    wal_source_untouched(world)


@pytest.mark.parametrize("to_group", [False, True], ids=["to-the-process", "to-its-group-like-a-terminal"])
def test_a_double_ctrl_c_during_replay_ends_in_one_full_undo_and_a_journal_that_says_so(
        world: FaultWorld, to_group: bool) -> None:
    process = start_restore(world, group=to_group)

    def interrupt(signum: int) -> None:  # a terminal's Ctrl-C reaches every process of the foreground job
        (os.killpg if to_group else os.kill)(process.pid, signum)

    wait_for(world, process, started("follow_recovery"))
    interrupt(signal.SIGINT)
    # The second Ctrl-C (and a SIGTERM) land while the undo runs: they must not cut it short.
    wait_for(world, process, lambda events: any(isinstance(e, StepFailed) for e in events))
    interrupt(signal.SIGINT)
    interrupt(signal.SIGTERM)
    result = finish(process)
    journal = journal_of(world, process)
    assert_fully_undone(world, result, journal, "SIGINT")
    lines = logged(read_events(journal))
    assert any("undone: renamed" in line and ".pre_pitr_" in line for line in lines), lines  # preserve undone
    assert any(line.startswith("undo finished: undone: ") and "preserve" in line for line in lines), lines
    assert not any(p.name.startswith("data.pre_pitr_") for p in world.sandbox.env("staging").data_dir.parent.iterdir())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_during_extraction_stop_and_undo(world: FaultWorld, signum: signal.Signals) -> None:
    process = start_restore(world)
    wait_for(world, process, started("extract"))
    process.send_signal(signum)
    result = finish(process)
    assert_fully_undone(world, result, journal_of(world, process), signum.name)


def test_sighup_with_the_terminal_gone_still_undoes_and_writes_the_journal_end(world: FaultWorld) -> None:
    """A lost SSH session: SIGHUP, and stdout/stderr lead nowhere (writes fail) while the undo runs."""
    read_end, write_end = os.pipe()
    environ = {k: v for k, v in os.environ.items() if k not in RUNBOOK_VARIABLES}
    environ |= {"DRTUI_CONFIG": str(world.config), "CONFIRM_PITR_RESTORE": "YES"}
    process = subprocess.Popen([sys.executable, "-m", "drtui", "restore", "pitr", "--env", "staging",
                                "--recovery-target", "latest"], stdout=write_end, stderr=write_end, env=environ)
    os.close(write_end)
    reader = os.fdopen(read_end)
    wait_for(world, process, started("follow_recovery"))
    reader.close()  # the terminal is gone: every later write of the run fails (EPIPE)
    process.send_signal(signal.SIGHUP)
    assert process.wait(timeout=120) == 1
    events = read_events(journal_of(world, process))
    assert isinstance(events[-1], RunFinished) and events[-1].summary["error"] == "interrupted by SIGHUP"
    assert world.sentinel.present()
    assert half_made(world) == []
    wal_source_untouched(world)


def test_two_concurrent_restores_the_second_is_refused_naming_the_holder(world: FaultWorld) -> None:
    first = start_restore(world)
    wait_for(world, first, started("extract"))
    runs = sorted(os.listdir(world.sandbox.config().state_dir / "runs"))
    second = world.restore_staging_pitr("--recovery-target", "latest")
    holder = journal_of(world, first).stem
    assert_message(second, "busy", holder, "drtui attach", code=2)
    assert sorted(os.listdir(world.sandbox.config().state_dir / "runs")) == runs  # the refusal left no journal
    first.send_signal(signal.SIGTERM)
    assert_fully_undone(world, finish(first), journal_of(world, first), "SIGTERM")


def test_ctrl_c_on_attach_detaches_and_the_run_goes_on(world: FaultWorld) -> None:
    run = start_restore(world)
    wait_for(world, run, started("extract"))
    run.send_signal(signal.SIGSTOP)  # held, so that it cannot end before the Ctrl-C reaches the attach
    try:
        attach = start(world, "attach", journal_of(world, run).stem)
        assert attach.stdout and select.select([attach.stdout], [], [], 60)[0], "attach printed nothing"
        attach.stdout.readline()  # it is following the run now
        attach.send_signal(signal.SIGINT)
        detached = finish(attach, timeout=30)
    finally:
        run.send_signal(signal.SIGCONT)
    assert_message(detached, "detached", "goes on", f"drtui attach {journal_of(world, run).stem}", code=0)
    assert "Aborted!" not in detached.output
    assert run.poll() is None or run.returncode == 0  # the run was not touched by the detach
    assert finish(run).exit_code == 0, "the restore did not finish"
    assert world.drtui("rollback", "--env", "staging").exit_code == 0
    assert world.sentinel.present()


def test_repeated_rollbacks_the_second_has_nothing_more_to_roll_back(world: FaultWorld) -> None:
    restored = world.restore_staging_pitr("--recovery-target", "latest")
    assert restored.exit_code == 0, restored.output
    assert not world.sentinel.present()  # staging now holds production's data
    first = world.drtui("rollback", "--env", "staging", "--json")
    assert first.exit_code == 0, first.output
    aside = Path(json.loads(first.stdout)["set_aside"])
    assert aside.name.startswith("data.replaced_")  # a successful restore is not called failed
    assert "will set" in first.stderr and "will put" in first.stderr  # said before anything moved
    assert world.sentinel.present()
    second = world.drtui("rollback", "--env", "staging")
    assert_message(second, "nothing (more) to roll back", "pre_pitr", code=2)
    assert world.sentinel.present() and aside.exists()


def test_rollback_of_production_needs_it_named_and_confirmed(world: FaultWorld) -> None:
    data_dir = world.sandbox.env("production").data_dir
    with preserved_copy(world, "production") as preserved:
        before = sorted(os.listdir(data_dir.parent))
        unnamed = world.drtui("rollback")
        assert_message(unnamed, "rolling back production needs the environment named", "--env production", code=2)
        unconfirmed = world.drtui("rollback", "--env", "production")
        assert_message(unconfirmed, "needs a confirmation", f"put {preserved} back", "CONFIRM_ROLLBACK=YES", code=2)
        assert sorted(os.listdir(data_dir.parent)) == before
        assert world.sandbox.server("production").state().value == "running"


def test_a_staging_whose_env_file_says_prod_is_gated_like_production(world: FaultWorld) -> None:
    env_file = world.sandbox.env("staging").env_file
    assert env_file is not None
    original = env_file.read_text()
    env_file.write_text(original + "\nAPP_ENV=prod\n")
    try:
        with preserved_copy(world, "staging"):
            refused = world.drtui("rollback", "--env", "staging")
        assert_message(refused, "APP_ENV=prod", "CONFIRM_ROLLBACK=YES", code=2)
    finally:
        env_file.write_text(original)
    assert world.sentinel.present()


def test_rollback_refuses_while_a_run_holds_the_environment(world: FaultWorld) -> None:
    run = start_restore(world)
    wait_for(world, run, started("extract"))
    run.send_signal(signal.SIGSTOP)  # held mid-extraction while the rollback asks: it cannot end meanwhile
    refused = world.drtui("rollback", "--env", "staging")
    assert_message(refused, "busy", journal_of(world, run).stem, code=2)
    run.send_signal(signal.SIGTERM)
    run.send_signal(signal.SIGCONT)
    assert_fully_undone(world, finish(run), journal_of(world, run), "SIGTERM")


def test_verify_with_the_api_down_is_a_failed_check_not_a_crash(world: FaultWorld) -> None:
    result = world.restore_staging_pitr("--recovery-target", "latest",
                                        env={"API_BASE_URL": "http://127.0.0.1:9"})  # nothing listens there
    # the restored data passed its checks: the hint is to fix the app and check again, never to undo the restore
    assert_message(result, "verification failed", "readyz", "do not roll back", "drtui verify --env staging",
                   code=1)
    assert "Traceback" not in result.output and "drtui rollback" not in result.output
    rolled = world.drtui("rollback", "--env", "staging", "--json")
    assert rolled.exit_code == 0, rolled.output
    assert Path(json.loads(rolled.stdout)["set_aside"]).name.startswith("data.failed_")  # it did fail
    assert world.sentinel.present()


# -- kill -9: a world each, since nothing undoes what the killed run did until rollback ------------------------


def kill_when(world: FaultWorld, until: Callable[[], bool], *args: str) -> Path:
    process = start_restore(world, *args)
    deadline = time.monotonic() + 90
    while not until():
        assert process.poll() is None and time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.005)
    process.kill()
    process.wait()
    return journal_of(world, process)


def siblings(world: FaultWorld, kind: str) -> list[Path]:
    data_dir = world.sandbox.env("staging").data_dir
    return sorted(data_dir.parent.glob(f"{data_dir.name}.{kind}_*"))


def test_kill_9_mid_extraction_is_named_by_status_and_restore_and_undone_by_rollback(
        fault_world: FaultWorld) -> None:
    world = fault_world
    journal = kill_when(world, lambda: bool(siblings(world, "restoring")))
    leftover = siblings(world, "restoring")[0]
    status = world.drtui("status")
    assert_message(status, "Interrupted run", journal.stem, "interrupted", str(leftover),
                   "drtui rollback --env staging", code=0)
    runs = sorted(os.listdir(journal.parent))
    again = world.restore_staging_pitr("--recovery-target", "latest")
    assert_message(again, journal.stem, "interrupted", str(leftover), "drtui rollback --env staging", code=2)
    assert sorted(os.listdir(journal.parent)) == runs  # refused: no journal, nothing touched
    assert leftover.exists() and world.sentinel.present()
    attached = world.drtui("attach", journal.stem)
    assert_message(attached, "interrupted", str(leftover), "drtui rollback --env staging", code=1)

    rolled = world.drtui("rollback", "--env", "staging", "--json")
    assert rolled.exit_code == 0, rolled.output
    summary = json.loads(rolled.stdout)
    assert summary["interrupted_run"] == journal.stem and summary["removed"] == [str(leftover)]
    assert summary["from"] is None  # the data directory was never moved: nothing was put back
    assert world.sentinel.present() and leftovers(world.sandbox) == []
    assert "Interrupted run" not in world.drtui("status").output
    wal_source_untouched(world)


def test_kill_9_during_replay_then_rollback_puts_the_original_back_not_the_half_replayed_copy(
        fault_world: FaultWorld) -> None:
    world = fault_world
    runs = world.sandbox.config().state_dir / "runs"

    def replaying() -> bool:
        return any(started("follow_recovery")(read_events(p)) for p in runs.glob("*.jsonl"))

    journal = kill_when(world, replaying)
    original = siblings(world, "pre_pitr")
    assert len(original) == 1
    again = world.restore_staging_pitr("--recovery-target", "latest")
    assert_message(again, journal.stem, "unfinished restored copy", str(original[0]), "drtui rollback", code=2)
    assert siblings(world, "pre_pitr") == original  # the orphan was not preserved as if it were the data

    rolled = world.drtui("rollback", "--env", "staging", "--json")
    assert rolled.exit_code == 0, rolled.output
    summary = json.loads(rolled.stdout)
    assert summary["from"] == str(original[0]) and Path(summary["set_aside"]).name.startswith("data.interrupted_")
    assert world.sentinel.present()
    assert [Path(p).name.split("_")[0] for p in leftovers(world.sandbox)] == ["data.interrupted"]
    assert_message(world.drtui("rollback", "--env", "staging"), "nothing (more) to roll back", code=2)
    wal_source_untouched(world)


SYSTEM_PYTHON = Path("/usr/bin/python3")  # the test's own interpreter may sit where nobody can run it


@pytest.mark.skipif(os.geteuid() != 0 or not SYSTEM_PYTHON.exists(), reason="needs root and /usr/bin/python3")
def test_a_non_root_user_gets_a_clear_error_not_a_traceback(world: FaultWorld) -> None:
    state = world.sandbox.config().state_dir
    site = next(p for p in sys.path if p.endswith("site-packages"))
    with preserved_copy(world, "staging"):
        done = subprocess.run(["runuser", "-u", "nobody", "--", str(SYSTEM_PYTHON), "-m", "drtui", "rollback",
                               "--env", "staging"], capture_output=True, text=True, timeout=60, check=False,
                              cwd="/tmp", env={"PATH": os.environ["PATH"], "DRTUI_CONFIG": str(world.config),
                                               "HOME": "/tmp", "PYTHONPATH": f"{Path(__file__).parents[2]}:{site}"})
    result = Result(done.returncode, done.stdout, done.stderr)
    assert_message(result, "permission denied", str(state / "locks" / "staging.lock"), "state_dir", code=2)
    assert world.sentinel.present() and half_made(world) == []


RACER = """
import sys, time
from pathlib import Path
from drtui.core.clock import SystemClock
from drtui.core.lock import EnvLock, LockBusy
lock = EnvLock(Path(sys.argv[1]), "staging")
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
try:
    lock.acquire("racer", SystemClock())
except LockBusy:
    print("busy", flush=True)
else:
    print("won", flush=True)
    time.sleep(1.5)
    lock.release()
"""


def test_a_dead_holders_lock_is_taken_over_by_exactly_one_of_many_racers(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "staging.lock"
    lock.parent.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "proc_start": "1", "run_id": "crashed", "started_at": "then"}))
    at = str(time.time() + 2.0)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path), at], stdout=subprocess.PIPE, text=True)
              for _ in range(8)]
    outcomes = sorted(racer.communicate(timeout=60)[0].strip() for racer in racers)
    assert outcomes == ["busy"] * 7 + ["won"]
    assert not lock.exists()  # the winner removed it as it let go


def test_a_killed_holders_lock_is_free_at_once(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path), str(time.time())],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout and holder.stdout.readline().strip() == "won"
    holder.kill()
    holder.wait()
    assert EnvLock(tmp_path, "staging").holder() is None
    assert EnvLock(tmp_path, "staging").acquire("next", SystemClock()).run_id == "next"
