"""The dump restore into staging (restore_to_staging.sh) against a real sandbox."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.postgres import query
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dump_restore_into_staging_saves_the_current_database_first(sandbox: Sandbox) -> None:
    config, prod = sandbox.config(), sandbox.env("production")
    sandbox.insert("clients")
    made = backup.dump(config, prod, SystemClock())
    dump_file, uploads_archive = (a.path for a in made.artifacts)
    expected = sandbox.counts("production")
    query(sandbox.env("staging"), "insert into clients (id, name, email) values (999999, 'staging only', 'x@y')")
    staging_uploads = sandbox.env("staging").uploads_dir
    (staging_uploads / "staging_only.txt").write_text("staging")

    refused = run_drtui("restore", "staging", config=sandbox.config_path, env={"CONFIRM_STAGING_RESTORE": "YES"})
    assert refused.exit_code == 2 and "TARGET_ENV=staging" in refused.stderr

    done = run_drtui("restore", "staging", "--json", config=sandbox.config_path,
                     env={"TARGET_ENV": "staging", "CONFIRM_STAGING_RESTORE": "YES", "BACKUP_FILE": str(dump_file),
                          "UPLOADS_ARCHIVE": str(uploads_archive)})
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["ok"] and [s["name"] for s in summary["steps"]] == [
        "preflight", "stop_app", "pre_restore_dump", "restore_database", "restore_uploads", "start_app", "verify"]
    assert sandbox.counts("staging") == expected
    assert _files(staging_uploads) == _files(prod.uploads_dir)
    aside = [p for p in staging_uploads.parent.iterdir() if p.name.startswith("uploads.pre_restore_")]
    assert len(aside) == 1 and (aside[0] / "staging_only.txt").read_text() == "staging"
    saved = list((config.state_dir / "pre_restore").glob("cleaning_staging_pre_restore_*.sql.gz"))
    assert len(saved) == 1 and b"staging only" in gzip.decompress(saved[0].read_bytes())
