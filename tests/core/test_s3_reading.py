"""The reading side of an S3 repository that needs no server: locations that round-trip through the plan's
JSON, what the WAL feeder chooses from a listing, and fetch_wal.sh waiting in a folder the feeder fills."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest

from drtui.core.clock import FrozenClock
from drtui.core.extract import STAGED_MARKER
from drtui.core.inventory.basebackup import backup_from_json, backup_to_json
from drtui.core.inventory.remote import Listed
from drtui.core.models import BaseBackup, Layout
from drtui.core.objectstore import S3Url
from drtui.core.planning import Plan, Target, plan_from_json
from drtui.core.recovery_conf import FETCH_FATAL, FETCHER
from drtui.core.walfeed import FEED_FAILED, FEED_LIST, choose, feed_names
from drtui.headless.common import LOCATION

URL = S3Url("prod-backups", "drtui/backups/basebackup_20261201T000000Z.tar.gz")
BACKUP = BaseBackup(URL, Layout.TAR_STREAM, "drtui", start_lsn=(3 << 24) + 0x28, start_wal_file="0" * 7 + "1" + "0" * 15
                    + "3", checkpoint_lsn=(3 << 24) + 0x60, start_time=datetime(2026, 12, 1, tzinfo=UTC), timeline=1,
                    pg_version=15, size_bytes=100, file_size=50)


def test_s3_locations_round_trip_through_the_plan_and_the_cache() -> None:
    clock = FrozenClock(datetime(2026, 12, 1, 12, tzinfo=UTC))
    plan = Plan("pitr", "staging", None, Path("/srv/data"), BACKUP, S3Url("prod-backups", "drtui/wal/"), "s3",
                Target.parse("latest", None, clock), clock.now())
    again = plan_from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan
    assert json.loads(json.dumps(plan.to_json()))["base_backup"]["path"] == str(URL)
    assert backup_from_json(json.loads(json.dumps(backup_to_json(BACKUP)))) == BACKUP


def test_a_url_option_is_kept_whole_and_a_bad_one_refused() -> None:
    assert LOCATION.convert("s3://prod-backups/drtui/wal/", None, None) == S3Url("prod-backups", "drtui/wal/")
    assert LOCATION.convert("backups/x.tar.gz", None, None) == Path("backups/x.tar.gz")
    with pytest.raises(click.BadParameter, match="not a valid bucket name"):
        LOCATION.convert("s3://Bad_Bucket/x", None, None)


def _listed(name: str) -> Listed:
    return Listed(S3Url("prod-backups", f"drtui/wal/{name}"), 16 << 20, '"etag"', 0.0)


def test_the_feeder_takes_history_files_and_the_segments_from_the_backup_on_in_replay_order() -> None:
    names = ["000000010000000000000002", "000000010000000000000003", "000000010000000000000003.00000028.backup",
             "000000010000000000000004.gz", "000000010000000000000005", "00000002.history",
             "000000020000000000000005", "000000020000000000000006", "000000010000000000000004.partial"]
    listing = [_listed(name) for name in names]
    chosen = [o.url.name for o in choose(listing, BACKUP, None)]
    assert chosen == ["000000010000000000000003.00000028.backup", "00000002.history", "000000010000000000000003",
                      "000000010000000000000004.gz", "000000010000000000000005", "000000020000000000000005",
                      "000000020000000000000006"]
    assert [o.url.name for o in choose(listing, BACKUP, 4)][-1] == "000000010000000000000004.gz"


def _fetch(folder: Path, name: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(FETCHER), str(folder), str(16 << 20), "-", "ln", name, f"pg_wal/{name}"],
                          cwd=cwd, capture_output=True, text=True, timeout=30, check=False)


def test_fetch_wal_waits_for_a_file_the_feeder_lists_and_stops_recovery_when_it_failed(tmp_path: Path) -> None:
    data, fed = tmp_path / "data", tmp_path / "fed"
    (data / "pg_wal").mkdir(parents=True)
    fed.mkdir()
    (fed / STAGED_MARKER).write_text("fed\n")
    (fed / FEED_LIST).write_text(f"{os.getpid()}\n00000002.history\n00000003.history\n")
    assert feed_names(fed) == ["00000002.history", "00000003.history"]

    later = threading.Timer(0.5, lambda: (fed / "00000002.history").write_text("1\t0/5000000\tno reason\n"))
    later.start()
    started = time.monotonic()
    done = _fetch(fed, "00000002.history", data)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 0.4  # it waited for the feeder
    assert (data / "pg_wal" / "00000002.history").read_text().startswith("1\t0/5000000")

    unlisted = _fetch(fed, "00000009.history", data)
    assert unlisted.returncode == 1 and not unlisted.stderr  # not in the bucket's listing: the end, at once

    (fed / FEED_FAILED).write_text("could not be fetched from the bucket: HTTP 503 on s3://prod-backups/x\n")
    failed = _fetch(fed, "00000003.history", data)
    assert failed.returncode == FETCH_FATAL and "HTTP 503 on s3://prod-backups/x" in failed.stderr

    (fed / FEED_FAILED).unlink()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (fed / FEED_LIST).write_text(f"{gone.pid}\n00000003.history\n")
    orphaned = _fetch(fed, "00000003.history", data)
    assert orphaned.returncode == FETCH_FATAL and "process feeding WAL from the bucket ended" in orphaned.stderr
