"""Streaming a tarball once, to its end, so that a truncated file is an error and not a short listing, and
telling a stream's compression (gzip, zstd, lz4 frame, or none) by its first bytes, never by its name.

`tarfile` in 'r|gz' mode skips member data by reading, and when the data stops early it simply sees the end
of the archive. Reading through a decompressing file and draining it after the last member makes a missing
gzip or lz4 end-of-stream marker raise EOFError instead (zstd frames carry no such marker the library checks:
a cut zstd tarball shows as a tar stream that ends in the middle, which tarfile reports).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import lz4.frame
import zstandard

# damaged compressed or tar data (lz4.frame reports a damaged frame as RuntimeError); and a cut or unreadable file
DECODE_ERRORS = (tarfile.TarError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError, RuntimeError)
READ_ERRORS = (*DECODE_ERRORS, EOFError, OSError)
BUFFER = 1 << 20
MAGICS = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4"}
SUFFIXES = {"gzip": ".gz", "zstd": ".zst", "lz4": ".lz4"}
MAGIC_BYTES = 4


def compression_of(head: bytes) -> str | None:
    """"gzip", "zstd" or "lz4" for a stream starting with `head` (its first 4 bytes or more), else None."""
    for magic, name in MAGICS.items():
        if head.startswith(magic):
            return name
    return None


class ChunkFile(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (bytes or memoryviews), for the decompressors."""

    def __init__(self, chunks: Iterable[bytes | memoryview]) -> None:
        self._chunks = iter(chunks)
        self._rest = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = memoryview(chunk).cast("B")
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


def decompressing(handle: IO[bytes], compression: str | None) -> IO[bytes]:
    """A file reading `handle` decompressed (several gzip members, zstd or lz4 frames in a row are one stream)."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=handle, mode="rb")
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(handle, read_size=BUFFER, read_across_frames=True)
    if compression == "lz4":
        return lz4.frame.LZ4FrameFile(handle)  # type: ignore[return-value]
    return handle


def sniffed(handle: IO[bytes]) -> IO[bytes]:
    """`handle` decompressed by its first bytes (it need not be seekable: a tar member in stream mode)."""
    head = handle.read(MAGIC_BYTES)
    rest = io.BufferedReader(ChunkFile(_chain(head, handle)), BUFFER)
    return decompressing(rest, compression_of(head))


def _chain(head: bytes, handle: IO[bytes]) -> Iterator[bytes]:
    yield head
    yield from iter(lambda: handle.read(BUFFER), b"")


@contextlib.contextmanager
def open_tar(path: Path, stream: IO[bytes] | None = None, drain: bool = True) -> Iterator[tarfile.TarFile]:
    """A streaming TarFile over a tarball, compressed or not (a name ending .gz, .zst or .lz4 must hold that),
    or over `stream` (e.g. an object's body) named `path`; with `drain`, leaving the block normally reads the
    stream to its end (checking the gzip or lz4 trailer)."""
    with stream or open(path, "rb") as raw:
        head = raw.read(MAGIC_BYTES)
        compression = compression_of(head)
        named = next((name for name, suffix in SUFFIXES.items() if path.name.endswith(suffix)), None)
        if named and compression != named:
            raise tarfile.ReadError(f"not {named} data, as its name says")
        source = decompressing(io.BufferedReader(ChunkFile(_chain(head, raw)), BUFFER), compression)
        with contextlib.closing(source):
            with tarfile.open(fileobj=source, mode="r|", bufsize=BUFFER) as tar:
                yield tar
            while drain and source.read(BUFFER):
                pass
