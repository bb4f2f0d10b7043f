"""The sandbox: a production-like world of the runbook's app, built in one folder.

A real PostgreSQL "production" cluster archiving WAL into the world's archive, a "staging" cluster, the app's
tables with realistic rows, an uploads folder, an HTTP stand-in for the app's API per environment, and a
drtui.toml describing it all. Tests use it through the context manager; `make demo` keeps one up until
`drtui sandbox down`. Everything it starts is recorded in `sandbox.json`, so `down` can stop it all even
after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from drtui.core.config import Config, Environment, load_config
from drtui.core.postgres import LocalServer, chown_to, connect, current_user, run_as
from drtui.sandbox.api import HEAD_REVISION

PG_BIN = Path(os.environ.get("DRTUI_PG_BIN", "/usr/lib/postgresql/15/bin"))
PASSWORD = "sandbox-Pw-7f3k9q"
STATE_FILE = "sandbox.json"
APP_TABLES = ("clients", "leads", "bookings", "invoices")

SCHEMA = f"""
create table alembic_version (version_num varchar(32) primary key);
insert into alembic_version values ('{HEAD_REVISION}');
create table clients (id bigserial primary key, name text not null, email text not null,
                      created_at timestamptz not null default clock_timestamp());
create table leads (id bigserial primary key, client_id bigint references clients, source text,
                    created_at timestamptz not null default clock_timestamp());
create table bookings (id bigserial primary key, client_id bigint references clients, service text,
                       scheduled_for timestamptz, note text,
                       created_at timestamptz not null default clock_timestamp());
create table invoices (id bigserial primary key, booking_id bigint references bookings, amount_cents int,
                       created_at timestamptz not null default clock_timestamp());
"""


def default_os_user() -> str:
    return "postgres" if os.geteuid() == 0 else current_user()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Insert:
    """A row the sandbox wrote, with the time its transaction committed."""

    table: str
    id: int
    committed_at: datetime


class Sandbox:
    """A production-like world in `root` (a new temporary folder by default)."""

    def __init__(self, root: Path | None = None, os_user: str | None = None, seed_rows: int = 60,
                 track_commit_timestamp: bool = False, app_commands: bool = False, pg_bin: Path = PG_BIN,
                 settings: dict[str, str] | None = None) -> None:
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="drtui-sandbox-"))
        self.pg_bin = Path(pg_bin)  # another major version's binaries (tests of PostgreSQL 17)
        self.settings = settings or {}  # more postgresql.conf settings for production
        self.os_user = os_user or default_os_user()
        self.seed_rows = seed_rows
        # production records each transaction's commit time (a drill then counts rows committed by a past
        # target exactly)
        self.track_commit_timestamp = track_commit_timestamp
        # production's stop_app_command / start_app_command pause and resume its traffic and API (the demo's)
        self.app_commands = app_commands
        self.config_path = self.root / "drtui.toml"

    # -- layout -----------------------------------------------------------------------------------
    @property
    def backup_dir(self) -> Path:
        return self.root / "backups"

    @property
    def wal_archive(self) -> Path:
        return self.root / "wal_archive"

    def config(self) -> Config:
        return load_config(str(self.config_path), environ={})

    def env(self, name: str = "production") -> Environment:
        return self.config().environment(name)

    def server(self, name: str = "production") -> LocalServer:
        return LocalServer.for_environment(self.env(name))

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> Sandbox:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        ports = {"production": free_port(), "staging": free_port()}
        api_ports = {"production": free_port(), "staging": free_port()}
        for sub in ("backups", "ops/state", "ops/drill-reports", "logs", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for owned in (self.wal_archive, self.root / "logs", self.root / "run"):
            owned.mkdir(parents=True, exist_ok=True)
            chown_to(owned, self.os_user)
        self._write_config(ports, api_ports)
        self._save_state({"apis": {}, "traffic": None})
        for name in ("production", "staging"):
            self._init_cluster(name)
            self._make_app(name)
        self._start_api("production", api_ports["production"])
        self._start_api("staging", api_ports["staging"])
        return self

    def down(self) -> None:
        """Stop every process of the world (servers, APIs, traffic) and remove the folder."""
        state = self._load_state()
        for pid in [*state.get("apis", {}).values(), state.get("traffic")]:
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
        for pidfile in self._postmaster_pids():
            data_dir = pidfile.parent
            run_as(self.os_user, [str(self.pg_bin / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "immediate", "-w"],
                   check=False, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def _postmaster_pids(self) -> list[Path]:
        if not self.root.exists():
            return []
        return [p for p in self.root.glob("**/postmaster.pid") if p.is_file()]

    # -- pieces -----------------------------------------------------------------------------------
    def _write_config(self, ports: dict[str, int], api_ports: dict[str, int]) -> None:
        envs = []
        for name, host in (("production", "127.0.0.1"), ("staging", str(self.root / "run" / "staging"))):
            env_dir = self.root / name
            env_dir.mkdir(exist_ok=True)
            (env_dir / "uploads").mkdir(exist_ok=True)
            app_env = "prod" if name == "production" else "staging"
            app = self._app_commands() if name == "production" and self.app_commands else ""
            (env_dir / ".env").write_text(
                f"APP_ENV={app_env}\nPOSTGRES_PASSWORD={PASSWORD}\n"
                f"DATABASE_URL=postgresql://postgres:{PASSWORD}@127.0.0.1:{ports[name]}/cleaning\n")
            envs.append(f"""
[environments.{name}]
backend = "local"
data_dir = "{name}/data"
pg_bin = "{self.pg_bin}"
os_user = "{self.os_user}"
host = "{host}"
port = {ports[name]}
database = "cleaning"
user = "postgres"
api_base_url = "http://127.0.0.1:{api_ports[name]}"
env_file = "{name}/.env"
uploads_dir = "{name}/uploads"
server_log = "logs/{name}.log"
{app}""")
        self.config_path.write_text(f"""# drtui sandbox: a production-like world for tests and `make demo`
backup_dir = "backups"
wal_archive = "wal_archive"
wal_sync_heartbeat = "ops/state/wal_sync_last_ok.txt"
report_dir = "ops/drill-reports"
state_dir = "ops/state/drtui"

[objectives]
staging_rto = "90m"
staging_rpo = "24h"
daily_rto = "4h"
daily_rpo = "24h"
pitr_rto = "2h"
pitr_rpo = "5m"
basebackup_max_age = "26h"
wal_sync_max_age = "10m"
dump_max_age = "26h"
{"".join(envs)}""")

    def _app_commands(self) -> str:
        command = f"{sys.executable} -m drtui.sandbox.app {{}} --root {self.root}"
        return f"stop_app_command = {json.dumps(command.format('stop'))}\n" \
               f"start_app_command = {json.dumps(command.format('start'))}\n"

    def connect_command(self, name: str = "production") -> str:
        """A psql line that works as pasted: the password is read from the environment's env file, never shown."""
        env = self.env(name)
        env_file = self.root / name / ".env"
        return (f"PGPASSWORD=$(sed -n 's/^POSTGRES_PASSWORD=//p' {env_file}) psql -h 127.0.0.1 -p {env.port} "
                f"-U {env.user} {env.database}")

    def _init_cluster(self, name: str) -> None:
        env = self.env(name)
        data_dir = env.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.parent.chmod(0o755)
        data_dir.chmod(0o700)
        chown_to(data_dir, self.os_user)
        socket_dir = self.root / "run" / name
        socket_dir.mkdir(exist_ok=True)
        chown_to(socket_dir, self.os_user)
        pwfile = self.root / "run" / f".{name}.pw"
        pwfile.write_text(PASSWORD + "\n")
        chown_to(pwfile, self.os_user)
        run_as(self.os_user, [str(self.pg_bin / "initdb"), "-D", str(data_dir), "-U", "postgres", "--no-sync",
                              "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                              "-E", "UTF8", "--locale=C"], timeout=120)
        pwfile.unlink()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{socket_dir}'",
            "port": str(env.port),
            "fsync": "off",
            "shared_buffers": "32MB",
            "max_connections": "30",
            "wal_level": "replica",
            "max_wal_senders": "5",
        }
        if name == "production":
            settings |= {
                "archive_mode": "on",
                "archive_command": f"'test ! -f {self.wal_archive}/%f && cp %p {self.wal_archive}/%f'",
                "archive_timeout": "60",
            }
            if self.track_commit_timestamp:
                settings["track_commit_timestamp"] = "on"
            settings |= self.settings
        with (data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# drtui sandbox\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        LocalServer.for_environment(env).start()

    def _make_app(self, name: str) -> None:
        env = self.env(name)
        with connect(env, dbname="postgres") as conn:
            conn.execute("create database cleaning")
        rng = random.Random(name)
        with connect(env) as conn:
            conn.execute(SCHEMA)
            n = self.seed_rows
            conn.execute("insert into clients (name, email, created_at) select 'Client ' || g, "
                         "'client' || g || '@example.com', now() - (%s - g) * interval '1 hour' "
                         "from generate_series(1, %s) g", (n + 1, n))
            conn.execute("insert into leads (client_id, source, created_at) select 1 + g %% %s, 'web', "
                         "now() - (%s - g) * interval '50 minutes' from generate_series(1, %s) g", (n, 2 * n, 2 * n))
            conn.execute("insert into bookings (client_id, service, scheduled_for, created_at) "
                         "select 1 + g %% %s, 'deep clean', now() + g * interval '1 day', "
                         "now() - (%s - g) * interval '30 minutes' from generate_series(1, %s) g",
                         (n, 3 * n, 3 * n))
            conn.execute("insert into invoices (booking_id, amount_cents, created_at) select g, "
                         "10000 + g * 7, now() - (%s - g) * interval '40 minutes' from generate_series(1, %s) g",
                         (n + 1, n))
        uploads = env.uploads_dir
        assert uploads
        for i in range(5):
            (uploads / f"photo_{i}.jpg").write_bytes(rng.randbytes(2048 + i))
        (uploads / "contracts").mkdir(exist_ok=True)
        (uploads / "contracts" / "terms.pdf").write_bytes(b"%PDF-1.4 sandbox\n" + rng.randbytes(512))

    def _start_api(self, name: str, port: int) -> None:
        log = (self.root / "logs" / f"api-{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "drtui.sandbox.api", "--config", str(self.config_path),
                                 "--env", name, "--port", str(port)], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        state = self._load_state()
        state["apis"][name] = proc.pid
        self._save_state(state)
        deadline = time.monotonic() + 60  # a Python process importing psycopg: slow on a loaded 2-core machine
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                return
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sandbox API for {name} did not start; see {log.name}") from None
                time.sleep(0.05)

    def _load_state(self) -> dict:
        try:
            return json.loads((self.root / STATE_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, state: dict) -> None:
        (self.root / STATE_FILE).write_text(json.dumps(state))

    # -- traffic ----------------------------------------------------------------------------------
    def insert(self, table: str = "bookings", env: str = "production") -> Insert:
        """Insert one row into an app table and return its id and commit time."""
        with connect(self.env(env)) as conn:
            with conn.transaction():
                if table == "bookings":
                    row = conn.execute("insert into bookings (client_id, service, scheduled_for) "
                                       "values (1, 'window clean', now() + interval '2 days') returning id").fetchone()
                elif table == "leads":
                    row = conn.execute("insert into leads (client_id, source) values (1, 'phone') "
                                       "returning id").fetchone()
                elif table == "clients":
                    row = conn.execute("insert into clients (name, email) values ('New', 'new@example.com') "
                                       "returning id").fetchone()
                else:
                    row = conn.execute("insert into invoices (booking_id, amount_cents) values (1, 4200) "
                                       "returning id").fetchone()
            committed = conn.execute("select clock_timestamp()").fetchone()[0]
        return Insert(table, row[0], committed)

    def rows_around_target(self, table: str = "bookings") -> tuple[Insert, Insert, datetime]:
        """A row, a WAL switch, a row 0.2 s later and a WAL switch: the two rows and a target time between
        their commits, which a restore to it must keep the first of and lose the second."""
        kept = self.insert(table)
        self.switch_wal()
        time.sleep(0.2)
        lost = self.insert(table)
        self.switch_wal()
        return kept, lost, kept.committed_at + (lost.committed_at - kept.committed_at) / 2

    def counts(self, env: str = "production") -> dict[str, int]:
        with connect(self.env(env)) as conn:
            return {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in APP_TABLES}

    def switch_wal(self, env: str = "production", timeout: float = 30) -> str:
        """Close the current WAL segment and wait until the archiver has copied it whole; returns its name.
        (The file appears as soon as `cp` starts; a segment file always has the full segment size.)"""
        with connect(self.env(env)) as conn:
            lsn = conn.execute("select pg_switch_wal()").fetchone()[0]
            segment, size = conn.execute("select pg_walfile_name(%s), "
                                         "pg_size_bytes(current_setting('wal_segment_size'))", (lsn,)).fetchone()
        archived = self.wal_archive / segment
        deadline = time.monotonic() + timeout
        while not (archived.exists() and archived.stat().st_size == size):
            if time.monotonic() > deadline:
                raise RuntimeError(f"WAL segment {segment} was not archived within {timeout} s")
            time.sleep(0.05)
        return segment

    def start_traffic(self, interval: float = 1.0) -> int:
        """Start a background writer (one booking every `interval` seconds) until `down`."""
        log = (self.root / "logs" / "traffic.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "drtui.sandbox.traffic", "--config", str(self.config_path),
                                 "--interval", str(interval)], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        state = self._load_state()
        state["traffic"] = proc.pid
        self._save_state(state)
        return proc.pid

    def leftover_processes(self) -> list[str]:
        """Command lines of processes still running that belong to this world (for tests)."""
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    if str(self.root) in cmdline:
                        found.append(cmdline.strip())
        return found


