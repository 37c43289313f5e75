"""Buttons for text-only apps (WeChat, WhatsApp): the choices last shown to each user, in
Redis so that whichever Rasa process takes the user's answer can map "2" to its payload.

Its own module because it is the one piece of the text channels that keeps state between
turns; rendering and reading the numbers are pure functions in `bot.channels.text`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot import redis as bot_redis
from bot.channels.text import chosen_payload, render_buttons

log = logging.getLogger(__name__)

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
            self._redis = bot_redis.async_client(self.redis_url, "store", decode_responses=True)
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

    async def shown(self, user: str, text: str, buttons: list[dict[str, Any]],
                    masked_user: str) -> str:
        """`text` with its buttons as a numbered list, the buttons remembered for the
        user's next message. Without Redis the list still reads as a list, and a number
        typed back goes to NLU as it is."""
        rendered, _ = render_buttons(text, buttons)
        try:
            await self.remember(user, buttons)
        except RedisError as error:
            log.warning("%s: buttons for %s not kept (%s)", self.prefix, masked_user,
                        type(error).__name__)
        return rendered

    async def answered(self, user: str, text: str) -> str:
        """The payload of the button the user picked by number or title, else their text."""
        try:
            shown = await self.take(user)
        except RedisError as error:
            log.warning("%s: buttons unavailable (%s)", self.prefix, type(error).__name__)
            return text
        if not shown:
            return text
        return chosen_payload(text, [b["payload"] for b in shown],
                              [b["title"] for b in shown]) or text

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
