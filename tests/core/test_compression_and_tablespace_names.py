"""Pure parsing for compressed artifacts and tablespaces: names, compression by magic bytes, --compress,
--tablespace-mapping, tablespace_map, and where the plan puts each tablespace (on real empty folders)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drtui.core.backup import BackupRefused, parse_compress
from drtui.core.errors import UsageError
from drtui.core.inventory.basebackup import folder_tar, parse_tablespace_map
from drtui.core.inventory.names import classify_artifact, parse_wal_name, work_in_progress
from drtui.core.inventory.streams import compression_of
from drtui.core.models import BaseBackup, Layout
from drtui.core.tablespaces import TablespaceRefused, parse_mapping, place_tablespaces


@pytest.mark.parametrize(("name", "kind"), [
    ("basebackup_20260125T143000Z.tar.zst", "basebackup"), ("basebackup_20260125T143000Z.tar.lz4", "basebackup"),
    ("basebackup_20260125T143000Z.tar", "basebackup"), ("basebackup_20260125T143000Z.tar.bz2", "unknown"),
    ("wal_archive_20260125T143000Z.tar.zst", "wal_tarball"), ("wal_archive_20260125T143000Z.tar", "unknown"),
])
def test_compressed_artifact_names(name: str, kind: str) -> None:
    assert classify_artifact(name)[0] == kind


def test_a_killed_compressed_backup_is_work_in_progress() -> None:
    assert work_in_progress(".basebackup_20260125T143000Z.tar.zst.partial") == "base"
    assert work_in_progress(".wal_archive_20260125T143000Z.tar.lz4.partial") == "wal-sync"


@pytest.mark.parametrize(("name", "compression"), [
    ("000000010000000000000003.gz", "gzip"), ("000000010000000000000003.zst", "zstd"),
    ("000000010000000000000003.lz4", "lz4"), ("000000010000000000000003", None),
])
def test_a_compressed_segment_is_the_segment(name: str, compression: str | None) -> None:
    parsed = parse_wal_name(name)
    assert (parsed.kind, parsed.timeline, parsed.segno, parsed.compression) == ("segment", 1, 3, compression)
    assert parse_wal_name("00000001000000000000000G.zst").kind == "other"
    assert parse_wal_name("000000010000000000000003.bz2").kind == "other"


def test_compression_is_told_by_magic_bytes_and_archives_by_name() -> None:
    assert [compression_of(head) for head in (b"\x1f\x8b\x08\0", b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18",
                                              b"base")] == ["gzip", "zstd", "lz4", None]
    assert [folder_tar(n) for n in ("base.tar.zst", "pg_wal.tar", "16385.tar.lz4", "16385.tar.bz2",
                                    "backup_manifest")] == ["base", "pg_wal", "16385", None, None]
    assert parse_tablespace_map("16385 /srv/ts a\n16386 /srv/back\\\\slash\n") == {
        "16385": "/srv/ts a", "16386": "/srv/back\\slash"}


def test_parse_compress() -> None:
    assert [parse_compress(t) for t in ("zstd", "zstd:9", "GZIP:1", "lz4", "none")] == [
        ("zstd", 3), ("zstd", 9), ("gzip", 1), ("lz4", 0), ("none", 0)]
    for bad in ("brotli", "gzip:0", "zstd:x", "none:1"):
        with pytest.raises(BackupRefused, match=f"--compress {bad}"):
            parse_compress(bad)


def test_parse_mapping() -> None:
    assert parse_mapping("/srv/old/=/srv/new") == ("/srv/old", "/srv/new")
    for bad in ("/srv/old", "old=/new", "/old="):
        with pytest.raises(UsageError, match="OLD=NEW"):
            parse_mapping(bad)


def _backup(*tablespaces: tuple[str, str]) -> BaseBackup:
    return BaseBackup(path=Path("/b/basebackup_20260125T143000Z.tar"), layout=Layout.TAR_FOLDER, label="x",
                      start_lsn=0, start_wal_file="", checkpoint_lsn=0, start_time=datetime.now(UTC), timeline=1,
                      pg_version=15, size_bytes=0, file_size=0, tablespaces=tablespaces)


def test_where_each_tablespace_goes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "pg_tblspc").mkdir(parents=True)
    (tmp_path / "in_use").mkdir()
    (tmp_path / "in_use" / "PG_15").mkdir()
    (data / "pg_tblspc" / "16385").symlink_to(tmp_path / "in_use")
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    backup = _backup(("16385", str(tmp_path / "in_use")), ("16386", "/old/b"))
    places = place_tablespaces(backup, [("/old/b", str(tmp_path / "empty"))], data)
    assert [(p.oid, p.location) for p in places] == [("16385", tmp_path / "in_use"), ("16386", tmp_path / "empty")]
    for mapping, says in (([("/old/b", str(tmp_path / "full"))], "which is not empty"),
                          ([("/old/b", str(data / "ts"))], "inside the data directory"),
                          ([("/old/b", str(tmp_path / "in_use"))], "where another tablespace goes too")):
        with pytest.raises(TablespaceRefused, match=says):
            place_tablespaces(backup, mapping, data)
    with pytest.raises(TablespaceRefused, match="does not say where it was"):
        place_tablespaces(_backup(("16387", "")), [], data)
