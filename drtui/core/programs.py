"""Which PostgreSQL programs run for a data directory or a backup of a given major version: the
environment's pg_bin, else [pg_bin] N of the config, else Debian's /usr/lib/postgresql/N/bin."""

from __future__ import annotations

import dataclasses
import functools
import re
import subprocess
from pathlib import Path

from drtui.core.config import Config, Environment, pg_bin_missing
from drtui.core.errors import PlanError


@functools.lru_cache(maxsize=32)
def pg_major_version(pg_bin: Path) -> int:
    """The major version of the server binaries in pg_bin (`pg_config --version`, else `postgres -V`)."""
    for argv in ([str(pg_bin / "pg_config"), "--version"], [str(pg_bin / "postgres"), "-V"]):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except (FileNotFoundError, PermissionError):
            continue
        found = re.search(r"(\d+)(?:\.\d+)?", done.stdout)
        if done.returncode == 0 and found:
            return int(found.group(1))
    raise PlanError(f"{pg_bin}: no pg_config or postgres binary that reports its version",
                    pg_bin_missing(pg_bin / "postgres")[1])


DEBIAN_PG_BIN = "/usr/lib/postgresql/{version}/bin"


def pg_bin_for(config: Config, env: Environment, version: int, env_version: int | None = None, *,
               on_host: bool = True) -> Path:
    """The folder of PostgreSQL `version`'s programs for restoring a backup of that version into `env`: its own
    pg_bin, else [pg_bin] `version` of the config, else Debian's /usr/lib/postgresql/N/bin; a PlanError naming
    the key and every folder tried when none holds that version. `env_version`: pg_bin's, when known;
    `on_host`: the backend runs this host's programs (`Backend.runs_host_programs`), else only pg_bin is compared."""
    tried = []
    candidates = [(env.pg_bin, f"pg_bin of {env.name!r}", env_version)]
    if on_host:
        if version in config.pg_bins:
            candidates.append((config.pg_bins[version], f"pg_bin.{version}", None))
        candidates.append((Path(DEBIAN_PG_BIN.format(version=version)), "Debian's layout", None))
    for folder, origin, known in candidates:
        try:
            found = known if known is not None else pg_major_version(folder)
        except PlanError:
            if folder == env.pg_bin:  # a configured pg_bin without programs is a mistake to fix, not skip
                raise
            tried.append(f"{folder} ({origin}: no programs)")
            continue
        if found == version:
            return folder
        tried.append(f"{folder} ({origin}: PostgreSQL {found})")
    raise PlanError(f"no PostgreSQL {version} programs to restore it with; tried " + ", ".join(tried),
                    f"install PostgreSQL {version} (Debian: apt-get install postgresql-{version}) and name its bin "
                    f"folder in the config: [pg_bin] {version} = \"/usr/lib/postgresql/{version}/bin\"")


def with_programs_of_data(config: Config, env: Environment, on_host: bool) -> Environment:
    """`env` with the programs of the major version its data directory holds: after a restore of another
    version's backup, promote, advance and the undo of a stop need that version's pg_ctl. `on_host`: as for
    `pg_bin_for`; a backend that does not run this host's programs keeps its own."""
    if not on_host:
        return env
    try:
        version = int((env.data_dir / "PG_VERSION").read_text().strip())
    except (OSError, ValueError):
        return env  # no readable data directory: the command's own checks say what is wrong
    folder = pg_bin_for(config, env, version)
    return env if folder == env.pg_bin else dataclasses.replace(env, pg_bin=folder)
