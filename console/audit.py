"""The audit log: who saw or did what to which report, and which fields of a person's data.

Key: audit, a list of JSON entries, oldest first. It holds references and field names,
never the values (the log itself must not become a copy of the data it guards).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as aioredis

from bot.redis import CONSOLE as PREFIX

KEY = f"{PREFIX}audit"
# Fields of a report page that are a person's data (masked or whole), as the log names them.
REPORT_FIELDS = ("child.id_number_masked", "guardian.id_number_masked",
                 "guardian.phone_masked", "guardian.relationship", "city")
REVEALED_PHONE = "guardian.phone"


@dataclass(frozen=True)
class Entry:
    at: str
    user: str
    role: str
    action: str  # view, reveal, status, search, login, login_failed, locked, account,
    # handoff_take, handoff_reply, handoff_hand_back, handoff_close (reference: the conversation)
    reference: str = ""
    fields: list[str] = field(default_factory=list)
    detail: str = ""

    @classmethod
    def from_json(cls, text: str | bytes) -> Entry:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


class AuditLog:
    def __init__(self, client: aioredis.Redis):
        self.redis = client

    async def record(self, when: dt.datetime, user: str, role: str, action: str,
                     reference: str = "", fields: list[str] | tuple[str, ...] = (),
                     detail: str = "") -> Entry:
        entry = Entry(when.astimezone(dt.timezone.utc).isoformat(timespec="seconds"), user,
                      role, action, reference, list(fields), detail[:200])
        await self.redis.rpush(KEY, json.dumps(asdict(entry), ensure_ascii=False))
        return entry

    async def latest(self, count: int = 200, user: str = "", reference: str = "") -> list[Entry]:
        """Newest first; filtered by user and reference over the last 5000 entries."""
        raw = await self.redis.lrange(KEY, -5000, -1)
        entries = [Entry.from_json(item) for item in reversed(raw)]
        return [e for e in entries if (not user or e.user == user)
                and (not reference or e.reference == reference)][:count]
