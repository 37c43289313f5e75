"""The console's Redis user on a Redis configured as `make run` configures it: accounts,
sessions, lockout and audit all work as `console`, and nothing of the card service's or
Rasa's can be read or written."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from bot import redis as bot_redis
from console.accounts import Accounts
from console.audit import AuditLog
from console.lockout import Lockout
from console.sessions import Sessions
from tests.testkit.redis_server import RedisServer

pytestmark = pytest.mark.integration


def test_the_console_does_its_work_as_its_own_user_and_nothing_more(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    users = {bot_redis.CONSOLE_USER: "console-test-password",
             bot_redis.CARD_SERVICE_USER: "card-test-password"}
    server = RedisServer(tmp_path / "redis", tmp_path, users=users).start()
    try:
        server.client().hset("cardsvc:report:SC-7K3F-9Q2M", "phone", "sealed")

        async def work() -> tuple[bool, int, int]:
            client = aioredis.Redis.from_url(server.url_for(bot_redis.CONSOLE_USER))
            try:
                now = dt.datetime.now(dt.timezone.utc)
                store = Accounts(client)
                await store.add("li.wei", "bank", "a long enough secret", now)
                verified = await store.verify("li.wei", "a long enough secret") is not None
                session = await Sessions(client).start("li.wei")
                assert await Sessions(client).get(session.id) is not None
                lockout = Lockout(client)
                await lockout.failed("li.wei", "10.0.0.1")
                await AuditLog(client).record(now, "li.wei", "bank", "view", "SC-7K3F-9Q2M",
                                              ["city"])
                return verified, len(await store.all()), len(await AuditLog(client).latest())
            finally:
                await client.close()

        assert asyncio.run(work()) == (True, 1, 1)
        console = redis.Redis.from_url(server.url_for(bot_redis.CONSOLE_USER))
        for attempt in (lambda: console.hgetall("cardsvc:report:SC-7K3F-9Q2M"),
                        lambda: console.set("cardbot:tracker:x", "1"),
                        lambda: console.keys("*"), lambda: console.flushall()):
            with pytest.raises(redis.exceptions.NoPermissionError):
                attempt()
    finally:
        server.stop()
