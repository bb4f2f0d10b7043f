"""The parts of writing to S3 that need no server: the checksums drtui expects from the store, WAL object
names, and the targets refused before any work."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest

from drtui.core import backup, wal_push
from drtui.core.objectstore import S3Url
from drtui.core.upload import _HashingReader


@pytest.mark.parametrize("size", [0, 1, 10, 11, 25, 30])
def test_the_expected_checksums_are_the_whole_objects_and_the_multipart_one(size: int) -> None:
    data = bytes(range(256)) * 1000
    data = data[:size * 100]
    reader = _HashingReader(io.BytesIO(data), part_size=1000)
    while reader.read(777):  # reads that straddle part boundaries
        pass
    parts = [data[i:i + 1000] for i in range(0, len(data), 1000)]
    whole = base64.b64encode(hashlib.sha256(data).digest()).decode()
    composite = base64.b64encode(hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest())
    assert reader.size == len(data)
    assert reader.checksums() == {whole, composite.decode()}


def test_wal_objects_are_named_for_their_file_and_compression() -> None:
    segment = "000000010000000000000003"
    assert wal_push.object_name(segment, "none") == segment
    assert wal_push.object_name(segment, "gzip") == segment + ".gz"
    data = b"\x00" * 8192
    assert wal_push.decode(segment + ".gz", wal_push.encode(data, "gzip")) == data
    assert wal_push.encode(data, "gzip") == wal_push.encode(data, "gzip")  # no time in the gzip header


@pytest.mark.parametrize(("target", "words"), [
    ("s3://Bad_Bucket/wal", "not a valid bucket name"),
    ("s3:///wal", "names no bucket"),
    ("rsync://host/wal", "a URL or a remote host:path"),
])
def test_a_bad_sync_target_is_refused(target: str, words: str) -> None:
    with pytest.raises(backup.BackupRefused, match=words):
        backup.check_sync_target(target)


def test_an_s3_sync_target_is_a_prefix() -> None:
    assert backup.check_sync_target("s3://mybucket/wal-archive") == S3Url("mybucket", "wal-archive/")
    assert backup.check_sync_target("s3://mybucket/wal-archive/") == S3Url("mybucket", "wal-archive/")
