"""A real Redis server on a free loopback port, for tests and the benchmarks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import redis

from bot.stack import redis_server
from tests.testkit.processes import Process, free_port, wait_for

ADMIN_PASSWORD = "test-admin-password"  # noqa: S105 - a throwaway Redis on loopback


class RedisServer:
    """Open to anyone on loopback; or, given `users` (name -> password, bot/redis.py
    ACL_USERS), configured as the embedded Redis with users: the default user off, `url`
    the admin's and `url_for` each component's."""

    def __init__(self, directory: Path, log_dir: Path, users: Mapping[str, str] | None = None,
                 admin_password: str = ADMIN_PASSWORD):
        self.port = free_port()
        self.directory = directory
        self.users = dict(users or {})
        self.url = self.url_for("admin", admin_password) if self.users else \
            f"redis://127.0.0.1:{self.port}/0"
        config = directory / "redis.conf"
        config.write_text(redis_server.configuration(
            self.port, directory, admin_password if self.users else "", users=self.users))
        config.chmod(0o600)
        self.process = Process(f"redis-{self.port}", [redis_server.binary(), str(config)],
                               dict(os.environ), log_dir)

    def url_for(self, user: str, password: str | None = None) -> str:
        """The URL naming `user` (a component's password from `users` when none is given)."""
        secret = self.users[user] if password is None else password
        return f"redis://{quote(user, safe='')}:{quote(secret, safe='')}@127.0.0.1:{self.port}/0"

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
