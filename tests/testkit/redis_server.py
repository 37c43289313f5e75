"""A real Redis server on a free loopback port, for tests and the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

import redis

from bot.stack import redis_server
from tests.testkit.processes import Process, free_port, wait_for


class RedisServer:
    def __init__(self, directory: Path, log_dir: Path):
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        config = directory / "redis.conf"
        config.write_text(redis_server.configuration(self.port, directory, ""))
        self.process = Process(f"redis-{self.port}", [redis_server.binary(), str(config)],
                               dict(os.environ), log_dir)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def start(self) -> RedisServer:
        self.process.start()
        wait_for(self._ping, 10, "redis")
        return self

    def _ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()
