"""A tarball read as a stream, never whole into memory: its first bytes choose its decoder (gzip, zstd, lz4
frame, or none), run in a thread of its own (gzip by Python's zlib, which releases the GIL and on PostgreSQL data
inflates about 3x faster than the gzip/pigz programs; zstd and lz4 by their C libraries, which release it too),
and a small tar reader parses the decoded stream (ustar, GNU long names, pax headers) into views of the inflated
chunks, without copies. extract.py writes what it reads."""

from __future__ import annotations

import contextlib
import itertools
import queue
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import lz4.frame
import zstandard

from drtui.core.inventory.streams import MAGIC_BYTES, ChunkFile, compression_of

READ_SIZE = 1 << 20  # compressed bytes read at a time
INFLATE_SIZE = 4 << 20  # most inflated bytes handed over at a time
QUEUE_DEPTH = 8
BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
PAX_TYPES = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)


class Damaged(Exception):
    """Raised inside the pipeline; turned into an ExtractError naming the file."""


class _Pipe:
    """Run a producer iterator in a thread of its own, handing its items over through a bounded queue."""

    _END = object()

    def __init__(self, source: Iterator[bytes], name: str) -> None:
        self._queue: queue.Queue = queue.Queue(QUEUE_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _run(self, source: Iterator[bytes]) -> None:
        try:
            with contextlib.closing(source):  # type: ignore[type-var]
                for item in source:
                    if not self._put(item):
                        return
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join()


def _read_file(path: Path) -> Iterator[bytes]:
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(READ_SIZE):
            yield chunk


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """gunzip a stream of chunks (several gzip members, and zero padding after the last, are allowed)."""
    inflater = zlib.decompressobj(31)
    try:
        for chunk in chunks:
            data = chunk
            while True:
                if inflater.eof:
                    if not bytes(data).strip(b"\0"):
                        break
                    inflater = zlib.decompressobj(31)
                out = inflater.decompress(data, INFLATE_SIZE)
                if out:
                    yield out
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                if not data and len(out) < INFLATE_SIZE:
                    break
    except zlib.error as exc:
        raise Damaged(f"the gzip data is corrupt ({exc})") from None
    if not inflater.eof:
        raise Damaged("the gzip stream ends early: the file is truncated")


def _unzstd(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """zstd frames in a row. A cut one simply ends: the tar reader then finds its stream cut short."""
    reader = zstandard.ZstdDecompressor().stream_reader(ChunkFile(chunks), read_size=READ_SIZE,
                                                        read_across_frames=True)
    try:
        while out := reader.read(INFLATE_SIZE):
            yield out
    except zstandard.ZstdError as exc:
        raise Damaged(f"the zstd data is corrupt ({exc})") from None


def _unlz4(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """lz4 frames in a row (the frame format pg_basebackup and the lz4 program write)."""
    reader = lz4.frame.LZ4FrameFile(ChunkFile(chunks))
    try:
        while out := reader.read(INFLATE_SIZE):
            yield out
    except EOFError:
        raise Damaged("the lz4 stream ends early: the file is truncated") from None
    except RuntimeError as exc:
        raise Damaged(f"the lz4 data is corrupt ({exc})") from None


DECODERS: dict[str, Callable[[Iterable[bytes]], Iterator[bytes]]] = {
    "gzip": _gunzip, "zstd": _unzstd, "lz4": _unlz4}


def _resumed(head: list[bytes | memoryview], rest: Iterator[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    """The chunks peeked at, then the rest; closing it closes `rest` (and so the file it reads)."""
    yield from head
    yield from rest


def _decoded(chunks: Iterator[bytes | memoryview], what: str) -> _Pipe:
    """The chunks decoded by their first bytes (gzip, zstd, lz4; anything else passes as is), in a thread."""
    head: list[bytes | memoryview] = []
    while sum(map(len, head)) < MAGIC_BYTES and (chunk := next(chunks, None)) is not None:
        head.append(chunk)
    compression = compression_of(b"".join(head))
    source = _resumed(head, chunks)
    if compression is None:
        return _Pipe(source, name=f"read {what}")  # type: ignore[arg-type]
    return _Pipe(DECODERS[compression](source), name=f"{compression} {what}")  # type: ignore[arg-type]


@contextlib.contextmanager
def open_stream(path: Path, chunks: Iterator[bytes] | None = None) -> Iterator[TarReader]:
    """A tar reader over a tarball, compressed (decoded in its own thread) or plain, read from `chunks` of
    its bytes when given (an object's ranged GETs), else from the file `path`."""
    try:
        if chunks is None:
            with path.open("rb") as handle:
                head = handle.read(BLOCK)
            chunks = _read_file(path)
        else:
            head = bytes(next(chunks, b""))
            chunks = itertools.chain([head], chunks)
    except OSError as exc:
        raise Damaged(f"cannot read it ({exc.strerror})") from None
    if compression_of(head) is None and not (len(head) >= BLOCK and head[257:262] == b"ustar"):
        raise Damaged("not a tar archive, plain or compressed (gzip, zstd, lz4)")
    pipe = _decoded(chunks, path.name)
    try:
        yield TarReader(iter(pipe))
    finally:
        pipe.close()


@contextlib.contextmanager
def open_inner(reader: TarReader, member: tarfile.TarInfo) -> Iterator[TarReader]:
    """A tar reader over a tarball member (compressed or not) of an outer tar stream, without writing it to disk."""
    pipe = _decoded(reader.pieces(member.size), member.name)
    try:
        yield TarReader(iter(pipe))
    finally:
        pipe.close()


class TarReader:
    """Members of a tar stream read from chunks (ustar, GNU long names, pax headers)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._view = memoryview(b"")
        self._pos = 0
        self._global: dict[str, str] = {}

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._view, self._pos = memoryview(chunk), 0
                return True
        return False

    def pieces(self, size: int) -> Iterator[memoryview]:
        """The next `size` bytes, as views into the inflated chunks (no copy)."""
        while size > 0:
            if self._pos >= len(self._view) and not self._fill():
                raise Damaged("the tar stream ends in the middle of a file: the archive is truncated")
            take = min(size, len(self._view) - self._pos)
            yield self._view[self._pos:self._pos + take]
            self._pos += take
            size -= take

    def read(self, size: int) -> bytes:
        return b"".join(self.pieces(size))

    def skip(self, size: int) -> None:
        for _ in self.pieces(size):
            pass

    def skip_padding(self, size: int) -> None:
        if size % BLOCK:
            self.skip(BLOCK - size % BLOCK)

    def drain(self) -> None:
        """Read the stream to its end, so that the inflater checks the gzip trailer (CRC and length)."""
        self._view, self._pos = memoryview(b""), 0
        for _ in self._chunks:
            pass

    def next(self) -> tarfile.TarInfo | None:
        """The next member's header (its data is still to be read), or None at the end of the archive."""
        long_name = long_link = None
        pax: dict[str, str] = {}
        while True:
            if self._pos >= len(self._view) and not self._fill():
                # `pg_basebackup -D - -Ft | gzip` that dies mid-stream still leaves a valid gzip trailer
                raise Damaged("the tar stream stops without its end-of-archive marker: the archive is truncated")
            block = self.read(BLOCK)
            if block == ZERO_BLOCK:
                self.drain()
                return None
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError as exc:
                raise Damaged(f"not a tar archive, or a damaged tar header ({exc})") from None
            if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
                text = self.read(info.size).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                self.skip_padding(info.size)
                if info.type == tarfile.GNUTYPE_LONGNAME:
                    long_name = text
                else:
                    long_link = text
                continue
            if info.type in (*PAX_TYPES, tarfile.XGLTYPE):
                records = _pax_records(self.read(info.size))
                self.skip_padding(info.size)
                (pax if info.type in PAX_TYPES else self._global).update(records)
                continue
            fields = {**self._global, **pax}
            info.name = fields.get("path", long_name or info.name)
            info.linkname = fields.get("linkpath", long_link or info.linkname)
            if "size" in fields:
                info.size = int(fields["size"])
            if "mtime" in fields:
                info.mtime = float(fields["mtime"])
            return info


def _pax_records(data: bytes) -> dict[str, str]:
    records = {}
    pos = 0
    try:
        while pos < len(data) and data[pos] != 0:
            space = data.index(b" ", pos)
            length = int(data[pos:space])
            key, _, value = data[space + 1:pos + length - 1].partition(b"=")
            records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
            pos += length
    except ValueError:
        raise Damaged("a damaged pax header") from None
    return records
