"""The Status screen's window lines: every backup's own window on the axis of the window across all of them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from drtui.core.monitoring import EnvironmentStatus, RecoverableWindow
from drtui.core.status import Level
from drtui.tui.screens.status import bar, window_lines
from tests.tui.conftest import T0, fixed_inventory


def test_each_backup_gets_a_line_on_the_shared_axis(tmp_path: Path) -> None:
    inventory = fixed_inventory(tmp_path)
    status = EnvironmentStatus("production", [], [], RecoverableWindow.of(inventory), None, None)
    now = T0 + timedelta(minutes=12)
    lines = window_lines(status, inventory, now)
    assert lines[0].startswith("recoverable window  ")
    usable = [w for w in inventory.windows if w.usable]
    assert len(lines) == 1 + len(inventory.base_backups)
    bars = [line for line in lines[1:] if "━" in line]
    assert len(bars) == len(usable)
    assert all(line.count("━") >= 1 for line in bars)


def test_bars_fill_against_the_limit() -> None:
    assert bar(30, 60, Level.OK).plain == "█████░░░░░"
    assert bar(90, 60, Level.CRITICAL).plain == "██████████"
    assert bar(None, 60, Level.UNKNOWN).plain == " " * 10


def test_a_read_only_config_shows_what_the_bucket_holds(tmp_path: Path, s3) -> None:
    """The watching terminal's view: heartbeats from the repository's heartbeats/, no archiver or drill row."""
    import asyncio

    from drtui.core.clock import FrozenClock
    from drtui.core.config import load_config
    from drtui.tui.app import DrApp
    from drtui.tui.screens.status import StatusScreen
    from tests.s3world import REGION
    from tests.textdump import screen_text
    from tests.tui.conftest import until

    bucket = s3.bucket()
    clock = FrozenClock(T0)
    for name, age in (("LAST_SUCCESS.txt", timedelta(hours=2)), ("LAST_BASEBACKUP.txt", timedelta(hours=30)),
                      ("wal_sync_last_ok.txt", timedelta(minutes=1))):
        s3.client().put_object(Bucket=bucket, Key=f"host/heartbeats/{name}",
                               Body=(T0 - age).strftime("%Y-%m-%dT%H:%M:%SZ\n").encode())
    (tmp_path / "watch.toml").write_text(f'[repository]\nurl = "s3://{bucket}/host/"\n'
                                         f'endpoint_url = "{s3.endpoint}"\nregion = "{REGION}"\n')
    config = load_config(str(tmp_path / "watch.toml"), environ={})

    async def scenario() -> str:
        app = DrApp(config, clock, start="status")
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, StatusScreen) and bool(app.screen.checks))
            await pilot.pause(0.1)
            return screen_text(app)

    text = asyncio.run(scenario())
    assert f"status of s3://{bucket}/host/" in text
    assert "dump ok (2h)" in text and "base backup stale (30h, limit 26h)" in text and "WAL sync ok (1m)" in text
    assert "archiver" not in text and "drill_age" not in text
    assert "Repository: 0 Bytes" in text
