"""TUI fixtures: a frozen clock, a small config in a temp folder, journals written by hand, and a fixed
inventory for the wizard's snapshots (the Pilot walk-through uses a real sandbox instead)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot

from drtui.core import events as ev
from drtui.core.clock import FrozenClock
from drtui.core.config import Config, load_config
from drtui.core.journal import Journal
from drtui.core.models import BaseBackup, Layout, WalCoverage, Window
from drtui.tui.run_state import TITLES
from drtui.tui.screens.result import ResultScreen
from drtui.tui.screens.run import RunScreen

T0 = datetime(2026, 1, 25, 14, 30, tzinfo=UTC)
PITR_STEPS = ["preflight", "extract", "stage_wal", "write_recovery", "stop_postgres", "preserve", "swap_in",
              "start_postgres", "follow_recovery", "verify"]


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots show times in UTC and in the local zone: make the local zone UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0 + timedelta(minutes=12))


def write_config(folder: Path, staging_app_env: str = "staging", production_host: str | None = None) -> Config:
    """A config in `folder`; production's server lives at `production_host` (a socket folder) when given."""
    (folder / "wal_archive").mkdir(parents=True, exist_ok=True)
    (folder / "staging").mkdir(exist_ok=True)
    (folder / "staging" / ".env").write_text(f"APP_ENV={staging_app_env}\n")
    text = """
backup_dir = "backups"
wal_archive = "wal_archive"
wal_sync_heartbeat = "ops/state/wal_sync_last_ok.txt"
report_dir = "ops/drill-reports"
state_dir = "ops/state/drtui"

[environments.production]
data_dir = "production/data"
port = 5432
server_log = "logs/production.log"

[environments.staging]
data_dir = "staging/data"
port = 5433
env_file = "staging/.env"
"""
    if production_host:
        text = text.replace("port = 5432\n", f'port = 5432\nhost = "{production_host}"\n')
    (folder / "drtui.toml").write_text(text)
    return load_config(str(folder / "drtui.toml"), environ={})


@pytest.fixture
def config(open_tmp: Path) -> Config:
    return write_config(open_tmp)


def write_run(config: Config, run_id: str = "20260125T143000Z-pitr", *, ok: bool | None = True,
              lines: int = 40, pid: int = 0) -> Path:
    """A journal of a PITR run: finished well, failed at follow_recovery, or (ok=None) still running."""
    from drtui.core.journal import journal_path

    path = journal_path(config.state_dir, run_id)
    journal = Journal(path)
    at = T0
    journal.append(ev.RunStarted(at, run_id, "pitr", "production", steps=PITR_STEPS, pid=pid,
                                 plan={"predicted_seconds": 900.0}))
    durations = [2, 95, 4, 1, 6, 1, 1, 5, 180, 12]
    for step, seconds in zip(PITR_STEPS, durations, strict=True):
        journal.append(ev.StepStarted(at, step, TITLES["pitr"][step]))
        if step == "extract":
            journal.append(ev.StepProgressed(at, step, 3.2e9, 3.2e9, "bytes"))
        if step == "follow_recovery":
            journal.append(ev.StepProgressed(at, step, 0x5000000, 0x9000000, "lsn", {"start": 0x3000000}))
            journal.append(ev.StepLogged(at, step, [f"LOG:  restored log file \"0000000100000000000000{i:02X}\" "
                                                    "from archive" for i in range(lines)], source="server"))
            if ok is None:
                journal.close()
                return path
            if not ok:
                journal.append(ev.StepFailed(at, step, 30.0, "recovery ended before the target time",
                                             "the WAL archive ends earlier; sync it and retry"))
                journal.append(ev.RunFinished(at + timedelta(minutes=5), False, None, None,
                                              {"preserved": "/srv/pg/main.pre_pitr_20260125T143000Z"}))
                journal.close()
                return path
        at += timedelta(seconds=seconds)
        journal.append(ev.StepFinished(at, step, float(seconds)))
    for name, outcome, detail in (("readyz", "passed", "200, migrations current"),
                                  ("row_counts", "passed", "bookings 181, clients 60"),
                                  ("recovered_time", "passed", "last commit 14:21:07 UTC"),
                                  ("uploads", "skipped", "no uploads archive")):
        journal.append(ev.CheckCompleted(at, name, outcome, detail,
                                         {"rpo_seconds": 53.0} if name == "recovered_time" else {}))
    journal.append(ev.RunFinished(at, True, (at - T0).total_seconds(), "2026-01-25 14:21:07+00",
                                  {"report": "/srv/ops/drill-reports/pitr-20260125T143000Z.md"}))
    journal.close()
    return path


@dataclass
class FixedInventory:
    """Three base backups, one of them unusable, over an archive with a gap: the wizard's snapshot world."""

    base_backups: list[BaseBackup]
    windows: list[Window]
    wal: WalCoverage
    problems: list = field(default_factory=list)
    dumps: list = field(default_factory=list)


def fixed_inventory(folder: Path) -> FixedInventory:
    def backup(hours_ago: float, name: str, size: int) -> BaseBackup:
        start = T0 - timedelta(hours=hours_ago)
        return BaseBackup(folder / "backups" / name, Layout.TAR_STREAM, name, 0x3000028, "000000010000000000000003",
                          0x3000060, start, 1, 15, size, size // 3, stop_time=start + timedelta(seconds=20))

    backups = [backup(2, "basebackup_20260125T123000Z.tar.gz", 3_400_000_000),
               backup(8, "basebackup_20260125T063000Z.tar.gz", 3_300_000_000),
               backup(14, "basebackup_20260125T003000Z.tar.gz", 3_100_000_000)]
    base = (T0 - timedelta(hours=15)).timestamp()
    segnos = [n for n in range(3, 60) if not 20 <= n < 26]
    coverage = WalCoverage(folder / "wal_archive", "directory", segments={1: segnos},
                           archived_at={1: [base + (n - 3) * 960 for n in segnos]})
    latest = datetime.fromtimestamp(coverage.archived_at[1][-1], UTC)
    windows = [Window(backups[0].path, backups[0].stop_time, latest, "waldump", 1),
               Window(backups[1].path, backups[1].stop_time, latest, "waldump", 1),
               Window(backups[2].path, None, None, "unknown", 1,
                      reason="the WAL from 000000010000000000000014 to …019 is missing")]
    return FixedInventory(backups, windows, coverage)


@pytest.fixture
def inventory(open_tmp: Path) -> Iterator[FixedInventory]:
    yield fixed_inventory(open_tmp)


async def until(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 240) -> None:
    """Let the app run until `predicate` holds (a screen shown, a worker's result arrived); on a timeout the
    assertion shows the screen the app is stuck on."""
    from tests.textdump import screen_text

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"stuck on {pilot.app.screen}:\n{screen_text(pilot.app)}"
        await pilot.pause(0.02)


async def run_ended(pilot: Pilot) -> RunScreen:
    """Once the run screen is shown, wait on its journal follower, the worker that returns when it has read the
    run's RunFinished, then let the screen handle what the worker posted. Returns the run screen."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, RunScreen))
    run = app.screen
    assert isinstance(run, RunScreen)
    await pilot.pause()  # mounted: its follower has started (a finished worker leaves app.workers)
    for follower in [worker for worker in app.workers if worker.node is run and worker.group == "journal"]:
        await follower.wait()
    await pilot.pause()
    assert run.view.finished is not None, "the journal follower ended before the run did"
    return run


async def open_result(pilot: Pilot) -> ResultScreen:
    """From a run screen whose run has ended, its result (r)."""
    app = pilot.app
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, ResultScreen))
    result = app.screen
    assert isinstance(result, ResultScreen)
    return result


async def walk_to_result(pilot: Pilot) -> tuple[RunScreen, ResultScreen]:
    """From a screen whose ctrl+g starts a run (review, drill) to the run's result: wait for the run's end on
    its worker, check that it went well, then open its result. The run screen is returned to read its view."""
    from tests.textdump import screen_text

    await pilot.press("ctrl+g")
    run = await run_ended(pilot)
    assert run.view.ok, screen_text(pilot.app)
    return run, await open_result(pilot)


class Notifications(list):
    """The toasts an app raised, collected from its messages: pass `hook` as run_test's message_hook."""

    def hook(self, message: Message) -> None:
        if isinstance(message, Notify):
            self.append(message.notification)

    def said(self) -> str:
        return " ".join(f"{note.title} {note.message}" for note in self)


def write_drill_run(config: Config, run_id: str = "20260125T143000Z-drill-staging-1") -> Path:
    """A journal of a drill that passed: pre-restore checks of the starting point, the restore, the drill's own
    checks, and a RunFinished whose summary nests the RPO and names the report the drill wrote."""
    from drtui.core.journal import journal_path

    path = journal_path(config.state_dir, run_id)
    journal = Journal(path)
    steps = ["pre_health", "marker", "backup", "plan", *PITR_STEPS, "integrity", "smoke"]
    journal.append(ev.RunStarted(T0, run_id, "drill", "staging", steps=steps, pid=0, plan={"journey": "drill"}))
    at = T0
    for step in steps:
        journal.append(ev.StepStarted(at, step, step.replace("_", " ").capitalize()))
        if step == "pre_health":
            for name in ("postgres_connect", "readyz"):
                journal.append(ev.CheckCompleted(at, name, "passed", "before the restore", {"phase": "pre"}))
        at += timedelta(seconds=3)
        journal.append(ev.StepFinished(at, step, 3.0))
    for name, outcome, detail in (("readyz", "passed", "HTTP 200, migrations current"),
                                  ("drill_marker", "passed", "marker found, as expected"),
                                  ("record_counts", "passed", "restored bookings=181 = source at the target"),
                                  ("smoke_tests", "skipped", "no smoke_command configured for staging")):
        journal.append(ev.CheckCompleted(at, name, outcome, detail, {"phase": "post"}))
    journal.append(ev.RunFinished(at, True, 42.0, "2026-01-25 14:30:20+00", {
        "rto_seconds": 42.0, "rpo": {"rpo_seconds": 9.0},
        "report": str(config.report_dir / "pitr_drill_20260125T143000Z.md")}))
    journal.close()
    return path
