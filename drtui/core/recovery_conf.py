"""How a restored data directory recovers: the target settings, the signal file, the overrides that keep the
restored copy from acting on anything outside its own data directory, the restore_command (the fetcher
program shipped beside this module, fetch_wal.sh), and the archive-status marks of the WAL it replays."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from drtui.core.config import Environment
from drtui.core.extract import STAGED_MARKER, WAL_NAME
from drtui.core.inventory.names import MAGIC_OF_VERSION
from drtui.core.postgres import chown_to

if TYPE_CHECKING:  # the backends use this module, and the planner reaches the backends through core/backup.py
    from drtui.core.planning import Plan

FETCHER = Path(__file__).with_name("fetch_wal.sh")
PREFETCH_SPOOL = "pg_wal/.drtui-prefetch"  # relative to the data directory (the command's cwd); as in FETCHER
FETCHER_COPY = f"{PREFETCH_SPOOL}/fetch_wal.sh"  # installed into the data directory: os_user must read it
FETCH_FATAL = 170  # FETCHER's exit code for a file that is there but cannot be replayed
# Settings a backup may carry that act on files or servers outside the data directory (a standby's upstream,
# commands run at restartpoints and at the end of recovery, a trigger file), blanked in every restored copy;
# archiving too, except in production, whose restored copy is the new primary and archives its new timeline.
OUTSIDE_SETTINGS = {"archive_cleanup_command": "", "recovery_end_command": "", "primary_conninfo": "",
                    "primary_slot_name": "", "promote_trigger_file": ""}
ARCHIVE_SETTINGS = {"archive_mode": "off", "archive_command": "", "archive_library": ""}
# Settings of those that exist only in some major versions (first, last): an unknown one stops the server.
VERSIONED = {"promote_trigger_file": (12, 15), "archive_library": (15, 99)}
_SETTING = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*('(?:[^']|'')*'|[^\s#]*)")


def signal_file(plan: Plan) -> str:
    """How the restored server recovers. Normally as a standby that drtui asks to promote (see
    steps.recovery): PostgreSQL still replays every WAL file the source holds, stops at the target (or at the
    end, for 'latest'; a target the WAL does not reach fails as usual), and then promotes at once, writing an
    end-of-recovery record instead of waiting for a full checkpoint (the checkpoint follows in the
    background). With --pause-at-target it runs plain archive recovery, which pauses at the target and waits
    for the operator."""
    return "recovery.signal" if plan.pause_at_target else "standby.signal"


def recovery_settings(plan: Plan, env: Environment, restore_command: str) -> dict[str, str]:
    """What the restored server must run with: the recovery target, and overrides of what the base backup
    carried over from the cluster it was taken from (port, addresses, socket, log collector, and everything
    in OUTSIDE_SETTINGS, and ARCHIVE_SETTINGS outside production)."""
    settings = {"restore_command": restore_command, **plan.target.settings(),
                # pause, not promote: a standby told to promote ends its pause at once (a fast promotion),
                # while promote would make it write a full end-of-recovery checkpoint first.
                "recovery_target_action": "pause",
                "hot_standby": "on",
                **OUTSIDE_SETTINGS,
                "port": str(env.port),
                "listen_addresses": "" if env.host.startswith("/") else env.host,
                "logging_collector": "off"}
    if env.host.startswith("/"):
        settings["unix_socket_directories"] = env.host
    if not env.is_production:
        # A restored copy must never archive into the production WAL archive.
        settings |= ARCHIVE_SETTINGS
    version = plan.base_backup.pg_version
    return {key: value for key, value in settings.items() if _exists(key, version)}


def _exists(setting: str, version: int) -> bool:
    first, last = VERSIONED.get(setting, (0, 99))
    return first <= version <= last


def carried_settings(data_dir: Path) -> dict[str, str]:
    """The settings a data directory's postgresql.conf and postgresql.auto.conf set (the last one wins; values
    as written, quotes included; include files are not followed)."""
    found: dict[str, str] = {}
    for name in ("postgresql.conf", "postgresql.auto.conf"):
        try:
            text = (data_dir / name).read_text(errors="replace")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            match = _SETTING.match(line)
            if match:
                found[match.group(1).lower()] = match.group(2)
    return found


def overridden(data_dir: Path, settings: dict[str, str]) -> list[str]:
    """The settings of OUTSIDE_SETTINGS and ARCHIVE_SETTINGS that `settings` override, each marked when the
    backup set it to something else (names only: values such as primary_conninfo may hold a password)."""
    carried = carried_settings(data_dir)
    names = [name for name in (*OUTSIDE_SETTINGS, *ARCHIVE_SETTINGS) if name in settings]
    return [f"{name} (the backup set it)" if carried.get(name, "''").strip("'") not in ("", settings[name])
            else name for name in names]


def install_fetcher(data_dir: Path, os_user: str) -> None:
    """Copy the fetcher into the data directory: PostgreSQL runs it as os_user, who may not be able to read
    drtui's own installation. It goes with the prefetch spool (clear_prefetch)."""
    spool = data_dir / PREFETCH_SPOOL
    spool.mkdir(mode=0o700, parents=True, exist_ok=True)
    chown_to(spool, os_user)
    shutil.copyfile(FETCHER, data_dir / FETCHER_COPY)
    chown_to(data_dir / FETCHER_COPY, os_user)


def restore_command(folder: Path, segment_size: int, pg_version: int) -> str:
    """The restore_command running the installed fetcher on `folder` (see FETCHER for what it checks and
    its exit codes).

    A folder staged by stage_wal is a private copy on the restore's side: its files are hard-linked into
    pg_wal (no copy, a few ms each), falling back to `cp` across filesystems. Any other folder (the live
    archive) is only ever read, never linked from: the restored server recycles and overwrites WAL files in
    pg_wal after promotion, and a link would carry those writes into the archive. From such a folder the
    fetcher prefetches the next segments, so fetch and replay overlap."""
    link = "ln" if (folder / STAGED_MARKER).is_file() else "cp"
    magic = f"{MAGIC_OF_VERSION[pg_version]:x}" if pg_version in MAGIC_OF_VERSION else "-"
    source = shlex.quote(str(folder.resolve()))
    return f"sh {FETCHER_COPY} {source} {segment_size} {magic} {link} %f %p"


def fetcher_misses(data_dir: Path) -> list[str]:
    """The segments PostgreSQL asked the fetcher for that the WAL source did not have."""
    try:
        return [e.name[:-8] for e in os.scandir(data_dir / PREFETCH_SPOOL) if e.name.endswith(".missing")]
    except FileNotFoundError:
        return []


def mark_wal_archived(data_dir: Path, os_user: str) -> list[str]:
    """Mark the WAL segments a base backup brought in its pg_wal as archived (`archive_status/<name>.done`),
    as PostgreSQL marks the ones it restores: they belong to the source's timeline, which archived them. After
    a fast promotion, the first checkpoint would otherwise queue them for archiving again, and an
    archive_command that refuses to overwrite (`test ! -f ... && cp ...`) would stall archiving on them."""
    status = data_dir / "pg_wal" / "archive_status"
    status.mkdir(mode=0o700, exist_ok=True)
    chown_to(status, os_user)
    marked = sorted(entry.name for entry in os.scandir(data_dir / "pg_wal")
                    if entry.is_file() and len(entry.name) == 24 and WAL_NAME.match(entry.name))
    for name in marked:
        done = status / f"{name}.done"
        done.touch()
        chown_to(done, os_user)
    return marked


def clear_prefetch(data_dir: Path) -> None:
    """Remove what the fetcher left in a promoted cluster's pg_wal (prefetch spool, marks, its own copy)."""
    shutil.rmtree(data_dir / PREFETCH_SPOOL, ignore_errors=True)
