"""`drtui events`: the destructive transactions in the WAL around a moment, to find the target before them."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import click

from drtui.core import incident
from drtui.core.clock import SystemClock
from drtui.core.config import PRODUCTION, Config, Environment, parse_duration
from drtui.core.errors import UsageError
from drtui.core.inventory.wal import scan_wal
from drtui.core.planning import Target, parse_target_time
from drtui.headless.common import env_option, handle_errors, json_option, pass_context
from drtui.headless.output import err, out, out_json


def _names(config: Config, env: Environment) -> incident.RelationNames:
    """Production's relation names now (remembered for later), or only what was remembered when it is down."""
    names, trouble = incident.read_names(config.state_dir, env)
    if trouble:
        err(f"names: {env.name} does not answer ({trouble}); using the names drtui remembered")
    return names


def before_change(config: Config, target: Target) -> Target:
    """A target just before a transaction, saying what it did when a listing of production's events found it."""
    change = incident.known_change(config.state_dir, PRODUCTION, target.xid) if target.xid is not None else None
    return dataclasses.replace(target, about=change.about()) if change else target


@click.command()
@click.option("--around", "around_text", required=True, metavar="TIME",
              help="The moment of the incident (ISO-8601, '... UTC', '15 minutes ago').")
@click.option("--span", "span_text", default="30m", show_default=True, help="How far before and after to look.")
@click.option("--table", "table", default=None, help="Only changes to this table (schema.name or name).")
@click.option("--threshold", default=incident.DEFAULT_ROW_THRESHOLD, show_default=True, type=click.IntRange(1),
              help="Rows one DELETE or UPDATE transaction must touch in one table to be listed.")
@click.option("--wal-source", "wal_source", envvar="WAL_ARCHIVE", type=click.Path(path_type=Path), default=None,
              help="A WAL folder or wal_archive_*.tar.gz (WAL_ARCHIVE); default: the live archive.")
@env_option
@json_option
@pass_context
@handle_errors
def events(ctx, around_text: str, span_text: str, table: str | None, threshold: int, wal_source: Path | None,
           env_name: str | None, as_json: bool) -> None:
    """What happened around TIME: tables dropped or truncated, many rows deleted or updated, DDL; each with its
    xid, to restore to just before it (`drtui restore pitr --before-xid XID`)."""
    config = ctx.config(env_name)
    env = config.environment(env_name or "production")
    around = parse_target_time(around_text, SystemClock())
    try:
        span = parse_duration(span_text)
    except ValueError as exc:
        raise UsageError(f"--span {span_text!r}: {exc}", "give a duration such as 30m or 2h") from None
    if not (env.pg_bin / "pg_waldump").exists():
        raise UsageError(f"no pg_waldump in pg_bin {env.pg_bin} of {env.name}",
                         "set pg_bin to PostgreSQL's bin folder (Debian: /usr/lib/postgresql/15/bin)")
    source = wal_source or config.wal_archive
    if not source.exists():
        raise UsageError(f"WAL source {source} does not exist", "pass --wal-source or fix wal_archive")
    coverage = scan_wal(source)
    changes = incident.read_changes(coverage, env.pg_bin, around, span, _names(config, env), threshold)
    incident.remember_changes(config.state_dir, env.name, changes)
    if table:
        changes = [c for c in changes if any(_same_table(name, table) for name in c.relations)]
    if as_json:
        out_json({"around": around, "span_seconds": span.total_seconds(),
                  "source": str(source), "changes": [c.as_json() for c in changes]})
        return
    _print(changes, around, span, source)


def _same_table(name: str, wanted: str) -> bool:
    return name == wanted or name.rpartition(".")[2] == wanted


def _print(changes: list[incident.Change], around, span: timedelta, source: Path) -> None:
    stamp = "%Y-%m-%d %H:%M:%S.%f"
    out(f"Destructive changes within {span} of {around.strftime('%Y-%m-%d %H:%M:%S')} UTC in {source}: "
        f"{len(changes)}")
    for change in changes:
        out(f"  {change.committed_at.strftime(stamp)[:-3]}Z  xid {change.xid:<8} {change.describe()}")
    if changes:
        out("To restore to just before one of them: drtui restore pitr --before-xid XID ...")

