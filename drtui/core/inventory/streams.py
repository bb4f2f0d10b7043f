"""Streaming a `.tar.gz` once, to its end, so that a truncated file is an error and not a short listing.

`tarfile` in 'r|gz' mode skips member data by reading, and when the data stops early it simply sees the end
of the archive. Reading through `gzip.GzipFile` and draining it after the last member makes a missing gzip
end-of-stream marker raise EOFError instead.
"""

from __future__ import annotations

import contextlib
import gzip
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError)
BUFFER = 1 << 20


@contextlib.contextmanager
def open_tar_gz(path: Path, stream: IO[bytes] | None = None) -> Iterator[tarfile.TarFile]:
    """A streaming TarFile over a gzip file (or over `stream`, e.g. an object's body, named `path`); leaving
    the block normally drains and checks the gzip stream."""
    with stream or open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
        with tarfile.open(fileobj=gz, mode="r|", bufsize=BUFFER) as tar:
            yield tar
        while gz.read(BUFFER):
            pass
