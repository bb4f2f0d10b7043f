"""Writing objects to an S3 repository, each verified by its size and a SHA-256 checksum the store confirms.

A big artifact (a base backup, a dump) is streamed: the producer writes into a pipe and boto3's
`upload_fileobj` sends what it reads as a multipart upload, so no second full copy lands on local disk. While
the bytes pass, drtui hashes them the way the store does (the whole object, and each part for a multipart
upload's checksum of checksums); after the upload the store's own checksum (head_object with ChecksumMode) and
size must match, or the object is removed and the backup fails.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from typing import IO, Any

import botocore.exceptions

from drtui.core.errors import BackupError
from drtui.core.objectstore import ObjectStoreError, S3Settings, S3Url, client, store_error

# Multipart part size, and the threshold (a smaller object is one PUT). S3 allows 10,000 parts: 64 MiB parts
# reach 640 GiB, while boto3 holds at most a few parts in memory.
PART = 64 << 20
CHECKSUM = {"ChecksumAlgorithm": "SHA256"}


class ObjectExists(Exception):
    """The key is already taken (a conditional PUT said 412): nothing was written."""


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def listing(url: S3Url, settings: S3Settings, action: str) -> dict[str, dict[str, Any]]:
    """Every object under a prefix, by its key relative to the prefix: one paginated listing."""
    found: dict[str, dict[str, Any]] = {}
    try:
        for page in client(settings).get_paginator("list_objects_v2").paginate(Bucket=url.bucket, Prefix=url.key):
            for item in page.get("Contents", []):
                found[item["Key"][len(url.key):]] = item
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise store_error(exc, url, action, settings) from None
    return found


def exists(url: S3Url, settings: S3Settings, action: str) -> bool:
    """Whether the object is there: a listing, not a HEAD, so that a missing bucket or a denied listing is
    said (a HEAD's 404 has no body to tell a missing bucket from a missing key) before any work starts."""
    return "" in listing(url, settings, action)


def read(url: S3Url, settings: S3Settings, action: str) -> bytes:
    try:
        return client(settings).get_object(Bucket=url.bucket, Key=url.key)["Body"].read()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise store_error(exc, url, action, settings) from None


def remove(url: S3Url, settings: S3Settings, action: str) -> None:
    try:
        client(settings).delete_object(Bucket=url.bucket, Key=url.key)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise store_error(exc, url, action, settings) from None


def put(url: S3Url, data: bytes, settings: S3Settings, overwrite: bool = False) -> None:
    """One object in one PUT, verified. Without `overwrite` the PUT is conditional (If-None-Match: *):
    ObjectExists when the key is taken, so an object is never replaced."""
    condition = {} if overwrite else {"IfNoneMatch": "*"}
    try:
        client(settings).put_object(Bucket=url.bucket, Key=url.key, Body=data, **CHECKSUM, **condition,
                                    **settings.write_args())
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            raise ObjectExists(str(url)) from None
        raise store_error(exc, url, f"upload {url.name}", settings) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise store_error(exc, url, f"upload {url.name}", settings) from None
    verify(url, len(data), {_b64(hashlib.sha256(data).digest())}, settings)


def verify(url: S3Url, size: int, checksums: set[str], settings: S3Settings) -> None:
    """The stored object must have `size` bytes and one of `checksums` as the store's SHA-256 (a multipart
    object's is the checksum of its parts' checksums, with or without the `-N` suffix); else it is removed."""
    try:
        head = client(settings).head_object(Bucket=url.bucket, Key=url.key, ChecksumMode="ENABLED")
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise store_error(exc, url, f"check the upload of {url.name}", settings) from None
    stored = (head.get("ChecksumSHA256") or "").split("-")[0]
    if head.get("ContentLength") == size and stored in checksums:
        return
    with contextlib.suppress(ObjectStoreError):
        remove(url, settings, "remove a bad upload")
    said = f"{head.get('ContentLength')} bytes, SHA-256 {stored or 'not given'}"
    raise BackupError(f"{url}: the store holds something else than drtui sent ({said}; sent {size} bytes); "
                      "the object was removed", "a store that does not confirm SHA-256 checksums (S3's "
                      "x-amz-checksum-sha256) cannot hold drtui's backups; otherwise run the backup again")


class _Aborted(Exception):
    """The producer failed: the upload must not complete."""


class _HashingReader:
    """The pipe's read end as boto3 reads it, hashing what passes: the whole stream and each part."""

    def __init__(self, raw: IO[bytes], part_size: int) -> None:
        self.raw = raw
        self.part_size = part_size
        self.size = 0
        self.aborted = False
        self._whole = hashlib.sha256()
        self._part = hashlib.sha256()
        self._part_digests: list[bytes] = []

    def read(self, amount: int = -1) -> bytes:
        data = self.raw.read(amount)
        if not data and amount != 0 and self.aborted:
            raise _Aborted
        self._whole.update(data)
        view = memoryview(data)
        while view:
            room = self.part_size - self.size % self.part_size
            self._part.update(view[:room])
            self.size += min(room, len(view))
            if self.size % self.part_size == 0:
                self._part_digests.append(self._part.digest())
                self._part = hashlib.sha256()
            view = view[room:]
        return data

    def checksums(self) -> set[str]:
        parts = self._part_digests + ([self._part.digest()] if self.size % self.part_size else [])
        return {_b64(self._whole.digest()), _b64(hashlib.sha256(b"".join(parts)).digest())}

    def close(self) -> None:
        self.raw.close()


@contextlib.contextmanager
def upload_stream(url: S3Url, settings: S3Settings, part_size: int = PART) -> Iterator[IO[bytes]]:
    """Yield a stream whose bytes are uploaded to `url` as they are written. When the block ends the upload
    completes and is verified; when it fails the upload is aborted and nothing is stored. A failed upload ends
    the producer (its writes fail) and is the error raised."""
    from boto3.s3.transfer import TransferConfig  # boto3 is loaded by the client: this costs nothing more

    s3 = client(settings)
    read_fd, write_fd = os.pipe()
    source = _HashingReader(os.fdopen(read_fd, "rb"), part_size)
    failures: list[BaseException] = []

    def send() -> None:
        try:
            s3.upload_fileobj(source, url.bucket, url.key, ExtraArgs={**CHECKSUM, **settings.write_args()},
                              Config=TransferConfig(multipart_threshold=part_size,
                                                    multipart_chunksize=part_size, max_concurrency=4))
        except BaseException as exc:  # handed to the producer's thread below
            failures.append(exc)
        finally:
            source.close()  # a producer blocked on a full pipe gets BrokenPipeError

    sender = threading.Thread(target=send, name=f"upload {url.name}", daemon=True)
    sender.start()
    sink = os.fdopen(write_fd, "wb")
    try:
        yield sink
        sink.close()
    except BaseException:
        source.aborted = True
        with contextlib.suppress(OSError):
            sink.close()
        sender.join()
        if failures and not isinstance(failures[0], _Aborted):
            raise _upload_failure(failures[0], url, settings) from None
        raise
    sender.join()
    if failures:
        raise _upload_failure(failures[0], url, settings)
    verify(url, source.size, source.checksums(), settings)


def _upload_failure(exc: BaseException, url: S3Url, settings: S3Settings) -> Exception:
    if isinstance(exc, botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError):
        return store_error(exc, url, f"upload {url.name}", settings)
    cause = getattr(exc, "last_exception", None) or exc  # s3transfer wraps some failures
    if isinstance(cause, botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError):
        return store_error(cause, url, f"upload {url.name}", settings)
    return BackupError(f"{url}: the upload failed ({exc})", "run the backup again")
