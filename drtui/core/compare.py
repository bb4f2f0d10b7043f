"""Look before you leap: the row counts of a candidate paused at its target, table by table, next to production's.

A recovery paused at its target (`--pause-at-target`) is read-only and can be asked anything before it is
promoted. The question under pressure is "is what I want back there, and is nothing else missing?": the
exact row count of every table of the candidate against production's (when production answers; it may be the
very thing that broke), and the tables only one of them has.
"""

from __future__ import annotations

from dataclasses import dataclass

from drtui.core.config import PRODUCTION, Config, Environment
from drtui.core.errors import PostgresError
from drtui.core.postgres import connect

TABLES_QUERY = ("select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where c.relkind in ('r', 'p') and not c.relispartition and n.nspname not in "
                "('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%' order by 1, 2")
STATEMENT_TIMEOUT = "30s"  # a count that takes longer is left out rather than holding the operator up
# Paused just before a DROP or TRUNCATE, the replayed transaction's ACCESS EXCLUSIVE lock is held by recovery
# until its commit is replayed: that table can be seen in the catalog, not read.
LOCK_TIMEOUT = "2s"
LOCKED = -1  # a count that could not be taken: the table is locked


@dataclass(frozen=True)
class TableCounts:
    table: str
    candidate: int | None  # None: the candidate has no such table; LOCKED: it has, locked
    production: int | None  # None: production has none, or did not answer; LOCKED: it has, locked


@dataclass(frozen=True)
class Comparison:
    environment: str
    tables: tuple[TableCounts, ...]
    production: str  # the environment compared against ('' when none)
    production_error: str = ""  # why production's counts are missing

    @property
    def missing(self) -> list[str]:
        """Tables production has and the candidate lacks."""
        return [t.table for t in self.tables if t.candidate is None and t.production is not None]

    @property
    def extra(self) -> list[str]:
        """Tables the candidate has and production lacks (when production answered)."""
        if not self.production or self.production_error:
            return []
        return [t.table for t in self.tables if t.production is None and t.candidate is not None]

    def lines(self) -> list[str]:
        """The comparison in words, one line per table, for the headless face."""
        against = (f" against {self.production}" if self.production and not self.production_error else
                   f" ({self.production} does not answer: {self.production_error})" if self.production else "")
        lines = [f"Rows per table in {self.environment}, paused at the target{against}:"]
        for t in self.tables:
            theirs = "" if not self.production or self.production_error else (
                f"  {self.production} {_count(t.production)}")
            lines.append(f"  {t.table:<32} {_count(t.candidate):>10}{theirs}")
        if any(t.candidate == LOCKED for t in self.tables):
            lines.append("  locked: held by the transaction recovery paused just before (a DROP or TRUNCATE "
                         "replayed up to its commit); the table is there, readable once recovery goes on")
        if self.missing:
            lines.append(f"  missing in {self.environment}: {', '.join(self.missing)}")
        if self.extra:
            lines.append(f"  only in {self.environment}: {', '.join(self.extra)}")
        return lines

    def as_json(self) -> dict:
        return {"environment": self.environment, "production": self.production,
                "production_error": self.production_error, "missing": self.missing, "extra": self.extra,
                "tables": [{"table": t.table, "candidate": t.candidate, "production": t.production}
                           for t in self.tables]}


def row_counts(env: Environment) -> dict[str, int]:
    """Exact row counts of every user table of the environment's database (PostgresError when it does not
    answer)."""
    import psycopg  # not at import: a restore must reach its extraction without it
    from psycopg import sql

    try:
        with connect(env) as conn:
            conn.execute(sql.SQL("set statement_timeout = {}").format(sql.Literal(STATEMENT_TIMEOUT)))
            conn.execute(sql.SQL("set lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            counts = {}
            for schema, name in conn.execute(TABLES_QUERY).fetchall():
                try:
                    counted = conn.execute(sql.SQL("select count(*) from {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(name))).fetchone()[0]
                except psycopg.errors.LockNotAvailable:
                    counted = LOCKED
                counts[f"{schema}.{name}"] = counted
            return counts
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PostgresError(f"{env.name}: counting rows failed: {reason}",
                            "read the server log of the environment named") from exc


def _count(value: int | None) -> str:
    return "-" if value is None else "locked" if value == LOCKED else str(value)


def compare_with_production(config: Config, env: Environment) -> Comparison:
    """The paused candidate `env` against production (nothing to compare with when it is production itself)."""
    candidate = row_counts(env)
    other = config.environments.get(PRODUCTION)
    theirs: dict[str, int] = {}
    trouble = ""
    if other is not None and other.name != env.name:
        try:
            theirs = row_counts(other)
        except PostgresError as exc:
            trouble = exc.title
    names = sorted(set(candidate) | set(theirs))
    return Comparison(env.name, tuple(TableCounts(n, candidate.get(n), theirs.get(n)) for n in names),
                      other.name if other is not None and other.name != env.name else "", trouble)
