"""A clock the test moves, and a way to run async steps against Redis with it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis

T = TypeVar("T")


class SetClock:
    """Seconds since the epoch; the test sets `now` (the console's lockout and sessions take
    any callable returning seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def on_redis(redis_url: str,
             steps: Callable[[aioredis.Redis, SetClock], Awaitable[T]]) -> T:
    async def main() -> T:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await steps(client, SetClock())
        finally:
            await client.close()
    return asyncio.run(main())
