"""`drtui status`: heartbeat states and the monitoring-plugin exit codes, through the real console program."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import run_drtui

CONFIG = """backup_dir = "backups"
wal_archive = "wal_archive"
wal_sync_heartbeat = "ops/state/wal_sync_last_ok.txt"
report_dir = "reports"
state_dir = "ops/state/drtui"

[environments.production]
pg_bin = "/usr/lib/postgresql/15/bin"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "drtui.toml").write_text(CONFIG)
    (tmp_path / "backups").mkdir()
    (tmp_path / "wal_archive").mkdir()
    (tmp_path / "ops" / "state").mkdir(parents=True)
    return tmp_path


def _beat(path: Path, age: timedelta | None = None, text: str | None = None) -> None:
    if text is None:
        assert age is not None
        text = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%SZ\n")
    path.write_text(text)


def _set(site: Path, dump: timedelta | str | None, base: timedelta | str | None, wal: timedelta | str | None) -> None:
    for value, path in ((dump, site / "backups" / "LAST_SUCCESS.txt"), (base, site / "backups" / "LAST_BASEBACKUP.txt"),
                        (wal, site / "ops" / "state" / "wal_sync_last_ok.txt")):
        if value is None:
            path.unlink(missing_ok=True)
        elif isinstance(value, str):
            _beat(path, text=value)
        else:
            _beat(path, value)


HEARTBEATS_ONLY = ("--only", "dump_age,basebackup_age,wal_sync_age")  # one monitoring service per check
H = timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.mark.parametrize(("dump", "base", "wal", "code", "summary"), [
    (2 * H, 3 * H, 2 * M, 0, "DRTUI OK - dump ok (2h); base backup ok (3h); WAL sync ok (2m)"),
    (2 * H, 22 * H, 2 * M, 1, "DRTUI WARNING - base backup aging (22h, limit 26h); dump ok (2h); WAL sync ok (2m)"),
    (2 * H, 3 * H, 9 * M, 1, "DRTUI WARNING - WAL sync aging (9m, limit 10m); dump ok (2h); base backup ok (3h)"),
    (2 * H, 27 * H, 2 * M, 2, "DRTUI CRITICAL - base backup stale (27h, limit 26h); dump ok (2h); WAL sync ok (2m)"),
    (2 * H, 3 * H, None, 2, "DRTUI CRITICAL - WAL sync missing (wal_sync_last_ok.txt); dump ok (2h); "
                            "base backup ok (3h)"),
    ("not a time at all\n", 3 * H, 2 * M, 3, "DRTUI UNKNOWN - dump unreadable (not a timestamp: "
                                             "'not a time at all'); base backup ok (3h); WAL sync ok (2m)"),
    ("", 22 * H, 2 * M, 3, "DRTUI UNKNOWN - dump unreadable (the file is empty); base backup aging"),
    ("garbage", 27 * H, 2 * M, 2, "DRTUI CRITICAL - base backup stale (27h, limit 26h); dump unreadable"),
    (2 * H, 3 * H, 10 * M + 30 * timedelta(seconds=1), 2,
     "DRTUI CRITICAL - WAL sync stale (10m3"),
])
def test_check_exit_codes_and_summary_line(site: Path, dump, base, wal, code: int, summary: str) -> None:
    _set(site, dump, base, wal)
    result = run_drtui("status", "--check", *HEARTBEATS_ONLY, config=site / "drtui.toml")
    assert result.exit_code == code, result.output
    assert result.stdout.splitlines()[0].startswith(summary)
    assert "Traceback" not in result.output

    as_json = run_drtui("status", "--check", "--json", *HEARTBEATS_ONLY, config=site / "drtui.toml")
    assert as_json.exit_code == code
    data = json.loads(as_json.stdout)
    assert data["code"] == code and data["summary"].startswith(summary)
    states = {h["name"]: h for h in data["heartbeats"]}
    assert set(states) == {"dump", "base backup", "WAL sync"}
    assert states["base backup"]["limit_seconds"] == 26 * 3600 and states["WAL sync"]["limit_seconds"] == 600
    if wal is None:
        assert states["WAL sync"]["state"] == "missing" and states["WAL sync"]["level"] == "CRITICAL"
    if isinstance(dump, str):
        assert states["dump"]["state"] == "unreadable" and states["dump"]["level"] == "UNKNOWN"


def test_plain_status_shows_states_backups_and_window_and_exits_zero(site: Path) -> None:
    _set(site, 2 * H, 27 * H, None)
    (site / "backups" / "cleaning_20260125T143000Z.sql.gz").write_bytes(b"x")
    result = run_drtui("status", config=site / "drtui.toml")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Heartbeats"
    assert any(line.split()[:3] == ["base", "backup", "STALE"] for line in lines)
    assert any(line.split()[:3] == ["WAL", "sync", "MISSING"] for line in lines)
    assert "dump:        cleaning_20260125T143000Z.sql.gz" in result.stdout
    assert "none: no base backup" in result.stdout

    data = json.loads(run_drtui("status", "--json", config=site / "drtui.toml").stdout)
    assert data["newest"]["dump"]["file"].endswith("cleaning_20260125T143000Z.sql.gz")
    assert data["newest"]["base_backup"] is None and data["window"] is None
    assert [h["state"] for h in data["heartbeats"]] == ["ok", "stale", "missing"]


def test_unreadable_things_are_lines_not_tracebacks(site: Path) -> None:
    _set(site, 2 * H, 3 * H, 2 * M)
    (site / "backups" / "LAST_SUCCESS.txt").unlink()
    (site / "backups" / "LAST_SUCCESS.txt").mkdir()  # a folder where the heartbeat file should be
    (site / "wal_archive").rmdir()
    result = run_drtui("status", config=site / "drtui.toml")
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.stdout and "a folder, not a file" in result.stdout
    assert "Traceback" not in result.output
    check = run_drtui("status", "--check", *HEARTBEATS_ONLY, config=site / "drtui.toml")
    assert check.exit_code == 3 and check.stdout.startswith("DRTUI UNKNOWN - dump unreadable (a folder, not a file)")

    missing_config = run_drtui("status", "--check", config=site / "nope.toml")
    assert missing_config.exit_code == 3 and missing_config.stdout.startswith("DRTUI UNKNOWN - ")
    (site / "backups").rename(site / "elsewhere")
    gone = run_drtui("status", config=site / "drtui.toml")
    assert gone.exit_code == 0 and "backup_dir does not exist" in gone.stdout


def test_the_retention_preview_says_why_it_cannot_be_made_and_the_rest_stands(site: Path) -> None:
    from drtui.core.clock import SystemClock
    from drtui.core.config import load_config
    from drtui.core.lock import EnvLock

    _set(site, 2 * H, 3 * H, 2 * M)
    (site / "drtui.toml").write_text(CONFIG + "\n[retention]\nkeep = 1\n")
    for stamp, size in (("20260124T030000Z", 3000), ("20260125T030000Z", 5000)):
        (site / "backups" / f"cleaning_{stamp}.sql.gz").write_bytes(b"d" * size)
    heartbeats = sum(p.stat().st_size for p in (site / "backups").glob("LAST_*"))
    usage = json.loads(run_drtui("status", "--json", config=site / "drtui.toml").stdout)["repository_usage"]
    assert (usage["dumps_bytes"], usage["other_bytes"], usage["total_bytes"]) == (8000, heartbeats, 8000 + heartbeats)
    assert [Path(loc).name for item in usage["retention"]["would_remove"] for loc in item["locations"]] == [
        "cleaning_20260124T030000Z.sql.gz"]
    assert usage["retention"]["would_remove_bytes"] == 3000

    lock = EnvLock(load_config(str(site / "drtui.toml")).state_dir, "production")
    lock.acquire("run-without-journal", SystemClock())  # held by this live process, its journal missing
    try:
        busy = run_drtui("status", "--json", config=site / "drtui.toml")
        text = run_drtui("status", config=site / "drtui.toml")
    finally:
        lock.release()
    assert busy.exit_code == 0, busy.output
    data = json.loads(busy.stdout)["repository_usage"]
    assert data["retention"] is None and data["dumps_bytes"] == 8000
    assert data["error"].startswith("the retention preview: environment 'production' is busy")
    assert "  cannot tell: the retention preview: environment 'production' is busy" in text.stdout
    assert "Checks" in text.stdout and "Traceback" not in text.output
