"""Fixtures shared by every test: a real Redis server on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testkit.redis_server import RedisServer


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
