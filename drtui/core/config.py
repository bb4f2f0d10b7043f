"""The configuration: where each environment's PostgreSQL, backups and WAL archive live.

`drtui.toml` is found by `--config`, then `$DRTUI_CONFIG`, then `./drtui.toml`. Relative paths resolve
against the file's folder. Every key is checked: an unknown key or a bad value is a ConfigError naming the
file, the key and the value, because a typo in a disaster-recovery tool must never be silently ignored.
"""

from __future__ import annotations

import grp
import io
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from drtui.core.errors import ConfigError
from drtui.core.objectstore import Repository, parse_repository
from drtui.core.secrets import looks_secret, register_secret, register_url_password

PRODUCTION = "production"
# The settings a restored copy may replay with (issue 17 point 4; bench/README.md measures each), and the values
# a config may give them: checked here, since a value PostgreSQL refuses would stop the restored server mid-restore.
_SIZE = (r"\d+\s*(kB|MB|GB|TB)", "a size with its unit (kB, MB, GB or TB)", '"2MB"')
REPLAY_SETTINGS = {"recovery_prefetch": (r"off|on|try", "off, on or try", '"off"'),
                   "maintenance_io_concurrency": (r"\d{1,3}|1000", "a number from 0 to 1000", "64"),
                   "wal_decode_buffer_size": _SIZE,  # name: (value, in words, example)
                   "shared_buffers": (r"auto|\d+\s*(kB|MB|GB|TB)", "auto (sized to the host) or a size with its unit "
                                      "(kB, MB, GB or TB)", '"auto" (or "4GB")')}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
LONGEST_DURATION = timedelta(days=3650)  # ten years: longer is a typo, and dates computed from it would overflow


def parse_duration(text: str) -> timedelta:
    """'90m', '4h', '26h', '1h30m', '45s', '2d' → timedelta."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _DURATION.sub("", compact):
        raise ValueError("not a duration")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(compact))
    if seconds > LONGEST_DURATION.total_seconds():
        raise ValueError(f"too long: more than {LONGEST_DURATION.days} days")
    return timedelta(seconds=seconds)


def pg_bin_missing(binary: str | Path) -> tuple[str, str]:
    """Title and hint for a PostgreSQL program that is not where pg_bin says."""
    binary = Path(binary)
    return (f"pg_bin {binary.parent} has no {binary.name}",
            "install postgresql-15 (Debian: apt-get install postgresql-15) or set pg_bin to the folder that holds it")


@dataclass(frozen=True)
class Objectives:
    """The runbook's objectives table and the heartbeat limits."""

    staging_rto: timedelta = timedelta(minutes=90)
    staging_rpo: timedelta = timedelta(hours=24)
    daily_rto: timedelta = timedelta(hours=4)
    daily_rpo: timedelta = timedelta(hours=24)
    pitr_rto: timedelta = timedelta(hours=2)
    pitr_rpo: timedelta = timedelta(minutes=5)
    basebackup_max_age: timedelta = timedelta(hours=26)
    wal_sync_max_age: timedelta = timedelta(minutes=10)
    dump_max_age: timedelta = timedelta(hours=26)
    drill_max_age: timedelta = timedelta(days=92)  # the runbook's quarterly drill


@dataclass(frozen=True)
class Retention:
    """[retention]: what `drtui backup expire` keeps when no --keep / --keep-days is given, and what the status
    previews."""

    keep: int | None = None  # the newest N of each kind
    keep_days: float | None = None  # everything younger than D days


@dataclass(frozen=True)
class Environment:
    name: str
    backend: str = "local"
    data_dir: Path = Path("/var/lib/postgresql/15/main")
    pg_bin: Path = Path("/usr/lib/postgresql/15/bin")
    os_user: str = "postgres"
    host: str = "/var/run/postgresql"
    port: int = 5432
    database: str = "cleaning"
    user: str = "postgres"
    api_base_url: str | None = None
    env_file: Path | None = None
    uploads_dir: Path | None = None
    server_log: Path | None = None
    stop_app_command: str | None = None
    start_app_command: str | None = None
    migrate_command: str | None = None
    smoke_command: str | None = None
    sample_tables: tuple[str, ...] = ("bookings", "leads", "clients", "invoices")
    # backend = "compose": the Docker Compose project and where its pieces are (found by compose labels)
    project: str | None = None
    db_service: str = "db"
    app_services: tuple[str, ...] = ("api", "web", "jobs")
    data_volume: str = "pg_data"
    wal_volume: str = "pg_wal_archive"
    pgdata: str = "/var/lib/postgresql/data"
    docker_host: str | None = None
    helper_image: str | None = None  # default: the db service's own image (never pulled)
    tablespace_mapping: tuple[tuple[str, str], ...] = ()  # {"/old" = "/new"}: where a restore puts a tablespace
    replay_tuning: bool = True  # the restored copy replays with recovery_conf.replay_settings (false: as backed up)
    # {name = "value"} replaces drtui's choice for one of REPLAY_SETTINGS; {name = false} leaves it as backed up
    replay_settings: tuple[tuple[str, str | None], ...] = ()

    @property
    def is_production(self) -> bool:
        return self.name == PRODUCTION

    def env_values(self) -> dict[str, str]:
        """KEY=VALUE pairs of the env file (none configured: empty; configured but missing: ConfigError)."""
        return read_env_file(self.env_file) if self.env_file else {}

    def password(self) -> str | None:
        """libpq's PGPASSWORD wins; else POSTGRES_PASSWORD from the env file; else none (trust, .pgpass)."""
        password = os.environ.get("PGPASSWORD") or self.env_values().get("POSTGRES_PASSWORD") or None
        register_secret(password)
        return password


@dataclass(frozen=True)
class Config:
    path: Path | None
    backup_dir: Path
    wal_archive: Path
    wal_sync_heartbeat: Path
    report_dir: Path
    state_dir: Path
    objectives: Objectives = field(default_factory=Objectives)
    environments: Mapping[str, Environment] = field(default_factory=dict)
    templates_dir: Path | None = None  # a folder of report templates that override the packaged ones
    backup_group: int | None = None  # gid given read access to backups, heartbeats and journals (0640/0750)
    repository: Repository | None = None  # an S3 repository; None: backup_dir and wal_archive on this host
    retention: Retention | None = None  # None: expire needs --keep / --keep-days, and the status previews nothing
    pg_bins: Mapping[int, Path] = field(default_factory=dict)  # [pg_bin]: the programs of each major version

    def environment(self, name: str | None = None) -> Environment:
        """The named environment, or the production one; a clear error when it is not configured."""
        name = name or PRODUCTION
        if not self.environments:
            raise ConfigError(f"{self.source}: a read-only config (it names only a [repository]) has no "
                              f"environment {name!r}", "it is for `drtui status`; give the host's own drtui.toml "
                              "for anything else")
        if name not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none"
            raise ConfigError(
                f"{self.source}: no environment named {name!r} (configured: {known})",
                "add an [environments.NAME] table, or pick one with --env / TARGET_ENV",
            )
        return self.environments[name]

    @property
    def read_only(self) -> bool:
        """A config of a terminal that only watches: a [repository] and no environment of its own."""
        return not self.environments

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "<defaults>"

    def with_overrides(self, env_name: str | None, environ: Mapping[str, str]) -> Config:
        """Apply the runbook's variables that override config values: ENV_FILE and API_BASE_URL on the
        target environment, DRILL_REPORT_DIR on report_dir."""
        config = self
        if environ.get("DRILL_REPORT_DIR"):
            config = replace(config, report_dir=Path(environ["DRILL_REPORT_DIR"]).absolute())
        name = env_name or PRODUCTION
        if name in config.environments:
            changes: dict[str, Any] = {}
            if environ.get("ENV_FILE"):
                changes["env_file"] = Path(environ["ENV_FILE"]).absolute()
            if environ.get("API_BASE_URL"):
                changes["api_base_url"] = environ["API_BASE_URL"]
            if changes:
                envs = dict(config.environments)
                envs[name] = replace(envs[name], **changes)
                config = replace(config, environments=envs)
        return config


def read_env_file(path: Path) -> dict[str, str]:
    """A dotenv file's KEY=VALUE pairs, read by python-dotenv as Compose and the app read them: comments
    (also after a value), quotes, `export` with any whitespace, a BOM, CRLF. Values are taken literally
    (no `${VAR}` interpolation from drtui's own environment). A configured file that is missing is an error:
    the production-host gate must never pass because the file it reads is not there."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: the env file does not exist",
                          "fix env_file in drtui.toml (or ENV_FILE), or create the file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the env file is not UTF-8 text (byte {exc.start})",
                          "save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the env file ({exc.strerror})",
                          "check the path and permissions") from exc
    parsed = dotenv_values(stream=io.StringIO(text), interpolate=False)
    values = {key: value for key, value in parsed.items() if value is not None}
    for key, value in values.items():
        if looks_secret(key):
            register_secret(value)
        register_url_password(value)
    return values


def find_config_path(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    for candidate, origin in ((explicit, "--config"), (environ.get("DRTUI_CONFIG"), "DRTUI_CONFIG")):
        if candidate:
            path = Path(candidate)
            if not path.is_file():
                raise ConfigError(f"{path}: no such config file (from {origin})", "check the path")
            return path.absolute()
    path = Path("drtui.toml")
    if not path.is_file():
        raise ConfigError(
            f"no drtui.toml in {Path.cwd()}",
            "pass --config FILE, set DRTUI_CONFIG, or run from the folder that holds drtui.toml",
        )
    return path.absolute()


def load_config(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    path = find_config_path(explicit, environ)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})", "fix the syntax at the line shown") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})",
                          "save the config as UTF-8 (TOML files are UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})", "check the permissions") from exc
    return parse_config(data, path)


_TOP_KEYS = {"backup_dir", "wal_archive", "wal_sync_heartbeat", "report_dir", "state_dir", "objectives",
             "environments", "templates_dir", "backup_group", "repository", "retention", "pg_bin"}
_PATH_KEYS = {"data_dir", "pg_bin", "env_file", "uploads_dir", "server_log"}


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    base = path.parent
    _reject_unknown(path, "", data, _TOP_KEYS)

    def path_value(key: str, value: Any, default: str | None = None) -> Path:
        value = default if value is None else value
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: {key} = {value!r} is not a path", f"set {key} to a folder or file path")
        return (base / value).resolve() if not os.path.isabs(value) else Path(value)

    objectives = _parse_objectives(path, data.get("objectives", {}))
    raw_envs = data.get("environments", {})
    if "environments" not in data and "repository" in data:
        raw_envs = {}  # read-only: the status of what the hosts publish to the repository
    elif not isinstance(raw_envs, dict) or not raw_envs:
        raise ConfigError(f"{path}: [environments] is missing or empty",
                          "describe at least one environment, e.g. [environments.production] (or, for a "
                          "terminal that only watches a bucket, a config of a [repository] alone)")
    environments = {name: _parse_environment(path, name, raw, path_value) for name, raw in raw_envs.items()}
    return Config(
        path=path,
        backup_dir=path_value("backup_dir", data.get("backup_dir"), "/opt/backups/postgres"),
        wal_archive=path_value("wal_archive", data.get("wal_archive"), "/var/lib/postgresql/wal_archive"),
        wal_sync_heartbeat=path_value("wal_sync_heartbeat", data.get("wal_sync_heartbeat"),
                                      "ops/state/wal_sync_last_ok.txt"),
        report_dir=path_value("report_dir", data.get("report_dir"), "ops/drill-reports"),
        state_dir=path_value("state_dir", data.get("state_dir"), "ops/state/drtui"),
        objectives=objectives,
        environments=environments,
        templates_dir=path_value("templates_dir", data["templates_dir"]) if "templates_dir" in data else None,
        backup_group=_parse_group(path, data["backup_group"]) if "backup_group" in data else None,
        repository=parse_repository(data["repository"], str(path)) if "repository" in data else None,
        retention=_parse_retention(path, data["retention"]) if "retention" in data else None,
        pg_bins=_parse_pg_bins(path, data.get("pg_bin", {}), path_value),
    )


def _parse_retention(path: Path, raw: Any) -> Retention:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [retention] must be a table", "write [retention] keep = 7 and/or keep_days = 14")
    _reject_unknown(path, "retention", raw, {"keep", "keep_days"})
    keep, days = raw.get("keep"), raw.get("keep_days")
    if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 1):
        raise ConfigError(f"{path}: retention.keep = {keep!r} is not a count of backups", "keep 1 or more")
    if days is not None and (not isinstance(days, int | float) or isinstance(days, bool) or days <= 0):
        raise ConfigError(f"{path}: retention.keep_days = {days!r} is not a number of days", "give days, e.g. 14")
    if keep is None and days is None:
        raise ConfigError(f"{path}: [retention] says nothing to keep", "set keep = N and/or keep_days = D")
    return Retention(keep, float(days) if days is not None else None)


def _parse_pg_bins(path: Path, raw: Any, path_value: Any) -> dict[int, Path]:
    """[pg_bin]: `17 = "/usr/lib/postgresql/17/bin"`, the folder of each major version's programs, used to
    restore a backup of that version when the environment's own pg_bin is of another."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: pg_bin must be a table of major versions",
                          'write it like [pg_bin] 17 = "/usr/lib/postgresql/17/bin"')
    found = {}
    for key, value in raw.items():
        if not key.isdigit() or not 10 <= int(key) <= 99:
            raise ConfigError(f"{path}: pg_bin.{key} is not a PostgreSQL major version",
                              'name the version, e.g. [pg_bin] 17 = "/usr/lib/postgresql/17/bin"')
        folder = path_value(f"pg_bin.{key}", value)
        if not folder.is_dir():
            raise ConfigError(f"{path}: pg_bin.{key} = {str(folder)!r} is not a folder",
                              f"point it at PostgreSQL {key}'s bin folder (Debian: /usr/lib/postgresql/{key}/bin)")
        found[int(key)] = folder
    return found


def _parse_group(path: Path, value: Any) -> int:
    """backup_group: the name of an existing OS group, which may read what drtui writes."""
    if isinstance(value, str) and value:
        try:
            return grp.getgrnam(value).gr_gid
        except KeyError:
            pass
    raise ConfigError(f"{path}: backup_group = {value!r} is not a group of this host",
                      "name an existing group (see /etc/group), or remove the key")


def _reject_unknown(path: Path, table: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            where = f"{table}.{key}" if table else key
            raise ConfigError(f"{path}: unknown key {where!r}", f"allowed here: {', '.join(sorted(allowed))}")


def _parse_objectives(path: Path, raw: Any) -> Objectives:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [objectives] must be a table", "see the README's config example")
    names = {f.name for f in fields(Objectives)}
    _reject_unknown(path, "objectives", raw, names)
    values = {}
    for key, value in raw.items():
        try:
            values[key] = parse_duration(str(value))
        except ValueError as exc:
            raise ConfigError(f"{path}: objectives.{key} = {value!r} is {exc}",
                              'write it like "90m", "4h" or "26h"') from None
    return Objectives(**values)


def _parse_environment(path: Path, name: str, raw: Any, path_value: Any) -> Environment:
    table = f"environments.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [{table}] must be a table", "see the README's config example")
    allowed = {f.name for f in fields(Environment)} - {"name"}
    _reject_unknown(path, table, raw, allowed)
    values: dict[str, Any] = {"name": name}
    for key, value in raw.items():
        if key in _PATH_KEYS:
            values[key] = path_value(f"{table}.{key}", value)
        elif key == "port":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
                raise ConfigError(f"{path}: {table}.port = {value!r} is not a TCP port", "use a number 1-65535")
            values[key] = value
        elif key == "sample_tables":
            if not isinstance(value, list) or not value or not all(isinstance(t, str) and t for t in value):
                raise ConfigError(f"{path}: {table}.sample_tables = {value!r} is not a list of table names",
                                  'write it like ["bookings", "leads"]')
            values[key] = tuple(value)
        elif key == "app_services":
            if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
                raise ConfigError(f"{path}: {table}.app_services = {value!r} is not a list of service names",
                                  'write it like ["api", "web", "jobs"]')
            values[key] = tuple(value)
        elif key == "tablespace_mapping":
            if not isinstance(value, dict) or not all(isinstance(old, str) and isinstance(new, str)
                                                      and old.startswith("/") and new.startswith("/")
                                                      for old, new in value.items()):
                raise ConfigError(f"{path}: {table}.tablespace_mapping = {value!r} is not a table of absolute "
                                  "folders", 'write it like tablespace_mapping = {"/srv/ts_old" = "/srv/ts_new"}')
            values[key] = tuple((os.path.normpath(old), os.path.normpath(new)) for old, new in value.items())
        elif key == "replay_tuning":
            if not isinstance(value, bool):
                raise ConfigError(f"{path}: {table}.replay_tuning = {value!r} is not true or false",
                                  "write replay_tuning = false to replay with the backup's own settings")
            values[key] = value
        elif key == "replay_settings":
            values[key] = _parse_replay_settings(path, table, value)
        elif not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: {table}.{key} = {value!r} must be a non-empty string", "quote the value")
        else:
            values[key] = value
    if values.get("backend", "local") not in ("local", "compose"):
        raise ConfigError(f"{path}: {table}.backend = {values['backend']!r} is not supported",
                          'use backend = "local" (pg_ctl on a data directory) or "compose" (a Docker Compose '
                          'project)')
    if values.get("backend", "local") == "local" and "pg_bin" in values and not values["pg_bin"].is_dir():
        raise ConfigError(f"{path}: {table}.pg_bin = {str(values['pg_bin'])!r} is not a folder",
                          pg_bin_missing(values["pg_bin"] / "pg_ctl")[1])
    if values.get("backend") == "compose" and not values.get("project"):
        raise ConfigError(f"{path}: {table}.backend = \"compose\" needs project = \"<compose project name>\"",
                          "set project to the name `docker compose ls` shows for the stack")
    return Environment(**values)


def _parse_replay_settings(path: Path, table: str, value: Any) -> tuple[tuple[str, str | None], ...]:
    """replay_settings = {shared_buffers = "2GB", recovery_prefetch = false}: false leaves one as backed up."""
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {table}.replay_settings = {value!r} is not a table",
                          'write it like replay_settings = {shared_buffers = "2GB", recovery_prefetch = false}')
    parsed: list[tuple[str, str | None]] = []
    for name, setting in value.items():
        if name not in REPLAY_SETTINGS:
            raise ConfigError(f"{path}: unknown key {table}.replay_settings.{name!r}",
                              f"allowed here: {', '.join(sorted(REPLAY_SETTINGS))}")
        if isinstance(setting, int) and not isinstance(setting, bool):
            setting = str(setting)
        pattern, words, example = REPLAY_SETTINGS[name]
        if setting is not False and not (isinstance(setting, str) and re.fullmatch(pattern, setting.strip())):
            raise ConfigError(f"{path}: {table}.replay_settings.{name} = {setting!r} is not {words}",
                              f"write it like {name} = {example}, or {name} = false to leave it as the backup "
                              "has it")
        parsed.append((name, None if setting is False else setting.strip()))
    return tuple(parsed)

