"""`drtui backup expire`: which backups, WAL and preserved data directories may go, and removing them.

A backup is kept when it is one of the newest `keep` of its kind (base backups, dumps of each database with
their uploads archives, WAL tarballs: each counted on its own) or younger than `keep_days`, and always when a
running restore or drill names it in its journal (an environment's lock is held). WAL is removed only below
the start segment of the oldest kept base backup, so every kept backup's window stays whole; `.history` files
are always kept, and without a kept base backup whose start is known no WAL goes at all. Preserved data
directories (`<data_dir>.pre_pitr_<stamp>`) age out by the same rule, per environment, never while a run holds
that environment. The same plan serves `--dry-run` and the real run, so the two agree.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import botocore.exceptions

from drtui.core.backends import backend_for
from drtui.core.backends.local import LocalBackend
from drtui.core.clock import parse_stamp
from drtui.core.config import Config
from drtui.core.errors import BackupError, DrError, ErrorKind
from drtui.core.inventory.basebackup import read_base_backup
from drtui.core.inventory.labels import parse_backup_label
from drtui.core.inventory.names import classify_artifact, parse_wal_name
from drtui.core.journal import journal_path
from drtui.core.lock import EnvLock
from drtui.core.models import BaseBackup
from drtui.core.objectstore import S3Settings, S3Url, client, store_error
from drtui.core.upload import listing
from drtui.core.wal_push import COMPRESSIONS

LABEL_BYTES = 1 << 16  # the start of a base backup object: its first tar member is backup_label
_PRESERVED = re.compile(r"\.pre_pitr_(\d{8}T\d{6}Z)$")


class ExpireRefused(DrError):
    kind = ErrorKind.REFUSED


@dataclass
class Item:
    """One backup (a dump with its uploads archive), or a preserved data directory."""

    kind: str  # "base", "dump", "wal_tarball", "preserved"
    group: str  # what it is counted with: the kind, a dump's database, a preserved copy's environment
    moment: datetime
    locations: list[Path | S3Url]
    why: str = ""  # why it is kept, or why it goes

    def as_dict(self) -> dict:
        return {"kind": self.kind, "time": self.moment.isoformat(), "why": self.why,
                "locations": [str(location) for location in self.locations]}


@dataclass
class Expiry:
    keep: int | None
    keep_days: float | None
    kept: list[Item] = field(default_factory=list)
    removed: list[Item] = field(default_factory=list)
    wal_floor: str | None = None  # the oldest kept base backup's start segment: WAL before it goes
    wal_removed: list[Path | S3Url] = field(default_factory=list)
    wal_kept_why: str = ""
    dry_run: bool = True

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "keep": self.keep, "keep_days": self.keep_days,
                "removed": [item.as_dict() for item in self.removed],
                "kept": [item.as_dict() for item in self.kept],
                "wal_floor": self.wal_floor, "wal_removed": [str(wal) for wal in self.wal_removed],
                "wal_kept_why": self.wal_kept_why}


def plan(config: Config, now: datetime, keep: int | None, keep_days: float | None) -> Expiry:
    """What expire would remove now (nothing is touched)."""
    if keep is None and keep_days is None:
        raise ExpireRefused("say what to keep: --keep N (the newest N of each kind) and/or --keep-days D",
                            "nothing was removed; [retention] keep / keep_days in drtui.toml set them for good")
    if keep is not None and keep < 1:
        raise ExpireRefused(f"--keep {keep}: keep at least one backup of each kind", "give --keep 1 or more")
    expiry = Expiry(keep, keep_days)
    in_use = _in_use(config)
    items = _backups(config) + _preserved(config)
    by_group: dict[tuple[str, str], list[Item]] = {}
    for item in items:
        by_group.setdefault((item.kind, item.group), []).append(item)
    for group in by_group.values():
        group.sort(key=lambda item: item.moment, reverse=True)
        for rank, item in enumerate(group):
            item.why = _kept_because(item, rank, now, keep, keep_days, in_use)
            (expiry.kept if item.why else expiry.removed).append(item)
            if not item.why:
                item.why = _goes_because(keep, keep_days)
    _keep_chains(expiry)
    _plan_wal(config, expiry)
    return expiry


def _keep_chains(expiry: Expiry) -> None:
    """A kept incremental base backup (on this host) keeps every backup its chain builds on: pg_combinebackup
    needs them all to restore it."""
    from drtui.core.incremental import ChainError, chain_of

    def read(items: list[Item]) -> dict[int, BaseBackup]:
        found = {}
        for item in items:
            if item.kind == "base" and isinstance(item.locations[0], Path):
                with contextlib.suppress(DrError):
                    found[id(item)] = read_base_backup(item.locations[0])
        return found

    kept = read(expiry.kept)
    if not any(backup.is_incremental for backup in kept.values()):
        return
    every = {**kept, **read(expiry.removed)}
    item_of = {every[id(item)].path: item for item in expiry.kept + expiry.removed if id(item) in every}
    for backup in kept.values():
        try:
            chain = chain_of(backup, list(every.values()))
        except ChainError:
            continue
        for member in chain[:-1]:
            parent = item_of[member.path]
            if parent in expiry.removed:
                expiry.removed.remove(parent)
                expiry.kept.append(parent)
                parent.why = f"the incremental {backup.path.name} builds on it"


def _kept_because(item: Item, rank: int, now: datetime, keep: int | None, keep_days: float | None,
                  in_use: dict[str, str]) -> str:
    for location in item.locations:
        run = in_use.get(_name(location))
        if run:
            return f"in use by run {run}"
    if item.kind == "preserved" and item.group in in_use.get("\0environments", "").split():
        return f"a run holds environment {item.group}"
    if keep is not None and rank < keep:
        return f"one of the newest {keep}"
    if keep_days is not None and now - item.moment < timedelta(days=keep_days):
        return f"younger than {keep_days:g} days"
    return ""


def _goes_because(keep: int | None, keep_days: float | None) -> str:
    rules = ([f"not one of the newest {keep}"] if keep is not None else []) + \
        ([f"older than {keep_days:g} days"] if keep_days is not None else [])
    return " and ".join(rules)


def _name(location: Path | S3Url) -> str:
    return location.name


def _in_use(config: Config) -> dict[str, str]:
    """Names a running restore or drill uses (found in the journal of each environment's live lock holder) →
    its run id; "\\0environments" lists the environments held."""
    used: dict[str, str] = {}
    held = []
    for env_name in config.environments:
        holder = EnvLock(config.state_dir, env_name).holder()
        if holder is None:
            continue
        held.append(env_name)
        try:
            text = journal_path(config.state_dir, holder.run_id).read_text()
        except OSError:
            raise ExpireRefused(f"environment {env_name!r} is busy ({holder.describe()}) and its journal cannot "
                                "be read, so drtui cannot tell which backup it uses",
                                "run expire again when that run has finished; nothing was removed") from None
        for name in re.findall(r"[\w.-]+_\d{8}T\d{6}Z[\w.]*", text):
            used.setdefault(name.rstrip("."), holder.run_id)
    used["\0environments"] = " ".join(held)
    return used


def _backups(config: Config) -> list[Item]:
    """The repository's backups: (kind, group, stamp) → locations, a dump with its uploads archive."""
    names: Iterable[str]
    if config.repository:
        prefix = config.repository.backups
        names = [name for name in listing(prefix, config.repository.settings, "list the backups")
                 if "/" not in name]
        locate = prefix.child
    else:
        names = sorted(os.listdir(config.backup_dir)) if config.backup_dir.is_dir() else []
        locate = config.backup_dir.joinpath
    found: dict[tuple[str, str, datetime], Item] = {}
    uploads: dict[datetime, Path | S3Url] = {}
    for name in names:
        kind, moment = classify_artifact(name)
        if moment is None:
            continue
        if kind == "uploads":
            uploads[moment] = locate(name)
            continue
        kind, group = {"basebackup": ("base", "base"), "wal_tarball": ("wal_tarball", "wal_tarball"),
                       "dump": ("dump", name.rsplit("_", 1)[0])}[kind]
        found.setdefault((kind, group, moment), Item(kind, group, moment, [])).locations.append(locate(name))
    for (kind, _, moment), item in found.items():
        if kind == "dump" and moment in uploads:
            item.locations.append(uploads[moment])
    return list(found.values())


def _preserved(config: Config) -> list[Item]:
    items = []
    for env in config.environments.values():
        backend = backend_for(env, config.state_dir)
        if not isinstance(backend, LocalBackend):
            continue  # a compose environment's preserved volumes are left to `docker volume rm`
        for path in backend.preserved():
            found = _PRESERVED.search(path.name)
            if found:
                items.append(Item("preserved", env.name, parse_stamp(found.group(1)), [path]))
    return items


def _plan_wal(config: Config, expiry: Expiry) -> None:
    kept_bases = [item for item in expiry.kept if item.kind == "base"]
    if not kept_bases:
        expiry.wal_kept_why = "no base backup is kept, so no WAL is removed"
        return
    starts = []
    for item in kept_bases:
        try:
            starts.append(_start_segment(config, item.locations[0]))
        except DrError as exc:
            expiry.wal_kept_why = f"the start of kept base backup {item.locations[0]} is unknown ({exc.title})"
            return
    expiry.wal_floor = min(starts, key=lambda name: name[8:24])
    floor = expiry.wal_floor[8:24]
    for name, location in _wal_files(config):
        kind = parse_wal_name(name).kind
        if kind in ("segment", "partial", "backup") and name[8:24] < floor:
            expiry.wal_removed.append(location)
    expiry.wal_kept_why = f"WAL from {expiry.wal_floor} on (the oldest kept base backup's start) is kept"


def _wal_files(config: Config) -> list[tuple[str, Path | S3Url]]:
    """The WAL files of the repository: the name PostgreSQL gave each, and where it is."""
    if config.repository:
        prefix = config.repository.wal
        files = []
        for key in listing(prefix, config.repository.settings, "list the WAL"):
            suffix = next((s for s in COMPRESSIONS.values() if s and key.endswith(s)), "")
            files.append((key[: len(key) - len(suffix)], prefix.child(key)))
        return files
    if not config.wal_archive.is_dir():
        return []
    return [(name, config.wal_archive / name) for name in sorted(os.listdir(config.wal_archive))]


def _start_segment(config: Config, location: Path | S3Url) -> str:
    if isinstance(location, Path):
        return read_base_backup(location).start_wal_file
    assert config.repository
    settings = config.repository.settings
    try:
        head = client(settings).get_object(Bucket=location.bucket, Key=location.key,
                                           Range=f"bytes=0-{LABEL_BYTES - 1}")["Body"].read()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise store_error(exc, location, "read the backup_label of a kept base backup", settings) from None
    data = zlib.decompressobj(wbits=31).decompress(head)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member and member.name == "backup_label" else None
        if handle is None:
            raise BackupError(f"{location}: backup_label is not its first member", "")
        return parse_backup_label(handle.read().decode()).start_wal_file


def apply(config: Config, expiry: Expiry) -> None:
    """Remove what the plan says goes: the backups (oldest first), then the WAL below the floor."""
    expiry.dry_run = False
    settings = config.repository.settings if config.repository else S3Settings()
    for item in sorted(expiry.removed, key=lambda item: item.moment):
        _remove(item.locations, settings)
    _remove(expiry.wal_removed, settings)


def _remove(locations: list[Path | S3Url], settings: S3Settings) -> None:
    objects = [location for location in locations if isinstance(location, S3Url)]
    for path in (location for location in locations if isinstance(location, Path)):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    for start in range(0, len(objects), 1000):  # DeleteObjects takes 1000 keys a request
        batch = objects[start:start + 1000]
        try:
            answer = client(settings).delete_objects(
                Bucket=batch[0].bucket, Delete={"Objects": [{"Key": url.key} for url in batch], "Quiet": True})
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise store_error(exc, batch[0], "remove expired objects", settings) from None
        if answer.get("Errors"):
            error = answer["Errors"][0]
            raise BackupError(f"s3://{batch[0].bucket}/{error['Key']}: not removed ({error.get('Code')}: "
                              f"{error.get('Message')}); {len(answer['Errors'])} objects were not removed",
                              "check the credentials' s3:DeleteObject permission and run expire again")
