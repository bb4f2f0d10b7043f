"""Recovery settings and log explanations that need no server: what a restored copy overrides, and how
PostgreSQL's complaints about WAL are put in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from drtui.core.recovery_conf import OUTSIDE_SETTINGS, carried_settings, overridden
from drtui.core.steps.recovery import translate


def test_the_settings_a_backup_carried_are_named_without_their_values(tmp_path: Path) -> None:
    (tmp_path / "postgresql.conf").write_text(
        "archive_cleanup_command = 'pg_archivecleanup /archive %r'   # HA template\n"
        "#recovery_end_command = 'rm -rf /'\n"
        "primary_conninfo = 'host=db password=it''s-secret'\n"
        "archive_mode = on\n")
    (tmp_path / "postgresql.auto.conf").write_text("archive_mode = 'off'\n")
    carried = carried_settings(tmp_path)
    assert carried["primary_conninfo"] == "'host=db password=it''s-secret'"
    assert "recovery_end_command" not in carried
    names = overridden(tmp_path, {**OUTSIDE_SETTINGS, "archive_mode": "off"})
    assert names == ["archive_cleanup_command (the backup set it)", "recovery_end_command",
                     "primary_conninfo (the backup set it)", "primary_slot_name", "promote_trigger_file",
                     "archive_mode"]
    assert not any("secret" in name for name in names)


@pytest.mark.parametrize(("line", "words"), [
    ('drtui fetch_wal: WAL file 000000010000000000000005 in /wal has the wrong size: 200 bytes, a WAL segment has '
     '16777216; recovery stops here instead of ending the WAL early',
     ["WAL file 000000010000000000000005", "wrong size: 200 bytes"]),
    ("LOG:  invalid magic number 0000 in log segment 000000010000000000000005, offset 0",
     ["000000010000000000000005 is damaged", "magic number 0000"]),
    ("LOG:  record with incorrect prev-link 0/4000028 at 0/5000028", ["LSN 0/5000028", "link"]),
    ("LOG:  incorrect resource manager data checksum in record at 0/5000028", ["LSN 0/5000028", "checksum"]),
    ("LOG:  invalid resource manager ID 200 at 0/5000028", ["LSN 0/5000028", "resource manager ID 200"]),
    ("LOG:  invalid record length at 0/5000028: wanted 24, got 7", ["LSN 0/5000028", "record length"]),
    ("PANIC:  could not write to file \"pg_wal/xlogtemp.123\": No space left on device", ["disk filled up"]),
])
def test_damaged_wal_and_a_full_disk_are_explained(line: str, words: list[str]) -> None:
    # the damage comes before PostgreSQL's conclusion, which alone would blame a short archive
    found = translate(["LOG:  redo starts at 0/2000028", line,
                       "FATAL:  recovery ended before configured recovery target was reached"])
    assert found is not None
    for word in words:
        assert word in found[0]
    assert "sync the WAL archive" not in found[1]


def test_the_ordinary_end_of_the_wal_is_not_damage() -> None:
    found = translate(["LOG:  invalid record length at 0/5000028: wanted 24, got 0",
                       "FATAL:  recovery ended before configured recovery target was reached"])
    assert found is not None and "WAL ran out" in found[0]
