"""`drtui inventory` and `drtui status`: what can be recovered, to when, and whether the backups are fresh."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click
import humanize

from drtui.core import monitoring
from drtui.core import status as core_status
from drtui.core.clock import SystemClock
from drtui.core.config import Config
from drtui.core.errors import DrError, UsageError
from drtui.core.inventory import Inventory, scan
from drtui.core.models import Window, format_lsn
from drtui.core.status import SEVERITY
from drtui.headless.common import LOCATION, env_option, handle_errors, json_option, pass_context
from drtui.headless.compare_output import paused_lines
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
            out(f"  GAP on timeline {gap.timeline}: {names} ({count} segment{'s' if count > 1 else ''} missing)"
                if not gap.damaged else f"  GAP on timeline {gap.timeline}: {gap.describe()}")
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
@click.option("--wal-source", type=LOCATION, default=None, envvar="WAL_ARCHIVE",
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


@dataclass(frozen=True)
class _Site:
    """One config of the status: what was read of it, and its checks."""

    config: Config
    inventory: Inventory | None
    inventory_error: str | None
    recovering: list[core_status.InRecovery]
    open_to_others: list[str]
    interrupted: list[core_status.InterruptedRun]
    status: monitoring.EnvironmentStatus


def _only(text: str | None) -> frozenset[str]:
    if not text:
        return frozenset(monitoring.CHECK_NAMES)
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    unknown = sorted(names - set(monitoring.CHECK_NAMES))
    if unknown:
        raise UsageError(f"--only {text!r}: no check named {', '.join(unknown)}",
                         f"pick from {', '.join(monitoring.CHECK_NAMES)}")
    return names


@click.command()
@click.option("--check", is_flag=True, help="Monitoring plugin mode: one summary line with perfdata first; exit 0 "
              "OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also on any unexpected error).")
@click.option("-w", "--warning", "warnings", multiple=True, metavar="NAME=VALUE",
              help="A check's warning threshold instead of 80 %% of its limit (e.g. -w wal_sync_age=8m).")
@click.option("-c", "--critical", "criticals", multiple=True, metavar="NAME=VALUE",
              help="A check's critical threshold instead of its limit from [objectives] (e.g. -c window_lag=10m).")
@click.option("--only", "only_text", default=None, metavar="NAMES",
              help=f"Only these checks, comma-separated ({', '.join(monitoring.CHECK_NAMES)}).")
@click.option("--prometheus", "prometheus_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the node-exporter textfile format to FILE (atomically) instead of printing.")
@click.option("--watch", is_flag=True, help="The same view full screen, refreshing itself until you quit.")
@json_option
@pass_context
def status(ctx, check: bool, warnings: tuple[str, ...], criticals: tuple[str, ...], only_text: str | None,
           prometheus_file: Path | None, watch: bool, as_json: bool) -> None:
    """Can I recover, and to when? Heartbeats, the recoverable window and its lag, the WAL archiver and the last
    drill, with what to do for each row that is not OK. Several --config make a fleet, worst first."""
    if not check:
        handle_errors(_status)(ctx, False, warnings, criticals, only_text, prometheus_file, watch, as_json)
        return
    try:  # a monitor must read UNKNOWN for anything drtui cannot judge, never a traceback or a usage exit
        _status(ctx, True, warnings, criticals, only_text, prometheus_file, watch, as_json)
    except DrError as exc:
        out(f"DRTUI UNKNOWN - {exc.title}")
        sys.exit(core_status.Level.UNKNOWN)
    except Exception as exc:
        out(f"DRTUI UNKNOWN - internal error: {type(exc).__name__}: {exc}")
        sys.exit(core_status.Level.UNKNOWN)


def _status(ctx, check: bool, warnings: tuple[str, ...], criticals: tuple[str, ...], only_text: str | None,
            prometheus_file: Path | None, watch: bool, as_json: bool) -> None:
    clock = SystemClock()
    overrides = monitoring.Overrides.parse(warnings, criticals)
    only = _only(only_text)
    configs = ctx.configs()
    if watch:
        if len(configs) > 1:  # never a fleet shown as its first member alone
            raise UsageError(f"--watch shows one config; {len(configs)} given",
                             "drop --watch for the fleet's view, or give one --config")
        from drtui.tui.app import run_status_app

        run_status_app(configs[0])
        return
    fleet = []
    for config in configs:
        inv, inventory_error = None, None
        try:
            inv = scan(config, clock=clock)
        except DrError as exc:
            inventory_error = exc.title
        env = None if config.read_only else config.environment()
        name = monitoring.site_name(config, fleet=len(configs) > 1)
        fleet.append(_Site(config, inv, inventory_error,
                           [] if check else core_status.environments_in_recovery(config),
                           core_status.open_folders(config), core_status.interrupted_runs(config),
                           monitoring.collect(config, env, inv, clock, overrides, name=name, only=only,
                                              usage=not check)))
    fleet.sort(key=lambda site: -SEVERITY[site.status.level])  # worst first everywhere; stable within a level
    statuses = [site.status for site in fleet]
    level, summary = monitoring.summary(statuses)
    if prometheus_file:
        monitoring.write_prometheus(prometheus_file, statuses)
        return
    if as_json:
        out_json(_status_json(fleet, level, summary))
    else:
        if check:
            out(summary)
        for site in fleet:
            _print_status(site, clock.now(), titled=len(fleet) > 1)
    if check:
        sys.exit(int(level))


def _status_json(fleet: list[_Site], level: core_status.Level, summary: str) -> dict:
    environments = []
    for site in fleet:
        config, inv, inventory_error, env_status = site.config, site.inventory, site.inventory_error, site.status
        data: dict = {"name": env_status.name, "config": config.source,
                      "repository": str(config.repository.url) if config.repository else None,
                      "level": env_status.level.name,
                      "code": int(env_status.level), "checks": [c.as_json() for c in env_status.checks],
                      "heartbeats": [s.as_json() for s in env_status.heartbeats],
                      "recoverable": {"first": _iso(env_status.window.first), "last": _iso(env_status.window.last)}
                      if env_status.window else None}
        if inv is not None:
            full = inv.as_json()
            data["newest"] = {"base_backup": full["base_backups"][0] if inv.base_backups else None,
                              "dump": full["dumps"][0] if inv.dumps else None,
                              "wal_tarball": full["wal_tarballs"][0] if inv.wal_tarballs else None}
            data["window"] = full["windows"][0] if inv.windows else None
            data["problems"] = full["problems"]
        if inventory_error:
            data["inventory_error"] = inventory_error
        if env_status.repository is not None:
            data["repository_usage"] = env_status.repository.as_json()
        data["recovery"] = [r.as_json() for r in site.recovering]
        data["open_to_others"] = site.open_to_others
        data["interrupted_runs"] = [run.as_json() for run in site.interrupted]
        environments.append(data)
    top = {"schema": 1, "level": level.name, "code": int(level), "summary": summary, "environments": environments}
    if len(environments) == 1:  # one config: its fields at the top too, as before fleets
        top |= {k: v for k, v in environments[0].items() if k not in ("name", "config", "repository", "level", "code")}
    return top


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


WORDS = {core_status.Level.OK: "ok", core_status.Level.WARNING: "WARNING", core_status.Level.CRITICAL: "CRITICAL",
         core_status.Level.UNKNOWN: "UNKNOWN"}


def _print_status(site: _Site, now: datetime, titled: bool) -> None:
    inv, inventory_error, recovering, env_status = site.inventory, site.inventory_error, site.recovering, site.status
    if titled:
        out(f"== {env_status.name}: {env_status.level.name}")
    out("Heartbeats")
    rows = []
    for s in env_status.heartbeats:
        when = f"{_when(s.last)} ({_ago(s.last, now)})" if s.last else (s.detail or "")
        word = "AGING" if s.state == "ok" and s.level else (s.state.upper() if s.level else s.state)
        rows.append([s.name, word, when,
                     f"limit {humanize.precisedelta(s.limit, minimum_unit='minutes', format='%0.0f')}",
                     str(s.path)])
    _table(rows)
    for line in site.open_to_others:
        out(f"  permissions: {line}")
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
        window = env_status.window
        if window and window.first and window.last:
            out(f"  across all {len(inv.base_backups)} base backups: {_when(window.first)} → {_when(window.last)}")
        for problem in inv.problems:
            out(f"  problem: {problem.path}: {problem.message}")
    if inventory_error:
        out(f"inventory: {inventory_error}")
    if env_status.repository is not None:
        out()
        for line in monitoring.usage_lines(env_status.repository, _size):
            out(line)
    for line in interrupted_lines(site.interrupted):
        out(line)
    if recovering:
        out()
        out("In recovery")
        for r in recovering:
            out(f"  {r.environment}: {r.detail}")
            for line in paused_lines(site.config, r.environment) if r.state == "paused" else []:
                out(f"    {line}")
            out(f"    next: {r.next}")
    out()
    out("Checks")
    _table([[WORDS[c.level], c.name, c.text + (f" → {c.todo}" if c.todo else "")] for c in env_status.checks])
    if site.config.read_only:
        out(f"  {', '.join(sorted(monitoring.HOST_CHECKS))}: the host's own, not in the repository "
            f"(`drtui status --only {','.join(sorted(monitoring.HOST_CHECKS))}` on the host)")

