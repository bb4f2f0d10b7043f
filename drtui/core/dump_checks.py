"""What a staging dump restore checks before it touches anything.

A dump is data, never a program: psql runs every backslash command a file carries (`\\!` is a shell), so a
plain dump is scanned for any psql meta-command pg_dump does not write, and for statements that create,
drop or switch databases. The uploads archive may hold only folders and plain files that land inside the
uploads folder, and they must fit on its disk. The sessions on the staging database are named before a
restore would end them.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drtui.core.backup import CHUNK, verify_dump
from drtui.core.config import Environment
from drtui.core.errors import BackupError, DrError, ErrorKind

CUSTOM_MAGIC = b"PGDMP"  # the first bytes of a `pg_dump -Fc` archive
# The only psql commands pg_dump writes in a one-database plain dump: entering and leaving psql's restricted
# mode, with one random key.
RESTRICT_LINE = re.compile(rb"\\(restrict|unrestrict) ([A-Za-z0-9]+)\s*")
COPY_START = re.compile(rb"COPY .+ FROM stdin;\s*")
COPY_END = b"\\."
WHOLE_DATABASE = re.compile(rb"\s*(CREATE|DROP|ALTER)\s+DATABASE\b", re.IGNORECASE)
# `<database>_<stamp>.sql.gz` as `drtui backup dump` names them, and `<database>_<env>_pre_restore_<stamp>.sql.gz`
DUMP_NAME = re.compile(r"(?P<database>.+?)(_.+_pre_restore)?_\d{8}T\d{6}Z\.(sql\.gz|dump)")
# Statements of drtui's own sessions never wait longer than this (a lock held on staging, say).
STATEMENT_TIMEOUT = "30s"


class DumpRefused(DrError):
    """The dump, the uploads archive or the state of staging makes the restore unsafe; nothing was touched."""

    kind = ErrorKind.REFUSED


@dataclass(frozen=True)
class DumpFacts:
    format: str  # "plain" (.sql.gz for psql) or "custom" (pg_dump -Fc, for pg_restore)
    size: int  # bytes of SQL (plain) or of the archive (custom)
    restrict_key: str | None  # the key of the dump's own `\restrict` line, if it has one


@dataclass(frozen=True)
class Session:
    pid: int
    user: str
    state: str
    since: datetime | None

    def describe(self) -> str:
        since = f" since {self.since.isoformat(timespec='seconds')}" if self.since else ""
        return f"pid {self.pid} (user {self.user}, {self.state or 'connecting'}{since})"


def dump_format(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return "custom" if handle.read(len(CUSTOM_MAGIC)) == CUSTOM_MAGIC else "plain"
    except OSError as exc:
        raise DumpRefused(f"{path}: cannot read the dump ({exc.strerror})", "check BACKUP_FILE") from None


def check_dump(path: Path, env: Environment, source_database: str | None = None) -> DumpFacts:
    """The dump is whole, of this environment's database (or of `source_database`, named on purpose), and
    carries nothing psql would run besides SQL. Raises DumpRefused."""
    named = DUMP_NAME.fullmatch(path.name)
    if named and named["database"] not in (env.database, source_database):
        raise DumpRefused(f"{path}: by its name a dump of database {named['database']!r}, but {env.name}'s "
                          f"database is {env.database!r}",
                          f"restore a {env.database}_*.sql.gz dump, or name this one on purpose with "
                          f"--source-database {named['database']}")
    if dump_format(path) == "custom":
        return _check_custom(path, env, source_database)
    try:
        size = verify_dump(path)
    except BackupError as exc:
        raise DumpRefused(exc.title, exc.hint) from None
    return DumpFacts("plain", size, _scan_plain(path))


def _scan_plain(path: Path) -> str | None:
    """Refuse any psql meta-command outside COPY data other than pg_dump's one `\\restrict` and its
    `\\unrestrict` at the end, any use of their key elsewhere, and whole-database statements. Returns the key.
    COPY data (nearly all of a dump) is skipped with a search for its end, not line by line."""
    key: bytes | None = None
    unrestricted = False
    for number, line in _sql_lines(path):
        stripped = line.lstrip()
        if unrestricted and stripped and not stripped.startswith(b"--"):
            _refuse_line(path, number, line, "comes after the dump's closing \\unrestrict")
        restrict = RESTRICT_LINE.fullmatch(stripped)
        if restrict and restrict[1] == b"restrict" and key is None:
            key = restrict[2]
            continue
        if restrict and restrict[1] == b"unrestrict" and restrict[2] == key:
            unrestricted = True
            continue
        if stripped.startswith(b"\\connect") or stripped.startswith(b"\\c "):
            raise DumpRefused(f"{path}: line {number} switches to another database ({_shown(line)})",
                              "take the dump without -C (pg_dump -d DATABASE), for the staging database")
        if stripped.startswith(b"\\") or (key and key in line):
            _refuse_line(path, number, line, "is a psql command pg_dump never writes")
        if WHOLE_DATABASE.match(line):
            raise DumpRefused(f"{path}: line {number} acts on a whole database ({_shown(line)})",
                              "take the dump without -C (pg_dump -d DATABASE), for the staging database")
    return key.decode() if key else None


def _sql_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a gzipped plain dump, without the data lines of its COPY blocks."""
    data, start, number, eof, in_copy = b"", 0, 1, False, False
    with gzip.open(path, "rb") as sql:
        while True:
            if in_copy:
                marker = COPY_END + b"\n"
                found = start if data.startswith(marker, start) else data.find(b"\n" + marker, start)
                if found >= 0:
                    after = data.index(marker, found) + len(marker)
                    number += data.count(b"\n", start, after)
                    start, in_copy = after, False
                    continue
                last = data.rfind(b"\n", start)
                if last >= 0:  # keep the partial last line: it may be the start of the end marker
                    number += data.count(b"\n", start, last + 1)
                    start = last + 1
            else:
                end = data.find(b"\n", start)
                if end >= 0 or (eof and start < len(data)):
                    end = len(data) if end < 0 else end
                    line = data[start:end].rstrip(b"\r")
                    yield number, line
                    number, start = number + 1, end + 1
                    in_copy = COPY_START.fullmatch(line) is not None
                    continue
            if eof:
                return
            chunk = sql.read(CHUNK)
            eof = not chunk
            data, start = data[start:] + chunk, 0


def _shown(line: bytes) -> str:
    text = line.decode(errors="replace").strip()
    return text if len(text) <= 80 else text[:77] + "..."


def _refuse_line(path: Path, number: int, line: bytes, why: str) -> None:
    raise DumpRefused(f"{path}: line {number} ({_shown(line)}) {why}: a dump is data, never a program",
                      "do not restore this file; find out who changed it, and restore a dump written by "
                      "`drtui backup dump`")


def _check_custom(path: Path, env: Environment, source_database: str | None) -> DumpFacts:
    """A `pg_dump -Fc` archive: its table of contents names the database, and pg_restore reads it to its end."""
    listing = subprocess.run([str(env.pg_bin / "pg_restore"), "-l", str(path)], capture_output=True, check=False)
    if listing.returncode != 0:
        raise DumpRefused(f"{path}: not a readable pg_dump archive ({tool_error(listing.stderr)})",
                          "do not restore from it; take a new dump with `drtui backup dump`")
    found = re.search(rb"^;\s+Dbname: (.+)$", listing.stdout, re.MULTILINE)
    database = found[1].decode().strip() if found else None
    if database not in (env.database, source_database):
        raise DumpRefused(f"{path}: a dump of database {database!r} (by its header), but {env.name}'s database is "
                          f"{env.database!r}", f"name it on purpose with --source-database {database}")
    whole = subprocess.run([str(env.pg_bin / "pg_restore"), "-f", "/dev/null", str(path)], capture_output=True,
                           check=False)
    if whole.returncode != 0:
        raise DumpRefused(f"{path}: the archive cannot be read to its end ({tool_error(whole.stderr)})",
                          "do not restore from it; take a new dump with `drtui backup dump`")
    return DumpFacts("custom", path.stat().st_size, None)


def check_uploads(path: Path, uploads_dir: Path) -> tuple[int, int]:
    """Every member of the uploads archive is a folder, a plain file or a link that stays inside the uploads
    folder, is read whole, and all of it fits on the uploads folder's disk. Returns (members, bytes)."""
    members = total = 0
    landing = uploads_dir.with_name(f".{uploads_dir.name}.check")
    try:
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                members += 1
                try:
                    tarfile.data_filter(member, str(landing))
                except tarfile.FilterError as exc:
                    raise DumpRefused(f"{path}: member {member.name!r} is refused ({exc})",
                                      "an uploads archive holds only files and folders inside it: do not "
                                      "restore it; take a new one with `drtui backup dump`") from None
                if member.isfile():
                    handle = tar.extractfile(member)
                    assert handle
                    while handle.read(CHUNK):
                        pass
                    total += member.size
    except FileNotFoundError:
        raise DumpRefused(f"{path}: no such archive", "check UPLOADS_ARCHIVE or backup_dir") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DumpRefused(f"{path}: the archive is truncated or damaged ({exc})",
                          "do not restore from it; take a new backup") from None
    free = shutil.disk_usage(uploads_dir.parent).free
    if total > free:
        raise DumpRefused(f"{path}: its files need {total} bytes, {uploads_dir.parent} has {free} free",
                          "free space there, then restore again")
    return members, total


def other_sessions(env: Environment) -> list[Session]:
    """Client sessions on the environment's database other than ours."""
    from drtui.core.postgres import connect

    with connect(env, "postgres", options=f"-c statement_timeout={STATEMENT_TIMEOUT}") as conn:
        rows = conn.execute("select pid, coalesce(usename, ''), coalesce(state, ''), "
                            "coalesce(xact_start, query_start, backend_start) from pg_stat_activity "
                            "where datname = %s and pid <> pg_backend_pid() and backend_type = 'client backend' "
                            "order by pid", (env.database,)).fetchall()
    return [Session(*row) for row in rows]


def terminate(env: Environment, sessions: list[Session]) -> None:
    from drtui.core.postgres import connect

    with connect(env, "postgres", options=f"-c statement_timeout={STATEMENT_TIMEOUT}") as conn:
        for session in sessions:
            conn.execute("select pg_terminate_backend(%s, 10000)", (session.pid,))


def tool_error(stderr: bytes | str, lines: int = 3) -> str:
    """The last lines of a tool's stderr, whole."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    found = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(found[-lines:]) if found else "no output"


def hint_for(error: str, env: Environment) -> str:
    """What to do about a client tool's failure, by its cause."""
    lowered = error.lower()
    if "no space left" in lowered:
        return f"free space on the disk of {env.name}'s data directory or of drtui's state folder, then retry"
    if "permission denied" in lowered:
        return (f"psql and pg_restore run as {env.os_user!r}: check that it may read what it needs and that "
                f"user {env.user!r} may create the database")
    if "lock timeout" in lowered or "canceling statement due to statement timeout" in lowered:
        return f"a session holds a lock on {env.name}: end it, or restore with --terminate-sessions"
    return "read the step's log lines"
