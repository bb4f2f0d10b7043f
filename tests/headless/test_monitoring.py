"""`drtui status --check` as a monitoring plugin (perfdata, -w/-c, one service per check, UNKNOWN on errors),
`drills --check`, the Prometheus textfile and a fleet of configs, through the real console program."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import run_drtui
from tests.headless.test_status import CONFIG, H, M, _set

HEARTBEATS = ("--only", "dump_age,basebackup_age,wal_sync_age")


def make_site(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "drtui.toml").write_text(CONFIG)
    for sub in ("backups", "wal_archive", "ops/state", "reports"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return folder


def drill_record(site: Path, age: timedelta, result: str = "PASS") -> None:
    when = datetime.now(UTC) - age
    (site / "reports" / f"pitr_drill_{when:%Y%m%dT%H%M%SZ}.md").write_text(
        f"# PITR drill\n\nDate (UTC): {when:%Y-%m-%d %H:%M:%S}\n\n**Result: {result}**\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return make_site(tmp_path / "site")


def test_perfdata_follows_the_summary_with_the_limits(site: Path) -> None:
    _set(site, 2 * H, 3 * H, 2 * M)
    result = run_drtui("status", "--check", *HEARTBEATS, config=site / "drtui.toml")
    assert result.exit_code == 0, result.output
    words, perfdata = result.stdout.splitlines()[0].split(" | ")
    assert words.startswith("DRTUI OK - ")
    perf = dict(item.split("=") for item in perfdata.split())
    assert perf["'wal_sync_age'"].split(";")[1:] == ["480", "600", "0"]
    assert 119 <= int(perf["'wal_sync_age'"].split(";")[0].rstrip("s")) <= 240  # 2 minutes and the run
    assert perf["'basebackup_age'"].split(";")[1:] == [str(int(26 * 3600 * 0.8)), str(26 * 3600), "0"]


def test_warning_and_critical_thresholds_override_the_config(site: Path) -> None:
    _set(site, 2 * H, 3 * H, 2 * M)
    config = site / "drtui.toml"
    warned = run_drtui("status", "--check", *HEARTBEATS, "-w", "wal_sync_age=1m", config=config)
    assert warned.exit_code == 1 and warned.stdout.startswith("DRTUI WARNING - WAL sync aging (2m, limit 10m)")
    critical = run_drtui("status", "--check", *HEARTBEATS, "-c", "wal_sync_age=90s", config=config)
    assert critical.exit_code == 2 and critical.stdout.startswith("DRTUI CRITICAL - WAL sync stale (2m, limit 1m")
    assert "'wal_sync_age'=" in critical.stdout and ";72;90;0" in critical.stdout
    bad = run_drtui("status", "--check", "-w", "wal_age=1m", config=config)
    assert bad.exit_code == 3 and bad.stdout.startswith("DRTUI UNKNOWN - -w 'wal_age=1m': expected NAME=VALUE")
    bad_plain = run_drtui("status", "-w", "wal_sync_age=soon", config=config)
    assert bad_plain.exit_code == 2 and "'soon' is not a duration" in bad_plain.stderr


def test_every_row_that_is_not_ok_says_what_to_do(site: Path) -> None:
    _set(site, 2 * H, 27 * H, 2 * M)
    result = run_drtui("status", config=site / "drtui.toml")
    assert result.exit_code == 0, result.output
    checks = result.stdout.split("Checks\n", 1)[1].splitlines()
    stale = next(line for line in checks if "basebackup_age" in line)
    assert stale.split()[0] == "CRITICAL" and "→ run `drtui backup base` (cron: 0 2 * * *)" in stale
    ok = next(line for line in checks if "dump_age" in line)
    assert ok.split()[0] == "ok" and "→" not in ok


def test_an_overdue_drill_is_a_warning_for_status_and_drills(site: Path) -> None:
    _set(site, 2 * H, 3 * H, 2 * M)
    config = site / "drtui.toml"
    drill_record(site, timedelta(days=10))
    fresh = run_drtui("status", "--check", "--only", "drill_age", config=config)
    assert fresh.exit_code == 0, fresh.output
    assert run_drtui("drills", "--check", config=config).exit_code == 0
    drill_record(site, timedelta(days=100))
    (sorted((site / "reports").glob("*.md"))[-1]).unlink()  # the 10-day-old record goes: only the old one stays
    overdue = run_drtui("status", "--check", "--only", "drill_age", config=config)
    assert overdue.exit_code == 1 and "overdue (one every 92d)" in overdue.stdout
    drills = run_drtui("drills", "--check", config=config)
    assert drills.exit_code == 1 and drills.stdout.startswith("DRTUI WARNING - last passing drill")
    assert "run `drtui drill` on staging" in drills.stdout
    strict = run_drtui("status", "--check", "--only", "drill_age", "-c", "drill_age=95d", config=config)
    assert strict.exit_code == 2


def test_prometheus_textfile_parses(site: Path) -> None:
    _set(site, 2 * H, 3 * H, 2 * M)
    drill_record(site, timedelta(days=3))
    target = site / "textfile" / "drtui.prom"
    done = run_drtui("status", "--prometheus", str(target), config=site / "drtui.toml")
    assert done.exit_code == 0 and done.stdout == "", done.output
    families = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    ages = {s.labels["heartbeat"]: s.value for s in families["drtui_heartbeat_age_seconds"].samples}
    assert 7190 < ages["dump_age"] < 7300 and 110 < ages["wal_sync_age"] < 200
    limits = {s.labels["heartbeat"]: s.value for s in families["drtui_heartbeat_limit_seconds"].samples}
    assert limits["basebackup_age"] == 26 * 3600
    drill = families["drtui_last_drill_timestamp_seconds"].samples[0]
    assert drill.labels == {"env": "production"}
    assert abs(drill.value - (datetime.now(UTC) - timedelta(days=3)).timestamp()) < 120
    levels = {s.labels["check"]: s.value for s in families["drtui_check_level"].samples}
    assert levels["dump_age"] == 0 and levels["window_lag"] == 2  # no base backup: no window
    assert not list(target.parent.glob("*.tmp*"))
    stored = {s.labels["kind"]: s.value for s in families["drtui_repository_bytes"].samples}
    heartbeats = sum(p.stat().st_size for p in (site / "backups").glob("LAST_*"))
    assert stored == {"base_backups": 0, "dumps": 0, "wal": 0, "other": heartbeats}
    assert not families["drtui_retention_would_remove_bytes"].samples  # no [retention]: no preview

    (site / "drtui.toml").write_text(CONFIG + "\n[retention]\nkeep = 1\n")
    for stamp in ("20260124T030000Z", "20260125T030000Z"):
        (site / "backups" / f"cleaning_{stamp}.sql.gz").write_bytes(b"d" * 700)
    assert run_drtui("status", "--prometheus", str(target), config=site / "drtui.toml").exit_code == 0
    families = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    assert [s.value for s in families["drtui_retention_would_remove_bytes"].samples] == [700]


def test_a_fleet_shows_every_environment_worst_first(tmp_path: Path) -> None:
    healthy, sick = make_site(tmp_path / "a"), make_site(tmp_path / "b")
    _set(healthy, 2 * H, 3 * H, 2 * M)
    _set(sick, 2 * H, 3 * H, None)
    args = ("--config", str(healthy / "drtui.toml"), "--config", str(sick / "drtui.toml"))
    check = run_drtui(*args, "status", "--check", *HEARTBEATS)
    assert check.exit_code == 2, check.output
    first = check.stdout.splitlines()[0]
    assert first.startswith(f"DRTUI CRITICAL - production@{sick / 'drtui.toml'}: WAL sync missing")
    assert f"'production@{healthy / 'drtui.toml'}:wal_sync_age'=" in first
    text = run_drtui(*args, "status", *HEARTBEATS)
    titles = [line for line in text.stdout.splitlines() if line.startswith("== ")]
    assert titles == [f"== production@{sick / 'drtui.toml'}: CRITICAL", f"== production@{healthy / 'drtui.toml'}: OK"]
    data = json.loads(run_drtui(*args, "status", "--json", *HEARTBEATS).stdout)
    assert data["schema"] == 1 and data["level"] == "CRITICAL"
    assert [e["level"] for e in data["environments"]] == ["CRITICAL", "OK"]  # worst first, as the text
    other = run_drtui(*args, "inventory")
    assert other.exit_code == 2 and "only `drtui status` reads a fleet" in other.stderr
    watched = run_drtui(*args, "status", "--watch")  # not the first config alone
    assert watched.exit_code == 2 and "--watch shows one config; 2 given" in watched.stderr


def test_a_fleets_json_is_worst_first_and_stable_within_a_level(tmp_path: Path) -> None:
    sites = [make_site(tmp_path / name) for name in ("ok1", "sick", "ok2", "aging")]
    for site, wal in zip(sites, (2 * M, None, 2 * M, 9 * M), strict=True):
        _set(site, 2 * H, 3 * H, wal)
    args = [arg for site in sites for arg in ("--config", str(site / "drtui.toml"))]
    data = json.loads(run_drtui(*args, "status", "--json", *HEARTBEATS).stdout)
    assert [(e["config"], e["level"]) for e in data["environments"]] == [
        (str(tmp_path / "sick" / "drtui.toml"), "CRITICAL"), (str(tmp_path / "aging" / "drtui.toml"), "WARNING"),
        (str(tmp_path / "ok1" / "drtui.toml"), "OK"), (str(tmp_path / "ok2" / "drtui.toml"), "OK")]
