"""Loss reports in Redis: each change is one Lua script, so nothing is lost or doubled.

Keys (prefix `cardsvc:`, bot.redis.CARD_SERVICE):
  report:<ref>          hash: the report, ID numbers and phone encrypted
  report:<ref>:history  list: JSON {status, at} per change
  reports               zset: every reference by filing time (the staff list)
  idem:<sha256 of key>  string: "<ref> <body fingerprint>", 30 days (gone when erased)
  retention             zset: reference -> when it became final (ms), or will lapse if still
                        temporary; its personal data goes REPORT_RETENTION_DAYS after that
  retention:asked       zset: the same for reports whose guardian asked for erasure: theirs
                        goes as soon as they are final
  retention:indexed     string: set once every report filed before the index is in it
  fail:ref:<ref>        int: failed verifications (lookups and cancels) of that reference,
                        every caller together; a fixed window from the first failure
  fail:caller:<sha256 of caller>  int: the same for one caller across every reference
                        (both as before; only the limits the service applies changed)
  fail:pair:<sha256 of "<ref>\n<caller>">  int: failures of one caller on one reference;
                        kept a day after the last, deleted by a success
  fail:wait:<same sha256>  string: present while that pair must wait; its TTL is the wait
                        (the backoff), so Redis ends it and Retry-After reads it
  (Each attempt counts as a failure the moment it is let through and a success gives it back,
  so concurrent attempts cannot slip past a limit together.)
  reminders             zset: reference -> when to remind that its temporary report lapses
                        (ms); moved to the outbox then, if the report is still temporary
  outbox                zset: notification id -> next attempt (ms, on the service's clock);
                        the reliable queue. Ids: <ref>:<status> (card ready),
                        <ref>:lapse_reminder, <ref>:forget
  outbox:payload, outbox:attempts       hashes by notification id
(The notice ledger: card_service/notices.py.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from bot.crypto import REPORT_FIELDS
from bot.redis import CARD_SERVICE as PREFIX
from bot.rules import statuses
from bot.rules.china_time import CHINA

IDEMPOTENCY_TTL_SECONDS = 30 * 24 * 3600
RETENTION, ASKED, INDEXED = "retention", "retention:asked", "retention:indexed"
REMINDERS = "reminders"
REMIND_AT = dt.time(10)  # in China: a reminder in the morning, not at midnight
LAPSE_REMINDER_INTENT = "EXTERNAL_lapse_reminder"
# What erasure removes from a report: every sealed field and everything else that points at
# the child, the guardian or their conversation (hashes, masked numbers, typed city, the
# idempotency key's name). Kept: reference, region, status, history and the dates.
# Sent to a conversation whose report's personal data went at the end of its retention.
FORGET_INTENT = "EXTERNAL_forget"
PERSONAL_FIELDS = (*REPORT_FIELDS, "guardian_hash", "child_hash", "filer_hash",
                   "child_id_masked", "guardian_id_masked", "phone_masked", "relationship",
                   "city", "conversation_id", "idem")

# ARGV: fingerprint, reference, filed at, history entry, idempotency TTL, lapses at (ms, or
#       '' if it cannot lapse), remind at (ms, or ''), then the fields.
_CREATE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {'existing', existing} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'collision', ''} end
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], 'idem', KEYS[1], unpack(fields))
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[5], ARGV[6], ARGV[2]) end
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[6], ARGV[7], ARGV[2]) end
redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[1], 'EX', ARGV[5])
return {'created', ''}
"""

# ARGV: target, history entry, today, notify?, due ms, payload, outbox id,
#       temporary status, expired status, 'final' or 'active' (the target is), reference,
#       then every status the target may come from.
_TRANSITION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found', ''} end
local status = redis.call('HGET', KEYS[1], 'status')
if status == ARGV[8] and redis.call('HGET', KEYS[1], 'valid_until') < ARGV[3] then
  status = ARGV[9]
end
local allowed = false
for i = 12, #ARGV do
  if ARGV[i] == status then allowed = true end
end
if not allowed then return {'conflict', status} end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[2])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[7])
  redis.call('HSET', KEYS[4], ARGV[7], ARGV[6])
end
local reference = ARGV[11]
if ARGV[10] == 'final' then
  redis.call('ZADD', KEYS[5], ARGV[5], reference)
  if redis.call('HEXISTS', KEYS[1], 'erase_requested_at') == 1 then
    redis.call('ZADD', KEYS[6], ARGV[5], reference)
  end
else
  -- Off the temporary status it can no longer lapse: nothing to count from until it is final.
  redis.call('ZREM', KEYS[5], reference)
  redis.call('ZREM', KEYS[6], reference)
end
return {'moved', status}
"""

# A verification attempt, in one step so a burst of them cannot overshoot a limit: refused
# with the wait (ms) if the pair must wait or a checked limit is reached; otherwise counted
# at once as a failure (0), and refunded by _SUCCEEDED if the numbers match.
# KEYS: the pair's count, the pair's wait, then each limit's counter.
# ARGV: free failures, first wait ms, cap ms, pair memory s, then per limit: its most
#       (0: counted but not checked) and its window s.
_ATTEMPT = """
local wait = redis.call('PTTL', KEYS[2])
if wait < 0 then wait = 0 end
for i = 3, #KEYS do
  local most = tonumber(ARGV[2 * i - 1])
  local count = redis.call('GET', KEYS[i])
  if most > 0 and count and tonumber(count) >= most then
    local left = redis.call('PTTL', KEYS[i])
    wait = math.max(wait, left > 0 and left or 1000)
  end
end
if wait > 0 then return wait end
local failures = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local over = failures - tonumber(ARGV[1])
if over > 0 then
  local pause = math.min(tonumber(ARGV[2]) * 2 ^ math.min(over - 1, 40), tonumber(ARGV[3]))
  redis.call('SET', KEYS[2], failures, 'PX', math.floor(pause))
end
for i = 3, #KEYS do
  redis.call('INCR', KEYS[i])
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[2 * i]) end
end
return 0
"""

# The numbers matched: the pair starts afresh and the limits get their count back (a
# counter that has expired meanwhile is left alone, never made negative).
_SUCCEEDED = """
redis.call('DEL', KEYS[1], KEYS[2])
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('DECR', KEYS[i]) <= 0 then
    redis.call('DEL', KEYS[i])
  end
end
return 0
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

# KEYS: outbox, outbox:payload. ARGV: outbox id, payload.
_SAVE_PAYLOAD = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
"""

# Due lapse reminders into the outbox, each only if its report is still temporary and not
# yet lapsed. KEYS: reminders, outbox, outbox:payload. ARGV: now ms, today, temporary
# status, report key prefix, intent, limit.
_REMIND = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[6])
local queued = 0
for _, reference in ipairs(due) do
  redis.call('ZREM', KEYS[1], reference)
  local report = ARGV[4] .. reference
  local status = redis.call('HGET', report, 'status')
  local conversation = redis.call('HGET', report, 'conversation_id')
  if status == ARGV[3] and conversation
     and redis.call('HGET', report, 'valid_until') >= ARGV[2] then
    local id = reference .. ':lapse_reminder'
    redis.call('HSET', KEYS[3], id, cjson.encode({reference = reference,
      conversation_id = conversation, intent = ARGV[5], kind = 'lapse_reminder'}))
    redis.call('ZADD', KEYS[2], 'NX', ARGV[1], id)
    queued = queued + 1
  end
end
return queued
"""

# Erase a final report's personal data, or, for a guardian's request (ask), remember the
# request while the report is still active. With an index (KEYS position 2 or 3), only if
# its entry there is at or before the cutoff: a sweep never erases early.
# KEYS: report, retention, retention:asked, outbox, outbox:payload, outbox:attempts, the
#       idempotency key the report names. ARGV: today, now (ISO), index, cutoff ms, ask?,
#       lapses at ms, reference, JSON {temporary, expired, final, fields, notify}.
_ERASE = """
local rules = cjson.decode(ARGV[8])
local reference = ARGV[7]
local function unindex()
  redis.call('ZREM', KEYS[2], reference)
  redis.call('ZREM', KEYS[3], reference)
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  unindex()
  return {'not_found', ''}
end
local status = redis.call('HGET', KEYS[1], 'status')
if status == rules.temporary and redis.call('HGET', KEYS[1], 'valid_until') < ARGV[1] then
  status = rules.expired
end
if redis.call('HEXISTS', KEYS[1], 'personal_data_erased_at') == 1 then
  unindex()
  return {'already', status}
end
local final = false
for _, name in ipairs(rules.final) do
  if name == status then final = true end
end
if not final then
  if ARGV[5] == '1' then
    redis.call('HSETNX', KEYS[1], 'erase_requested_at', ARGV[2])
    if status == rules.temporary then redis.call('ZADD', KEYS[3], ARGV[6], reference) end
  elseif status ~= rules.temporary then
    unindex()
  end
  return {'active', status}
end
local index = tonumber(ARGV[3])
if index then
  local since = redis.call('ZSCORE', KEYS[index], reference)
  if not since or tonumber(since) > tonumber(ARGV[4]) then return {'not_due', status} end
end
if redis.call('HGET', KEYS[1], 'idem') == KEYS[7] then
  local entry = redis.call('GET', KEYS[7])
  if entry and string.sub(entry, 1, string.len(reference) + 1) == reference .. ' ' then
    redis.call('DEL', KEYS[7])
  end
end
-- Retention run out (or none kept): the conversation that filed the report is told to
-- forget it too (EXTERNAL_forget, through the outbox). A guardian who asked for erasure had
-- theirs deleted when they asked.
local conversation = redis.call('HGET', KEYS[1], 'conversation_id')
if ARGV[5] ~= '1' and tonumber(ARGV[3]) ~= 3 and conversation then
  local now = redis.call('TIME')
  local id = reference .. ':forget'
  redis.call('HSET', KEYS[5], id, cjson.encode({reference = reference,
    conversation_id = conversation, intent = rules.forget}))
  redis.call('ZADD', KEYS[4], tonumber(now[1]) * 1000, id)
end
redis.call('HDEL', KEYS[1], unpack(rules.fields))
-- A notice still waiting names the conversation; the report is final, so it is moot.
redis.call('ZREM', rules.reminders, reference)
for _, target in ipairs(rules.notify) do
  local id = reference .. ':' .. target
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
  redis.call('HDEL', KEYS[6], id)
end
redis.call('HSET', KEYS[1], 'personal_data_erased_at', ARGV[2])
unindex()
return {'erased', status}
"""
_ERASE_RULES = json.dumps({"temporary": statuses.REPORTED_TEMPORARY, "expired": statuses.EXPIRED,
                           "final": sorted(statuses.TERMINAL), "fields": PERSONAL_FIELDS,
                           # outbox ids: <ref>:<status>, <ref>:lapse_reminder
                           "notify": [*sorted(statuses.NOTIFY_ON), "lapse_reminder"],
                           "reminders": PREFIX + REMINDERS,
                           "forget": FORGET_INTENT})

# A report filed before the retention index: in it from its lapse if still temporary, from
# when it became final if final (ARGV: reference, temporary, lapses at ms, final status,
# final at ms). Never over an entry already there.
_INDEX = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('ZSCORE', KEYS[2], ARGV[1])
   or redis.call('HEXISTS', KEYS[1], 'personal_data_erased_at') == 1 then return 0 end
local status = redis.call('HGET', KEYS[1], 'status')
if status == ARGV[2] then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
elseif status == ARGV[4] and ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
else
  return 0
end
return 1
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


def lapses_at(valid_until: str) -> dt.datetime:
    """When a temporary report valid until that day starts to read as expired: the next
    midnight in China (effective_status's first `today` past valid_until).

    >>> iso(lapses_at("2026-12-05"))
    '2026-12-05T16:00:00Z'
    """
    day = dt.date.fromisoformat(valid_until) + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), CHINA)


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Created:
    outcome: str  # "created", "existing" or "mismatch"
    reference: str


@dataclass(frozen=True)
class Moved:
    outcome: str  # "moved", "not_found" or "conflict"
    previous: str


@dataclass(frozen=True)
class Erased:
    # "erased"; "already" (erased before); "active" (kept: not final; a request remembered);
    # "not_due" (final, but its retention has not run out); "not_found"
    outcome: str
    status: str  # the effective status


@dataclass(frozen=True)
class Limit:
    """At most `most` failures per `window_seconds` under `key` (a fixed window from the
    first); `checked` False: the failures are counted but this caller is not held to it."""

    key: str
    most: int
    window_seconds: int
    checked: bool = True


@dataclass(frozen=True)
class Backoff:
    """One caller's waits on one reference: none for the first `free` failures, then
    `first_seconds`, doubling with each further failure up to `cap_seconds`."""

    pair: str  # the part of the key naming the (reference, caller) pair
    free: int
    first_seconds: float
    cap_seconds: float
    memory_seconds: int

    @property
    def count_key(self) -> str:
        return f"fail:pair:{self.pair}"

    @property
    def wait_key(self) -> str:
        return f"fail:wait:{self.pair}"


class Store:
    def __init__(self, client: aioredis.Redis):
        self.redis = client
        self._create = client.register_script(_CREATE)
        self._transition = client.register_script(_TRANSITION)
        self._attempt = client.register_script(_ATTEMPT)
        self._succeeded = client.register_script(_SUCCEEDED)
        self._claim = client.register_script(_CLAIM)
        self._erase = client.register_script(_ERASE)
        self._index = client.register_script(_INDEX)
        self._save_payload = client.register_script(_SAVE_PAYLOAD)
        self._remind = client.register_script(_REMIND)
        self.remind_days_before = 2  # 0: no lapse reminder

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
        lapse = _ms(lapses_at(fields["valid_until"])) \
            if fields.get("status") == statuses.REPORTED_TEMPORARY else ""
        outcome, existing = await self._create(
            keys=[idem, self.report_key(reference), self.history_key(reference),
                  PREFIX + "reports", PREFIX + RETENTION, PREFIX + REMINDERS],
            args=[fingerprint, reference, at.timestamp(), entry, IDEMPOTENCY_TTL_SECONDS,
                  lapse, self.remind_at(fields, at), *pairs],
        )
        outcome = _text(outcome)
        if outcome == "collision":
            return None
        if outcome == "existing":
            old_reference, _, old_fingerprint = _text(existing).partition(" ")
            same = old_fingerprint == fingerprint
            return Created("existing" if same else "mismatch", old_reference)
        return Created("created", reference)

    def remind_at(self, fields: dict[str, str], at: dt.datetime) -> int | str:
        """When to remind that a temporary report lapses: `remind_days_before` its last valid
        day, in the morning; '' if never (not temporary, no reminder, or already past)."""
        if not self.remind_days_before or fields.get("status") != statuses.REPORTED_TEMPORARY:
            return ""
        day = dt.date.fromisoformat(fields["valid_until"]) - dt.timedelta(
            days=self.remind_days_before)
        due = dt.datetime.combine(day, REMIND_AT, CHINA)
        return _ms(due) if due > at else ""

    async def remind(self, now: dt.datetime, today: dt.date, limit: int = 100) -> int:
        """Due lapse reminders into the outbox; how many."""
        return int(await self._remind(
            keys=[PREFIX + REMINDERS, PREFIX + "outbox", PREFIX + "outbox:payload"],
            args=[_ms(now), today.isoformat(), statuses.REPORTED_TEMPORARY,
                  PREFIX + "report:", LAPSE_REMINDER_INTENT, limit]))

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
                  PREFIX + "outbox", PREFIX + "outbox:payload", PREFIX + RETENTION,
                  PREFIX + ASKED],
            args=[target, entry, today.isoformat(), "1" if notification else "0",
                  int(at.timestamp() * 1000), json.dumps(notification or {}), outbox_id,
                  statuses.REPORTED_TEMPORARY, statuses.EXPIRED,
                  "final" if statuses.is_terminal(target) else "active", reference,
                  *statuses.sources_of(target)],
        )
        return Moved(_text(result[0]), _text(result[1]))

    async def references(self, limit: int) -> list[str]:
        found = await self.redis.zrevrange(PREFIX + "reports", 0, limit - 1)
        return [_text(item) for item in found]

    # Failed guardian verifications: a growing wait per (reference, caller) and windowed
    # limits (per reference, per caller).
    async def attempt(self, limits: list[Limit], backoff: Backoff) -> int:
        """Seconds to wait before trying (nothing counted); 0: go ahead, already counted as a
        failure until `succeeded` says otherwise."""
        keys = [backoff.count_key, backoff.wait_key, *(limit.key for limit in limits)]
        per_limit = [item for limit in limits
                     for item in (limit.most if limit.checked else 0, limit.window_seconds)]
        wait_ms = int(await self._attempt(
            keys=[PREFIX + key for key in keys],
            args=[backoff.free, int(backoff.first_seconds * 1000),
                  int(backoff.cap_seconds * 1000), backoff.memory_seconds, *per_limit]))
        return -(-wait_ms // 1000)  # whole seconds, rounded up

    async def succeeded(self, limits: list[Limit], backoff: Backoff) -> None:
        keys = [backoff.count_key, backoff.wait_key, *(limit.key for limit in limits)]
        await self._succeeded(keys=[PREFIX + key for key in keys])

    # The outbox.
    async def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[str]:
        found = await self._claim(keys=[PREFIX + "outbox"], args=[now_ms, lease_ms, limit])
        return [_text(item) for item in found]

    async def payload(self, outbox_id: str) -> dict[str, str] | None:
        raw = await self.redis.hget(PREFIX + "outbox:payload", outbox_id)
        return json.loads(raw) if raw else None

    async def save_payload(self, outbox_id: str, payload: dict[str, Any]) -> None:
        """Only while the entry is still in the outbox (erasure may have taken it)."""
        await self._save_payload(keys=[PREFIX + "outbox", PREFIX + "outbox:payload"],
                                 args=[outbox_id, json.dumps(payload, ensure_ascii=False)])

    async def delivered(self, outbox_id: str, reference: str, at: dt.datetime,
                        notice: bool = True, path: str = "") -> None:
        """Out of the outbox; `notice`: a guardian was told something (not a forget), by
        `path`. The report remembers the latest (a status check mentions it)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(PREFIX + "outbox", outbox_id)
            pipe.hdel(PREFIX + "outbox:payload", outbox_id)
            pipe.hdel(PREFIX + "outbox:attempts", outbox_id)
            if notice:
                kind = outbox_id.rsplit(":", 1)[-1]
                pipe.hset(self.report_key(reference), mapping={
                    "notified_at" if kind != "lapse_reminder" else "reminded_at": iso(at),
                    **({"notified_by": path} if path and kind != "lapse_reminder" else {})})
            await pipe.execute()

    async def settled(self, outbox_id: str) -> None:
        """Out of the outbox, nobody told (the ledger says why)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(PREFIX + "outbox", outbox_id)
            pipe.hdel(PREFIX + "outbox:payload", outbox_id)
            pipe.hdel(PREFIX + "outbox:attempts", outbox_id)
            await pipe.execute()

    async def due_at(self, outbox_id: str, due_ms: int) -> None:
        await self.redis.zadd(PREFIX + "outbox", {outbox_id: due_ms}, xx=True)

    async def retry_later(self, outbox_id: str, delay_for_attempt: Any, now_ms: int) -> int:
        attempts = int(await self.redis.hincrby(PREFIX + "outbox:attempts", outbox_id, 1))
        due = now_ms + int(delay_for_attempt(attempts) * 1000)
        await self.redis.zadd(PREFIX + "outbox", {outbox_id: due}, xx=True)
        return attempts

    async def pending(self) -> int:
        return int(await self.redis.zcard(PREFIX + "outbox"))

    # Retention: personal data erased a set time after a report is final, or on request.
    async def erase(self, reference: str, now: dt.datetime, today: dt.date, *,
                    index: str | None = None, cutoff: dt.datetime | None = None,
                    ask: bool = False) -> Erased:
        """Erase the report's personal data if its status is final, atomically. `index` and
        `cutoff`: only if its entry in that index is at or before `cutoff`. `ask`: a
        guardian's request, remembered when the report is still active."""
        key = self.report_key(reference)
        idem, valid_until = await self.redis.hmget(key, ["idem", "valid_until"])
        positions = {None: "", RETENTION: "2", ASKED: "3"}
        outcome, status = await self._erase(
            keys=[key, PREFIX + RETENTION, PREFIX + ASKED, PREFIX + "outbox",
                  PREFIX + "outbox:payload", PREFIX + "outbox:attempts",
                  _text(idem) if idem else PREFIX + "idem:none"],
            args=[today.isoformat(), iso(now), positions[index], _ms(cutoff) if cutoff else 0,
                  "1" if ask else "0", _ms(lapses_at(_text(valid_until))) if valid_until else 0,
                  reference, _ERASE_RULES],
        )
        return Erased(_text(outcome), _text(status))

    async def sweep(self, now: dt.datetime, today: dt.date, retention_days: int,
                    batch: int = 100) -> int:
        """Erase every report whose retention has run out, and every final one whose guardian
        asked; the number erased. Each erasure checks again in one script, so sweeps may run
        in several processes at once and again at any time."""
        await self.index_earlier_reports(now)
        erased = 0
        for index, cutoff in ((RETENTION, now - dt.timedelta(days=retention_days)),
                              (ASKED, now)):
            skip = 0  # entries that stay (not lapsed yet), so the next batch looks past them
            while True:
                due = await self.redis.zrangebyscore(PREFIX + index, "-inf", _ms(cutoff),
                                                     start=skip, num=batch)
                for raw in due:
                    done = await self.erase(_text(raw), now, today, index=index, cutoff=cutoff)
                    erased += done.outcome == "erased"
                    skip += done.outcome in ("active", "not_due")
                if len(due) < batch:
                    break
        return erased

    async def index_earlier_reports(self, now: dt.datetime) -> int:
        """Reports filed before the retention index existed join it, once per Redis."""
        if await self.redis.exists(PREFIX + INDEXED):
            return 0
        added = 0
        async for raw, _score in self.redis.zscan_iter(PREFIX + "reports"):
            reference = _text(raw)
            found = await self.get(reference)
            if found is None or "valid_until" not in found[0]:
                continue
            record, history = found
            status = record.get("status", "")
            final_at = next((entry["at"] for entry in reversed(history)
                             if entry.get("status") == status), None)
            added += int(await self._index(
                keys=[self.report_key(reference), PREFIX + RETENTION],
                args=[reference, statuses.REPORTED_TEMPORARY,
                      _ms(lapses_at(record["valid_until"])), status,
                      _ms(parse_iso(final_at)) if final_at and statuses.is_terminal(status)
                      else ""]))
        await self.redis.set(PREFIX + INDEXED, iso(now))
        return added


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
