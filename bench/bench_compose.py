"""Compose restore time against the local backend's, on the same base backup and WAL tarball.

Builds a compose stack (drtui.sandbox.compose_world) on the engine at DOCKER_HOST (or starts a dockerd of
its own), grows its database, takes a base backup and a WAL tarball through the compose backend, then times:

- the compose PITR (stop app and db, preserve the volume, extract, stage WAL, recover, migrate, start app)
  with each extraction method: `bind` (tar in a helper container, backup folder bind-mounted read-only) and
  `upload` (the engine's archive upload, then a helper for ownership), rolled back between runs;
- the local backend on the same files: extract_base_backup into a folder, stage_wal, recovery settings,
  pg_ctl start as os_user until promoted.

Run: `.venv/bin/python bench/bench_compose.py [--rows N]`. Prints one line per figure and the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from drtui.core.backends.compose import ComposeBackend, run_pitr
from drtui.core.backends.local import LocalBackend
from drtui.core.clock import SystemClock, stamp
from drtui.core.config import Environment
from drtui.core.extract import extract_base_backup, restore_command, stage_wal
from drtui.core.inventory.basebackup import read_base_backup
from drtui.core.planning import Target, TargetKind
from drtui.core.postgres import LocalServer, chown_to
from drtui.sandbox.compose_world import ComposeWorld
from drtui.sandbox.docker_image import answers, engine_url, ensure_pg_image, start_dockerd
from drtui.sandbox.world import free_port


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
        extract_base_backup(read_base_backup(base), env.data_dir, "postgres", lambda d, t: None, cancel)
        folder = stage_wal(wal_tarball, root / "wal", "postgres", lambda d, t: None, cancel)
        backend.write_recovery(env.data_dir, {"restore_command": restore_command(folder), **settings,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=400_000, help="bookings rows to add before the backup")
    args = parser.parse_args()
    engine = None if answers(engine_url()) else start_dockerd()
    base_url = engine.base_url if engine else engine_url()
    clock = SystemClock()
    try:
        import docker

        ensure_pg_image(docker.DockerClient(base_url=base_url))
        with ComposeWorld(base_url) as world:
            with world.connect() as conn:
                conn.execute("insert into bookings (client_id, service, note) select 1, 'bench', repeat('x', 120) "
                             "from generate_series(1, %s)", (args.rows,))
            backend = ComposeBackend(world.env(), world.root / "ops/state/drtui")
            config = world.config()
            base = backend.backup_base(config, clock).artifacts[0].path
            world.insert()
            world.switch_wal()
            wal = backend.backup_wal_sync(config, clock).artifacts[0].path
            settings = Target(TargetKind.LATEST).settings()
            size = base.stat().st_size
            print(f"base backup {base.name}: {size / 2**20:.1f} MiB gzipped; WAL tarball "
                  f"{wal.stat().st_size / 2**20:.1f} MiB")
            figures = {}
            for method in ("bind", "upload"):
                run_stamp = stamp(clock.now()) + method
                seconds, preserved = timed(run_pitr, backend, base, settings, run_stamp=run_stamp,
                                           emit=lambda e: None, clock=clock, wal_source=wal, method=method)
                figures[method] = seconds
                print(f"compose restore ({method} extraction): {seconds:.2f} s")
                rollback_s, _ = timed(backend.rollback, preserved)
                print(f"compose rollback: {rollback_s:.2f} s")
            backend.stop_server()
            kept = backend.preserve(stamp(clock.now()) + "x")
            for method in ("bind", "upload"):
                seconds, _ = timed(backend.extract, base, method=method)
                figures[f"extract-{method}"] = seconds
                print(f"compose extraction alone ({method}): {seconds:.2f} s")
            backend.rollback(kept)
            local = local_restore(base, wal, settings)
            print(f"local restore (same backup and WAL): {local:.2f} s")
            print(f"ratio compose(bind)/local: {figures['bind'] / local:.2f}; "
                  f"upload/bind extraction: {figures['extract-upload'] / figures['extract-bind']:.2f}")
    finally:
        if engine:
            engine.stop()


if __name__ == "__main__":
    main()
