"""`Target.parse`: one reading of a target for every face, with errors that name no face's field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drtui.core.clock import FrozenClock
from drtui.core.planning import Target, TargetError, TargetKind

CLOCK = FrozenClock(datetime(2026, 1, 25, 15, 0, tzinfo=UTC))
FLAGS = ("--", "TARGET_TIME", "RECOVERY_TARGET")


@pytest.mark.parametrize(("kind", "text", "expected"), [
    ("time", "15 minutes ago", Target(TargetKind.TIME, time=datetime(2026, 1, 25, 14, 45, tzinfo=UTC))),
    ("lsn", " 0/3000060 ", Target(TargetKind.LSN, lsn=0x3000060)),
    ("xid", "742", Target(TargetKind.XID, xid=742)),
    ("name", "before_migration", Target(TargetKind.NAME, name="before_migration")),
    ("immediate", None, Target(TargetKind.IMMEDIATE)),
    ("Latest", "ignored", Target(TargetKind.LATEST)),
])
def test_each_kind_is_read_from_its_text(kind: str, text: str | None, expected: Target) -> None:
    assert Target.parse(kind, text, CLOCK) == expected


def test_exclusive_and_the_timeline_are_carried_where_they_mean_something() -> None:
    assert Target.parse("lsn", "0/3000060", CLOCK, inclusive=False, timeline=" 2 ").settings() == {
        "recovery_target_lsn": "0/3000060", "recovery_target_inclusive": "off", "recovery_target_timeline": "2"}
    assert Target.parse("name", "p1", CLOCK, inclusive=False).inclusive  # a restore point has no edge


@pytest.mark.parametrize(("kind", "text", "part", "words"), [
    ("time", "  ", "value", ("target time is empty", "ISO-8601")),
    ("time", "yesterday-ish", "value", ("'yesterday-ish'", "ago")),
    ("time", "1000000 days ago", "value", ("before the year 1", "drtui inventory")),
    ("lsn", "", "value", ("target LSN is empty", "0/3000060")),
    ("lsn", "nope", "value", ("'nope' is not an LSN", "0/3000060")),
    ("xid", "x1", "value", ("'x1' is not a transaction id", "7421")),
    ("name", None, "value", ("restore point name is empty", "pg_create_restore_point")),
    ("yesterday", None, "kind", ("'yesterday' is not known", "immediate or latest")),
])
def test_errors_name_the_value_and_what_to_do_but_no_flag(kind: str, text: str | None, part: str,
                                                          words: tuple[str, ...]) -> None:
    with pytest.raises(TargetError) as caught:
        Target.parse(kind, text, CLOCK)
    error = caught.value
    assert error.part == part
    said = f"{error.title} {error.hint}"
    assert all(word in said for word in words), said
    assert not any(flag in said for flag in FLAGS), said


def test_a_bad_timeline_is_its_own_part() -> None:
    with pytest.raises(TargetError) as caught:
        Target.parse("latest", None, CLOCK, timeline="newest")
    assert caught.value.part == "timeline" and "'newest'" in caught.value.title
    assert "latest, current or a number" in caught.value.hint
