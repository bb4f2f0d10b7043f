"""How a restored data directory recovers: the target settings, the signal file, the overrides that keep the
restored copy from acting on anything outside its own data directory, the restore_command (the fetcher
program shipped beside this module, fetch_wal.sh), and the archive-status marks of the WAL it replays."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from drtui.core.config import REPLAY_SETTINGS, Environment
from drtui.core.errors import DrError
from drtui.core.extract import STAGED_MARKER, WAL_NAME
from drtui.core.inventory.names import MAGIC_OF_VERSION
from drtui.core.postgres import chown_to, connect

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
VERSIONED = {"promote_trigger_file": (12, 15), "archive_library": (15, 99), "recovery_prefetch": (15, 99),
             "wal_decode_buffer_size": (15, 99)}
# Where drtui's own block begins in postgresql.auto.conf (both backends' write_recovery start it so): what is
# before it is the backup's own.
_DRTUI_BLOCK = re.compile(r"^# drtui ", re.MULTILINE)
_SIZE = re.compile(r"'?\s*(\d+)\s*(kB|MB|GB|TB)?\s*'?")
_SIZE_UNITS = {"kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
PG_SHARED_BUFFERS = 128 << 20  # PostgreSQL's default, when neither file sets it
_SETTING = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*('(?:[^']|'')*'|[^\s#]*)")


def signal_file(plan: Plan) -> str:
    """How the restored server recovers. Normally as a standby that drtui asks to promote (see
    steps.recovery): PostgreSQL still replays every WAL file the source holds, stops at the target (or at the
    end, for 'latest'; a target the WAL does not reach fails as usual), and then promotes at once, writing an
    end-of-recovery record instead of waiting for a full checkpoint (the checkpoint follows in the
    background). With --pause-at-target it runs plain archive recovery, which pauses at the target and waits
    for the operator."""
    return "recovery.signal" if plan.pause_at_target else "standby.signal"


def recovery_settings(plan: Plan, env: Environment, restore_command: str, carried: Mapping[str, str] | None = None,
                      memory: tuple[int, int] | None = None) -> dict[str, str]:
    """What the restored server must run with: the recovery target, overrides of what the base backup
    carried over from the cluster it was taken from (port, addresses, socket, log collector, and everything
    in OUTSIDE_SETTINGS, and ARCHIVE_SETTINGS outside production), and the replay_settings for the backup's
    `carried` settings (carried_settings) and the `memory` of the server's host."""
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
    settings |= replay_settings(env, carried or {}, memory)
    version = plan.base_backup.pg_version
    return {key: value for key, value in settings.items() if _exists(key, version)}


def replay_settings(env: Environment, carried: Mapping[str, str], memory: tuple[int, int] | None) -> dict[str, str]:
    """The settings the restored copy replays with: recovery_prefetch off, the one measured to help at the
    reference size (bench/README.md, issue 17 point 4: its read-ahead advice cost more than it saved), then the
    environment's replay_settings; none with replay_tuning = false. shared_buffers = "auto" (measured: 0.6x
    the redo at scale 20, within the noise at scale 100, so not a default) sizes it to the `memory` of the
    host the server runs on (host_memory; None for a server with a memory limit of its own, a container's,
    where it is left as backed up): only ever raised over the backup's own, and not with huge_pages = on
    (reserved huge pages may not hold more). All go back to the backup's own values after promotion
    (return_replay_settings)."""
    if not env.replay_tuning:
        return {}
    chosen = {"recovery_prefetch": "off"}
    for name, value in env.replay_settings:
        if value is None:
            chosen.pop(name, None)
        else:
            chosen[name] = value
    if chosen.get("shared_buffers") == "auto":
        del chosen["shared_buffers"]
        own = shared_buffers_bytes(carried.get("shared_buffers"))
        host = host_shared_buffers(memory) if memory else 0
        if _unquoted(carried.get("huge_pages", "try")) != "on" and own is not None and host > own:
            chosen["shared_buffers"] = f"{host >> 20}MB"
    return chosen


def host_memory() -> tuple[int, int]:
    """(total, available) bytes of this host's memory, from /proc/meminfo."""
    info = {line.split(":")[0]: int(line.split()[1]) << 10
            for line in Path("/proc/meminfo").read_text().splitlines() if line.split()[1:2]}
    return info["MemTotal"], info.get("MemAvailable", info["MemTotal"])


def host_shared_buffers(memory: tuple[int, int]) -> int:
    """Bytes of shared_buffers for replay on a host with `memory` (total, available): a quarter of it
    (PostgreSQL's usual sizing for a dedicated server, leaving the page cache the fetched WAL and the data files
    are read through), and no more than half of what is available now, since shared memory is allocated whole
    at start-up."""
    return min(memory[0] // 4, memory[1] // 2) >> 20 << 20


def shared_buffers_bytes(value: str | None) -> int | None:
    """shared_buffers as written ('128MB', or '16384' 8 kB buffers; quoted or not) in bytes: PostgreSQL's
    default when not set, None when it cannot be read."""
    if value is None:
        return PG_SHARED_BUFFERS
    found = _SIZE.fullmatch(value.strip())
    if not found:
        return None
    return int(found.group(1)) * (_SIZE_UNITS[found.group(2)] if found.group(2) else 8192)


def return_replay_settings(env: Environment) -> list[str]:
    """After promotion: every REPLAY_SETTINGS name in drtui's block of postgresql.auto.conf goes back to the
    backup's own value (ALTER SYSTEM SET to what the backup's postgresql.auto.conf held, else RESET, which
    leaves postgresql.conf's or PostgreSQL's default), and the configuration is reloaded. A setting that needs
    a restart (shared_buffers) keeps the replay's value until the server's next restart. Returns what it did,
    in words for the run's log; a failure is said, not raised: the restore itself is done."""
    import psycopg  # not at module level: see drtui.core.postgres
    from psycopg import sql

    try:
        with connect(env, "postgres") as conn:
            text = conn.execute("select pg_read_file('postgresql.auto.conf')").fetchone()[0]
            block = _DRTUI_BLOCK.search(text)
            tuned = [name for name in _settings_in(text[block.start():]) if name in REPLAY_SETTINGS] if block else []
            if not tuned:
                return []
            own = _settings_in(text[:block.start()])
            live = dict(conn.execute("select name, current_setting(name) from pg_settings where context = "
                                     "'postmaster' and name = any(%s)", (tuned,)).fetchall())
            for name in tuned:
                if name in own:
                    conn.execute(sql.SQL("alter system set {} = {}").format(sql.Identifier(name),
                                                                            sql.Literal(_unquoted(own[name]))))
                else:
                    conn.execute(sql.SQL("alter system reset {}").format(sql.Identifier(name)))
            conn.execute("select pg_reload_conf()")
            files = {name: f"{setting} ({Path(source).name})" for name, setting, source in conn.execute(
                "select name, setting, sourcefile from pg_file_settings where name = any(%s) order by seqno",
                (tuned,)).fetchall()}
    except (DrError, psycopg.Error) as exc:
        title = exc.title if isinstance(exc, DrError) else str(exc).strip()
        return [f"could not return the replay settings to the backup's own values ({title}): for each of them in "
                "the drtui block of postgresql.auto.conf, run ALTER SYSTEM RESET (or SET to the backup's value), "
                "then SELECT pg_reload_conf()"]
    said = []
    for name in tuned:
        back = f"{name} back to the backup's own value: {files.get(name, 'PostgreSQL default')}"
        if name in live:
            back += f", from the next restart; until then the server runs with the replay's {live[name]}"
        said.append(back)
    return said


def _settings_in(text: str) -> dict[str, str]:
    """name → value as written, of configuration text (the last one wins)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _SETTING.match(line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def _unquoted(value: str) -> str:
    return value[1:-1].replace("''", "'") if len(value) > 1 and value[0] == value[-1] == "'" else value


def _exists(setting: str, version: int) -> bool:
    first, last = VERSIONED.get(setting, (0, 99))
    return first <= version <= last


def carried_settings(data_dir: Path) -> dict[str, str]:
    """The settings a data directory's postgresql.conf and postgresql.auto.conf set (the last one wins; values
    as written, quotes included; include files are not followed)."""
    found: dict[str, str] = {}
    for name in ("postgresql.conf", "postgresql.auto.conf"):
        try:
            found |= _settings_in((data_dir / name).read_text(errors="replace"))
        except FileNotFoundError:
            continue
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
