"""What `drtui init` finds on the host it runs on (`drtui init --check` is in config_check).

Discovery looks for the runbook's layout: the backup folder and its heartbeats, PostgreSQL clusters (running
postmasters read from /proc and their postmaster.pid, Debian's `pg_lsclusters`), Docker Compose projects with
a `db` service and the `pg_data` / `pg_wal_archive` volumes (through the Docker Engine), and `.env` files with
APP_ENV. Every value carries where it came from and whether it was guessed, so the written drtui.toml can say
so beside each line; what was not found stays a commented default. It only reads: no file is written, no
server is started, nothing connects to a database.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from drtui.core.config import read_env_file

RUNBOOK_BACKUP_DIR = Path("/opt/backups/postgres")
RUNBOOK_APP_DIR = Path("/opt/cleaning")
RUNBOOK_WAL_ARCHIVE = Path("/var/lib/postgresql/wal_archive")
HEARTBEATS = ("LAST_SUCCESS.txt", "LAST_BASEBACKUP.txt")
WAL_SYNC_HEARTBEAT = "wal_sync_last_ok.txt"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
VOLUME_LABEL = "com.docker.compose.volume"
_ARCHIVE_DIR = re.compile(r"(/[^\s'\"%]+)/%f")


@dataclass(frozen=True)
class Found:
    """A value and where it came from; `guessed` when it was inferred rather than read."""

    value: Any
    source: str
    guessed: bool = False


@dataclass
class FoundEnvironment:
    name: Found
    settings: dict[str, Found] = field(default_factory=dict)

    def value(self, key: str) -> Any:
        return self.settings[key].value if key in self.settings else None


@dataclass
class Discovery:
    folder: Path
    settings: dict[str, Found] = field(default_factory=dict)  # the top-level keys
    environments: list[FoundEnvironment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was looked for, found or not

    def environment(self, name: str) -> FoundEnvironment | None:
        return next((e for e in self.environments if e.name.value == name), None)


@dataclass(frozen=True)
class Cluster:
    """A local PostgreSQL cluster: from a running postmaster or from pg_lsclusters."""

    data_dir: Path
    pg_bin: Path
    port: int
    host: str | None
    source: str
    log_file: Path | None = None


@dataclass(frozen=True)
class EnvFile:
    path: Path
    values: dict[str, str]

    @property
    def app_env(self) -> str | None:
        return self.values.get("APP_ENV") or None

    @property
    def url(self) -> SplitResult | None:
        url = self.values.get("DATABASE_URL", "")
        return urlsplit(url) if url.startswith(("postgres://", "postgresql://")) else None

    @property
    def port(self) -> int | None:
        with contextlib.suppress(ValueError):
            return self.url.port if self.url else None
        return None


def discover(folder: Path, only_under: Path | None = None, docker_host: str | None = None,
             compose_project: str | None = None, search_docker: bool = True) -> Discovery:
    """Look around this host for what a drtui.toml in `folder` should describe (reads only)."""
    folder = folder.absolute()
    found = Discovery(folder)
    env_files = _env_files(folder)
    found.notes.append(f"env files: {', '.join(str(e.path) for e in env_files) or 'none'} "
                       f"(looked in {folder}, its subfolders and {RUNBOOK_APP_DIR})")
    clusters = [c for c in _clusters(found.notes) if only_under is None or c.data_dir.is_relative_to(only_under)]
    if only_under is not None:
        found.notes.append(f"clusters with a data directory under {only_under}: {len(clusters)}")
    unused = list(env_files)
    for cluster in clusters:
        found.environments.append(_local_environment(cluster, unused))
    if search_docker:
        for environment in _compose_environments(found, docker_host, compose_project, unused):
            found.environments.append(environment)
    _name_uniquely(found.environments)
    order = {"production": 0, "staging": 1}
    found.environments.sort(key=lambda e: order.get(e.name.value, 2))
    _top_level(found, folder, clusters)
    return found


# -- env files ------------------------------------------------------------------------------------------
def _env_files(folder: Path) -> list[EnvFile]:
    candidates = [folder / ".env", *sorted(folder.glob("*.env")), *sorted(folder.glob("*/.env")),
                  *sorted(folder.glob("*/*.env")), RUNBOOK_APP_DIR / ".env", RUNBOOK_APP_DIR / "staging.env"]
    files, seen = [], set()
    for path in candidates:
        if path.is_file() and path.resolve() not in seen:
            seen.add(path.resolve())
            with contextlib.suppress(Exception):
                files.append(EnvFile(path.absolute(), read_env_file(path)))
    return files


def environment_name(app_env: str) -> str:
    """The environment an APP_ENV value means: prod → production, stage → staging, else itself."""
    value = app_env.strip().lower()
    if value in ("prod", "production", "live"):
        return "production"
    if value in ("staging", "stage", "stg"):
        return "staging"
    return re.sub(r"[^a-z0-9_-]", "_", value) or "production"


def _pick_env_file(unused: list[EnvFile], port: int | None, beside: Iterable[Path], name: str | None) -> EnvFile | None:
    """The env file of a server: the one whose DATABASE_URL names its port, else one in a folder beside its
    data, else one whose APP_ENV means the environment's guessed name."""
    beside = [p.absolute() for p in beside]
    for test in (lambda e: port is not None and e.port == port,
                 lambda e: e.path.parent in beside,
                 lambda e: name is not None and e.app_env is not None and environment_name(e.app_env) == name):
        for env_file in unused:
            if test(env_file):
                unused.remove(env_file)
                return env_file
    return None


def _env_file_settings(env: FoundEnvironment, env_file: EnvFile | None, default_name: Found) -> None:
    if env_file is None:
        env.name = default_name
        return
    env.settings["env_file"] = Found(env_file.path, "found")
    if env_file.app_env:
        env.name = Found(environment_name(env_file.app_env), f"APP_ENV={env_file.app_env} in {env_file.path}")
    else:
        env.name = default_name
    url = env_file.url
    database = (url.path.lstrip("/") if url else "") or env_file.values.get("POSTGRES_DB")
    user = (url.username if url else None) or env_file.values.get("POSTGRES_USER")
    if database:
        env.settings["database"] = Found(database, f"DATABASE_URL in {env_file.path.name}")
    if user:
        env.settings["user"] = Found(user, f"DATABASE_URL in {env_file.path.name}")
    if env_file.values.get("API_BASE_URL"):
        env.settings["api_base_url"] = Found(env_file.values["API_BASE_URL"], f"API_BASE_URL in {env_file.path.name}")
    uploads = env_file.path.parent / "uploads"
    if uploads.is_dir():
        env.settings["uploads_dir"] = Found(uploads, "found")


# -- local clusters -------------------------------------------------------------------------------------
def _clusters(notes: list[str]) -> list[Cluster]:
    running, hidden = _running_postmasters()
    notes.append(f"running postmasters: {len(running)}")
    if hidden:
        notes.append(f"postgres processes this user may not inspect: {hidden} (run drtui init as root to see them)")
    known = {c.data_dir for c in running}
    listed = [c for c in _pg_lsclusters(notes) if c.data_dir not in known]
    return running + listed


def _running_postmasters() -> tuple[list[Cluster], int]:
    """Postmasters of this host (not inside containers): a postgres process whose working directory is a data
    directory whose postmaster.pid names it. Also how many postgres processes this user may not inspect."""
    found, hidden = [], 0
    try:
        own_namespace = os.readlink("/proc/self/ns/mnt")
    except OSError:
        own_namespace = None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "postgres":
                continue
            exe = Path(os.readlink(proc / "exe"))
            if exe.name != "postgres" or os.readlink(proc / "ns" / "mnt") != own_namespace:
                continue
            data_dir = Path(os.readlink(proc / "cwd"))
            lines = (data_dir / "postmaster.pid").read_text().splitlines()
        except PermissionError:
            hidden += 1
            continue
        except OSError:
            continue
        if len(lines) < 4 or lines[0].strip() != proc.name:
            continue
        socket_dir = lines[4].strip() if len(lines) > 4 else ""
        listen = lines[5].strip() if len(lines) > 5 else ""
        host = socket_dir.split(",")[0].strip() or (listen if listen not in ("*", "") else "127.0.0.1")
        found.append(Cluster(data_dir, exe.parent, int(lines[3]), host or None, f"running postmaster {proc.name}"))
    return sorted(found, key=lambda c: c.port), hidden


def _pg_lsclusters(notes: list[str]) -> list[Cluster]:
    """Debian's registered clusters (running or not)."""
    if not shutil.which("pg_lsclusters"):
        notes.append("pg_lsclusters: not installed")
        return []
    try:
        done = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    clusters = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) < 6 or not parts[2].isdigit():
            continue
        version, name, port, status = parts[:4]
        clusters.append(Cluster(Path(parts[5]), Path(f"/usr/lib/postgresql/{version}/bin"), int(port),
                                "/var/run/postgresql", f"pg_lsclusters ({version}/{name}, {status})",
                                Path(parts[6]) if len(parts) > 6 else None))
    notes.append(f"pg_lsclusters: {len(clusters)} cluster(s)")
    return clusters


def _owner(path: Path) -> str | None:
    with contextlib.suppress(OSError, KeyError):
        return pwd.getpwuid(path.stat().st_uid).pw_name
    return None


def _local_environment(cluster: Cluster, unused: list[EnvFile]) -> FoundEnvironment:
    env = FoundEnvironment(Found("production", "", True))
    guess = "staging" if "stag" in str(cluster.data_dir).lower() else "production"
    env_file = _pick_env_file(unused, cluster.port, (cluster.data_dir.parent, cluster.data_dir.parent.parent),
                              guess)
    _env_file_settings(env, env_file, Found(guess, f"from the data directory's path {cluster.data_dir}", True))
    env.settings |= {
        "backend": Found("local", cluster.source),
        "data_dir": Found(cluster.data_dir, cluster.source),
        "pg_bin": Found(cluster.pg_bin, cluster.source),
        "port": Found(cluster.port, cluster.source),
    }
    if cluster.host:
        kind = "socket directory" if cluster.host.startswith("/") else "listen address"
        env.settings["host"] = Found(cluster.host, f"{cluster.source}: its {kind}")
    owner = _owner(cluster.data_dir)
    if owner:
        env.settings["os_user"] = Found(owner, "the data directory's owner")
    if cluster.log_file:
        env.settings["server_log"] = Found(cluster.log_file, cluster.source)
    return env


# -- compose projects ---------------------------------------------------------------------------------
def _compose_environments(found: Discovery, docker_host: str | None, only_project: str | None,
                          unused: list[EnvFile]) -> list[FoundEnvironment]:
    import docker
    import docker.errors

    url = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.DockerClient(base_url=url, timeout=5)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        found.notes.append(f"Docker Engine at {url}: no answer ({type(exc).__name__}); compose projects not searched")
        return []
    environments = []
    try:
        filters = {"label": [f"{SERVICE_LABEL}=db"] + ([f"{PROJECT_LABEL}={only_project}"] if only_project else [])}
        for db in client.containers.list(all=True, filters=filters):
            project = db.labels.get(PROJECT_LABEL)
            if project:
                environments.append(_compose_environment(client, url, db, project, unused, found.settings))
    except docker.errors.DockerException as exc:
        found.notes.append(f"Docker Engine at {url}: {exc}")
    finally:
        client.close()
    found.notes.append(f"Docker Engine at {url}: {len(environments)} compose project(s) with a db service")
    return environments


def _compose_environment(client: Any, url: str, db: Any, project: str, unused: list[EnvFile],
                         top: dict[str, Found]) -> FoundEnvironment:
    env = FoundEnvironment(Found("production", "", True))
    source = f"compose project {project}"
    containers = client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"})
    services = sorted({c.labels.get(SERVICE_LABEL) for c in containers} - {None, "db"})
    volumes = {v.attrs.get("Labels", {}).get(VOLUME_LABEL): v
               for v in client.volumes.list(filters={"label": f"{PROJECT_LABEL}={project}"})}
    published = ((db.attrs.get("NetworkSettings") or {}).get("Ports") or {}).get("5432/tcp") or []
    port = int(published[0]["HostPort"]) if published else None
    guess = "staging" if re.search(r"stag|stg", project) else "production"
    _env_file_settings(env, _pick_env_file(unused, port, (), guess),
                       Found(guess, f"from the project's name {project!r}", True))
    env.settings |= {"backend": Found("compose", source), "project": Found(project, source),
                     "docker_host": Found(url, "the Docker Engine that answered")}
    if services:
        env.settings["app_services"] = Found(services, f"{source}: its other services")
    if port:
        host = published[0].get("HostIp") or "127.0.0.1"
        env.settings["host"] = Found("127.0.0.1" if host in ("0.0.0.0", "") else host, f"{source}: db's published port")
        env.settings["port"] = Found(port, f"{source}: db's published port")
    for key, label in (("data_volume", "pg_data"), ("wal_volume", "pg_wal_archive")):
        if label in volumes:
            env.settings[key] = Found(label, f"{source}: volume {volumes[label].name}")
    wal = volumes.get("pg_wal_archive")
    if wal is not None and env.name.value == "production" and "wal_archive" not in top:
        device = ((wal.attrs.get("Options") or {}).get("device"))
        if device:
            top["wal_archive"] = Found(Path(device), f"{source}: the folder bound to volume {wal.name}")
        elif wal.attrs.get("Mountpoint"):
            top["wal_archive"] = Found(Path(wal.attrs["Mountpoint"]), f"{source}: volume {wal.name}'s mountpoint",
                                       True)
    return env


def _name_uniquely(environments: list[FoundEnvironment]) -> None:
    """Two servers that would both be "production": the second is production_2 (and marked guessed)."""
    taken: set[str] = set()
    for env in sorted(environments, key=lambda e: e.name.guessed):
        name, n = env.name.value, 2
        while name in taken:
            name, n = f"{env.name.value}_{n}", n + 1
        if name != env.name.value:
            env.name = Found(name, f"{env.name.source}; another server is {env.name.value!r} already", True)
        taken.add(name)


# -- the top-level keys ---------------------------------------------------------------------------------
def _archive_folder(data_dir: Path) -> Path | None:
    """The folder the archive_command copies WAL into, read from the cluster's configuration files."""
    command = None
    for name in ("postgresql.conf", "postgresql.auto.conf"):
        with contextlib.suppress(OSError):
            for line in (data_dir / name).read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "archive_command":
                    command = value.split("#", 1)[0].strip()
    found = _ARCHIVE_DIR.search(command or "")
    return Path(found.group(1)) if found else None


def _top_level(found: Discovery, folder: Path, clusters: list[Cluster]) -> None:
    top = found.settings
    for candidate in (RUNBOOK_BACKUP_DIR, folder / "backups" / "postgres", folder / "backups"):
        if candidate.is_dir():
            top["backup_dir"] = Found(candidate, "found")
            beats = [name for name in HEARTBEATS if (candidate / name).is_file()]
            found.notes.append(f"heartbeats in {candidate}: {', '.join(beats) or 'none yet'}")
            break
    else:
        found.notes.append(f"no backup folder at {RUNBOOK_BACKUP_DIR} or {folder / 'backups'}")
    production = found.environment("production")
    if production and production.value("backend") == "local":
        archive = _archive_folder(production.value("data_dir"))
        if archive:
            top["wal_archive"] = Found(archive, f"archive_command of {production.value('data_dir')}")
    if "wal_archive" not in top and RUNBOOK_WAL_ARCHIVE.is_dir():
        top["wal_archive"] = Found(RUNBOOK_WAL_ARCHIVE, "the runbook's folder exists", True)
    for candidate in (folder / "ops" / "state" / WAL_SYNC_HEARTBEAT, RUNBOOK_APP_DIR / "ops" / "state" /
                      WAL_SYNC_HEARTBEAT):
        if candidate.is_file():
            top["wal_sync_heartbeat"] = Found(candidate, "found")
            break
    for key, default in (("report_dir", "ops/drill-reports"), ("state_dir", "ops/state/drtui")):
        if (folder / default).is_dir():
            top[key] = Found(folder / default, "found")


# -- the drtui.toml ------------------------------------------------------------------------------------
TOP_KEYS = {  # key: (the default written commented, what it is)
    "backup_dir": ("/opt/backups/postgres", "dumps, uploads, base backups, WAL tarballs, LAST_*.txt"),
    "wal_archive": ("/var/lib/postgresql/wal_archive", "the folder archive_command copies WAL into"),
    "wal_sync_heartbeat": ("ops/state/wal_sync_last_ok.txt", "written by `drtui backup wal-sync`"),
    "report_dir": ("ops/drill-reports", "drill records (DRILL_REPORT_DIR overrides)"),
    "state_dir": ("ops/state/drtui", "run journals, locks, the inventory cache"),
}
ENVIRONMENT_KEYS = {
    "backend": ("local", "local: pg_ctl on a data directory; compose: a Docker Compose project"),
    "project": ("myapp", "the compose project (`docker compose ls`)"),
    "data_dir": ("/var/lib/postgresql/15/main", "the cluster's data directory"),
    "pg_bin": ("/usr/lib/postgresql/15/bin", "PostgreSQL's programs (Debian: apt-get install postgresql-15)"),
    "os_user": ("postgres", "server commands run as this user"),
    "host": ("/var/run/postgresql", "socket directory, or a host name / address for TCP"),
    "port": (5432, "the server's port"),
    "database": ("cleaning", "the app's database"),
    "user": ("postgres", "the database user drtui connects as"),
    "api_base_url": ("http://localhost:8000", "the app's API (/healthz, /readyz, /healthz/backup)"),
    "env_file": (".env", "APP_ENV=prod there marks a production host"),
    "uploads_dir": ("var/uploads", "the uploads folder `drtui backup dump` archives"),
    "server_log": ("/var/log/postgresql/drtui-main.log", "pg_ctl's -l when drtui starts the server"),
    "docker_host": ("unix:///var/run/docker.sock", "the Docker Engine of the compose project"),
    "app_services": (["api", "web", "jobs"], "stopped around a restore"),
    "data_volume": ("pg_data", "the db service's data volume"),
    "wal_volume": ("pg_wal_archive", "the db service's WAL archive volume"),
    "stop_app_command": ("systemctl stop cleaning-api", "run around a restore"),
    "start_app_command": ("systemctl start cleaning-api", "run around a restore"),
    "migrate_command": ("alembic upgrade head", "offered when /readyz fails on migrations"),
    "smoke_command": ("./smoke.sh", "the drill's smoke tests"),
}
LOCAL_ONLY = {"data_dir", "pg_bin", "os_user", "server_log"}
COMPOSE_ONLY = {"project", "docker_host", "app_services", "data_volume", "wal_volume"}
OBJECTIVES = (("staging_rto", "90m"), ("staging_rpo", "24h"), ("daily_rto", "4h"), ("daily_rpo", "24h"),
              ("pitr_rto", "2h"), ("pitr_rpo", "5m"), ("basebackup_max_age", "26h"), ("wal_sync_max_age", "10m"),
              ("dump_max_age", "26h"))


def toml_value(value: Any) -> str:
    """A TOML literal for a string, path, number or list of strings (JSON's escapes are TOML's)."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)


def _line(key: str, found: Found | None, default: Any, what: str) -> str:
    if found is None:
        return f"# {key} = {toml_value(default)}".ljust(56) + f"  # not found: {what}"
    note = "guessed: " + found.source if found.guessed else ("found" if found.source == "found"
                                                              else f"found: {found.source}")
    return f"{key} = {toml_value(found.value)}".ljust(56) + f"  # {note}"


def render(discovery: Discovery, header: str) -> str:
    """The commented drtui.toml for what was discovered: found values set, guessed ones marked, the rest
    commented with the default drtui uses."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += ["# Lines marked `guessed` were inferred: check them. Commented keys were not found on this host:",
              "# drtui uses the value shown; uncomment and change it where yours differs.",
              "# What init looked at:", *(f"#   {note}" for note in discovery.notes), ""]
    for key, (default, what) in TOP_KEYS.items():
        lines.append(_line(key, discovery.settings.get(key), default, what))
    lines += ["", "[objectives]  # the runbook's objectives table and the heartbeat limits"]
    lines += [f"# {key} = {toml_value(value)}" for key, value in OBJECTIVES]
    environments = discovery.environments or [FoundEnvironment(Found("production", "nothing found", True))]
    for env in environments:
        name = env.name
        note = ("guessed: " if name.guessed else "") + (name.source or "the default environment")
        lines += ["", f"[environments.{name.value}]  # {note}"]
        compose = env.value("backend") == "compose"
        for key, (default, what) in ENVIRONMENT_KEYS.items():
            if key in (COMPOSE_ONLY if not compose else LOCAL_ONLY) and key not in env.settings:
                continue
            lines.append(_line(key, env.settings.get(key), default, what))
        lines.append('# sample_tables = ["bookings", "leads", "clients", "invoices"]  # counted by verify and '
                     "the drill")
    return "\n".join(lines) + "\n"
