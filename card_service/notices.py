"""The notice ledger: what each notice to a guardian went through, attempt by attempt.

A notice ("card ready", the lapse reminder) is delivered when a path reports that a person
can see it (bot/notices.py lists the outcomes). The outbox tries the paths of the
conversation's channel in order, then SMS if the guardian agreed to it; this module plans
the paths and keeps the record.

Keys (prefix `cardsvc:`):
  notice:<id>            hash: reference, kind, channel, paths (JSON), step (the path being
                         tried), tries (on it), state, created_at, queued_since,
                         delivered_at, delivered_path
  notice:<id>:attempts   list: JSON {at, path, outcome, code, detail} per attempt
  notices:<ref>          list: the report's notice ids, oldest first
No personal data: the conversation and the rendered text stay in the outbox's payload,
which erasure removes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from bot.redis import CARD_SERVICE as PREFIX
from bot.rules import identity, regions

# The paths each channel offers, first tried first; the channels declare the same in
# NOTICE_PATHS (a test holds the two together). REST has no way to reach a person.
CHANNEL_PATHS: dict[str, tuple[str, ...]] = {
    "webchat": ("page",),
    "wechat": ("customer_service", "subscription", "template"),
    "whatsapp": ("session", "template"),
    "facebook": ("standard", "utility"),
    "telegram": ("message",),
    "rest": (),
}
SMS = "sms"
CARD_READY, LAPSE_REMINDER = "card_ready", "lapse_reminder"
INTENTS = {CARD_READY: "EXTERNAL_card_ready", LAPSE_REMINDER: "EXTERNAL_lapse_reminder"}
PENDING, QUEUED, DELIVERED, UNDELIVERABLE = "pending", "queued", "delivered", "undeliverable"


def channel_of(conversation: str) -> str:
    """The channel a conversation belongs to, by its name (`<channel>:<user>`); a name
    without a known channel is REST's.

    >>> channel_of("wechat:oAbc"), channel_of("guardian-7"), channel_of("odd:x")
    ('wechat', 'rest', 'rest')
    """
    channel, sep, _ = conversation.partition(":")
    return channel if sep and channel in CHANNEL_PATHS else "rest"


def plan(conversation: str, sms_consent: bool, channel: str | None = None) -> list[str]:
    """Every path to try, in order; `channel` where the name does not say it (a conversation
    named before names carried their channel: the one it last came in by).

    >>> plan("whatsapp:u1f", True)
    ['session', 'template', 'sms']
    >>> plan("guardian-7", False), plan("7561618097", False, "telegram")
    ([], ['message'])
    """
    return [*CHANNEL_PATHS[channel or channel_of(conversation)],
            *([SMS] if sms_consent else [])]


def after_channel(paths: list[str], step: int) -> int:
    """The step after `step` that is past the channel's own paths (for `unreachable`).

    >>> after_channel(["customer_service", "subscription", "template", "sms"], 0)
    3
    >>> after_channel(["session", "sms"], 1)  # SMS itself: nothing after it
    2
    """
    step += 1
    while step < len(paths) and paths[step] != SMS:
        step += 1
    return step


def variables(reference: str, record: dict[str, str], language: str,
              ready_on: dt.date) -> dict[str, str]:
    """What template paths (SMS, WeChat templates, WhatsApp content) fill in."""
    region = regions.all_regions().get(record.get("region", ""), regions.default())
    zh = language == "zh"
    return {"reference": reference,
            "city": (region.name_zh if zh else region.name_en) if region.known else "",
            "lapses_on": record.get("valid_until", ""),
            "ready_on": ready_on.isoformat(),
            "place": region.bank_zh if zh else region.bank_en,
            "written_report_place": region.written_report_zh if zh else region.written_report_en}


@dataclass
class Entry:
    id: str
    reference: str
    kind: str
    channel: str
    paths: list[str]
    step: int
    tries: int
    state: str
    created_at: str
    queued_since: str = ""
    delivered_at: str = ""
    delivered_path: str = ""

    @classmethod
    def from_hash(cls, notice_id: str, raw: dict[str, str]) -> Entry:
        return cls(id=notice_id, reference=raw["reference"], kind=raw["kind"],
                   channel=raw["channel"], paths=json.loads(raw["paths"]),
                   step=int(raw["step"]), tries=int(raw["tries"]), state=raw["state"],
                   created_at=raw["created_at"], queued_since=raw.get("queued_since", ""),
                   delivered_at=raw.get("delivered_at", ""),
                   delivered_path=raw.get("delivered_path", ""))

    @property
    def path(self) -> str | None:
        return self.paths[self.step] if self.step < len(self.paths) else None

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "channel": self.channel,
                "paths": self.paths, "path": self.path, "state": self.state,
                "created_at": self.created_at, "delivered_at": self.delivered_at or None,
                "delivered_path": self.delivered_path or None}


class Ledger:
    def __init__(self, client: aioredis.Redis):
        self.redis = client

    @staticmethod
    def key(notice_id: str) -> str:
        return f"{PREFIX}notice:{notice_id}"

    async def get(self, notice_id: str) -> Entry | None:
        raw = await self.redis.hgetall(self.key(notice_id))
        if not raw:
            return None
        return Entry.from_hash(notice_id, {_text(k): _text(v) for k, v in raw.items()})

    async def open(self, notice_id: str, reference: str, kind: str, channel: str,
                   paths: list[str], at: str) -> Entry:
        """The notice's entry, created once (a second call, after a crash, finds it)."""
        fields = {"reference": reference, "kind": kind, "channel": channel,
                  "paths": json.dumps(paths), "step": "0", "tries": "0", "state": PENDING,
                  "created_at": at}
        key = self.key(notice_id)
        if await self.redis.hsetnx(key, "reference", reference):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=fields)
                pipe.rpush(f"{PREFIX}notices:{reference}", notice_id)
                await pipe.execute()
        found = await self.get(notice_id)
        assert found is not None
        return found

    async def replan(self, entry: Entry, channel: str, paths: list[str]) -> None:
        entry.channel, entry.paths = channel, paths
        await self.redis.hset(self.key(entry.id), mapping={"channel": channel,
                                                           "paths": json.dumps(paths)})

    async def attempt(self, entry: Entry, path: str, outcome: str, at: str, code: str = "",
                      detail: str = "") -> None:
        # A provider's error text may quote the number or the user it was for.
        line = json.dumps({"at": at, "path": path, "outcome": outcome, "code": code[:40],
                           "detail": identity.masked_numbers(detail[:200])}, ensure_ascii=False)
        await self.redis.rpush(self.key(entry.id) + ":attempts", line)

    async def save(self, entry: Entry) -> None:
        await self.redis.hset(self.key(entry.id), mapping={
            "step": str(entry.step), "tries": str(entry.tries), "state": entry.state,
            "queued_since": entry.queued_since, "delivered_at": entry.delivered_at,
            "delivered_path": entry.delivered_path})

    async def attempts(self, notice_id: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in
                await self.redis.lrange(self.key(notice_id) + ":attempts", 0, -1)]

    async def of_report(self, reference: str) -> list[dict[str, Any]]:
        """The report's notices, each with its attempts: what staff see."""
        out = []
        for raw in await self.redis.lrange(f"{PREFIX}notices:{reference}", 0, -1):
            notice_id = _text(raw)
            entry = await self.get(notice_id)
            if entry is not None:
                out.append({**entry.summary(), "attempts": await self.attempts(notice_id)})
        return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
