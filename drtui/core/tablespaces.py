"""Where a base backup's tablespaces are restored to, and how their folders are moved the way the data
directory is: extracted beside their place as `<location>.restoring_<stamp>`, the old folder kept as
`<location>.pre_pitr_<stamp>` (the data directory's stamp), the restored one renamed into place, and on
rollback the kept one renamed back.

A tablespace goes where the backup says it was (tablespace_map, or where a plain backup's pg_tblspc link
points), unless a mapping OLD=NEW (the environment's `tablespace_mapping`, then `--tablespace-mapping`) moves it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from drtui.core.errors import DrError, ErrorKind, UsageError
from drtui.core.files import fsync_dir
from drtui.core.models import BaseBackup


class TablespaceRefused(DrError):
    """A tablespace cannot go where the plan would put it; nothing was touched."""

    kind = ErrorKind.REFUSED


@dataclass(frozen=True)
class Place:
    oid: str
    original: str  # where it was when the backup was taken
    location: Path  # where the restore puts it

    def sibling(self, kind: str, stamp: str) -> Path:
        return self.location.with_name(f"{self.location.name}.{kind}_{stamp}")


def parse_mapping(text: str) -> tuple[str, str]:
    """`OLD=NEW` as --tablespace-mapping takes it (both absolute folders)."""
    old, equals, new = text.partition("=")
    if not equals or not old.startswith("/") or not new.startswith("/"):
        raise UsageError(f"--tablespace-mapping {text!r} is not OLD=NEW with two absolute folders",
                         "write it like --tablespace-mapping /srv/ts_old=/srv/ts_new")
    return os.path.normpath(old), os.path.normpath(new)


def in_use(data_dir: Path) -> set[str]:
    """The folders the tablespaces of the data directory in place live in (resolved), which a restore replaces."""
    folder = data_dir / "pg_tblspc"
    try:
        return {os.path.realpath(entry.path) for entry in os.scandir(folder) if entry.is_symlink()}
    except OSError:
        return set()


def place_tablespaces(backup: BaseBackup, mapping: Iterable[tuple[str, str]], data_dir: Path) -> tuple[Place, ...]:
    """Where each tablespace of the backup goes. Refuses one the backup cannot place, one mapped inside the data
    directory, two into one folder, and a folder that is neither empty nor a tablespace of the data directory
    in place (the one the restore replaces, which is kept aside)."""
    moves: Mapping[str, str] = dict(mapping)
    replaced = in_use(data_dir)
    places: list[Place] = []
    for oid, original in backup.tablespaces:
        target = moves.get(os.path.normpath(original), original) if original else ""
        if not target:
            raise TablespaceRefused(f"tablespace {oid} of {backup.path.name}: the backup does not say where it was",
                                    "say where it goes: --tablespace-mapping OLD=NEW, or tablespace_mapping in "
                                    "the environment's config")
        location = Path(os.path.normpath(target))
        where = f"tablespace {oid} of {backup.path.name} would be restored into {location}"
        if not location.is_absolute() or location == data_dir or data_dir in location.parents:
            raise TablespaceRefused(f"{where}, inside the data directory {data_dir}",
                                    "map it to an absolute folder outside the data directory "
                                    "(--tablespace-mapping OLD=NEW)")
        if any(place.location == location for place in places):
            raise TablespaceRefused(f"{where}, where another tablespace goes too", "map each to a folder of its own")
        if (location.is_symlink() or location.exists()) and not _empty_folder(location) \
                and os.path.realpath(location) not in replaced:
            raise TablespaceRefused(f"{where}, which is not empty and is no tablespace of the data directory in "
                                    f"place (a restore never writes over files)",
                                    "move its contents aside, or map the tablespace to a new or empty folder "
                                    "(--tablespace-mapping OLD=NEW)")
        places.append(Place(oid, original, location))
    return tuple(places)


def _empty_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _rename(source: Path, dest: Path) -> None:
    if dest.exists() or dest.is_symlink():
        raise DrError(f"{dest} already exists", "move it away first; drtui never overwrites data")
    os.rename(source, dest)
    fsync_dir(dest.parent)


def preserve(places: Iterable[Place], stamp: str) -> list[tuple[Path, Path]]:
    """Rename each tablespace folder in the way aside as `.pre_pitr_<stamp>`; (from, to) of each moved.
    An empty folder is removed instead: there is nothing to keep."""
    moved = []
    for place in places:
        if _empty_folder(place.location):
            place.location.rmdir()
        elif place.location.exists():
            _rename(place.location, place.sibling("pre_pitr", stamp))
            moved.append((place.location, place.sibling("pre_pitr", stamp)))
    return moved


def swap_in(places: Iterable[Place], stamp: str) -> list[Path]:
    """Rename each extracted tablespace (`.restoring_<stamp>`) into its place."""
    for place in places:
        place.location.parent.mkdir(parents=True, exist_ok=True)
        _rename(place.sibling("restoring", stamp), place.location)
    return [place.location for place in places]


def move_back(moves: Iterable[tuple[Path, Path]]) -> None:
    """Undo renames (from, to): each `to` back to `from`, where `from` is free."""
    for source, dest in moves:
        if dest.exists() and not source.exists():
            _rename(dest, source)


def put_back(data_dir: Path, preserved: Path, aside_kind: str, aside_stamp: str) -> list[str]:
    """Rollback, once the preserved data directory is back in place as `data_dir`: each tablespace it links
    to that the restore kept aside (`<location>.pre_pitr_<stamp>`, the stamp of `preserved`, the name it was
    kept under) is renamed back into place; what is there now is kept as `<location>.<aside_kind>_<aside_stamp>`.
    Returns what was done, in words."""
    stamp = preserved.name.rpartition(".pre_pitr_")[2]
    done = []
    for location in sorted(_links(data_dir)):
        place = Place("", "", Path(location))
        kept = place.sibling("pre_pitr", stamp)
        if not kept.is_dir():
            continue
        if place.location.exists():
            _rename(place.location, place.sibling(aside_kind, aside_stamp))
            done.append(f"{place.location} → {place.sibling(aside_kind, aside_stamp)} (kept, never deleted)")
        _rename(kept, place.location)
        done.append(f"{kept} → {place.location}")
    return done


def _links(data_dir: Path) -> set[str]:
    """Where the pg_tblspc links point, as written (a link whose folder is gone has no real path)."""
    folder = data_dir / "pg_tblspc"
    try:
        return {os.path.normpath(os.readlink(entry.path)) for entry in os.scandir(folder) if entry.is_symlink()}
    except OSError:
        return set()
