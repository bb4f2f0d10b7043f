"""Compose restore time against the local backend's, on the same base backup and WAL tarball.

Builds a compose stack (drtui.sandbox.compose_world) on the engine at DOCKER_HOST (or starts a dockerd of
its own), grows its database, takes a base backup and a WAL tarball with `drtui backup`, then times:

- `drtui restore pitr` on the stack (the engine's steps on the compose backend: extraction on the host while
  the old db still runs, stop, preserve the volume, copy into it, recover in the container, start the app,
  verify), and `drtui rollback`;
- the two ways a restored host folder reaches the data volume (median of 3): `bind` (a helper container of
  the db's image copies from a read-only bind mount) and `upload` (the engine's archive upload, then a helper
  for ownership);
- the local backend's restore of the same files: extract_base_backup into a folder, stage_wal, recovery
  settings, pg_ctl start as postgres until promoted.

Run: `.venv/bin/python bench/bench_compose.py [--rows N]`. Prints one line per figure and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker
import psycopg

from drtui.core.backends.compose import ComposeBackend
from drtui.core.backends.local import LocalBackend
from drtui.core.clock import SystemClock, stamp
from drtui.core.config import Environment
from drtui.core.extract import extract_base_backup, stage_wal
from drtui.core.inventory.basebackup import read_base_backup
from drtui.core.planning import Target, TargetKind
from drtui.core.postgres import LocalServer, chown_to
from drtui.sandbox.compose_world import ComposeWorld
from drtui.sandbox.docker_image import answers, engine_url, ensure_pg_image, start_dockerd
from drtui.sandbox.world import free_port

CORE_STEPS = ("extract", "stage_wal", "write_recovery", "swap_in", "start_postgres", "follow_recovery")


def run_drtui(*args: str, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drtui", *args], capture_output=True, text=True, check=False,
                          env={**os.environ, "DRTUI_CONFIG": str(config), **env})


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.monotonic()
    value = fn(*args, **kwargs)
    return time.monotonic() - started, value


def _in_recovery(env: Environment) -> bool:
    try:
        with psycopg.connect(host=env.host, port=env.port, dbname="postgres", user="postgres") as conn:
            return bool(conn.execute("select pg_is_in_recovery()").fetchone()[0])
    except psycopg.OperationalError:
        return True


def local_restore(base: Path, wal_tarball: Path, settings: dict[str, str]) -> float:
    """The local backend's restore of the same files into a fresh folder; seconds until promoted."""
    root = Path(tempfile.mkdtemp(prefix="drtui-bench-local-"))
    root.chmod(0o755)
    env = Environment("bench", data_dir=root / "data", host="127.0.0.1", port=free_port())
    backend = LocalBackend(env, root / "state")
    (root / "state").mkdir()
    chown_to(root / "state", "postgres")
    cancel = threading.Event()
    started = time.monotonic()
    try:
        chosen = read_base_backup(base)
        extract_base_backup(chosen, env.data_dir, "postgres", lambda d, t: None, cancel)
        folder = stage_wal(wal_tarball, root / "wal", "postgres", lambda d, t: None, cancel)
        command = backend.restore_command(env.data_dir, folder, chosen)
        backend.write_recovery(env.data_dir, {"restore_command": command, **settings,
                                              "recovery_target_action": "promote", "port": str(env.port),
                                              "listen_addresses": "127.0.0.1", "archive_mode": "off",
                                              "logging_collector": "off",
                                              "unix_socket_directories": str(root / "state")},
                               signal=True)
        backend.start_server()
        while _in_recovery(env):
            time.sleep(0.05)
        return time.monotonic() - started
    finally:
        LocalServer(env.data_dir, env.pg_bin, "postgres", env.host, env.port).stop()
        shutil.rmtree(root, ignore_errors=True)


def median_of(runs: int, fn, *args) -> float:
    return statistics.median(timed(fn, *args)[0] for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000, help="bookings rows to add before the backup")
    args = parser.parse_args()
    engine = None if answers(engine_url()) else start_dockerd()
    base_url = engine.base_url if engine else engine_url()
    clock = SystemClock()
    try:
        ensure_pg_image(docker.DockerClient(base_url=base_url))
        with ComposeWorld(base_url) as world:
            with world.connect() as conn:
                conn.execute("insert into bookings (client_id, service, note) select 1, 'bench', "
                             "repeat(md5(g::text), 4) from generate_series(1, %s) g", (args.rows,))
            environ = {"DOCKER_HOST": base_url}
            for kind in ("base", "dump"):
                run_drtui("backup", kind, config=world.config_path, env=environ)
            world.insert()
            world.switch_wal()
            run_drtui("backup", "wal-sync", config=world.config_path, env=environ)
            config = world.config()
            base = next(config.backup_dir.glob("basebackup_*.tar.gz"))
            wal = next(config.backup_dir.glob("wal_archive_*.tar.gz"))
            backup = read_base_backup(base)
            print(f"base backup: {base.stat().st_size / 2**20:.1f} MiB gzipped, {backup.size_bytes / 2**20:.1f} MiB "
                  f"of data; WAL tarball {wal.stat().st_size / 2**20:.1f} MiB")

            seconds, done = timed(run_drtui, "restore", "pitr", "--env", "production", "--recovery-target",
                                  "latest", "--wal-archive", str(wal), "--yes", "--json",
                                  config=world.config_path, env=environ)
            if done.returncode != 0:
                raise SystemExit(f"the compose restore failed:\n{(done.stdout + done.stderr)[-2000:]}")
            rto = json.loads(done.stdout)["rto_seconds"]
            print(f"compose: drtui restore pitr {seconds:.2f} s wall (RTO {rto:.2f} s)")
            steps = {step["name"]: step["seconds"] for step in json.loads(done.stdout)["steps"]}
            print("  steps: " + ", ".join(f"{name} {value:.1f}" for name, value in steps.items()))
            # the part the local measurement below also does: extract, stage, recovery settings, recover
            core = sum(steps[name] for name in CORE_STEPS)
            print(f"  of which extract + stage WAL + settings + copy into the volume + recover: {core:.2f} s")
            seconds, _ = timed(run_drtui, "rollback", "--env", "production", config=world.config_path, env=environ)
            print(f"compose: drtui rollback {seconds:.2f} s")

            backend = ComposeBackend(world.env(), world.root / "ops/state/drtui")
            folder = Path(tempfile.mkdtemp(prefix="drtui-bench-restored-"))
            folder.rmdir()
            extract_base_backup(backup, folder, "postgres", lambda d, t: None, threading.Event())
            backend.stop_app()
            backend.stop_server()
            kept = backend.preserve(stamp(clock.now()))
            try:
                copy = {method: median_of(3, backend.copy_in, folder, method) for method in ("bind", "upload")}
            finally:
                shutil.rmtree(folder, ignore_errors=True)
                backend.rollback(kept)
            for method, value in copy.items():
                print(f"compose: restored folder into the volume by {method}: {value:.2f} s (median of 3)")

            local = local_restore(base, wal, Target(TargetKind.LATEST).settings())
            print(f"local: extract + stage WAL + recover (same backup and WAL): {local:.2f} s")
            print(f"ratio compose/local, same work: {core / local:.2f}; whole compose run (RTO) / local: "
                  f"{rto / local:.2f}; "
                  f"upload / bind copy into the volume: {copy['upload'] / copy['bind']:.2f}")
    finally:
        if engine:
            engine.stop()


if __name__ == "__main__":
    main()
