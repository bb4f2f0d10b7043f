"""Every `--json` document has one shape (issue 15, point 5): a top-level `"schema": 1`, and every time as
ISO-8601 UTC with a Z. The golden files hold every `--json` output of the console program (tests/golden.py masks
a time in that format as `<utc>`, any other time as `<time>`); here each one is walked. No server is needed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from drtui.core.jsonshape import json_document, json_time
from tests.golden import TEXT_PATTERNS, UTC_TIME, normalize

SNAPSHOTS = Path(__file__).parent / "__snapshots__"
GOLDEN_JSON = sorted(SNAPSHOTS.rglob("*.json"))
ANY_TIME = TEXT_PATTERNS[0][0]  # the golden masks' pattern of a time in any of its spellings


def _golden_name(path: Path) -> str:
    """`test_golden_live:status` for `test_golden_live/test_each_json_shape_is_as_golden[status][status].json`."""
    found = re.search(r"\[([^\]]+)\]", path.name)
    return f"{path.parent.name}:{found.group(1) if found else path.stem}"


def _strings(data: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, f"{where}.{key}")
    elif isinstance(data, list):
        for number, value in enumerate(data):
            yield from _strings(value, f"{where}[{number}]")
    elif isinstance(data, str):
        yield where, data


def test_there_is_a_golden_file_of_every_json_command() -> None:
    names = {_golden_name(path).split(":")[1] for path in GOLDEN_JSON}
    assert {"inventory", "status", "drills", "events", "backup_base", "backup_verify", "restore_pitr", "drill",
            "restore_pitr_dry_run_json", "rollback"} <= names


@pytest.mark.parametrize("path", GOLDEN_JSON, ids=[_golden_name(p) for p in GOLDEN_JSON])
def test_each_golden_json_has_the_schema_and_only_utc_z_times(path: Path) -> None:
    data = json.loads(path.read_text())
    assert data.get("schema") == 1, path.name
    times = [(where, text) for where, text in _strings(data) if text == "<time>" or ANY_TIME.fullmatch(text)]
    assert times == [], f"{path.name}: times not in the ISO-8601 UTC Z format: {times}"


def test_json_time_is_utc_with_a_z_to_the_second_or_with_its_fraction() -> None:
    later = timezone(timedelta(hours=2))
    assert json_time(datetime(2026, 1, 25, 16, 30, 5, tzinfo=later)) == "2026-01-25T14:30:05Z"
    assert json_time(datetime(2026, 1, 25, 14, 30, 5, 120, tzinfo=UTC)) == "2026-01-25T14:30:05.000120Z"
    shaped = json_document({"at": datetime(2026, 1, 25, 14, 30, tzinfo=UTC), "nested": [
        {"recovered_to": "2026-01-25T15:30:00.5+01:00", "text": "at 2026-01-25T14:30:00+00:00 it broke"}]})
    assert list(shaped) == ["schema", "at", "nested"] and shaped["schema"] == 1
    assert shaped["at"] == "2026-01-25T14:30:00Z"
    assert shaped["nested"][0] == {"recovered_to": "2026-01-25T14:30:00.500000Z",
                                   "text": "at 2026-01-25T14:30:00+00:00 it broke"}  # prose keeps its words
    assert normalize(shaped)["at"] == "<utc>" and UTC_TIME.fullmatch(shaped["nested"][0]["recovered_to"])


def test_a_command_s_json_goes_through_the_one_shape(tmp_path: Path) -> None:
    """`drtui events --json` in process (no server: an empty WAL folder), the way every command writes it."""
    from drtui.cli import main

    (tmp_path / "wal").mkdir()
    config = tmp_path / "drtui.toml"
    config.write_text('backup_dir = "b"\nwal_archive = "wal"\n[environments.production]\n')
    done = CliRunner().invoke(main, ["--config", str(config), "events", "--around", "2026-01-25 16:30:00+02:00",
                                     "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["schema"] == 1 and data["around"] == "2026-01-25T14:30:00Z" and data["changes"] == []
