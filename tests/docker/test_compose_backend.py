"""The compose backend against a real Docker Engine: PITR, rollback, backups, verify states, clear errors."""

from __future__ import annotations

import gzip
import json
import tarfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from drtui.core.backends.compose import ComposeBackend, ComposeError
from drtui.core.clock import SystemClock, stamp
from drtui.core.extract import extract_base_backup
from drtui.core.inventory.basebackup import read_base_backup
from drtui.sandbox.compose_world import ComposeWorld
from tests.conftest import run_drtui


def backend_of(world: ComposeWorld) -> ComposeBackend:
    return ComposeBackend(world.env(), world.root / "ops/state/drtui")


def verify_text(path: Path) -> bytes:
    with gzip.open(path) as handle:
        return handle.read()


def readyz(world: ComposeWorld) -> int:
    deadline = time.monotonic() + 20
    while True:
        code = httpx.get(f"http://127.0.0.1:{world.api_port}/readyz", timeout=5).status_code
        if code == 200 or time.monotonic() > deadline:
            return code
        time.sleep(0.2)


def test_headless_pitr_between_two_inserts_then_verify_and_rollback(compose_world: ComposeWorld) -> None:
    world = compose_world
    environ = {"DOCKER_HOST": world.base_url}
    for kind in ("base", "dump"):
        assert run_drtui("backup", kind, config=world.config_path, env=environ).exit_code == 0
    before = world.insert()
    time.sleep(0.3)
    after = world.insert()
    world.switch_wal()
    assert run_drtui("backup", "wal-sync", config=world.config_path, env=environ).exit_code == 0
    wal = next(world.config().backup_dir.glob("wal_archive_*.tar.gz"))
    target = before.committed_at + (after.committed_at - before.committed_at) / 2

    done = run_drtui("restore", "pitr", "--env", "production", "--target-time", target.isoformat(),
                     "--wal-archive", str(wal), "--yes", config=world.config_path, env=environ)

    assert done.exit_code == 0, done.output
    assert "recovery stopping before commit" in done.output  # the db container's log, streamed into the run
    # replayed with recovery_prefetch off, returned to the backup's own value once promoted (over TCP, as verify)
    assert "recovery_prefetch back to the backup's own value" in done.output
    ids = world.booking_ids()
    assert before.id in ids
    assert after.id not in ids
    assert readyz(world) == 200
    backend = backend_of(world)
    assert backend.services() == {"db": "running", "api": "running", "web": "running", "jobs": "running"}
    [preserved] = backend.preserved()
    assert preserved.name.startswith(f"{world.data_volume}.pre_pitr_")
    assert not list(backend.staging_root.iterdir())  # the host-side restore and staged WAL are gone

    environ = {"DOCKER_HOST": world.base_url}
    verify = run_drtui("verify", "--env", "production", "--json", config=world.config_path, env=environ)
    checks = {c["name"]: c for c in json.loads(verify.stdout)["checks"]}
    assert checks["compose_services"]["outcome"] == "passed", verify.output
    assert checks["compose_services"]["detail"] == "db, api, web, jobs running"
    assert checks["readyz"]["outcome"] == "passed"

    done = run_drtui("rollback", "--env", "production", "--json", config=world.config_path,
                     env={**environ, "CONFIRM_ROLLBACK": "YES"})
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["from"] == str(preserved)
    assert json.loads(done.stdout)["data_dir"] == world.data_volume
    assert after.id in world.booking_ids()
    assert readyz(world) == 200
    assert any(".replaced_" in v.name for v in world.client.volumes.list(filters={"name": world.data_volume}))


def test_restore_reads_the_live_archive_in_place_then_migrate_and_upload(compose_world: ComposeWorld,
                                                                          open_tmp: Path) -> None:
    world = compose_world
    environ = {"DOCKER_HOST": world.base_url}
    for kind in ("base", "dump"):
        assert run_drtui("backup", kind, config=world.config_path, env=environ).exit_code == 0
    last = world.insert()
    world.switch_wal()

    done = run_drtui("restore", "pitr", "--env", "production", "--recovery-target", "latest", "--yes",
                     config=world.config_path, env=environ)

    assert done.exit_code == 0, done.output
    assert last.id in world.booking_ids()
    backend = backend_of(world)
    pgdata = backend.env.pgdata
    conf = backend.db.exec_run(["cat", f"{pgdata}/postgresql.auto.conf"]).output.decode()
    assert "restore_command = 'cp /wal_archive/%f %p'" in conf  # the db's own mount of the archive, no copy
    assert backend.db.exec_run(["test", "-e", f"{pgdata}/drtui_restore_wal"]).exit_code != 0
    assert backend.migrate() == "UPDATE 1"

    base = next(world.config().backup_dir.glob("basebackup_*.tar.gz"))
    folder = open_tmp / "restored"
    extract_base_backup(read_base_backup(base), folder, "postgres", lambda done, total: None, threading.Event())
    backend.stop_app()
    backend.stop_server()
    kept = backend.preserve(stamp(SystemClock().now()))
    assert kept is not None
    backend.copy_in(folder, "upload")
    backend.start_server()
    assert last.id not in world.booking_ids()  # the base backup's data, brought in by the archive upload
    backend.rollback(kept)
    assert last.id in world.booking_ids()


def test_backup_commands_on_the_stack(compose_world: ComposeWorld) -> None:
    world = compose_world
    config = world.config()
    world.switch_wal()
    environ = {"DOCKER_HOST": world.base_url}
    for kind in ("dump", "base", "wal-sync"):
        done = run_drtui("backup", kind, "--json", config=world.config_path, env=environ)
        assert done.exit_code == 0, done.output
    dump = next(config.backup_dir.glob("cleaning_*.sql.gz"))
    wal = next(config.backup_dir.glob("wal_archive_*.tar.gz"))
    base = next(config.backup_dir.glob("basebackup_*.tar.gz"))
    with tarfile.open(base) as tar:
        assert tar.getnames()[0] == "backup_label"
    assert b"PostgreSQL database dump complete" in verify_text(dump)
    with tarfile.open(wal) as tar:
        names = tar.getnames()
    assert names and all(len(n) == 24 for n in names if not n.endswith((".history", ".backup")))
    assert config.wal_sync_heartbeat.exists()
    assert (config.backup_dir / "LAST_SUCCESS.txt").exists()


def test_errors_change_nothing(compose_world: ComposeWorld, tmp_path: Path) -> None:
    world = compose_world
    environ = {"DOCKER_HOST": world.base_url}
    for kind in ("base", "wal-sync"):
        assert run_drtui("backup", kind, config=world.config_path, env=environ).exit_code == 0
    wal = next(world.config().backup_dir.glob("wal_archive_*.tar.gz"))
    before = world.counts()
    text = world.config_path.read_text()
    cases = {
        "engine down": (text.replace(f'docker_host = "{world.base_url}"',
                                     'docker_host = "unix:///tmp/drtui-no-engine.sock"'),
                        "the Docker engine at unix:///tmp/drtui-no-engine.sock does not answer"),
        "wrong project": (text.replace(f'project = "{world.project}"', 'project = "nosuchproject"'),
                          "no compose project named 'nosuchproject'"),
        "missing volume": (text.replace('backend = "compose"', 'backend = "compose"\ndata_volume = "pg_nothing"'),
                           "no volume 'pg_nothing' in compose project"),
    }
    for name, (config_text, message) in cases.items():
        config = world.root / f"{name.replace(' ', '_')}.toml"
        config.write_text(config_text)
        done = run_drtui("restore", "pitr", "--env", "production", "--recovery-target", "latest",
                         "--wal-archive", str(wal), "--yes", config=config, env={})
        assert done.exit_code != 0, name
        assert message in done.output, (name, done.output)
        assert "Traceback" not in done.output, name
    env = world.env()
    with pytest.raises(ComposeError, match="services: api, db, jobs, web"):
        ComposeBackend(replace(env, db_service="database"), tmp_path).check()
    backend = backend_of(world)
    assert backend.services() == {"db": "running", "api": "running", "web": "running", "jobs": "running"}
    assert world.counts() == before
    assert backend.preserved() == []


def test_drill_from_the_production_stack_into_a_staging_stack(docker_engine: str, pg_image: str) -> None:
    with ComposeWorld(docker_engine, image=pg_image, staging=True) as world:
        environ = {"DOCKER_HOST": world.base_url}
        assert run_drtui("backup", "dump", config=world.config_path, env=environ).exit_code == 0
        production_before = world.counts()

        done = run_drtui("drill", "--env", "staging", "--yes", config=world.config_path, env=environ)

        assert done.exit_code == 0, done.output
        assert "drill of staging from production: PASS" in done.output
        assert "check compose_services: passed (db, api, web, jobs running)" in done.output
        assert "not archiving into the production archive" in done.output
        assert list(world.config().report_dir.glob("pitr_drill_*.md"))
        staging = ComposeBackend(world.env("staging"), world.root / "ops/state/drtui")
        assert [p.name.split(".pre_pitr_")[0] for p in staging.preserved()] == [f"{world.staging_project}_pg_data"]
        assert world.counts()["bookings"] == production_before["bookings"]  # production untouched
    assert world.leftovers() == []
