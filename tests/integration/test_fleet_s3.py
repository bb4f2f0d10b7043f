"""A fleet over S3 (issue 15, point 4): two hosts publish their backups, WAL and heartbeats to two prefixes of
one bucket; a terminal that shares nothing with them but the bucket reads both from read-only configs (a
[repository] alone) and shows them worst first, `--check` returning the worst and `--json` naming each."""

from __future__ import annotations

import json
from pathlib import Path

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.config import load_config
from drtui.core.inventory import scan
from drtui.core.monitoring import RecoverableWindow
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui
from tests.s3world import REGION, S3World


def publishing(sandbox: Sandbox, url: str) -> Path:
    """The host's own config with the repository it publishes to."""
    path = sandbox.root / "drtui-fleet.toml"
    path.write_text(sandbox.config_path.read_text() + f'\n[repository]\nurl = "{url}"\n')
    return path


def watching(folder: Path, name: str, url: str, endpoint: str) -> Path:
    """The terminal's read-only config for one host: the repository and nothing of the host's."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(f'[repository]\nurl = "{url}"\nendpoint_url = "{endpoint}"\nregion = "{REGION}"\n')
    return path


def test_one_terminal_shows_two_hosts_from_the_bucket_worst_first(tmp_path: Path, s3: S3World) -> None:
    bucket = s3.bucket()
    healthy_url, sick_url = f"s3://{bucket}/cleaning/", f"s3://{bucket}/shop/"
    clock = SystemClock()
    with Sandbox() as healthy, Sandbox() as sick:
        config = load_config(str(publishing(healthy, healthy_url)), environ={})
        backup.base(config, config.environment(), clock)
        backup.dump(config, config.environment(), clock)
        backup.wal_sync(config, clock)
        own_window = RecoverableWindow.of(scan(config, clock=clock))
        sick_config = load_config(str(publishing(sick, sick_url)), environ={})
        backup.dump(sick_config, sick_config.environment(), clock)  # no base backup, no WAL sync
        assert own_window.last is not None

        terminal = tmp_path / "terminal"  # no path of either host, only the bucket
        args = ["--config", str(watching(terminal, "cleaning", healthy_url, s3.endpoint)),
                "--config", str(watching(terminal, "shop", sick_url, s3.endpoint))]
        lag = ("-c", "window_lag=1d")  # the healthy host's last commit is minutes old, not seconds

        text = run_drtui(*args, "status", *lag, env=s3.env, cwd=terminal)
        assert text.exit_code == 0, text.output
        titles = [line for line in text.stdout.splitlines() if line.startswith("== ")]
        assert titles == [f"== {sick_url}: CRITICAL", f"== {healthy_url}: OK"]
        healthy_part = text.stdout.split(f"== {healthy_url}: OK", 1)[1]
        assert f"{healthy_url}heartbeats/LAST_BASEBACKUP.txt" in healthy_part
        assert "base backup  ok" in healthy_part and "MISSING" not in healthy_part
        assert "  archiver, drill_age: the host's own, not in the repository" in healthy_part

        check = run_drtui(*args, "status", "--check", *lag, env=s3.env, cwd=terminal)
        assert check.exit_code == 2, check.output
        first = check.stdout.splitlines()[0]
        assert first.startswith(f"DRTUI CRITICAL - {sick_url}: ")
        assert f"{sick_url}: base backup missing (LAST_BASEBACKUP.txt)" in first
        assert f"{sick_url}: no recoverable window" in first
        assert f"'{healthy_url}:basebackup_age'=" in first and "archiver" not in first  # a host's own facts

        data = json.loads(run_drtui(*args, "status", "--json", *lag, env=s3.env, cwd=terminal).stdout)
        assert data["level"] == "CRITICAL" and data["code"] == 2
        assert [(e["name"], e["repository"], e["level"]) for e in data["environments"]] == [
            (sick_url, sick_url, "CRITICAL"), (healthy_url, healthy_url, "OK")]
        shop, cleaning = data["environments"]
        assert {h["name"]: h["state"] for h in cleaning["heartbeats"]} == {
            "dump": "ok", "base backup": "ok", "WAL sync": "ok"}
        assert {h["name"]: h["state"] for h in shop["heartbeats"]} == {
            "dump": "ok", "base backup": "missing", "WAL sync": "missing"}
        assert [c["name"] for c in cleaning["checks"]] == ["dump_age", "basebackup_age", "wal_sync_age",
                                                           "window_lag"]
        assert cleaning["recoverable"]["last"] == own_window.last.isoformat().replace("+00:00", "Z")
        assert shop["recoverable"] == {"first": None, "last": None}

        other = run_drtui("--config", args[1], "restore", "pitr", "--dry-run", env=s3.env, cwd=terminal)
        assert other.exit_code == 2 and "a read-only config" in other.stderr
        kept = s3.keys(bucket)
        expire = run_drtui("--config", args[1], "backup", "expire", "--keep", "1", env=s3.env, cwd=terminal)
        assert expire.exit_code == 2 and "removes nothing" in expire.stderr and s3.keys(bucket) == kept
