"""`drtui backup expire` on both kinds of repository: real base backups, dumps and WAL of the shared sandbox's
production, made at chosen times into folders (and a bucket) of the test's own; the dry run and the real run
agree, the WAL a kept backup needs stays, a backup a running restore names stays."""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from drtui.cli import main
from drtui.core import backup, inventory
from drtui.core.clock import FrozenClock, SystemClock
from drtui.core.config import Config, load_config
from drtui.core.inventory.basebackup import read_base_backup
from drtui.core.journal import journal_path
from drtui.core.lock import EnvLock
from drtui.core.postgres import chown_to
from drtui.sandbox import Sandbox
from tests.conftest import Result
from tests.s3world import S3World

NOW = datetime.now(UTC).replace(microsecond=0)
OLD, NEW = NOW - timedelta(days=10), NOW - timedelta(hours=1)


@pytest.fixture(scope="module")
def made(shared_sandbox: Sandbox) -> Iterator[Path]:
    """Real backups made once for the module: a base backup and a dump ten days old and an hour old, WAL
    between them and after (backups/ and wal/, copied by each test)."""
    with _folder(shared_sandbox) as folder:
        config = site_config(shared_sandbox, folder)
        env = config.environment("production")
        for moment in (OLD, NEW):
            shared_sandbox.insert()
            shared_sandbox.switch_wal()
            backup.base(config, env, FrozenClock(moment))
            backup.dump(config, env, FrozenClock(moment))
        shared_sandbox.insert()
        shared_sandbox.switch_wal()
        for path in shared_sandbox.wal_archive.iterdir():
            shutil.copy2(path, folder / "wal" / path.name)
        yield folder


@pytest.fixture
def site(shared_sandbox: Sandbox, made: Path) -> Iterator[Path]:
    """A folder of the test's own for backup_dir, the WAL archive, state and staging's data_dir, holding a copy
    of the module's backups and WAL."""
    with _folder(shared_sandbox) as folder:
        for part in ("backups", "wal"):
            shutil.copytree(made / part, folder / part)
        for path in (folder / "wal").iterdir():
            chown_to(path, shared_sandbox.os_user)  # as the archiver left them: the restore user reads them
        yield folder


@contextlib.contextmanager
def _folder(sandbox: Sandbox) -> Iterator[Path]:
    folder = sandbox.root / f"expire-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        sandbox.root.joinpath(f"{folder.name}.toml").unlink(missing_ok=True)


def site_config(sandbox: Sandbox, site: Path, bucket: str | None = None) -> Config:
    text = sandbox.config_path.read_text()
    for key, value in (("backup_dir", "backups"), ("wal_archive", "wal"), ("state_dir", "state"),
                       ("wal_sync_heartbeat", "wal_sync_last_ok.txt")):
        old = next(line for line in text.splitlines() if line.startswith(f"{key} = "))
        text = text.replace(old, f'{key} = "{site.name}/{value}"')
    text = text.replace('data_dir = "staging/data"', f'data_dir = "{site.name}/staging/data"')
    if bucket:
        text += f'\n[repository]\nurl = "s3://{bucket}/prod/"\n'
    path = sandbox.root / f"{site.name}.toml"
    path.write_text(text)
    site.joinpath("wal").mkdir(exist_ok=True)
    site.joinpath("backups").mkdir(exist_ok=True)
    return load_config(str(path))


def expire(config: Config, *args: str) -> Result:
    done = CliRunner().invoke(main, ["--config", str(config.path), "backup", "expire", *args])
    if done.exception and not isinstance(done.exception, SystemExit):
        raise done.exception
    return Result(done.exit_code, done.stdout, done.stderr)


def test_expire_on_a_folder_repository(shared_sandbox: Sandbox, site: Path) -> None:
    config = site_config(shared_sandbox, site)
    preserved = [site / "staging" / f"data.pre_pitr_{stamp}" for stamp in ("20260101T000000Z", "20991231T000000Z")]
    for path in preserved:
        (path / "base").mkdir(parents=True)
    files_before = site_files(site)
    old_base = backup.newest(config.backup_dir, "basebackup_", ".tar.gz").with_name(
        f"basebackup_{OLD:%Y%m%dT%H%M%SZ}.tar.gz")
    wal_before = set(os_names(site / "wal"))

    newest = backup.newest(config.backup_dir, "basebackup_", ".tar.gz")
    window = inventory.scan(config).window_for(newest)
    assert window.usable and window.cut_by_gap is None
    dry = expire(config, "--keep", "1", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert site_files(site) == files_before  # a dry run touches nothing
    gone = {Path(location).name for item in planned["removed"] for location in item["locations"]}
    stamp_old = f"{OLD:%Y%m%dT%H%M%SZ}"
    assert gone == {f"basebackup_{stamp_old}.tar.gz", f"cleaning_{stamp_old}.sql.gz", f"uploads_{stamp_old}.tar.gz",
                    "data.pre_pitr_20260101T000000Z"}
    new_base = backup.newest(config.backup_dir, "basebackup_", ".tar.gz")
    floor = read_base_backup(new_base).start_wal_file
    assert planned["wal_floor"] == floor
    below = {name for name in wal_before if len(name) >= 24 and name[8:24] < floor[8:24]}
    assert below and {Path(p).name for p in planned["wal_removed"]} == below
    assert read_base_backup(old_base).start_wal_file in below  # the removed backup's WAL goes with it

    # a running restore of staging names the old base backup: it stays, and so does staging's preserved copy
    lock = EnvLock(config.state_dir, "staging")
    lock.acquire("run-in-progress", SystemClock())
    journal = journal_path(config.state_dir, "run-in-progress")
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps({"kind": "run_started", "plan": {"base_backup": {"path": str(old_base)}}}) + "\n")
    try:
        busy = json.loads(expire(config, "--keep", "1", "--dry-run", "--json").stdout)
    finally:
        lock.release()
    whys = {Path(item["locations"][0]).name: item["why"] for item in busy["kept"]}
    assert whys[old_base.name] == "in use by run run-in-progress"
    assert whys["data.pre_pitr_20260101T000000Z"] == "a run holds environment staging"
    assert busy["wal_floor"] == read_base_backup(old_base).start_wal_file

    plain = expire(config, "--keep", "1", "--dry-run").stdout
    assert f"would remove {old_base} (not one of the newest 1)" in plain
    assert f"would remove {len(below)} WAL files; WAL from {floor} on (the oldest kept base backup's start)" in plain
    days = json.loads(expire(config, "--keep-days", "2", "--dry-run", "--json").stdout)
    assert {Path(loc).name for item in days["removed"] for loc in item["locations"]} == gone

    real = expire(config, "--keep", "1", "--json")
    assert real.exit_code == 0, real.output
    done = json.loads(real.stdout)
    assert done["dry_run"] is False
    assert {k: v for k, v in done.items() if k != "dry_run"} == {k: v for k, v in planned.items() if k != "dry_run"}
    assert not old_base.exists() and new_base.exists() and not preserved[0].exists() and preserved[1].exists()
    assert set(os_names(site / "wal")) == wal_before - below
    assert all(name[8:24] >= floor[8:24] or name.endswith(".history") for name in os_names(site / "wal"))
    after = inventory.scan(config).window_for(newest)  # the kept backup still reaches as far as before
    assert (after.usable, after.earliest, after.latest, after.last_segment, after.cut_by_gap) == \
        (True, window.earliest, window.latest, window.last_segment, None)
    again = json.loads(expire(config, "--keep", "1", "--json").stdout)
    assert again["removed"] == [] and again["wal_removed"] == []

    refused = expire(config)
    assert refused.exit_code == 2 and "say what to keep" in refused.stderr


def site_files(site: Path) -> list[Path]:
    """Every file and folder of the site but state_dir (expire's own lock lives there)."""
    return sorted(p.relative_to(site) for p in site.rglob("*") if p.relative_to(site).parts[0] != "state")


def os_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_expire_on_an_s3_repository(shared_sandbox: Sandbox, made: Path, site: Path, s3: S3World) -> None:
    bucket = s3.bucket()
    config = site_config(shared_sandbox, site, bucket)
    for path in (site / "backups").iterdir():  # the module's real backups, as `backup base` would store them
        if not path.name.startswith("LAST_"):
            s3.client().upload_file(str(path), bucket, f"prod/backups/{path.name}")
    shutil.rmtree(site / "backups")
    backup.wal_sync(config, SystemClock())
    keys_before = s3.keys(bucket)
    stamp_old = f"{OLD:%Y%m%dT%H%M%SZ}"
    assert f"prod/backups/basebackup_{stamp_old}.tar.gz" in keys_before

    dry = json.loads(expire(config, "--keep", "1", "--dry-run", "--json").stdout)
    assert s3.keys(bucket) == keys_before
    gone = {location for item in dry["removed"] for location in item["locations"]}
    assert gone == {f"s3://{bucket}/prod/backups/{name}" for name in (
        f"basebackup_{stamp_old}.tar.gz", f"cleaning_{stamp_old}.sql.gz", f"uploads_{stamp_old}.tar.gz")}
    floor = dry["wal_floor"]
    below = {key for key in keys_before if key.startswith("prod/wal/") and key[len("prod/wal/"):][8:24] < floor[8:24]
             and not key.endswith(".history")}
    assert below and {url.split("/", 3)[3] for url in dry["wal_removed"]} == below

    real = expire(config, "--keep", "1", "--json")
    assert real.exit_code == 0, real.output
    done = json.loads(real.stdout)
    assert {k: v for k, v in done.items() if k != "dry_run"} == {k: v for k, v in dry.items() if k != "dry_run"}
    assert set(s3.keys(bucket)) == set(keys_before) - below - {url.split("/", 3)[3] for url in gone}
    assert os_names(site / "wal") == os_names(made / "wal")  # the local archive is not the repository's


def drtui_json(config: Config, *args: str) -> dict:
    done = CliRunner().invoke(main, ["--config", str(config.path), *args, "--json"])
    if done.exception and not isinstance(done.exception, SystemExit):
        raise done.exception
    return json.loads(done.stdout)


def with_retention(config: Config, table: str) -> Config:
    assert config.path is not None
    config.path.write_text(config.path.read_text() + f"\n[retention]\n{table}\n")
    return load_config(str(config.path))


def on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in [path, *path.rglob("*")] if p.is_file())


def test_status_shows_the_repository_size_and_what_the_retention_would_remove(shared_sandbox: Sandbox,
                                                                               site: Path) -> None:
    config = with_retention(site_config(shared_sandbox, site), "keep = 1")
    planned = drtui_json(config, "backup", "expire", "--dry-run")  # no --keep: the config's [retention]
    assert planned == {**drtui_json(config, "backup", "expire", "--keep", "1", "--dry-run")}
    files = {p: p.stat().st_size for folder in ("backups", "wal") for p in (site / folder).iterdir()}
    before = site_files(site)

    usage = drtui_json(config, "status")["repository_usage"]
    assert site_files(site) == before  # the preview removes nothing
    assert usage["total_bytes"] == sum(files.values())
    assert usage["wal_bytes"] == sum(size for p, size in files.items() if p.parent.name == "wal")
    assert usage["base_backups_bytes"] == sum(size for p, size in files.items() if p.name.startswith("basebackup_"))
    assert usage["dumps_bytes"] == sum(size for p, size in files.items()
                                       if p.name.startswith(("cleaning_", "uploads_")))
    preview = usage["retention"]
    assert preview["keep"] == 1 and preview["would_remove"] == planned["removed"]
    assert preview["wal_would_remove"] == len(planned["wal_removed"]) > 0
    stamp_old = f"{OLD:%Y%m%dT%H%M%SZ}"
    going = [Path(loc) for item in planned["removed"] for loc in item["locations"]] + \
        [Path(loc) for loc in planned["wal_removed"]]
    assert {p.name for p in going if p.parent.name == "backups"} == {
        f"basebackup_{stamp_old}.tar.gz", f"cleaning_{stamp_old}.sql.gz", f"uploads_{stamp_old}.tar.gz"}
    assert preview["would_remove_bytes"] == sum(on_disk(p) for p in going)

    done = CliRunner().invoke(main, ["--config", str(config.path), "status"])
    text = done.stdout.split("Repository: ", 1)[1]
    assert text.splitlines()[1].startswith("  retention (keep 1): `drtui backup expire` would remove 2 backup(s) and "
                                           f"{len(planned['wal_removed'])} WAL file(s), ")
    assert f"    basebackup_{stamp_old}.tar.gz (not one of the newest 1)" in text
    assert f"    cleaning_{stamp_old}.sql.gz, uploads_{stamp_old}.tar.gz (not one of the newest 1)" in text

    none = drtui_json(site_config(shared_sandbox, site), "status")["repository_usage"]
    assert none["retention"] is None and none["total_bytes"] == usage["total_bytes"]


def test_status_sizes_an_s3_repository_from_its_listing(shared_sandbox: Sandbox, site: Path, s3: S3World) -> None:
    bucket = s3.bucket()
    config = with_retention(site_config(shared_sandbox, site, bucket), "keep = 1\nkeep_days = 2")
    for path in (site / "backups").iterdir():
        if not path.name.startswith("LAST_"):
            s3.client().upload_file(str(path), bucket, f"prod/backups/{path.name}")
    backup.wal_sync(config, SystemClock())
    stored = s3.keys(bucket, "prod/")
    usage = drtui_json(config, "status")["repository_usage"]
    assert usage["total_bytes"] == sum(size for key, size in stored.items() if not key.startswith("prod/heartbeats/"))
    assert usage["wal_bytes"] == sum(size for key, size in stored.items() if key.startswith("prod/wal/"))
    planned = drtui_json(config, "backup", "expire", "--dry-run")
    assert usage["retention"]["would_remove"] == planned["removed"] and planned["removed"]
    going = [loc for item in planned["removed"] for loc in item["locations"]] + planned["wal_removed"]
    assert usage["retention"]["would_remove_bytes"] == sum(stored[loc.split("/", 3)[3]] for loc in going)
    assert s3.keys(bucket, "prod/") == stored
