"""A Docker Compose stack like the runbook's production, built with the Docker SDK (no compose tool).

Containers carry the compose labels (`com.docker.compose.project` / `service`), volumes the compose volume
labels, all on one user network, as `docker compose up` would make them:

- `db`: PostgreSQL 15 (the image from docker_image), data in the `pg_data` volume, WAL archived into the
  `pg_wal_archive` volume mounted at /wal_archive, its port published on 127.0.0.1 only;
- `api`, `web`, `jobs`: small containers of the same image (a trap makes stops fast). The HTTP stand-in for
  the api (drtui.sandbox.api: /healthz, /readyz) runs on the host against the db's published port, because
  the host-package image has no Python with psycopg; the `api` container is what drtui stops, starts and
  runs the migrate command in (a psql against `db`).

The WAL volume is a local volume bound to the world's `wal_archive` folder (driver_opts type=none, o=bind),
as some stacks mount their archive, so the host sees the live archive too (inventory, drill). With
`staging=True` a second project `<project>stg` (same services, no archiving) is the drill's target, with its
own api stand-in. Everything made carries the label `drtui.world=<project>` and is removed by it at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import docker
import docker.errors
import httpx
import psycopg

from drtui.core.config import Config, Environment, load_config
from drtui.sandbox.api import HEAD_REVISION
from drtui.sandbox.docker_image import PG_IMAGE, WAL_MOUNT, engine_url
from drtui.sandbox.world import APP_TABLES, SCHEMA, Insert, free_port

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
VOLUME_LABEL = "com.docker.compose.volume"
WORLD_LABEL = "drtui.world"
PGDATA = "/var/lib/postgresql/data"
ARCHIVE_COMMAND = f"test ! -f {WAL_MOUNT}/%f && cp %p {WAL_MOUNT}/%f"
# A PID 1 that ends at once on SIGTERM, as `init: true` would give.
IDLE = ["/bin/bash", "-c", "trap 'exit 0' TERM INT; while :; do sleep 1 & wait $!; done"]
MIGRATE = ("psql -h db -U postgres -d cleaning -v ON_ERROR_STOP=1 -c "
           f"\"update alembic_version set version_num = '{HEAD_REVISION}'\"")


class ComposeWorld:
    """A compose project `project` on the engine at DOCKER_HOST, with a drtui.toml in `root`."""

    def __init__(self, base_url: str | None = None, image: str = PG_IMAGE, project: str | None = None,
                 seed_rows: int = 40, staging: bool = False) -> None:
        self.base_url = base_url or engine_url()
        self.client = docker.DockerClient(base_url=self.base_url)
        self.image = image
        self.project = project or f"drtui{uuid.uuid4().hex[:8]}"
        self.seed_rows = seed_rows
        self.root = Path(tempfile.mkdtemp(prefix="drtui-compose-"))
        self.root.chmod(0o755)
        self.config_path = self.root / "drtui.toml"
        self.staging = staging
        self.db_port = self.api_port = self.staging_db_port = self.staging_api_port = 0
        self._apis: list[subprocess.Popen] = []

    # -- names ------------------------------------------------------------------------------------
    @property
    def data_volume(self) -> str:
        return f"{self.project}_pg_data"

    @property
    def wal_volume(self) -> str:
        return f"{self.project}_pg_wal_archive"

    @property
    def staging_project(self) -> str:
        return f"{self.project}stg"

    def labels(self, project: str | None = None, **extra: str) -> dict[str, str]:
        return {PROJECT_LABEL: project or self.project, WORLD_LABEL: self.project, **extra}

    def container(self, service: str, project: str | None = None):  # -> docker Container
        found = self.client.containers.list(all=True, filters={"label": [f"{PROJECT_LABEL}={project or self.project}",
                                                                         f"{SERVICE_LABEL}={service}"]})
        return found[0]

    def config(self) -> Config:
        return load_config(str(self.config_path), environ={})

    def env(self, name: str = "production") -> Environment:
        return self.config().environment(name)

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> ComposeWorld:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> ComposeWorld:
        for sub in ("backups", "ops/state", "ops/drill-reports", "logs", "wal_archive"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root / "wal_archive", "postgres", "postgres")
        self.db_port, self.api_port = free_port(), free_port()
        self._stack(self.project, self.db_port, archive=True)
        if self.staging:
            self.staging_db_port, self.staging_api_port = free_port(), free_port()
            self._stack(self.staging_project, self.staging_db_port, archive=False)
        self._write_config()
        self._seed(self.db_port)
        self._start_api("production", self.api_port)
        if self.staging:
            self._seed(self.staging_db_port)
            self._start_api("staging", self.staging_api_port)
        return self

    def _stack(self, project: str, port: int, archive: bool) -> None:
        network = self.client.networks.create(f"{project}_default", driver="bridge",
                                              labels=self.labels(project, **{"com.docker.compose.network": "default"}))
        self.client.volumes.create(f"{project}_pg_data", labels=self.labels(project, **{VOLUME_LABEL: "pg_data"}))
        options = {"driver_opts": {"type": "none", "o": "bind", "device": str(self.root / "wal_archive")}} \
            if archive else {}
        self.client.volumes.create(f"{project}_pg_wal_archive", driver="local",
                                   labels=self.labels(project, **{VOLUME_LABEL: "pg_wal_archive"}), **options)
        settings = ["-c", "wal_level=replica", "-c", "fsync=off", "-c", "max_connections=40"]
        if archive:
            settings += ["-c", "archive_mode=on", "-c", f"archive_command={ARCHIVE_COMMAND}",
                         "-c", "archive_timeout=60"]
        self._run(project, "db", network, image_command=settings,
                  volumes={f"{project}_pg_data": {"bind": PGDATA, "mode": "rw"},
                           f"{project}_pg_wal_archive": {"bind": WAL_MOUNT, "mode": "rw"}},
                  ports={"5432/tcp": ("127.0.0.1", port)}, stop_signal="SIGINT")
        self.wait_db(project)
        for service in ("api", "web", "jobs"):
            self._run(project, service, network, entrypoint=IDLE)

    def down(self) -> None:
        """Remove every container, volume and network of this world (by label), and its folder."""
        for api in self._apis:
            if api.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(api.pid, signal.SIGTERM)
                api.wait(timeout=10)
        for label in (f"{WORLD_LABEL}={self.project}", f"drtui.project={self.project}",
                      f"drtui.project={self.staging_project}"):
            for container in self.client.containers.list(all=True, filters={"label": label}):
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True, v=True)
            for volume in self.client.volumes.list(filters={"label": label}):
                with contextlib.suppress(docker.errors.NotFound):
                    volume.remove(force=True)
            for network in self.client.networks.list(filters={"label": label}):
                with contextlib.suppress(docker.errors.NotFound):
                    network.remove()
        shutil.rmtree(self.root, ignore_errors=True)
        self.client.close()

    def leftovers(self) -> list[str]:
        """Names of engine objects of this world still there (for tests)."""
        label = {"label": f"{WORLD_LABEL}={self.project}"}
        return ([c.name for c in self.client.containers.list(all=True, filters=label)]
                + [v.name for v in self.client.volumes.list(filters=label)]
                + [n.name for n in self.client.networks.list(filters=label)])

    # -- pieces -----------------------------------------------------------------------------------
    def _run(self, project: str, service: str, network, image_command: list[str] | None = None, **kwargs) -> None:
        container = self.client.containers.create(
            self.image, command=image_command, name=f"{project}-{service}-1", detach=True,
            labels=self.labels(project, **{SERVICE_LABEL: service, "com.docker.compose.container-number": "1"}),
            **kwargs)
        network.connect(container, aliases=[service])
        container.start()

    def wait_db(self, project: str | None = None, timeout: float = 60) -> None:
        db = self.container("db", project)
        deadline = time.monotonic() + timeout
        while db.exec_run(["pg_isready", "-q", "-h", "127.0.0.1"]).exit_code != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"db of {self.project} is not ready: {db.logs(tail=5).decode()}")
            time.sleep(0.1)

    def _write_config(self) -> None:
        stacks = [("production", self.project, self.db_port, self.api_port, "prod")]
        if self.staging:
            stacks.append(("staging", self.staging_project, self.staging_db_port, self.staging_api_port, "staging"))
        envs = []
        for name, project, port, api_port, app_env in stacks:
            (self.root / name).mkdir(exist_ok=True)
            (self.root / name / ".env").write_text(f"APP_ENV={app_env}\n")
            envs.append(f"""
[environments.{name}]
backend = "compose"
project = "{project}"
docker_host = "{self.base_url}"
host = "127.0.0.1"
port = {port}
database = "cleaning"
user = "postgres"
api_base_url = "http://127.0.0.1:{api_port}"
env_file = "{name}/.env"
migrate_command = "{MIGRATE.replace('"', chr(92) + '"')}"
""")
        self.config_path.write_text(f"""# drtui compose world {self.project}
backup_dir = "backups"
wal_archive = "wal_archive"
wal_sync_heartbeat = "ops/state/wal_sync_last_ok.txt"
report_dir = "ops/drill-reports"
state_dir = "ops/state/drtui"
{"".join(envs)}""")

    def _seed(self, port: int) -> None:
        with self.connect("postgres", port) as conn:
            conn.execute("create database cleaning")
        with self.connect(port=port) as conn:
            conn.execute(SCHEMA)
            n = self.seed_rows
            conn.execute("insert into clients (name, email) select 'Client ' || g, 'c' || g || '@example.com' "
                         "from generate_series(1, %s) g", (n,))
            conn.execute("insert into leads (client_id, source) select 1 + g %% %s, 'web' "
                         "from generate_series(1, %s) g", (n, 2 * n))
            conn.execute("insert into bookings (client_id, service, scheduled_for) select 1 + g %% %s, "
                         "'deep clean', now() + g * interval '1 day' from generate_series(1, %s) g", (n, 3 * n))
            conn.execute("insert into invoices (booking_id, amount_cents) select g, 10000 + g "
                         "from generate_series(1, %s) g", (n,))

    def _start_api(self, env: str, port: int) -> None:
        log = (self.root / "logs" / f"api-{env}.log").open("ab")
        api = subprocess.Popen([sys.executable, "-m", "drtui.sandbox.api", "--config", str(self.config_path),
                                "--env", env, "--port", str(port)],
                               stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        self._apis.append(api)
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                return
            except httpx.TransportError:
                if api.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the api stand-in did not start; see {log.name}") from None
                time.sleep(0.05)

    # -- traffic ----------------------------------------------------------------------------------
    def connect(self, dbname: str = "cleaning", port: int | None = None) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=port or self.db_port, dbname=dbname, user="postgres",
                               connect_timeout=5, autocommit=True)

    def insert(self) -> Insert:
        """Insert one booking and return its id and commit time."""
        with self.connect() as conn:
            row = conn.execute("insert into bookings (client_id, service, scheduled_for) "
                               "values (1, 'window clean', now() + interval '2 days') returning id").fetchone()
            committed: datetime = conn.execute("select clock_timestamp()").fetchone()[0]
        return Insert("bookings", row[0], committed)

    def counts(self) -> dict[str, int]:
        with self.connect() as conn:
            return {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in APP_TABLES}

    def booking_ids(self) -> set[int]:
        with self.connect() as conn:
            return {r[0] for r in conn.execute("select id from bookings").fetchall()}

    def switch_wal(self, timeout: float = 30) -> str:
        """Close the current WAL segment and wait until it is in the WAL volume; returns its name."""
        with self.connect() as conn:
            lsn = conn.execute("select pg_switch_wal()").fetchone()[0]
            segment = conn.execute("select pg_walfile_name(%s)", (lsn,)).fetchone()[0]
        deadline = time.monotonic() + timeout
        while not (self.root / "wal_archive" / segment).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"WAL segment {segment} was not archived within {timeout} s")
            time.sleep(0.05)
        return segment
