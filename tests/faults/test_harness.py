"""The harness itself: a fault world fingerprints its sources, and a change to them is seen."""

from __future__ import annotations

import pytest

from tests.faults.conftest import FaultWorld, leftovers


def test_a_fresh_world_is_unchanged_and_clean(fault_world: FaultWorld) -> None:
    assert fault_world.sentinel.present()
    fault_world.unchanged()
    assert leftovers(fault_world.sandbox) == []
    (fault_world.sandbox.wal_archive / "stray").write_bytes(b"x")
    with pytest.raises(AssertionError, match="stray"):
        fault_world.unchanged()
