"""An SVG snapshot of every screen, with a frozen clock, a fixed folder and a fixed inventory.
Update them on purpose: `pytest tests/tui/test_snapshots.py --snapshot-update`."""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import Input

from drtui.core.clock import FrozenClock
from drtui.core.config import Config, load_config
from drtui.core.planning import Target, TargetKind, backup_choices
from drtui.tui.app import DrApp
from drtui.tui.screens.choose_target import ChooseTargetScreen
from drtui.tui.screens.pick_backup import PickBackupScreen
from drtui.tui.screens.result import ResultScreen
from drtui.tui.screens.review import ReviewScreen
from drtui.tui.screens.run import RunScreen
from drtui.tui.screens.status import StatusScreen
from tests.textdump import screen_text
from tests.tui.conftest import T0, fixed_inventory, open_result, run_ended, write_config, write_run

FOLDER = Path("/tmp/drtui-snapshots")
PROBES = {"pg_version": 15, "free_bytes": 50 * 1024**3}


@pytest.fixture
def world() -> Iterator[tuple[Config, FrozenClock]]:
    """The fixed folder the snapshots show, held under a lock: two test runs on one machine take turns."""
    with open(f"{FOLDER}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(FOLDER, ignore_errors=True)
        FOLDER.mkdir(mode=0o755)
        try:
            yield write_config(FOLDER), FrozenClock(T0 + timedelta(minutes=12))
        finally:
            shutil.rmtree(FOLDER, ignore_errors=True)


async def settle(pilot, until=lambda app: True, timeout: float = 60) -> None:
    """Wait until the screen shows what the snapshot is of (a loaded machine can take seconds), then a beat."""
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause(0.02)
        if until(pilot.app):
            break
        assert time.monotonic() < deadline, f"the screen never got ready: {pilot.app.screen}"
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.pause(0.05)


def push(screen_factory, until=lambda app: True):
    async def run_before(pilot) -> None:
        await settle(pilot, lambda app: app.screen.__class__.__name__ == "HomeScreen")
        pilot.app.push_screen(screen_factory(pilot.app))
        await settle(pilot, until)
    return run_before


def heartbeats_read(app) -> bool:
    return "never" in str(app.screen.query_one("#heartbeats").render())


def test_home(world, snap_compare) -> None:
    config, clock = world
    assert snap_compare(DrApp(config, clock), run_before=lambda pilot: settle(pilot, heartbeats_read))


def status_read(app) -> bool:
    return isinstance(app.screen, StatusScreen) and bool(app.screen.checks)


def status_config() -> Config:
    """Production at a socket folder where no server can answer, whatever the machine runs on 5432."""
    return write_config(FOLDER, production_host=str(FOLDER / "no-server"))


def test_status(world, snap_compare) -> None:
    config, clock = status_config(), world[1]
    app = DrApp(config, clock, start="status")
    assert snap_compare(app, run_before=lambda pilot: settle(pilot, status_read))


def test_status_80x24_with_backups(world, snap_compare) -> None:
    """Heartbeats of every kind, a drill overdue, no base backup, production not answering."""
    config, clock = status_config(), world[1]
    now = clock.now()
    beats = {FOLDER / "backups" / "LAST_SUCCESS.txt": now - timedelta(hours=2),
             FOLDER / "backups" / "LAST_BASEBACKUP.txt": now - timedelta(hours=23),
             FOLDER / "ops" / "state" / "wal_sync_last_ok.txt": now - timedelta(minutes=14)}
    for path, moment in beats.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(moment.strftime("%Y-%m-%dT%H:%M:%SZ\n"))
    app = DrApp(config, clock, start="status")
    assert snap_compare(app, terminal_size=(80, 24), run_before=lambda pilot: settle(pilot, status_read))


def test_status_wide(world, snap_compare) -> None:
    """Two dumps on disk and [retention] keep = 1: the repository's size and what expire would remove."""
    clock = world[1]
    path = status_config().path
    assert path is not None
    path.write_text(path.read_text() + "\n[retention]\nkeep = 1\n")
    (FOLDER / "backups").mkdir(exist_ok=True)
    for stamp, dump_bytes in (("20260124T030000Z", 40_000), ("20260125T030000Z", 41_000)):
        (FOLDER / "backups" / f"cleaning_{stamp}.sql.gz").write_bytes(b"d" * dump_bytes)
        (FOLDER / "backups" / f"uploads_{stamp}.tar.gz").write_bytes(b"u" * 2_000)
    config = load_config(str(path), environ={})
    assert config.retention is not None
    app = DrApp(config, clock, start="status")
    assert snap_compare(app, terminal_size=(140, 30), run_before=lambda pilot: settle(pilot, status_read))


def test_pick_backup(world, snap_compare) -> None:
    config, clock = world
    inventory = fixed_inventory(FOLDER)
    assert snap_compare(DrApp(config, clock), run_before=push(lambda app: PickBackupScreen(inventory, "production")))


def test_pick_dump(world, snap_compare) -> None:
    from drtui.core.models import Artifact
    from drtui.tui.screens.pick_dump import PickDumpScreen

    config, clock = world
    dumps = [Artifact(FOLDER / "backups" / f"cleaning_20260125T{h:02d}0000Z.sql.gz", "dump", 41_000_000 - h * 1000,
                      T0.replace(hour=h, minute=0)) for h in (14, 2)]
    assert snap_compare(DrApp(config, clock), run_before=push(lambda app: PickDumpScreen(dumps, "staging")))


def test_choose_target_reachable(world, snap_compare) -> None:
    config, clock = world
    inventory = fixed_inventory(FOLDER)
    assert snap_compare(DrApp(config, clock), press=[*"2026-01-25 13:45:00 UTC"],
                        run_before=push(lambda app: ChooseTargetScreen(inventory, backup_choices(inventory)[0])))


def test_choose_target_outside_the_window(world, snap_compare) -> None:
    config, clock = world
    inventory = fixed_inventory(FOLDER)
    assert snap_compare(DrApp(config, clock), press=[*"3 hours ago"],
                        run_before=push(lambda app: ChooseTargetScreen(inventory, backup_choices(inventory)[0])))


def _review(config: Config, env: str, target: Target):
    inventory = fixed_inventory(FOLDER)
    chosen = backup_choices(inventory)[0]
    return push(lambda app: ReviewScreen.pitr(app, inventory, chosen, target, config.environment(env)),
                lambda app: app.screen.plan is not None or "refused" in screen_text(app))


TARGET = Target(TargetKind.TIME, time=T0 - timedelta(minutes=40))


def test_review_production(world, snap_compare) -> None:
    config, clock = world
    assert snap_compare(DrApp(config, clock, plan_probes=PROBES), terminal_size=(80, 30),
                        run_before=_review(config, "production", TARGET))


def test_review_refused_gate(world, snap_compare) -> None:
    config, clock = world
    config = write_config(FOLDER, staging_app_env="prod")
    assert snap_compare(DrApp(config, clock, plan_probes=PROBES), terminal_size=(80, 30),
                        run_before=_review(config, "staging", TARGET))


def test_review_refused_plan(world, snap_compare) -> None:
    config, clock = world
    too_late = Target(TargetKind.TIME, time=T0 + timedelta(hours=1))
    assert snap_compare(DrApp(config, clock, plan_probes=PROBES), run_before=_review(config, "production", too_late))


def _run(journal: Path, result: bool = False):
    async def run_before(pilot) -> None:
        await settle(pilot, lambda app: isinstance(app.screen, RunScreen) and app.screen.view.log_lines > 0
                     and (app.screen.view.finished is not None or app.screen.view.replay is not None))
        if result:
            await pilot.press("r")
            await settle(pilot, lambda app: isinstance(app.screen, ResultScreen))
        pilot.app.clear_notifications()
        await pilot.pause(0.05)
    return run_before


def test_run_in_progress(world, snap_compare) -> None:
    config, clock = world
    journal = write_run(config, "20260125T143000Z-pitr", ok=None)
    assert snap_compare(DrApp(config, clock, start=journal), run_before=_run(journal))


def test_run_failed(world, snap_compare) -> None:
    config, clock = world
    journal = write_run(config, "20260125T143000Z-pitr", ok=False)
    assert snap_compare(DrApp(config, clock, start=journal), run_before=_run(journal))


def test_result_recovered(world, snap_compare) -> None:
    config, clock = world
    journal = write_run(config, "20260125T143000Z-pitr", ok=True)
    assert snap_compare(DrApp(config, clock, start=journal), terminal_size=(80, 30),
                        run_before=_run(journal, result=True))


def test_result_failed(world, snap_compare) -> None:
    config, clock = world
    journal = write_run(config, "20260125T143000Z-pitr", ok=False)
    assert snap_compare(DrApp(config, clock, start=journal), terminal_size=(80, 30),
                        run_before=_run(journal, result=True))


def test_drill(world, snap_compare) -> None:
    config, clock = world
    assert snap_compare(DrApp(config, clock), terminal_size=(100, 34), run_before=_drill())


def test_drill_refused(world, snap_compare) -> None:
    config, clock = world
    config = write_config(FOLDER, staging_app_env="prod")
    assert snap_compare(DrApp(config, clock), terminal_size=(100, 34), run_before=_drill())


def _drill():
    """The drill screen with a fixed operator (the default is the OS user, which differs between hosts)."""
    from drtui.tui.screens.drill import DrillScreen

    gates_read = push(lambda app: DrillScreen(),
                      lambda app: bool(app.screen.gates))

    async def run_before(pilot) -> None:
        await gates_read(pilot)
        pilot.app.screen.query_one("#operator", Input).value = "Ada Operator"
        await settle(pilot)
    return run_before


def test_result_drill(world, snap_compare) -> None:
    from tests.tui.conftest import write_drill_run

    config, clock = world
    journal = write_drill_run(config)
    assert snap_compare(DrApp(config, clock, start=journal), terminal_size=(90, 30),
                        run_before=_run_finished())


def _run_finished():
    async def run_before(pilot) -> None:
        await run_ended(pilot)
        await open_result(pilot)
        await settle(pilot)
        pilot.app.clear_notifications()
        await pilot.pause(0.05)
    return run_before


# 80×24, a first-class size: every screen usable there, no status word, step name or gate cut.
SMALL = (80, 24)


def test_home_80x24(world, snap_compare) -> None:
    config, clock = world
    assert snap_compare(DrApp(config, clock), terminal_size=SMALL,
                        run_before=lambda pilot: settle(pilot, heartbeats_read))


def test_pick_backup_80x24(world, snap_compare) -> None:
    config, clock = world
    inventory = fixed_inventory(FOLDER)
    assert snap_compare(DrApp(config, clock), terminal_size=SMALL,
                        run_before=push(lambda app: PickBackupScreen(inventory, "production")))


def test_choose_target_another_backup_80x24(world, snap_compare) -> None:
    """A target before the chosen backup that the next one reaches: ctrl+b is offered, in the wizard's words."""
    config, clock = world
    inventory = fixed_inventory(FOLDER)
    assert snap_compare(DrApp(config, clock), terminal_size=SMALL, press=[*"3 hours ago"],
                        run_before=push(lambda app: ChooseTargetScreen(inventory, backup_choices(inventory)[0])))


def test_choose_target_realistic_archive_80x24(world, snap_compare) -> None:
    """Four days, four base backups, a gap, a second timeline and the archive three hours behind now."""
    from tests.tui.test_screens_live_and_plain import realistic_inventory

    config, clock = world
    inventory = realistic_inventory(FOLDER, clock.now())
    assert snap_compare(DrApp(config, clock), terminal_size=SMALL, press=[*"30 hours ago"],
                        run_before=push(lambda app: ChooseTargetScreen(inventory, backup_choices(inventory)[1])))


def test_review_production_80x24(world, snap_compare) -> None:
    config, clock = world
    assert snap_compare(DrApp(config, clock, plan_probes=PROBES), terminal_size=SMALL,
                        run_before=_review(config, "production", TARGET))


def test_run_in_progress_80x24(world, snap_compare) -> None:
    config, clock = world
    journal = write_run(config, "20260125T143000Z-pitr", ok=None)
    assert snap_compare(DrApp(config, clock, start=journal), terminal_size=SMALL, run_before=_run(journal))


def test_run_failed_80x24(world, snap_compare) -> None:
    config, clock = world
    journal = write_run(config, "20260125T143000Z-pitr", ok=False)
    assert snap_compare(DrApp(config, clock, start=journal), terminal_size=SMALL, run_before=_run(journal))


def test_result_failed_80x24(world, snap_compare) -> None:
    config, clock = world
    journal = write_run(config, "20260125T143000Z-pitr", ok=False)
    assert snap_compare(DrApp(config, clock, start=journal), terminal_size=SMALL,
                        run_before=_run(journal, result=True))


def test_result_recovered_80x24(world, snap_compare) -> None:
    config, clock = world
    journal = write_run(config, "20260125T143000Z-pitr", ok=True)
    assert snap_compare(DrApp(config, clock, start=journal), terminal_size=SMALL,
                        run_before=_run(journal, result=True))
