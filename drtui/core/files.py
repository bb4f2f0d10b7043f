"""Writing files so that a reader never sees half of one: write beside, fsync, rename, fsync the folder."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from drtui.core.clock import isoformat


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success it is fsynced and renamed onto `final`,
    on failure it is removed and `final` is left as it was. Only heartbeats may overwrite."""
    if final.exists() and not overwrite:
        raise FileExistsError(errno.EEXIST, "already exists, and is never overwritten", str(final))
    tmp = final.with_name(f".{final.name}.partial")
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_heartbeat(path: Path, moment: datetime) -> None:
    """A heartbeat file: one ISO-8601 UTC timestamp, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(isoformat(moment) + "\n")
