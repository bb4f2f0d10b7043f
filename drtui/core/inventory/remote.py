"""Reading an S3 repository: listings, object streams and the few objects that are downloaded whole.

A prefix is listed once per scan (list_objects_v2, paginated; names, sizes, ETags and times come with it, so
a WAL listing gives every segment's size and archive time without one more request). An object is read as a
stream of ranged GETs, several in flight so that one connection is not the limit, handed over in order; a
connection that breaks mid-range is resumed at the byte where it broke. Every range asks for the ETag the
listing saw (IfMatch), so an object replaced while it is read fails instead of mixing two versions.

Only a 404 says an object is not there (ObjectStoreError.not_found); a 5xx, a timeout or a cut connection is
retried (botocore's retries, then the resumes here) and then raised as an ObjectStoreError naming bucket and
key: it never ends a listing or a stream early.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import botocore.exceptions
import urllib3.exceptions

from drtui.core.errors import DrError
from drtui.core.inventory.basebackup import backup_from_json, backup_to_json, read_tarball_stream
from drtui.core.inventory.cache import ReadCache
from drtui.core.inventory.names import WAL_HEADER_BYTES, parse_wal_name
from drtui.core.inventory.wal import complete_coverage, damage
from drtui.core.models import BaseBackup, WalCoverage
from drtui.core.objectstore import ObjectStoreError, S3Settings, S3Url, WholeBody, client, is_s3_url, store_error

if TYPE_CHECKING:
    from drtui.core.config import Config

PART_SIZE = 8 << 20  # bytes per ranged GET
IN_FLIGHT = 4  # ranged GETs at once (PART_SIZE * IN_FLIGHT bytes held at most)
CHUNK = 1 << 20  # bytes handed over at a time
RESUMES = 5  # a broken connection is resumed this many times per range
BROKEN = (botocore.exceptions.IncompleteReadError, botocore.exceptions.ResponseStreamingError,
          botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError,
          urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError, ConnectionError)
COMPRESSED = {".gz": "gzip"}  # WAL object suffixes that say how the file is compressed


@dataclass(frozen=True)
class Listed:
    """One object of a listing."""

    url: S3Url
    size: int
    etag: str
    modified: float  # POSIX seconds (LastModified: when it was stored, see stored_at)


def stored_at(last_modified: datetime) -> float:
    """An object's LastModified as POSIX seconds, taken as the end of its second: S3 gives whole seconds, cut
    down, so the value read as it is can precede the commits the object holds, and an archive time must never
    come before them (a window's end read from it would refuse a reachable target)."""
    return float(math.floor(last_modified.timestamp()) + 1)


def settings_for(config: Config | None, url: S3Url) -> S3Settings:
    """The repository's settings for a URL in its bucket; boto3's own defaults and environment for any other
    (a URL given in BASE_BACKUP or WAL_ARCHIVE works with no [repository] table)."""
    repository = config.repository if config is not None else None
    if repository is not None and repository.url.bucket == url.bucket:
        return repository.settings
    return S3Settings()


def as_location(value: str | os.PathLike | S3Url) -> Path | S3Url:
    """A path, or an s3:// URL as an S3Url (a URL is never squeezed through Path, which would mangle it)."""
    if isinstance(value, S3Url):
        return value
    text = os.fspath(value)
    return S3Url.parse(text) if is_s3_url(text) else Path(text)


def list_prefix(prefix: S3Url, settings: S3Settings, what: str = "list the repository") -> list[Listed]:
    """Every object under a prefix, in key order (all pages of one listing)."""
    prefix = prefix.as_prefix()
    found = []
    try:
        pages = client(settings).get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket, Prefix=prefix.key)
        for page in pages:
            for item in page.get("Contents", []):
                found.append(Listed(S3Url(prefix.bucket, item["Key"]), item["Size"], item.get("ETag", ""),
                                    stored_at(item["LastModified"])))
    except Exception as exc:
        raise store_error(exc, prefix, what, settings) from None
    return found


def head(url: S3Url, settings: S3Settings) -> Listed:
    """One object's size and ETag (HEAD)."""
    try:
        found = client(settings).head_object(Bucket=url.bucket, Key=url.key)
    except Exception as exc:
        raise store_error(exc, url, "read the object's size", settings) from None
    return Listed(url, found["ContentLength"], found.get("ETag", ""), stored_at(found["LastModified"]))


def _get(url: S3Url, settings: S3Settings, etag: str, first: int | None = None, last: int | None = None):
    """The body of a GET: a range, or the whole object with the checksum the store keeps checked by botocore
    as it is read (flexible checksums; an object stored without one has only its size checked)."""
    args = {"Bucket": url.bucket, "Key": url.key}
    if first is not None:
        args["Range"] = f"bytes={first}-{last}"
    else:
        args["ChecksumMode"] = "ENABLED"
    if etag:
        args["IfMatch"] = etag
    return client(settings).get_object(**args)["Body"]


def read_range(obj: Listed, settings: S3Settings, first: int, last: int, cancel: threading.Event | None = None,
               what: str = "read the object") -> bytes:
    """Bytes first..last (inclusive) of an object, resuming a connection that breaks at the byte it broke."""
    want = last - first + 1
    pieces: list[bytes] = []
    got = resumes = 0
    while got < want:
        if cancel is not None and cancel.is_set():
            raise ObjectStoreError(f"reading {obj.url} was cancelled")
        try:
            whole = got == first == 0 and last == obj.size - 1
            body = _get(obj.url, settings, obj.etag, *((None, None) if whole else (first + got, last)))
            with contextlib.closing(body):
                while got < want and (data := body.read(min(CHUNK, want - got))):
                    pieces.append(data)
                    got += len(data)
                if got == want and body.read(1):  # the read to the end is also where a checksum is checked
                    raise ConnectionError("the response holds more bytes than asked for")
            if got < want:  # the body ended early without an error: a cut connection all the same
                raise ConnectionError(f"the response ended after {got} of {want} bytes")
        except BROKEN as exc:
            resumes += 1
            if resumes > RESUMES:
                broken = exc if isinstance(exc, botocore.exceptions.BotoCoreError) else \
                    botocore.exceptions.ConnectionClosedError(endpoint_url=str(exc))
                raise store_error(broken, obj.url, what, settings) from None
        except Exception as exc:
            raise store_error(exc, obj.url, what, settings) from None
    return b"".join(pieces)


def object_chunks(obj: Listed, settings: S3Settings, cancel: threading.Event,
                  what: str = "read the base backup") -> Iterator[bytes]:
    """The whole object as chunks, in order: IN_FLIGHT ranged GETs of PART_SIZE bytes at a time."""
    starts = iter(range(0, obj.size, PART_SIZE))
    with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="s3-range") as pool:
        pending: deque[Future[bytes]] = deque()

        def submit() -> None:
            start = next(starts, None)
            if start is not None:
                pending.append(pool.submit(read_range, obj, settings, start, min(start + PART_SIZE, obj.size) - 1,
                                           cancel, what))

        for _ in range(IN_FLIGHT):
            submit()
        try:
            while pending:
                data = pending.popleft().result()
                submit()
                view = memoryview(data)
                for at in range(0, len(view), CHUNK):
                    yield view[at:at + CHUNK]
        finally:
            for future in pending:
                future.cancel()


def object_stream(obj: Listed, settings: S3Settings, what: str = "read the object"):
    """A plain file object over the whole object (one GET), for a reader that streams it once."""
    try:
        return WholeBody(_get(obj.url, settings, obj.etag), obj.url, obj.size, what)
    except Exception as exc:
        raise store_error(exc, obj.url, what, settings) from None


def wal_name(key_name: str) -> tuple[str, str | None]:
    """A WAL object's file name and its compression: `…01.gz` → (`…01`, "gzip")."""
    for suffix, how in COMPRESSED.items():
        if key_name.endswith(suffix):
            return key_name[:-len(suffix)], how
    return key_name, None


def download(obj: Listed, settings: S3Settings, dest: Path, cancel: threading.Event | None = None) -> int:
    """Write an object to `dest` whole (through `.<name>.tmp`, renamed when complete and of the listed size),
    inflating a `.gz` object; returns the bytes written. Raises ObjectStoreError (or DrError when the object
    is not what its listing says)."""
    data = read_range(obj, settings, 0, obj.size - 1, cancel, "download a WAL file") if obj.size else b""
    if len(data) != obj.size:
        raise DrError(f"{obj.url}: {len(data)} bytes read, the listing says {obj.size}",
                      "the object changed or the store is inconsistent; run the restore again")
    if wal_name(obj.url.name)[1] == "gzip":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DrError(f"{obj.url}: not a whole gzip file ({exc})",
                          "the WAL object is damaged; the restore cannot replay it") from None
    tmp = dest.with_name(f".{dest.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
    os.replace(tmp, dest)
    return len(data)


# -- the inventory's side: base backups and WAL of a repository ------------------------------------------


def read_remote_backup(obj: Listed, settings: S3Settings, cache: ReadCache | None = None) -> BaseBackup:
    """Read one base backup object (streamed once, to its end, as a local tarball is), cached by its ETag."""
    key = f"{obj.url}|{obj.size}|{obj.etag}"
    cached = cache.get("base_backups", key) if cache else None
    if cached:
        return backup_from_json(cached)
    try:
        backup = read_tarball_stream(obj.url, object_stream(obj, settings, "read the base backup"), obj.size)
    except (botocore.exceptions.BotoCoreError, *BROKEN) as exc:
        raise store_error(exc if isinstance(exc, botocore.exceptions.BotoCoreError) else
                          botocore.exceptions.ConnectionClosedError(endpoint_url=str(exc)),
                          obj.url, "read the base backup", settings) from None
    if cache:
        cache.put("base_backups", key, backup_to_json(backup))
    return backup


def first_segment_header_of(listing: list[Listed], settings: S3Settings) -> bytes | None:
    """The first bytes of the first uncompressed segment object of a WAL listing (one ranged GET)."""
    for obj in listing:
        if len(obj.url.name) == 24 and obj.size >= WAL_HEADER_BYTES:
            return read_range(obj, settings, 0, WAL_HEADER_BYTES - 1, what="read a WAL segment's header")
    return None


def scan_remote_wal(prefix: S3Url, settings: S3Settings, segment_size: int,
                    listing: list[Listed] | None = None) -> WalCoverage:
    """What a WAL prefix holds, from one listing: segments with their sizes and archive times; the small
    .history and .backup files are read (one GET each)."""
    listing = list_prefix(prefix, settings, "list the WAL") if listing is None else listing
    coverage = WalCoverage(source=prefix.as_prefix(), kind="s3", segment_size=segment_size)
    found: dict[int, list[tuple[int, float]]] = {}
    damaged: dict[int, dict[int, str]] = {}
    history_texts: dict[int, str] = {}
    for obj in listing:
        name, compression = wal_name(obj.url.name)
        parsed = parse_wal_name(name, segment_size)
        if parsed.kind == "segment":
            found.setdefault(parsed.timeline, []).append((parsed.segno, obj.modified))
            why = None if compression else damage(name, obj.size, segment_size)
            if why:
                damaged.setdefault(parsed.timeline, {})[parsed.segno] = why
        elif parsed.kind == "partial":
            coverage.partial_files.append(name)
        elif parsed.kind in ("history", "backup"):
            text = _small_text(obj, settings, compression)
            if parsed.kind == "history":
                history_texts[parsed.timeline] = text
            else:
                coverage.backup_files.append(name)
                coverage.backup_texts[name] = text
    return complete_coverage(coverage, found, history_texts, damaged)


def _small_text(obj: Listed, settings: S3Settings, compression: str | None) -> str:
    data = read_range(obj, settings, 0, obj.size - 1, what="read a WAL history file") if obj.size else b""
    if compression == "gzip":
        with contextlib.suppress(OSError, EOFError):
            data = gzip.decompress(data)
    return data.decode(errors="replace")


def fetch_remote_segments(coverage: WalCoverage, names: set[str], folder: Path,
                          settings: S3Settings) -> dict[str, Path]:
    """Download the named segments of an S3 WAL source into `folder` (for pg_waldump: a few per backup); the
    ones the store does not have, or cannot hand over, are left out (the window then says why)."""
    assert isinstance(coverage.source, S3Url)
    found: dict[str, Path] = {}
    for name in sorted(names):
        for suffix in ("", *COMPRESSED):
            try:
                obj = head(coverage.source.child(name + suffix), settings)
                download(obj, settings, folder / name)
            except ObjectStoreError as exc:
                if exc.not_found:
                    continue
            except DrError:
                pass
            else:
                found[name] = folder / name
            break
    return found
