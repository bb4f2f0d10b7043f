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
