from __future__ import annotations

import httpx

from drtui.sandbox import Sandbox


def test_sandbox_up_and_down_twice_leaves_nothing_behind() -> None:
    for _ in range(2):
        world = Sandbox()
        with world:
            config = world.config()
            assert world.counts() == {"clients": 60, "leads": 120, "bookings": 180, "invoices": 60}
            ready = httpx.get(f"{config.environment('staging').api_base_url}/readyz").json()
            assert ready["database"]["migrations_current"] is True
            assert world.leftover_processes()
        assert not world.root.exists()
        assert world.leftover_processes() == []


def test_sandbox_archives_wal_and_knows_commit_times(shared_sandbox: Sandbox) -> None:
    before = shared_sandbox.insert("bookings")
    after = shared_sandbox.insert("bookings")
    assert after.committed_at > before.committed_at
    segment = shared_sandbox.switch_wal()
    assert (shared_sandbox.wal_archive / segment).stat().st_size == 16 * 1024 * 1024


def test_sandbox_down_also_stops_a_traffic_writer() -> None:
    world = Sandbox()
    with world:
        world.start_traffic(interval=0.05)
        first = world.counts()["bookings"]
        import time

        deadline = time.monotonic() + 10
        while world.counts()["bookings"] == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert world.counts()["bookings"] > first
    assert world.leftover_processes() == []
