"""What the drill reads from a database: whether a marker table has the shape it needs, the target pinned with
the source's counts at it, the counts at a past target."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg
from psycopg import sql

from drtui.core.errors import DrError

# Writers queue behind the SHARE lock while it waits: never let them wait long.
LOCK_TIMEOUT = "5s"


class DrillStepError(DrError):
    """A drill step (outside the restore engine) could not do its work, or its checks failed."""


def marker_shape_problem(conn: psycopg.Connection, table: str) -> str | None:
    """Why the drill cannot use `table` as its marker table (None: it can, or the table does not exist yet):
    it needs id and created_at filled by defaults, a text drill_id, and no other column the insert must fill."""
    rows = conn.execute("select attname, format_type(atttypid, atttypmod), attnotnull, atthasdef or attidentity <> '' "
                        "from pg_attribute where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped",
                        (table,)).fetchall()
    if not rows:
        return None
    columns = {name: (kind, required, defaulted) for name, kind, required, defaulted in rows}
    wanted = {"id": ("bigint", "integer"), "drill_id": ("text", "character varying"),
              "created_at": ("timestamp with time zone",)}
    for name, kinds in wanted.items():
        if name not in columns:
            return f"no {name} column"
        if not columns[name][0].startswith(kinds):
            return f"column {name} is {columns[name][0]}, not {kinds[0]}"
    for name in ("id", "created_at"):
        if not columns[name][2]:
            return f"column {name} has no default"
    extra = sorted(name for name, (_, required, defaulted) in columns.items()
                   if name not in wanted and required and not defaulted)
    return f"column {extra[0]} must be filled and the drill does not know it" if extra else None


def tracks_commit_times(conn: psycopg.Connection) -> bool:
    return conn.execute("show track_commit_timestamp").fetchone()[0] == "on"


def pin_target(conn: psycopg.Connection, tables: Sequence[str]) -> tuple[datetime, dict[str, int]]:
    """The exact target: counts and clock_timestamp() read under a SHARE lock on the app tables (see drtui.core.drill's
    docstring for why every commit before it is counted and none after)."""
    with conn.transaction():
        conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
        try:
            conn.execute(sql.SQL("lock table {} in share mode").format(
                sql.SQL(", ").join(map(sql.Identifier, tables))))
        except psycopg.errors.LockNotAvailable:
            raise DrillStepError(f"the app tables stayed busy for {LOCK_TIMEOUT}: a long transaction writes to them",
                                 "drill again when it has finished, or give a past TARGET_TIME") from None
        counts = {t: conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(t))).fetchone()[0]
                  for t in tables}
        target = conn.execute("select clock_timestamp()").fetchone()[0]
    return target, counts


def counts_at(conn: psycopg.Connection, tables: Sequence[str], target: datetime, *,
              inclusive: bool = True) -> tuple[dict[str, int], bool]:
    """Rows committed by a past target (before it, when not inclusive): by commit time when the source tracks it,
    else by created_at."""
    exact = tracks_commit_times(conn)
    edge = sql.SQL("<=" if inclusive else "<")
    condition = (sql.SQL("coalesce(pg_xact_commit_timestamp(xmin) {} %(t)s, true)").format(edge) if exact
                 else sql.SQL("created_at {} %(t)s").format(edge))
    counts = {t: conn.execute(sql.SQL("select count(*) filter (where {}) from {}").format(
        condition, sql.Identifier(t)), {"t": target}).fetchone()[0] for t in tables}
    return counts, exact


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{t}={n}" for t, n in counts.items()) or "no tables"


def next_xid(conn: psycopg.Connection) -> int:
    """The 64-bit id the server assigns next."""
    return int(conn.execute("select pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()[0])


def full_xid(conn: psycopg.Connection, xid: int) -> int | None:
    """The 64-bit id (epoch and xid) of a 32-bit transaction id `xid` seen by this server, the newest it can be;
    None when it is not assigned yet."""
    upcoming = next_xid(conn)
    full = (upcoming & ~0xFFFFFFFF) | xid
    if full >= upcoming:
        full -= 1 << 32
    return full if full >= 0 else None


def xact_status(conn: psycopg.Connection, full: int) -> str | None:
    """committed, aborted or in progress; 'not assigned' when the server has not reached it (a restored copy
    that stopped before its first record); None when it no longer knows (too old)."""
    if full >= next_xid(conn):
        return "not assigned"
    return conn.execute("select pg_xact_status(%s::text::xid8)", (full,)).fetchone()[0]


def commit_time(conn: psycopg.Connection, xid: int) -> datetime | None:
    """When transaction `xid` committed, when the server tracks commit times and still knows it."""
    if not tracks_commit_times(conn):
        return None
    return conn.execute("select pg_xact_commit_timestamp(%s::text::xid)", (xid,)).fetchone()[0]
