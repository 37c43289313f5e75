"""Fixtures shared by every test: a real Redis server on a free loopback port. And one rerun
for the tests that drive real servers (see `pytest_collection_modifyitems`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testkit.redis_server import RedisServer

# Integration and browser tests share two cores with up to six servers they started, and a
# step of a test's own harness (a socket client, a browser) can lose a race on a loaded run.
# Such a test runs once more before it counts as failed. Each rerun is named in pytest's
# summary (pyproject's `-raR`) and in CI's closing lines, to be mended, not forgotten.
RERUN_DIRECTORIES = ("integration", "browser")

# Every server a test starts reads `.env` underneath its environment; a developer's own, as
# `make run` writes it, holds passwords and tokens that are not the test's. Tests that want
# an env file name one.
os.environ["ENV_FILE"] = os.devnull


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name in RERUN_DIRECTORIES and not item.get_closest_marker("flaky"):
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[type]:
    started: list[RedisServer] = []

    def make() -> RedisServer:
        directory = tmp_path / f"redis{len(started)}"
        directory.mkdir()
        server = RedisServer(directory, tmp_path)
        started.append(server)
        return server.start()

    yield make  # type: ignore[misc]
    for server in started:
        server.stop()


@pytest.fixture
def redis_url(redis_server_factory) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty, real Redis for one test."""
    return redis_server_factory().url
