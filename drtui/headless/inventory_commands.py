"""`drtui inventory` and `drtui status`: what can be recovered, to when, and whether the backups are fresh."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click
import humanize

from drtui.core import status as core_status
from drtui.core.clock import SystemClock
from drtui.core.errors import DrError
from drtui.core.inventory import Inventory, scan
from drtui.core.models import Window, format_lsn
from drtui.headless.common import env_option, handle_errors, json_option, pass_context
from drtui.headless.output import out, out_json
from drtui.headless.printer import interrupted_lines


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "unknown"


def _ago(moment: datetime | None, now: datetime) -> str:
    return humanize.naturaltime(now - moment) if moment else ""


def _size(n: int) -> str:
    return humanize.naturalsize(n, binary=True)


def _table(rows: list[list[str]], indent: str = "  ") -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out(indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _window_line(window: Window) -> str:
    if not window.usable:
        return f"not usable: {window.reason}"
    text = f"{_when(window.earliest)} → {_when(window.latest)}"
    text += f"  (latest from {window.latest_source}, timeline {window.timeline}"
    if window.last_segment:
        text += f", last segment {window.last_segment}"
    text += ")"
    if window.cut_by_gap:
        gap = window.cut_by_gap
        text += f"  CUT BY GAP at {gap.from_name}" + (f"..{gap.to_name}" if gap.to_name != gap.from_name else "")
    return text


def print_inventory(inv: Inventory, now: datetime) -> None:
    out(f"Base backups in {inv.backup_dir}: {len(inv.base_backups)}")
    if inv.base_backups:
        rows = [["FILE", "LAYOUT", "STARTED", "AGE", "TL", "START WAL", "PG", "DATA", "ON DISK"]]
        for b in inv.base_backups:
            rows.append([b.path.name, str(b.layout), _when(b.start_time), _ago(b.start_time, now), str(b.timeline),
                         b.start_wal_file, str(b.pg_version or "?"), _size(b.size_bytes), _size(b.file_size)])
        _table(rows)
    out()
    out("Recoverable windows")
    if not inv.windows:
        out("  none (no base backup)")
    for window in inv.windows:
        out(f"  {window.base_backup.name}: {_window_line(window)}")
        if window.note:
            out(f"    note: {window.note}")
    out()
    wal = inv.wal
    if wal is None:
        out("WAL archive: not readable (see problems)")
    else:
        tls = ", ".join(f"timeline {t}: {len(wal.segments.get(t, []))}" for t in wal.timelines) or "none"
        out(f"WAL archive {wal.source} ({wal.kind}): {wal.segment_count} segments ({tls}), "
            f"{len(wal.gaps)} gap(s), {len(wal.backup_files)} .backup, {len(wal.partial_files)} .partial")
        for h in wal.histories:
            out(f"  timeline {h.timeline} branched from {h.parent} at {format_lsn(h.switch_lsn)}")
        for gap in wal.gaps:
            count = gap.last_missing - gap.first_missing + 1
            names = gap.from_name if count == 1 else f"{gap.from_name} .. {gap.to_name}"
            out(f"  GAP on timeline {gap.timeline}: {names} ({count} segment{'s' if count > 1 else ''} missing)")
    for title, items in (("Dumps", inv.dumps), ("Uploads archives", inv.uploads), ("WAL tarballs", inv.wal_tarballs),
                         ("Heartbeat files", inv.heartbeats), ("Unknown files", inv.unknown)):
        out()
        out(f"{title}: {len(items)}")
        if items:
            _table([[a.path.name, _size(a.size_bytes), _ago(a.name_time, now)] for a in items])
    if inv.problems:
        out()
        out(f"Problems: {len(inv.problems)}")
        for problem in inv.problems:
            out(f"  {problem.path}: {problem.message}")


@click.command()
@click.option("--wal-source", type=click.Path(path_type=Path), default=None, envvar="WAL_ARCHIVE",
              help="WAL folder or wal_archive_*.tar.gz to read (WAL_ARCHIVE); default: wal_archive.")
@env_option
@json_option
@pass_context
@handle_errors
def inventory(ctx, wal_source: Path | None, env_name: str | None, as_json: bool) -> None:
    """What can be recovered, and to when: base backups, dumps, WAL coverage, windows."""
    config = ctx.config(env_name)
    clock = SystemClock()
    env = config.environment(env_name) if env_name or "production" in config.environments else None
    inv = scan(config, wal_source, env, clock)
    if as_json:
        out_json(inv.as_json())
    else:
        print_inventory(inv, clock.now())


@click.command()
@click.option("--check", is_flag=True, help="Monitoring plugin mode: one summary line first; exit 0 OK, "
              "1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
@click.option("--watch", is_flag=True, help="The same view full screen, refreshing itself until you quit.")
@json_option
@pass_context
@handle_errors
def status(ctx, check: bool, as_json: bool, watch: bool) -> None:
    """Heartbeats (dump, base backup, WAL sync), the newest backups and the current recoverable window."""
    clock = SystemClock()
    try:
        config = ctx.config()
    except DrError as exc:
        if check:  # a monitor must get UNKNOWN, not a usage error, when it cannot even read the config
            out(f"DRTUI UNKNOWN - {exc.title}")
            sys.exit(core_status.Level.UNKNOWN)
        raise
    if watch:
        from drtui.tui.app import run_status_app

        run_status_app(config)
        return
    states = core_status.heartbeats(config, clock)
    level, summary = core_status.overall(states)
    inv, inventory_error = None, None
    if not check:
        try:
            inv = scan(config, clock=clock)
        except DrError as exc:
            inventory_error = exc.title
    interrupted = core_status.interrupted_runs(config)
    if as_json:
        data: dict = {"level": level.name, "code": int(level), "summary": summary,
                      "heartbeats": [s.as_json() for s in states]}
        data["interrupted_runs"] = [run.as_json() for run in interrupted]
        if inv is not None:
            full = inv.as_json()
            data["newest"] = {"base_backup": full["base_backups"][0] if inv.base_backups else None,
                              "dump": full["dumps"][0] if inv.dumps else None,
                              "wal_tarball": full["wal_tarballs"][0] if inv.wal_tarballs else None}
            data["window"] = full["windows"][0] if inv.windows else None
            data["problems"] = full["problems"]
        if inventory_error:
            data["inventory_error"] = inventory_error
        out_json(data)
    else:
        now = clock.now()
        if check:
            out(summary)
        out("Heartbeats")
        rows = []
        for s in states:
            when = f"{_when(s.last)} ({_ago(s.last, now)})" if s.last else (s.detail or "")
            if s.state == "unreadable" and s.last is None:
                when = s.detail
            rows.append([s.name, s.state.upper() if s.level else s.state, when,
                         f"limit {humanize.precisedelta(s.limit, minimum_unit='minutes', format='%0.0f')}",
                         str(s.path)])
        _table(rows)
        if inv is not None:
            out()
            out("Newest backups")
            newest_base = inv.base_backups[0] if inv.base_backups else None
            base_text = (f"{newest_base.path.name}, started {_ago(newest_base.start_time, now)}"
                         if newest_base else "none")
            out(f"  base backup: {base_text}")
            out(f"  dump:        {inv.dumps[0].path.name if inv.dumps else 'none'}")
            out(f"  WAL tarball: {inv.wal_tarballs[0].path.name if inv.wal_tarballs else 'none'}")
            out()
            out("Recoverable window (newest base backup)")
            out(f"  {_window_line(inv.windows[0]) if inv.windows else 'none: no base backup'}")
            for problem in inv.problems:
                out(f"  problem: {problem.path}: {problem.message}")
        if inventory_error:
            out(f"inventory: {inventory_error}")
        for line in interrupted_lines(interrupted):
            out(line)
    if check:
        sys.exit(int(level))
