"""Issue 14's numbers: one duration rule, a target resolved once, skipped steps, remedies (no server)."""

from __future__ import annotations

import pytest

from drtui.core.clock import format_duration


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (0, "0.0s"), (0.6, "0.6s"), (9.96, "10s"), (45.4, "45s"), (59.6, "1m 00s"), (185, "3m 05s"),
    (3725, "1h 02m"), (2 * 86400 + 3 * 3600, "2d 03h"), (-1, "0.0s")])
def test_format_duration_one_rule(seconds, text):
    assert format_duration(seconds) == text
