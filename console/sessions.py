"""Login sessions: a random id in the cookie, its SHA-256 as the Redis key (a leaked Redis
dump opens no session), a CSRF token per session checked on every POST.

Keys: session:<sha256 of id> (hash: user, csrf, created), expiring IDLE_SECONDS after
the last request; a session also ends ABSOLUTE_SECONDS after its login. A visitor who has not
logged in gets a session with no user, so the login form has its CSRF token too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from bot.redis import CONSOLE as PREFIX
from console.lockout import Clock

COOKIE = "console_session"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 3600
ANONYMOUS_SECONDS = 15 * 60


@dataclass(frozen=True)
class Session:
    id: str
    user: str  # "" before login
    csrf: str
    created: float

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(str(presented).encode(),
                                                       self.csrf.encode())


class Sessions:
    def __init__(self, client: aioredis.Redis, clock: Clock = time.time):
        self.redis, self.clock = client, clock

    @staticmethod
    def key(session_id: str) -> str:
        return f"{PREFIX}session:{hashlib.sha256(session_id.encode()).hexdigest()}"

    async def start(self, user: str = "") -> Session:
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32),
                          self.clock())
        await self.redis.hset(self.key(session.id), mapping={
            "user": user, "csrf": session.csrf, "created": repr(session.created)})
        await self.redis.expire(self.key(session.id),
                                IDLE_SECONDS if user else ANONYMOUS_SECONDS)
        return session

    async def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 100:
            return None
        raw = await self.redis.hgetall(self.key(session_id))
        if not raw:
            return None
        session = Session(session_id, raw[b"user"].decode(), raw[b"csrf"].decode(),
                          float(raw[b"created"]))
        if session.user and self.clock() - session.created > ABSOLUTE_SECONDS:
            await self.end(session_id)
            return None
        if session.user:
            await self.redis.expire(self.key(session_id), IDLE_SECONDS)
        return session

    async def login(self, old: Session | None, user: str) -> Session:
        """A new id at login: an id planted before it (session fixation) opens nothing."""
        if old is not None:
            await self.end(old.id)
        return await self.start(user)

    async def end(self, session_id: str) -> None:
        await self.redis.delete(self.key(session_id))
