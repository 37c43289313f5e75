"""Buttons for text-only apps (WeChat, WhatsApp): the choices last shown to each user, in
Redis so that whichever Rasa process takes the user's answer can map "2" to its payload."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis.asyncio as aioredis

# A numbered choice is answered soon or not at all.
BUTTONS_SECONDS = 30 * 60


class ButtonMemory:
    """Keys `<prefix>:buttons:<sha256 of the user id>`; the Redis client is made on first
    use, inside the running event loop."""

    def __init__(self, redis_url: str, prefix: str):
        self.redis_url = redis_url
        self.prefix = prefix
        self._redis: aioredis.Redis | None = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(
                self.redis_url, decode_responses=True, socket_timeout=5,
                socket_connect_timeout=5)
        return self._redis

    def _key(self, user: str) -> str:
        return f"{self.prefix}:buttons:{hashlib.sha256(user.encode('utf-8')).hexdigest()}"

    async def remember(self, user: str, buttons: list[dict[str, Any]]) -> None:
        choices = [{"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
                   for b in buttons]
        await self.redis.set(self._key(user), json.dumps(choices, ensure_ascii=False),
                             ex=BUTTONS_SECONDS)

    async def take(self, user: str) -> list[dict[str, str]]:
        """The buttons last shown to this user; they answer the next message only."""
        key = self._key(user)
        async with self.redis.pipeline(transaction=True) as pipe:
            raw, _ = await pipe.get(key).delete(key).execute()
        return list(json.loads(raw)) if raw else []

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
