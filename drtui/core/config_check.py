"""What `drtui init --check` says of a loaded config: is each environment's server there and reachable, and what
drtui's commands would do with it. It connects to each server and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from drtui.core.backends import backend_for
from drtui.core.config import Config, Environment
from drtui.core.errors import DrError
from drtui.core.postgres import connect


@dataclass(frozen=True)
class EnvironmentCheck:
    name: str
    ok: bool
    facts: list[str]  # what was found, one line each
    would: list[str]  # what drtui would do with it


def check_config(config: Config) -> list[EnvironmentCheck]:
    """For each environment of a loaded config: is its server there and reachable, and what drtui's commands
    would do with it (connects to each server; changes nothing)."""
    checks = []
    for env in config.environments.values():
        facts, ok = [], True
        try:
            backend = backend_for(env, config.state_dir)
            running = backend.server_running()
        except DrError as exc:
            running, ok = False, False
            facts.append(f"server: {exc.title}")
        else:
            facts.append(f"server: {'running' if running else 'not running'} ({env.backend}, {backend.location})")
        if running:
            try:
                with connect(env) as conn:
                    version = conn.execute("show server_version").fetchone()[0]
                facts.append(f"connects: {env.user}@{env.host}:{env.port}/{env.database} (PostgreSQL {version})")
            except DrError as exc:
                ok = False
                facts.append(f"connects: no: {exc.title}")
        app_env = env.env_values().get("APP_ENV")
        facts.append(f"env_file: {env.env_file} (APP_ENV={app_env})" if env.env_file and env.env_file.is_file()
                     else f"env_file: {env.env_file or 'not set'} (missing: APP_ENV unknown)")
        checks.append(EnvironmentCheck(env.name, ok and (env.env_file is None or env.env_file.is_file()), facts,
                                       _would(config, env, app_env)))
    if config.pg_bins:
        checks.append(_check_pg_bins(config))
    return checks


def _check_pg_bins(config: Config) -> EnvironmentCheck:
    """[pg_bin]: does each folder hold the programs of the major version it is named for."""
    from drtui.core.programs import pg_major_version

    facts, ok = [], True
    for version, folder in sorted(config.pg_bins.items()):
        try:
            found = pg_major_version(folder)
        except DrError:
            found = None
        ok &= found == version
        said = (f"(PostgreSQL {found})" if found == version else
                f"holds PostgreSQL {found}, not {version}" if found else "holds no PostgreSQL programs")
        facts.append(f"pg_bin.{version}: {folder} {said}")
    return EnvironmentCheck("pg_bin", ok, facts, [
        f"restore: a base backup of PostgreSQL {version} runs with {folder}"
        for version, folder in sorted(config.pg_bins.items())])


def _would(config: Config, env: Environment, app_env: str | None) -> list[str]:
    prod_host = (app_env or "").lower() in ("prod", "production")
    lines = []
    if env.is_production:
        lines.append(f"backups: `drtui backup base|dump|wal-sync` write into {config.backup_dir}")
        lines.append(f"restore: `drtui restore pitr --env {env.name}` with CONFIRM_PITR_RESTORE=YES, after "
                     "preserving the data directory")
    elif prod_host:
        lines.append("restore: refused (its env_file says APP_ENV=prod: this host is production)")
    elif env.name == "staging":
        lines.append("restore: `TARGET_ENV=staging drtui restore staging` (CONFIRM_STAGING_RESTORE=YES), "
                     "`drtui restore pitr --env staging` (CONFIRM_PITR_RESTORE=YES); drills: `TARGET_ENV=staging "
                     "drtui drill` (CONFIRM_DRILL=YES)")
    else:
        lines.append(f"restore: `drtui restore pitr --env {env.name}` with CONFIRM_PITR_RESTORE=YES")
    return lines
