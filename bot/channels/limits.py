"""How fast one client may talk to the assistant, shared by every Rasa process through Redis.

A message is admitted when all three hold:

- its conversation has fewer than `in_flight` turns running or waiting for the
  conversation's lock (Rasa runs one turn of a conversation at a time; the rest queue);
- its conversation is within `per_conversation` messages a minute, with `burst` at once
  (a guardian tapping two buttons quickly, or pasting three lines, is a burst);
- its client address, where the channel has one (REST, web chat), is within
  `per_address` a minute, with `address_burst`: many conversations opened from one place.

A refused message is not run: the client is told to slow down (REST: 429 with
Retry-After; web chat and the messaging apps: a reply in the chat). The counters are GCRA
tallies (one timestamp per key, so a flood costs Redis nothing but one key) kept under
`cardbot:limits:` (addresses hashed), read with Redis's clock so that every process
agrees. If Redis cannot answer, the message is admitted: a limit must never cost a
guardian a message.
"""

from __future__ import annotations

import hashlib
import logging

import redis

from bot import redis as bot_redis
from bot.rules import language
from bot.settings import Limits

log = logging.getLogger(__name__)

PREFIX = bot_redis.LIMITS
# A turn's claim on its conversation lapses this long after the last message was admitted,
# should the process running it die before it is counted out.
IN_FLIGHT_TTL_MS = 120_000

# KEYS: in flight, conversation tally, address tally (optional).
# ARGV: in-flight maximum, then (interval ms, burst) for each tally, then the in-flight TTL.
# Returns 0 when admitted (and counts the message), else the milliseconds to wait.
ADMIT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local running = tonumber(redis.call('GET', KEYS[1]) or '0')
if running >= tonumber(ARGV[1]) then return 1000 end
local next_at = {}
for i = 2, #KEYS do
  local interval = tonumber(ARGV[2 * i - 2])
  local burst = tonumber(ARGV[2 * i - 1])
  if interval > 0 then
    local at = tonumber(redis.call('GET', KEYS[i]) or '0')
    if at < now then at = now end
    local after = at + interval
    local over = after - now - interval * burst
    if over > 0 then return over end
    next_at[i] = after
  end
end
for i, after in pairs(next_at) do
  redis.call('SET', KEYS[i], after, 'PX', after - now)
end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[#ARGV]))
return 0
"""
# KEYS: in flight. A turn is counted out; the key goes with the last one.
DONE = """
local left = redis.call('DECR', KEYS[1])
if left <= 0 then redis.call('DEL', KEYS[1]) end
return left
"""

SLOW_DOWN = {
    language.ENGLISH: "You're sending messages faster than I can answer them. "
                      "Please wait {seconds} s and send that one again.",
    language.CHINESE: "消息发得太快了，我还在回复前面的消息。请等 {seconds} 秒后再发这一条。",
}

BUSY = {
    language.ENGLISH: "I'm answering a great many people right now. "
                      "Please send that again in a minute.",
    language.CHINESE: "现在咨询的人很多，请过一分钟再发一次。",
}


def busy_text(text: str | None, metadata_language: str | None = None) -> str:
    """The reply to a message refused because too many turns are waiting."""
    chosen = metadata_language or language.detect(text) or language.ENGLISH
    return BUSY.get(chosen, BUSY[language.ENGLISH])


def slow_down_text(text: str | None, seconds: float, metadata_language: str | None = None) -> str:
    """The reply to a refused message, in the language it was written in.

    >>> slow_down_text("还没找到", 2.2)
    '消息发得太快了，我还在回复前面的消息。请等 3 秒后再发这一条。'
    >>> slow_down_text("hello", 0.1).endswith("wait 1 s and send that one again.")
    True
    """
    chosen = metadata_language or language.detect(text) or language.ENGLISH
    wait = max(1, int(seconds) + (seconds % 1 > 0))
    return SLOW_DOWN.get(chosen, SLOW_DOWN[language.ENGLISH]).format(seconds=wait)


class TurnLimiter:
    """Admits or refuses messages by the limits above (see the module's docstring)."""

    def __init__(self, redis_url: str, limits: Limits) -> None:
        self.limits = limits
        self._redis = bot_redis.async_client(redis_url, "lock")
        self._admit = self._redis.register_script(ADMIT)
        self._done = self._redis.register_script(DONE)

    async def admit(self, conversation: str, address: str | None = None) -> float:
        """0 when the message may run (then `done` must follow it), else seconds to wait."""
        limits = self.limits
        keys = [PREFIX + "flight:" + conversation, PREFIX + "conversation:" + conversation]
        args = [limits.in_flight, *_tally(limits.per_conversation, limits.burst)]
        if address and limits.per_address:
            # Hashed: an address is kept minutes at most, but it need not be readable.
            keys.append(PREFIX + "address:" + hashlib.blake2b(
                address.encode(), digest_size=12).hexdigest())
            args += _tally(limits.per_address, limits.address_burst)
        try:
            wait_ms = int(await self._admit(keys=keys, args=[*args, IN_FLIGHT_TTL_MS]))
        except redis.RedisError as error:
            log.warning("limits unchecked (%s): message admitted", type(error).__name__)
            return 0.0
        return wait_ms / 1000

    async def done(self, conversation: str) -> None:
        try:
            await self._done(keys=[PREFIX + "flight:" + conversation])
        except redis.RedisError as error:
            # The count lapses with IN_FLIGHT_TTL_MS instead.
            log.warning("turn not counted out (%s)", type(error).__name__)


def _tally(per_minute: int, burst: int) -> list[int]:
    """(interval ms, burst) for a tally; an interval of 0 turns it off."""
    if per_minute <= 0:
        return [0, 0]
    return [max(1, 60_000 // per_minute), max(1, burst)]
