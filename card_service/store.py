"""Loss reports in Redis: each change is one Lua script, so nothing is lost or doubled.

Keys (prefix `cardsvc:`, bot.redis.CARD_SERVICE):
  report:<ref>          hash: the report, ID numbers and phone encrypted
  report:<ref>:history  list: JSON {status, at} per change
  reports               zset: every reference by filing time (the staff list)
  idem:<sha256 of key>  string: "<ref> <body fingerprint>", 30 days
  fail:ref:<ref>, fail:caller:<caller>  failed-verification counters with a window
  outbox                zset: notification id -> next attempt (ms); the reliable queue
  outbox:payload, outbox:attempts       hashes by notification id
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from bot.redis import CARD_SERVICE as PREFIX
from bot.rules import statuses

IDEMPOTENCY_TTL_SECONDS = 30 * 24 * 3600
CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")

_CREATE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {'existing', existing} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'collision', ''} end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[1], 'EX', ARGV[5])
return {'created', ''}
"""

# ARGV: target, history entry, today, notify?, due ms, payload, outbox id,
#       temporary status, expired status, then every status the target may come from.
_TRANSITION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found', ''} end
local status = redis.call('HGET', KEYS[1], 'status')
if status == ARGV[8] and redis.call('HGET', KEYS[1], 'valid_until') < ARGV[3] then
  status = ARGV[9]
end
local allowed = false
for i = 10, #ARGV do
  if ARGV[i] == status then allowed = true end
end
if not allowed then return {'conflict', status} end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[2])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[7])
  redis.call('HSET', KEYS[4], ARGV[7], ARGV[6])
end
return {'moved', status}
"""

_COUNT_FAILURE = """
local count = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""

# Lease due notifications: push their next attempt past the lease, so a crash mid-delivery
# only delays them (another worker or the restarted one picks them up after the lease).
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]) + tonumber(ARGV[2]), id)
end
return due
"""


class Clock:
    """The service's idea of now; `offset_days` lets demos and tests see reports lapse."""

    def __init__(self, offset_days: int = 0):
        self.offset = dt.timedelta(days=offset_days)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.offset

    def today(self) -> dt.date:
        """Filing dates, ages and expiry are counted on the calendar in China."""
        return self.now().astimezone(CHINA).date()


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def effective_status(record: dict[str, str], today: dt.date) -> str:
    """A temporary report past its valid_until reads as expired, without anyone writing it."""
    status = record["status"]
    if status == statuses.REPORTED_TEMPORARY and record["valid_until"] < today.isoformat():
        return statuses.EXPIRED
    return status


@dataclass(frozen=True)
class Created:
    outcome: str  # "created", "existing" or "mismatch"
    reference: str


@dataclass(frozen=True)
class Moved:
    outcome: str  # "moved", "not_found" or "conflict"
    previous: str


class Store:
    def __init__(self, client: aioredis.Redis):
        self.redis = client
        self._create = client.register_script(_CREATE)
        self._transition = client.register_script(_TRANSITION)
        self._count_failure = client.register_script(_COUNT_FAILURE)
        self._claim = client.register_script(_CLAIM)

    @staticmethod
    def report_key(reference: str) -> str:
        return f"{PREFIX}report:{reference}"

    @staticmethod
    def history_key(reference: str) -> str:
        return f"{PREFIX}report:{reference}:history"

    async def create(self, idempotency_key: str, fingerprint: str, reference: str,
                     fields: dict[str, str], at: dt.datetime) -> Created | None:
        """File a report unless the key was used; None when the reference is taken."""
        entry = json.dumps({"status": statuses.INITIAL, "at": iso(at)})
        pairs = [item for pair in fields.items() for item in pair]
        idem = PREFIX + "idem:" + hashlib.sha256(idempotency_key.encode()).hexdigest()
        outcome, existing = await self._create(
            keys=[idem, self.report_key(reference), self.history_key(reference),
                  PREFIX + "reports"],
            args=[fingerprint, reference, at.timestamp(), entry, IDEMPOTENCY_TTL_SECONDS, *pairs],
        )
        outcome = _text(outcome)
        if outcome == "collision":
            return None
        if outcome == "existing":
            old_reference, _, old_fingerprint = _text(existing).partition(" ")
            same = old_fingerprint == fingerprint
            return Created("existing" if same else "mismatch", old_reference)
        return Created("created", reference)

    async def get(self, reference: str) -> tuple[dict[str, str], list[dict[str, Any]]] | None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.report_key(reference))
            pipe.lrange(self.history_key(reference), 0, -1)
            record, history = await pipe.execute()
        if not record:
            return None
        return ({_text(k): _text(v) for k, v in record.items()},
                [json.loads(item) for item in history])

    async def move(self, reference: str, target: str, at: dt.datetime, today: dt.date,
                   notification: dict[str, str] | None = None) -> Moved:
        """Move to `target` if the table allows it from the current status, atomically."""
        entry = json.dumps({"status": target, "at": iso(at)})
        outbox_id = f"{reference}:{target}"
        result = await self._transition(
            keys=[self.report_key(reference), self.history_key(reference),
                  PREFIX + "outbox", PREFIX + "outbox:payload"],
            args=[target, entry, today.isoformat(), "1" if notification else "0",
                  int(at.timestamp() * 1000), json.dumps(notification or {}), outbox_id,
                  statuses.REPORTED_TEMPORARY, statuses.EXPIRED, *statuses.sources_of(target)],
        )
        return Moved(_text(result[0]), _text(result[1]))

    async def references(self, limit: int) -> list[str]:
        found = await self.redis.zrevrange(PREFIX + "reports", 0, limit - 1)
        return [_text(item) for item in found]

    # Failed guardian verifications, counted per reference and per caller.
    async def blocked_for(self, counters: dict[str, int]) -> int:
        """Seconds until every counter is under its limit again; 0 when none is at it."""
        keys = list(counters)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(PREFIX + key)
                pipe.ttl(PREFIX + key)
            answers = await pipe.execute()
        wait = 0
        for index, key in enumerate(keys):
            count, ttl = answers[2 * index], answers[2 * index + 1]
            if count is not None and int(count) >= counters[key]:
                wait = max(wait, int(ttl) if int(ttl) > 0 else 1)
        return wait

    async def count_failure(self, keys: list[str], window_seconds: int) -> None:
        for key in keys:
            await self._count_failure(keys=[PREFIX + key], args=[window_seconds])

    # The outbox.
    async def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[str]:
        found = await self._claim(keys=[PREFIX + "outbox"], args=[now_ms, lease_ms, limit])
        return [_text(item) for item in found]

    async def payload(self, outbox_id: str) -> dict[str, str] | None:
        raw = await self.redis.hget(PREFIX + "outbox:payload", outbox_id)
        return json.loads(raw) if raw else None

    async def delivered(self, outbox_id: str, reference: str, at: dt.datetime) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(PREFIX + "outbox", outbox_id)
            pipe.hdel(PREFIX + "outbox:payload", outbox_id)
            pipe.hdel(PREFIX + "outbox:attempts", outbox_id)
            pipe.hset(self.report_key(reference), "notified_at", iso(at))
            await pipe.execute()

    async def retry_later(self, outbox_id: str, delay_for_attempt: Any, now_ms: int) -> int:
        attempts = int(await self.redis.hincrby(PREFIX + "outbox:attempts", outbox_id, 1))
        due = now_ms + int(delay_for_attempt(attempts) * 1000)
        await self.redis.zadd(PREFIX + "outbox", {outbox_id: due}, xx=True)
        return attempts

    async def pending(self) -> int:
        return int(await self.redis.zcard(PREFIX + "outbox"))


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
