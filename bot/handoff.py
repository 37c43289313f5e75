"""Live handoff to a person: the queue in Redis, staffed hours, and the hook that keeps the
assistant silent while an agent holds a conversation.

A conversation enters the queue when the assistant tells the guardian a person will come
(`action_handoff`: asked for one, or three failed tries on one question): its masked
transcript, language, channel and the time it was queued. An agent takes it (one agent
only), reads the guardian's new messages, answers, and hands it back or closes it. The
agents' HTTP API is `bot/channels/handoff.py`; this module knows nothing of HTTP.

Keys (all under `cardbot:handoff:`, which the Rasa Redis user may touch):
  waiting                 sorted set: conversation -> when queued (epoch seconds)
  taken                   sorted set: conversation -> when taken
  case:<conversation>     JSON: channel, language, reason, queued_at, after_hours, transcript
  agent:<conversation>    the agent holding it; while set, Rasa never sees the guardian
  messages:<conversation> list of JSON {seq, from, text, at}: the guardian's messages since
                          the agent took it and the agent's replies (seq = position, from 1)
  pending:<conversation>  list: replies for a REST guardian, given with their next answer
The case and every message are sealed like conversations (bot/crypto.py, DATA_ENCRYPTION_KEY,
the key's name bound in; `python -m bot.crypto rotate` re-seals them): masked, what a guardian
typed is still theirs. Everything of a case goes when it is handed back or closed, when the
guardian has the conversation erased (`forget`, from the tracker store), or CASE_TTL_S after
it was queued, taken or last written to.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from bot import redis as bot_redis
from bot import settings as bot_settings
from bot.rasa.scrub import personal_values
from bot.rules.china_time import CHINA
from bot.rules.identity import masked_numbers
from bot.settings import staffed_spans

if TYPE_CHECKING:
    from rasa.core.channels.channel import OutputChannel, UserMessage

    from bot.crypto import Vault

log = logging.getLogger(__name__)

PREFIX = bot_redis.HANDOFF
WAITING_KEY = PREFIX + "waiting"
TAKEN_KEY = PREFIX + "taken"
CASE_TTL_S = 7 * 24 * 3600
# About twenty exchanges: enough for an agent to see what was tried.
TRANSCRIPT_TURNS = 20
# The responses that tell a guardian a person will come (domain.yml): seeing one of them
# go out is what queues the conversation.
QUEUED_RESPONSES = frozenset({"utter_handoff", "utter_handoff_after_hours"})
GUARDIAN, AGENT, ASSISTANT = "guardian", "agent", "assistant"

# KEYS: case, agent, waiting, taken. ARGV: conversation, agent, now, ttl.
# 1: taken now; 2: already this agent's; {holder}: another agent's; 0: no such case.
TAKE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local holder = redis.call('GET', KEYS[2])
if holder then
  if holder == ARGV[2] then return 2 end
  return holder
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
return 1
"""
# KEYS: agent, case, messages, pending, taken, waiting. ARGV: conversation, agent.
# 1: released; {holder or ""}: not this agent's.
RELEASE = """
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[2] then return holder or '' end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
return 1
"""

# KEYS: agent, pending. The holder ('' for none) and what was kept for a REST guardian,
# taken: one command on every REST turn, the list touched only when an agent replied.
HOLDER_AND_KEPT = """
local kept = redis.call('LRANGE', KEYS[2], 0, -1)
if #kept > 0 then redis.call('DEL', KEYS[2]) end
return {redis.call('GET', KEYS[1]) or '', kept}
"""


def case_key(conversation: str) -> str:
    return f"{PREFIX}case:{conversation}"


def agent_key(conversation: str) -> str:
    return f"{PREFIX}agent:{conversation}"


def messages_key(conversation: str) -> str:
    return f"{PREFIX}messages:{conversation}"


def pending_key(conversation: str) -> str:
    return f"{PREFIX}pending:{conversation}"


# ---- staffed hours ------------------------------------------------------------------------

@dataclass(frozen=True)
class StaffedHours:
    """When agents answer, in China time (STAFFED_HOURS, read by `bot.settings`).

    >>> hours = StaffedHours.parse("Mon-Fri 09:00-17:00")
    >>> hours.open_at(datetime(2026, 12, 4, 1, 30, tzinfo=timezone.utc))  # Fri 09:30 in China
    True
    >>> hours.open_at(datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc))  # Fri 17:00 in China
    False
    >>> hours.open_at(datetime(2026, 12, 5, 2, 0, tzinfo=timezone.utc))  # Saturday
    False
    >>> StaffedHours.parse("Mon-Fri 9am")
    Traceback (most recent call last):
    ValueError: STAFFED_HOURS: "Mon-Fri 9am" is not like "Mon-Fri 09:00-17:00"
    """

    # (weekday 0-6, first minute, minute after the last).
    spans: tuple[tuple[int, int, int], ...] = ()

    @classmethod
    def parse(cls, text: str) -> StaffedHours:
        return cls(staffed_spans(text))

    def open_at(self, now: datetime) -> bool:
        local = now.astimezone(CHINA)
        minute = local.hour * 60 + local.minute
        return any(day == local.weekday() and start <= minute < end
                   for day, start, end in self.spans)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


# ---- the transcript -----------------------------------------------------------------------

def masked(text: str, known: dict[str, str]) -> str:
    """`text` with each value the form held masked, then every ID or phone number.

    >>> masked("王小明 的身份证 110105201501010013", {"王小明": "王**"})
    '王** 的身份证 1101**********0013'
    """
    for whole, shown in known.items():
        text = text.replace(whole, shown)
    return masked_numbers(text)


def transcript(events: Iterable[dict[str, Any]], turns: int = TRANSCRIPT_TURNS
               ) -> list[dict[str, Any]]:
    """The last `turns` exchanges of a stored conversation, what was typed and said, with
    ID numbers, phones and the names the form held masked.

    >>> events = [
    ...     {"event": "slot", "name": "child_name", "value": "王小明"},
    ...     {"event": "user", "text": "孩子王小明的卡丢了 13800138000", "timestamp": 1.0},
    ...     {"event": "bot", "text": "王小明的卡，对吗？", "timestamp": 2.0,
    ...      "data": {"buttons": [{"title": "对", "payload": "/affirm"}]}}]
    >>> [(line["from"], line["text"]) for line in transcript(events)]
    [('guardian', '孩子王**的卡丢了 13*******00'), ('assistant', '王**的卡，对吗？')]
    >>> transcript(events)[1]["buttons"]
    ['对']
    """
    events = list(events)
    known = personal_values(events)
    users = [n for n, event in enumerate(events) if event.get("event") == "user"]
    start = users[-turns] if len(users) >= turns else 0
    lines: list[dict[str, Any]] = []
    for event in events[start:]:
        kind = event.get("event")
        if kind not in ("user", "bot") or not (event.get("text") or "").strip():
            continue
        line: dict[str, Any] = {"from": GUARDIAN if kind == "user" else ASSISTANT,
                                "text": masked(str(event["text"]), known),
                                "at": event.get("timestamp")}
        titles = [str(b.get("title")) for b in (event.get("data") or {}).get("buttons") or []
                  if b.get("title")]
        if titles:
            line["buttons"] = titles
        lines.append(line)
    return lines


# ---- the queue ----------------------------------------------------------------------------

@dataclass
class Case:
    conversation: str
    channel: str
    language: str
    queued_at: float
    reason: str = "asked"  # or "failed_tries"
    after_hours: bool = False
    transcript: list[dict[str, Any]] = field(default_factory=list)
    agent: str | None = None
    taken_at: float | None = None

    def as_json(self, now: float, with_transcript: bool = True) -> dict[str, Any]:
        body = asdict(self)
        body["waiting_seconds"] = round(max(0.0, (self.taken_at or now) - self.queued_at), 1)
        body["state"] = "taken" if self.agent else "waiting"
        if not with_transcript:
            del body["transcript"]
        return body

    @classmethod
    def from_json(cls, raw: str | bytes) -> Case:
        body = json.loads(raw)
        return cls(**{name: body[name] for name in cls.__dataclass_fields__ if name in body})


class NotFound(LookupError):
    """No such conversation in the queue (never queued, handed back, closed or expired)."""


class Taken(RuntimeError):
    """Another agent holds the conversation."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"taken by {holder}")
        self.holder = holder


class Queue:
    """The handoff queue on Redis; every method is one round trip or one script. `vault`:
    the data key (by default DATA_ENCRYPTION_KEY's, which must then be set)."""

    def __init__(self, client: redis.asyncio.Redis, ttl_s: int = CASE_TTL_S,
                 vault: Vault | None = None) -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self.vault = vault if vault is not None else bot_settings.settings().vault()
        self._take = client.register_script(TAKE)
        self._release = client.register_script(RELEASE)
        self._holder_and_kept = client.register_script(HOLDER_AND_KEPT)

    async def add(self, case: Case) -> bool:
        """Queues the case; False when it is queued already or an agent holds it (the
        first queueing time stands, the transcript is brought up to date)."""
        if await self.redis.exists(agent_key(case.conversation)):
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(WAITING_KEY, {case.conversation: case.queued_at}, nx=True)
            pipe.get(case_key(case.conversation))
            added, stored = await pipe.execute()
        key = case_key(case.conversation)
        if stored and not added:
            case.queued_at = Case.from_json(self._open(stored, key)).queued_at
        await self.redis.set(key, self._seal(
            json.dumps(case, default=_plain, ensure_ascii=False), key), ex=self.ttl_s)
        return bool(added)

    async def take(self, conversation: str, agent: str, now: float) -> tuple[Case, bool]:
        """The case, now held by `agent`, and whether it was taken now (not again by the
        same agent). Raises NotFound, or Taken naming the holder."""
        result = await self._take(
            keys=[case_key(conversation), agent_key(conversation), WAITING_KEY, TAKEN_KEY],
            args=[conversation, agent, now, self.ttl_s])
        if result == 0:
            raise NotFound(conversation)
        if result not in (1, 2):
            raise Taken(result.decode() if isinstance(result, bytes) else str(result))
        return await self.case(conversation), result == 1

    async def release(self, conversation: str, agent: str) -> None:
        """Ends the agent's hold and forgets the case. Raises NotFound when nobody holds
        it, Taken when another agent does."""
        result = await self._release(
            keys=[agent_key(conversation), case_key(conversation), messages_key(conversation),
                  pending_key(conversation), TAKEN_KEY, WAITING_KEY],
            args=[conversation, agent])
        if result == 1:
            return
        holder = result.decode() if isinstance(result, bytes) else str(result or "")
        if not holder:
            raise NotFound(conversation)
        raise Taken(holder)

    async def holder(self, conversation: str) -> str | None:
        value = await self.redis.get(agent_key(conversation))
        return value.decode() if isinstance(value, bytes) else value

    async def holder_and_kept(self, conversation: str) -> tuple[str | None,
                                                                 list[dict[str, Any]]]:
        """The holder and, taken at once, what was kept for a REST guardian: one round
        trip for a REST turn."""
        holder, raw = await self._holder_and_kept(
            keys=[agent_key(conversation), pending_key(conversation)])
        holder = holder.decode() if isinstance(holder, bytes) else holder
        return (holder or None,
                [json.loads(self._open(item, pending_key(conversation))) for item in raw])

    async def case(self, conversation: str) -> Case:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(case_key(conversation))
            pipe.get(agent_key(conversation))
            pipe.zscore(TAKEN_KEY, conversation)
            stored, holder, taken_at = await pipe.execute()
        if stored is None:
            raise NotFound(conversation)
        case = Case.from_json(self._open(stored, case_key(conversation)))
        case.agent = holder.decode() if isinstance(holder, bytes) else holder
        case.taken_at = taken_at if case.agent else None
        return case

    async def cases(self) -> list[Case]:
        """Waiting cases first, the longest waiting first; then the taken ones."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(WAITING_KEY, 0, -1)
            pipe.zrange(TAKEN_KEY, 0, -1)
            waiting, taken = await pipe.execute()
        found = []
        for raw in [*waiting, *taken]:
            conversation = raw.decode() if isinstance(raw, bytes) else raw
            try:
                found.append(await self.case(conversation))
            except NotFound:  # expired unused: its place in the queue goes too
                await self.redis.zrem(WAITING_KEY, conversation)
                await self.redis.zrem(TAKEN_KEY, conversation)
        return found

    async def add_message(self, conversation: str, sender: str, text: str, at: float) -> int:
        """Keeps a message of the held conversation; its seq (1, 2, ...)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(messages_key(conversation), self._seal(json.dumps(
                {"from": sender, "text": text, "at": at}, ensure_ascii=False),
                messages_key(conversation)))
            pipe.expire(messages_key(conversation), self.ttl_s)
            length, _ = await pipe.execute()
        return int(length)

    async def messages(self, conversation: str, after: int = 0) -> list[dict[str, Any]]:
        """The kept messages after seq `after`, in order."""
        raw = await self.redis.lrange(messages_key(conversation), after, -1)
        return [{"seq": after + n, **json.loads(self._open(item, messages_key(conversation)))}
                for n, item in enumerate(raw, 1)]

    async def keep_for_rest(self, conversation: str, messages: list[dict[str, Any]]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(pending_key(conversation),
                       *(self._seal(json.dumps(m, ensure_ascii=False), pending_key(conversation))
                         for m in messages))
            pipe.expire(pending_key(conversation), self.ttl_s)
            await pipe.execute()

    def _seal(self, text: str, key: str) -> str:
        # Bound to its key: a value copied to another conversation's key does not open.
        return self.vault.encrypt(text, key)

    def _open(self, stored: str | bytes, key: str) -> str:
        text = stored.decode() if isinstance(stored, bytes) else stored
        # JSON in clear: written before sealing, gone within CASE_TTL_S.
        return text if text.startswith("{") else self.vault.decrypt(text, key)


async def forget(client: redis.asyncio.Redis, conversation: str) -> None:
    """Everything of the conversation's handoff gone, whoever holds it: the guardian had the
    conversation erased."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(case_key(conversation), agent_key(conversation),
                    messages_key(conversation), pending_key(conversation))
        pipe.zrem(WAITING_KEY, conversation)
        pipe.zrem(TAKEN_KEY, conversation)
        await pipe.execute()


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        body = asdict(value)
        body.pop("agent", None)
        body.pop("taken_at", None)
        return body
    raise TypeError(type(value).__name__)


# ---- the hook in every channel's turn ------------------------------------------------------

OnNewMessage = Callable[["UserMessage"], Awaitable[Any]]


@lru_cache(maxsize=1)
def _watched_class() -> type:
    # Rasa is imported here, not with the module: settings (in every process) use
    # StaffedHours, and the card service has no business loading Rasa.
    from rasa.core.channels.channel import OutputChannel

    class Watched(OutputChannel):
        """An output that remembers which of the QUEUED_RESPONSES went out in this turn."""

        def __init__(self, output: OutputChannel) -> None:
            self.output = output
            self.queued_by: str | None = None

        def name(self) -> str:  # type: ignore[override]
            return str(self.output.name())

        async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
            if message.get("utter_action") in QUEUED_RESPONSES:
                self.queued_by = str(message["utter_action"])
            await self.output.send_response(recipient_id, message)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.output, name)

    return Watched


def watched(output: OutputChannel) -> Any:
    """`output`, remembering in `queued_by` whether a person was promised in this turn."""
    return _watched_class()(output)


class Desk:
    """What this Rasa process does for handoffs: set by the handoff channel when it serves
    (`install`); until then every turn goes to Rasa as before."""

    def __init__(self, queue: Queue, tracker_events: Callable[[str], Awaitable[list[dict]]],
                 staffed: StaffedHours, clock: Callable[[], datetime] = now_utc) -> None:
        self.queue = queue
        self.tracker_events = tracker_events
        self.staffed = staffed
        self.clock = clock

    async def turn(self, on_new_message: OnNewMessage, message: UserMessage) -> None:
        conversation = message.sender_id
        # REST cannot be sent to: what an agent said waits for the guardian's next message.
        rest = message.input_channel == "rest"
        kept: list[dict[str, Any]] = []
        try:
            if rest:
                held_by, kept = await self.queue.holder_and_kept(conversation)
            else:
                held_by = await self.queue.holder(conversation)
        except redis.RedisError as error:  # the assistant answers rather than nobody
            log.warning("handoff: hold unknown (%s); the assistant answers",
                        type(error).__name__)
            held_by = None
        if held_by:
            await self.hold(message)
        for reply in kept:
            await message.output_channel.send_response(conversation, reply)
        if held_by:
            return
        seen = watched(message.output_channel)
        message.output_channel = seen
        await on_new_message(message)
        if seen.queued_by:
            try:
                await self.enqueue(conversation, message.input_channel or "",
                                   after_hours=seen.queued_by.endswith("after_hours"))
            except Exception:
                log.exception("handoff: a conversation not queued")

    async def hold(self, message: UserMessage) -> None:
        """The guardian's message kept for the agent (masked), not shown to Rasa."""
        conversation = message.sender_id
        known = personal_values(await self.tracker_events(conversation))
        await self.queue.add_message(conversation, GUARDIAN, masked(message.text or "", known),
                                     self.clock().timestamp())

    async def enqueue(self, conversation: str, channel: str, after_hours: bool) -> Case:
        events = await self.tracker_events(conversation)
        language = next((e.get("value") for e in reversed(events) if e.get("event") == "slot"
                         and e.get("name") == "language" and e.get("value")), None)
        last_intent = next((((e.get("parse_data") or {}).get("intent") or {}).get("name")
                            for e in reversed(events) if e.get("event") == "user"), None)
        case = Case(conversation=conversation, channel=channel, language=language or "zh",
                    queued_at=self.clock().timestamp(),
                    reason="asked" if last_intent == "request_human" else "failed_tries",
                    after_hours=after_hours, transcript=transcript(events))
        added = await self.queue.add(case)
        log.info("handoff: %s %s (%s, %s)", conversation,
                 "queued" if added else "already queued", case.reason, channel)
        return case


_desk: Desk | None = None


def install(desk: Desk | None) -> None:
    global _desk
    _desk = desk


def desk() -> Desk | None:
    return _desk


async def turn(on_new_message: OnNewMessage, message: UserMessage) -> None:
    """Every channel's way into Rasa for a user's message (`message.sender_id` already the
    conversation): kept for the agent while one holds the conversation, else Rasa's turn,
    after which the conversation is queued if the assistant said a person will come."""
    if _desk is None:
        await on_new_message(message)
        return
    await _desk.turn(on_new_message, message)


def observe_wait(seconds: float) -> None:
    """The waiting time to the metrics, when the metrics module is there."""
    try:
        from bot import metrics
    except ImportError:
        return
    observe = getattr(metrics, "observe_handoff_wait", None)
    if observe is not None:
        observe(seconds)
