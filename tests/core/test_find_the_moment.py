"""No server: the target just before a transaction (--before-xid), the changes a listing remembers, the paused
candidate's comparison in words, and the note after a restore over production."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drtui.core import incident
from drtui.core.clock import FrozenClock
from drtui.core.compare import LOCKED, Comparison, TableCounts
from drtui.core.config import Config
from drtui.core.errors import UsageError
from drtui.core.new_timeline import fresh_backup_note
from drtui.core.planning import Target, TargetKind
from drtui.headless.events_command import before_change
from drtui.headless.targets import make_target
from tests.tui.conftest import write_config

DROP = incident.Change(7405, datetime(2026, 1, 25, 14, 29, 31, 750000, tzinfo=UTC), 0x50032B0, "DROP",
                       ("public.scratch",), None, "name from an earlier reading of the catalog")


def test_before_xid_is_an_exclusive_xid_target_and_names_what_it_did_once_listed(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    clock = FrozenClock()
    target = make_target(before_xid="7405", clock=clock)
    assert (target.kind, target.xid, target.inclusive) == (TargetKind.XID, 7405, False)
    assert target.settings() == {"recovery_target_timeline": "latest", "recovery_target_xid": "7405",
                                 "recovery_target_inclusive": "off"}
    assert before_change(config, target).describe() == "transaction 7405 (exclusive)"  # nothing listed yet
    incident.remember_changes(config.state_dir, "production", [DROP])
    named = before_change(config, target)
    assert named.describe() == ("just before transaction 7405 (committed at 2026-01-25T14:29:31.750000Z, "
                                "DROP public.scratch; name from an earlier reading of the catalog)")
    assert Target.from_json(named.to_json()) == named
    assert "about" not in target.to_json()  # the plans' JSON shape is unchanged when nothing is known
    assert incident.known_change(config.state_dir, "production", 1) is None
    with pytest.raises(UsageError, match="--target-xid and --before-xid"):
        make_target(xid="7", before_xid="7405", clock=clock)
    with pytest.raises(UsageError, match="not a transaction id"):
        make_target(before_xid="x12", clock=clock)


def test_the_comparison_in_words() -> None:
    found = Comparison("staging", (TableCounts("public.bookings", 181, 0), TableCounts("public.clients", None, 60),
                                   TableCounts("public.scratch", LOCKED, None)), "production")
    lines = found.lines()
    assert lines[0] == "Rows per table in staging, paused at the target against production:"
    assert lines[1].split() == ["public.bookings", "181", "production", "0"]
    assert lines[2].split() == ["public.clients", "-", "production", "60"]
    assert lines[3].split() == ["public.scratch", "locked", "production", "-"]
    assert lines[4].startswith("  locked: held by the transaction recovery paused just before")
    assert "  missing in staging: public.clients" in lines and "  only in staging: public.scratch" in lines
    down = Comparison("staging", (TableCounts("public.bookings", 181, None),), "production", "cannot connect")
    assert down.lines() == ["Rows per table in staging, paused at the target (production does not answer: "
                            "cannot connect):", "  public.bookings                         181"]
    assert down.extra == [] and down.as_json()["production_error"] == "cannot connect"


def test_the_new_timeline_note_only_after_a_promoted_restore_of_production(tmp_path: Path) -> None:
    config: Config = write_config(tmp_path)
    note = fresh_backup_note(config, "production", "pitr", True, False)
    assert "production is on a new timeline now" in note and "drtui backup base --env production" in note
    assert fresh_backup_note(config, "staging", "pitr", True, False) == ""
    assert fresh_backup_note(config, "production", "pitr", True, True) == ""  # paused: not promoted yet
    assert fresh_backup_note(config, "production", "pitr", False, False) == ""
    assert fresh_backup_note(config, "production", "staging", True, False) == ""
