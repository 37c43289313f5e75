"""The web chat's unread notices: kept sealed in Redis for a conversation with no page open,
until a page of it comes back and shows them, each once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from bot import redis as bot_redis
from bot.crypto import Vault

QUEUE_PREFIX = bot_redis.WEBCHAT + "unread:"  # + conversation: notice ids, oldest first
BODY_PREFIX = bot_redis.WEBCHAT + "notice:"  # + conversation ":" notice id: the sealed messages
SHOWN_PREFIX = bot_redis.WEBCHAT + "shown:"  # + notice id: "showing" now, or "shown" for good
SEAL_CONTEXT = "webchat-notice"
DAY_S = 24 * 3600
# The shown mark outlives every notice the card service could still ask about.
MIN_SHOWN_DAYS = 30
# With WEBCHAT_UNREAD_DAYS=0 nothing is kept, but a notice still waits this long for a page
# that opens while it is being delivered.
HANDOFF_S = 60
# A notice being shown that is neither confirmed nor released by then (its process died)
# is free to be shown again: at least once rather than lost.
SHOWING_S = 120

KEPT, WAITING, WITHDRAWN, GONE = "kept", "waiting", "withdrawn", "gone"
SHOWING, SHOWN = "showing", "shown"

# The scripts below name the keys of notices from the ids they find, as the queue's own
# keys: one Redis (no cluster), and every key is under the Rasa user's cardbot:* pattern.

# KEYS: shown mark, queue, body. ARGV: notice id, sealed body, TTL (s). A repeat is not
# queued twice; the queue lives as long as its newest notice.
KEEP = """
local mark = redis.call('GET', KEYS[1])
if mark then return mark end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) and redis.call('EXISTS', KEYS[3]) == 1 then
  return 'waiting'
end
local now = redis.call('TIME')
redis.call('ZADD', KEYS[2], now[1] .. string.format('%06d', tonumber(now[2])), ARGV[1])
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3])
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return 'kept'
"""
# KEYS: shown mark, queue, body. ARGV: notice id.
WITHDRAW = """
local mark = redis.call('GET', KEYS[1])
if mark then return mark end
local queued = redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('DEL', KEYS[3]) == 1 and queued == 1 then return 'withdrawn' end
return 'gone'
"""
# KEYS: queue. ARGV: the conversation's body prefix, the shown prefix, SHOWING_S. Marks every
# notice kept and not being shown as being shown, in one step: of two pages (or two Rasa
# processes) taking at once, one gets it. Returns id, body for each, oldest first.
TAKE = """
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local taken = {}
for _, id in ipairs(ids) do
  local body = redis.call('GET', ARGV[1] .. id)
  if not body then
    redis.call('ZREM', KEYS[1], id)
  elseif redis.call('SET', ARGV[2] .. id, 'showing', 'NX', 'EX', ARGV[3]) then
    table.insert(taken, id); table.insert(taken, body)
  end
end
return taken
"""
# KEYS: queue. ARGV: body prefix, shown prefix, the shown mark's TTL, then the ids a page
# acknowledged: shown for good, out of the queue.
CONFIRM = """
for i = 4, #ARGV do
  redis.call('SET', ARGV[2] .. ARGV[i], 'shown', 'EX', ARGV[3])
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('DEL', ARGV[1] .. ARGV[i])
end
return 1
"""
# ARGV: shown prefix, then the ids no page acknowledged: free to be taken again, in place.
RELEASE = """
for i = 2, #ARGV do
  if redis.call('GET', ARGV[1] .. ARGV[i]) == 'showing' then
    redis.call('DEL', ARGV[1] .. ARGV[i])
  end
end
return 1
"""


@dataclass(frozen=True)
class Taken:
    """A notice taken to be shown: `confirm` it once a page acknowledged it, else
    `release` it."""

    id: str
    messages: list[dict[str, Any]]


def queue_key(conversation: str) -> str:
    return QUEUE_PREFIX + conversation


def body_prefix(conversation: str) -> str:
    return f"{BODY_PREFIX}{conversation}:"


class UnreadNotices:
    """Notices kept for a conversation, sealed (nothing personal is in them, but a kept
    message is sealed like every message of a conversation), for `days`."""

    def __init__(self, client: redis.asyncio.Redis, vault: Vault, days: int) -> None:
        self._redis = client
        self._vault = vault
        self.days = days
        self._ttl_s = days * DAY_S or HANDOFF_S
        self._shown_ttl_s = max(days, MIN_SHOWN_DAYS) * DAY_S
        self._keep = client.register_script(KEEP)
        self._withdraw = client.register_script(WITHDRAW)
        self._take = client.register_script(TAKE)
        self._confirm = client.register_script(CONFIRM)
        self._release = client.register_script(RELEASE)

    def _keys(self, conversation: str, notice_id: str) -> list[str]:
        return [SHOWN_PREFIX + notice_id, queue_key(conversation),
                body_prefix(conversation) + notice_id]

    @staticmethod
    def _context(conversation: str, notice_id: str) -> str:
        # Bound to its conversation and id: a body moved to another key does not open.
        return f"{SEAL_CONTEXT}:{conversation}:{notice_id}"

    async def keep(self, conversation: str, notice_id: str,
                   messages: list[dict[str, Any]]) -> str:
        """KEPT; WAITING (kept before, not shown yet); SHOWING (a page is being shown it
        now) or SHOWN (a page showed it)."""
        sealed = self._vault.encrypt(json.dumps(messages, ensure_ascii=False),
                                     self._context(conversation, notice_id))
        return _text(await self._keep(keys=self._keys(conversation, notice_id),
                                      args=[notice_id, sealed, self._ttl_s]))

    async def state(self, notice_id: str) -> str | None:
        """SHOWING, SHOWN, or None (never shown)."""
        mark = await self._redis.get(SHOWN_PREFIX + notice_id)
        return None if mark is None else _text(mark)

    async def withdraw(self, conversation: str, notice_id: str) -> str:
        """Takes a notice out unshown: WITHDRAWN, or GONE (expired or never kept); or, too
        late, SHOWING or SHOWN."""
        return _text(await self._withdraw(keys=self._keys(conversation, notice_id),
                                          args=[notice_id]))

    async def take(self, conversation: str) -> list[Taken]:
        """Every notice kept for the conversation and not being shown elsewhere, oldest
        first, marked as being shown (nobody else gets them until `release`)."""
        found = [_text(value) for value in await self._take(
            keys=[queue_key(conversation)],
            args=[body_prefix(conversation), SHOWN_PREFIX, SHOWING_S])]
        return [Taken(notice_id, json.loads(self._vault.decrypt(
                    sealed, self._context(conversation, notice_id))))
                for notice_id, sealed in zip(found[::2], found[1::2], strict=True)]

    async def confirm(self, conversation: str, taken: list[Taken]) -> None:
        """A page acknowledged them: shown for good, never shown again."""
        if taken:
            await self._confirm(keys=[queue_key(conversation)],
                                args=[body_prefix(conversation), SHOWN_PREFIX,
                                      self._shown_ttl_s, *(each.id for each in taken)])

    async def release(self, taken: list[Taken]) -> None:
        """No page acknowledged them: kept as they were, for the next page."""
        if taken:
            await self._release(args=[SHOWN_PREFIX, *(each.id for each in taken)])

    async def waiting(self, conversation: str) -> list[str]:
        """The ids kept for the conversation, oldest first (for tests and operators)."""
        return [_text(value) for value in await self._redis.zrange(queue_key(conversation),
                                                                    0, -1)]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
