"""The compose stack the backend is tested on: four services found by label, archiving into the WAL volume."""

from __future__ import annotations

import httpx

from drtui.sandbox.compose_world import PROJECT_LABEL, ComposeWorld


def test_world_has_four_services_archiving_and_cleans_up(docker_engine: str, pg_image: str) -> None:
    world = ComposeWorld(docker_engine, image=pg_image)
    with world:
        services = {c.labels["com.docker.compose.service"]: c.status
                    for c in world.client.containers.list(filters={"label": f"{PROJECT_LABEL}={world.project}"})}
        assert services == {"db": "running", "api": "running", "web": "running", "jobs": "running"}
        before = world.insert()
        segment = world.switch_wal()
        assert segment.startswith("00000001")
        assert before.id in world.booking_ids()
        assert httpx.get(f"http://127.0.0.1:{world.api_port}/readyz", timeout=5).status_code == 200
        assert world.env().backend == "compose"
    assert world.leftovers() == []
    assert not world.root.exists()
