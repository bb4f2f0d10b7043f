"""`drtui backup dump|verify|base|wal-sync`: the runbook's backup scripts; `drtui wal push`: archive_command."""

from __future__ import annotations

from pathlib import Path

import click
import humanize

from drtui.core import backup as core
from drtui.core import wal_push
from drtui.core.clock import SystemClock
from drtui.core.errors import BackupError, UsageError
from drtui.core.objectstore import S3Settings, S3Url
from drtui.headless.common import env_option, handle_errors, json_option, pass_context
from drtui.headless.output import out, out_json


def _print(result: core.BackupResult, as_json: bool) -> None:
    if as_json:
        out_json(result.as_dict())
        return
    for path in result.removed:
        out(f"removed {path} (left behind by an interrupted `drtui backup {result.kind}`)")
    for artifact in result.artifacts:
        out(f"wrote {artifact.path} ({humanize.naturalsize(artifact.size_bytes, binary=True)})")
    if result.already_stored is not None:
        out(f"{result.already_stored} WAL files were already stored")
    if result.heartbeat:
        out(f"heartbeat {result.heartbeat}")
    if result.stored_heartbeat:
        out(f"heartbeat {result.stored_heartbeat}")
    out(f"{result.kind} backup done in {result.seconds:.1f} s")


@click.group()
def backup() -> None:
    """Take and check backups (the runbook's backup scripts)."""


@backup.command()
@env_option
@json_option
@pass_context
@handle_errors
def dump(ctx, env_name: str | None, as_json: bool) -> None:
    """pg_dump and the uploads archive, then LAST_SUCCESS.txt (backup_now.sh)."""
    config = ctx.config(env_name)
    _print(core.dump(config, config.environment(env_name), SystemClock()), as_json)


@backup.command()
@click.option("--compress", default="gzip", show_default=True, metavar="METHOD[:LEVEL]",
              help="zstd (recommended: the fastest restore), lz4, gzip (basebackup_*.tar.gz) or none; "
                   "e.g. zstd:9, gzip:6.")
@click.option("--incremental", is_flag=True,
              help="PostgreSQL 17+ with summarize_wal = on: only what changed since the newest base backup, "
                   "kept as the folder basebackup_<stamp> (plain format, as pg_combinebackup reads it).")
@env_option
@json_option
@pass_context
@handle_errors
def base(ctx, compress: str, incremental: bool, env_name: str | None, as_json: bool) -> None:
    """pg_basebackup with manifest, checked by pg_verifybackup, then LAST_BASEBACKUP.txt."""
    config = ctx.config(env_name)
    _print(core.base(config, config.environment(env_name), SystemClock(), compress, incremental), as_json)


compress_option = click.option("--compress", type=click.Choice(sorted(wal_push.COMPRESSIONS)), default="none",
                               show_default=True, help="To S3: compress each WAL object (gzip: NAME.gz).")


@backup.command("wal-sync")
@click.option("--target", envvar="WAL_SYNC_TARGET", default=None, help="Also copy the tarball to this folder, "
              "or upload the WAL files an s3://bucket/prefix/ lacks (WAL_SYNC_TARGET).")
@click.option("--tarball", is_flag=True, help="To S3: also write wal_archive_<stamp>.tar.gz (to the "
              "repository's backups/, or backup_dir).")
@compress_option
@json_option
@pass_context
@handle_errors
def wal_sync(ctx, target: str | None, tarball: bool, compress: str, as_json: bool) -> None:
    """Pack the live WAL archive into a tarball (to S3: upload the new WAL files), then the heartbeat."""
    _print(core.wal_sync(ctx.config(), SystemClock(), target, tarball, compress), as_json)


@backup.command()
@click.option("--keep", type=click.IntRange(min=1), default=None,
              help="Keep the newest N of each kind (base backups, each database's dumps, WAL tarballs); "
              "default: [retention] keep.")
@click.option("--keep-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Keep everything younger than D days; default: [retention] keep_days.")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@json_option
@pass_context
@handle_errors
def expire(ctx, keep: int | None, keep_days: float | None, dry_run: bool, as_json: bool) -> None:
    """Remove old backups, the WAL no kept backup needs, and old preserved data directories (with neither
    --keep nor --keep-days: the config's [retention])."""
    config = ctx.config()
    if keep is None and keep_days is None and config.retention:
        keep, keep_days = config.retention.keep, config.retention.keep_days
    expiry = core.expire(config, SystemClock(), keep, keep_days, dry_run)
    if as_json:
        out_json(expiry.as_dict())
        return
    verb = "would remove" if dry_run else "removed"
    for item in expiry.removed:
        for location in item.locations:
            out(f"{verb} {location} ({item.why})")
    for item in expiry.kept:
        out(f"kept {item.locations[0]} ({item.why})")
    out(f"{verb} {len(expiry.wal_removed)} WAL files; {expiry.wal_kept_why}")


@click.group()
def wal() -> None:
    """WAL into the repository, one file at a time (PostgreSQL's archive_command)."""


@wal.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--to", "target", default=None, metavar="s3://BUCKET/PREFIX/",
              help="The WAL prefix; default: the [repository]'s wal/.")
@compress_option
@pass_context
@handle_errors
def push(ctx, path: Path, target: str | None, compress: str) -> None:
    """Store one WAL file (archive_command = 'drtui wal push %p'); exit 0 only once it is stored and verified,
    or already stored with the same content."""
    config = ctx.config()
    if target:
        try:
            prefix = S3Url.parse(target).as_prefix()
        except ValueError as exc:
            raise UsageError(f"--to {target}: {exc}", "write it like s3://mybucket/wal/") from None
    elif config.repository:
        prefix = config.repository.wal
    else:
        raise UsageError(f"{config.source}: no [repository] to push WAL to",
                         'add [repository] url = "s3://bucket/prefix/" to the config, or give --to s3://...')
    settings = config.repository.settings if config.repository else S3Settings()
    done = wal_push.push(path, prefix, settings, compress)
    out(f"{done}: {prefix.child(wal_push.object_name(path.name, compress))}" if done == "uploaded"
        else f"{done}: {path.name} in {prefix}")


@backup.command()
@click.option("--backup-file", envvar="BACKUP_FILE", type=click.Path(path_type=Path), default=None,
              help="Dump to check (BACKUP_FILE); default: the newest in backup_dir.")
@click.option("--uploads-archive", envvar="UPLOADS_ARCHIVE", type=click.Path(path_type=Path), default=None,
              help="Uploads archive to check (UPLOADS_ARCHIVE); default: the newest in backup_dir.")
@env_option
@json_option
@pass_context
@handle_errors
def verify(ctx, backup_file: Path | None, uploads_archive: Path | None, env_name: str | None,
           as_json: bool) -> None:
    """Check that the newest dump and its uploads archive are whole (backup_verify.sh)."""
    config = ctx.config(env_name)
    env = config.environment(env_name)
    dump_path = backup_file or core.newest(config.backup_dir, f"{env.database}_", ".sql.gz")
    if dump_path is None:
        raise BackupError(f"{config.backup_dir}: no {env.database}_*.sql.gz dump found",
                          "take one with `drtui backup dump`, or name one with BACKUP_FILE")
    checked = [{"path": str(dump_path), "kind": "dump", "bytes": core.verify_dump(dump_path)}]
    uploads_path = uploads_archive or core.uploads_of(dump_path)
    if not uploads_archive and not uploads_path.exists():
        if env.uploads_dir:
            raise BackupError(f"{dump_path}: its uploads archive {uploads_path.name} is missing, so this dump is "
                              "not a whole backup", "take a new one with `drtui backup dump`, or name an uploads "
                              "archive with UPLOADS_ARCHIVE")
        uploads_path = None
    if uploads_path:
        checked.append({"path": str(uploads_path), "kind": "uploads", "members": core.verify_tarball(uploads_path)})
    if as_json:
        out_json({"ok": True, "checked": checked})
        return
    for item in checked:
        detail = (humanize.naturalsize(item["bytes"], binary=True) + " of SQL" if item["kind"] == "dump"
                  else f"{item['members']} members")
        out(f"ok  {item['path']} ({detail})")
