"""Writing files so that a reader never sees half of one: write beside, fsync, rename, fsync the folder.

Everything drtui writes is for its owner (and a backup group) only, as pgBackRest and Barman do: files are
0640 and folders 0750, never readable by other local users, because backups hold production's data.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from drtui.core.clock import isoformat

FILE_MODE = 0o640
DIR_MODE = 0o750
UMASK = 0o027  # set where drtui starts, so every file it (or a tool it runs) creates is closed to others


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def partial_path(final: Path) -> Path:
    """Where a file is written before it is whole (the inventory and the next run recognise the name)."""
    return final.with_name(f".{final.name}.partial")


def make_private(path: Path, group: int | None = None) -> None:
    """Give a file or folder drtui's mode (0640 / 0750), and the backup group when one is configured."""
    if group is not None:
        os.chown(path, -1, group, follow_symlinks=False)
    os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)


def open_to_others(path: Path) -> str | None:
    """The mode of a file or folder that other local users may read or enter (e.g. '0755'), else None
    (also when it does not exist)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
    return f"{mode:04o}" if mode & 0o007 else None


def make_dirs(folder: Path, group: int | None = None) -> None:
    """Create a folder and its missing parents as private folders (existing ones are left as they are)."""
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(DIR_MODE)
            make_private(path, group)


@contextlib.contextmanager
def atomic_paths(*finals: Path, overwrite: bool = False, group: int | None = None) -> Iterator[list[Path]]:
    """Yield a temporary path beside each of `finals`; when the block succeeds every one is fsynced, made
    private and renamed onto its final name, and when anything fails (the block or a rename) every temporary
    file, and every final name already renamed, is removed: the files appear all together or not at all.
    Only heartbeats may overwrite."""
    for final in finals:
        if final.exists() and not overwrite:
            raise FileExistsError(errno.EEXIST, "already exists, and is never overwritten", str(final))
    tmps = [partial_path(final) for final in finals]
    renamed: list[Path] = []
    try:
        yield tmps
        for tmp in tmps:
            with tmp.open("rb+") as handle:
                os.fsync(handle.fileno())
            make_private(tmp, group)
        for tmp, final in zip(tmps, finals, strict=True):
            os.replace(tmp, final)
            renamed.append(final)
        for folder in {final.parent for final in finals}:
            fsync_dir(folder)
    except BaseException:
        for path in [*tmps, *([] if overwrite else renamed)]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise


@contextlib.contextmanager
def atomic_path(final: Path, overwrite: bool = False, group: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success it is fsynced and renamed onto `final`,
    on failure it is removed and `final` is left as it was. Only heartbeats may overwrite."""
    with atomic_paths(final, overwrite=overwrite, group=group) as (tmp,):
        yield tmp


def write_heartbeat(path: Path, moment: datetime, group: int | None = None) -> None:
    """A heartbeat file: one ISO-8601 UTC timestamp, written atomically."""
    make_dirs(path.parent, group)
    with atomic_path(path, overwrite=True, group=group) as tmp:
        tmp.write_text(isoformat(moment) + "\n")
