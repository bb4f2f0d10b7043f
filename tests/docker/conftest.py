"""A real Docker Engine for the tests marked `docker`, and the PostgreSQL image built once per session.

The engine is DOCKER_HOST, or else unix:///tmp/drtui-docker.sock; when neither answers and dockerd is
installed (and we are root), a dockerd of our own is started for the session and stopped at its end. With no
engine the tests skip on a developer's machine and FAIL when CI=true, so a broken setup never lands green.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest

from drtui.sandbox.compose_world import ComposeWorld
from drtui.sandbox.docker_image import PG_IMAGE, answers, engine_url, ensure_pg_image, start_dockerd


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/docker/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[str]:
    """The base URL of an engine that answers."""
    url = engine_url()
    if answers(url):
        yield url
        return
    if os.geteuid() == 0 and not os.environ.get("DOCKER_HOST"):
        try:
            engine = start_dockerd()
        except RuntimeError as exc:
            reason = f"could not start dockerd: {exc}"
        else:
            os.environ["DOCKER_HOST"] = engine.base_url
            try:
                yield engine.base_url
            finally:
                os.environ.pop("DOCKER_HOST", None)
                engine.stop()
            return
    else:
        reason = f"no Docker Engine answers at {url}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the docker tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_image(docker_engine: str) -> str:
    client = docker.DockerClient(base_url=docker_engine)
    try:
        return ensure_pg_image(client, PG_IMAGE)
    finally:
        client.close()


@pytest.fixture
def compose_world(docker_engine: str, pg_image: str) -> Iterator[ComposeWorld]:
    """A compose stack of the test's own (db, api, web, jobs), removed by label at the end."""
    with ComposeWorld(docker_engine, image=pg_image) as world:
        yield world
