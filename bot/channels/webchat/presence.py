"""Which conversations have a chat page open now, as every Rasa process sees it (Redis)."""

from __future__ import annotations

import asyncio
import logging

import redis
import redis.asyncio

from bot import redis as bot_redis

log = logging.getLogger(__name__)

PRESENCE_PREFIX = bot_redis.WEBCHAT + "presence:"  # + conversation: its pages' sockets
# Each socket counts until a time kept as its score; the process holding it pushes that
# time on every beat, so the sockets of a killed process stop counting TTL_S later.
TTL_S = 30
BEAT_S = 10.0
# KEYS: one presence key per socket. ARGV: the TTL, then each key's socket id. Scores are
# Redis's clock, so that processes on hosts whose clocks differ agree.
REFRESH = """
local now = tonumber(redis.call('TIME')[1])
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('EXPIRE', key, ttl)
end
return #KEYS
"""
# KEYS: a presence key. The sockets that still count.
SOCKETS = """
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. redis.call('TIME')[1], '+inf')
"""


def presence_key(conversation: str) -> str:
    """The key of a conversation's open pages.

    >>> presence_key("webchat:3f2a9c0d1e8b4f6a")
    'cardbot:webchat:presence:webchat:3f2a9c0d1e8b4f6a'
    """
    return PRESENCE_PREFIX + conversation


class Presence:
    """The sockets of each conversation's open pages, shared by the Rasa processes: a
    notice is shown on a page if one is open on any process, else kept until one opens.

    A page counts from its session request to its disconnect. A process that dies without
    saying goodbye stops refreshing its sockets, and they stop counting within `ttl_s`;
    until then a notice meant for them is offered to a socket nobody holds, goes
    unacknowledged and is kept (see `delivery.py`).
    """

    def __init__(self, client: redis.asyncio.Redis, ttl_s: int = TTL_S,
                 beat_s: float = BEAT_S) -> None:
        self._redis = client
        self._ttl_s = ttl_s
        self._beat_s = beat_s
        self._refresh = client.register_script(REFRESH)
        self._sockets = client.register_script(SOCKETS)
        self.held: dict[str, str] = {}  # socket id -> conversation, on this process
        self._stopped = asyncio.Event()
        self._beat: asyncio.Task[None] | None = None

    async def arrive(self, sid: str, conversation: str) -> None:
        """The socket's page has a session in `conversation` (and none in another)."""
        before = self.held.get(sid)
        self.held[sid] = conversation
        if before is not None and before != conversation:
            await self._redis.zrem(presence_key(before), sid)
        await self._refresh(keys=[presence_key(conversation)], args=[self._ttl_s, sid])

    async def leave(self, sid: str) -> None:
        conversation = self.held.pop(sid, None)
        if conversation is not None:
            await self._redis.zrem(presence_key(conversation), sid)

    async def sockets(self, conversation: str) -> list[str]:
        """The sockets with a page of `conversation` open, on any process."""
        found = await self._sockets(keys=[presence_key(conversation)])
        return [sid.decode() if isinstance(sid, bytes) else str(sid) for sid in found]

    def start(self) -> None:
        self._stopped.clear()
        self._beat = asyncio.create_task(self._keep_fresh())

    async def stop(self) -> None:
        """The pages of this process stop counting now (their sockets close with it)."""
        self._stopped.set()
        if self._beat is not None:
            await asyncio.wait([self._beat], timeout=self._beat_s)
        held, self.held = self.held, {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for sid, conversation in held.items():
                    pipe.zrem(presence_key(conversation), sid)
                await pipe.execute()
        except redis.RedisError:
            pass  # they stop counting after the TTL

    async def refresh(self) -> None:
        """Every socket this process holds counts for another `ttl_s` (the beat)."""
        held = list(self.held.items())
        if held:
            await self._refresh(keys=[presence_key(c) for _, c in held],
                                args=[self._ttl_s, *(sid for sid, _ in held)])

    async def _keep_fresh(self) -> None:
        while not self._stopped.is_set():
            try:
                await asyncio.wait_for(self._stopped.wait(), self._beat_s)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await self.refresh()
            except redis.RedisError as error:
                log.warning("webchat: open pages not refreshed (%s)", type(error).__name__)
