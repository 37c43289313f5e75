"""Delivers "card ready" to Rasa (trigger_intent) from the Redis outbox until Rasa takes it;
and "forget", once a report's retention has run out (the conversation deletes its record).

A notification leaves the outbox only after a 2xx; a failure, or a crash mid-delivery
(the lease runs out), puts it back with a capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from urllib.parse import quote

import aiohttp
import jwt
import redis

from card_service.store import FORGET_INTENT, PREFIX, Clock, Store

log = logging.getLogger("card_service.outbox")

INTENT = "EXTERNAL_card_ready"
POLL_SECONDS = 0.5
TIMEOUT_SECONDS = 10.0
TOKEN_SECONDS = 60
LEASE_MS = 30_000


class Outbox:
    def __init__(self, store: Store, clock: Clock, rasa_url: str, jwt_secret: str,
                 max_delay: float = 60.0):
        self.store = store
        self.clock = clock
        self.rasa_url = rasa_url.rstrip("/")
        self.jwt_secret = jwt_secret
        self.max_delay = max_delay
        self._stopping = asyncio.Event()

    def authorization(self, conversation: str) -> dict[str, str]:
        """The narrowest credential Rasa's API knows: a token for this one conversation (the
        `user` role), good for a minute, in a header (URLs end up in logs)."""
        claims = {"user": {"username": conversation, "role": "user"},
                  "exp": int(time.time()) + TOKEN_SECONDS}
        return {"Authorization": "Bearer " + jwt.encode(claims, self.jwt_secret, "HS256")}

    def stop(self) -> None:
        """Finish the delivery in hand, then return from `run` (no cancellation needed)."""
        self._stopping.set()

    def delay(self, attempts: int) -> float:
        """1, 2, 4 ... seconds, capped, with a little jitter so retries do not march together."""
        base = min(self.max_delay, 2.0 ** max(0, attempts - 1))
        return base * random.uniform(0.8, 1.0)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stopping.is_set():
                try:
                    delivered = await self.run_once(session)
                except (redis.RedisError, OSError) as error:
                    log.warning("outbox: redis unavailable (%s); retrying", type(error).__name__)
                    delivered = 0
                if not delivered:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), POLL_SECONDS)

    async def run_once(self, session: aiohttp.ClientSession) -> int:
        now_ms = int(time.time() * 1000)
        due = await self.store.claim_due(now_ms, LEASE_MS, limit=20)
        for outbox_id in due:
            await self.deliver(session, outbox_id)
        return len(due)

    async def deliver(self, session: aiohttp.ClientSession, outbox_id: str) -> None:
        payload = await self.store.payload(outbox_id)
        if payload is None:  # already delivered by another worker
            await self.store.redis.zrem(PREFIX + "outbox", outbox_id)
            return
        reference, conversation = payload["reference"], payload["conversation_id"]
        url = (f"{self.rasa_url}/conversations/{quote(conversation, safe='')}/trigger_intent"
               "?output_channel=latest")
        intent = payload.get("intent") or INTENT
        body = ({"name": intent} if intent == FORGET_INTENT else
                {"name": intent, "entities": {"reference_number": reference}})
        problem = ""
        try:
            async with session.post(url, json=body,
                                    headers=self.authorization(conversation)) as response:
                if 200 <= response.status < 300:
                    await self.store.delivered(outbox_id, reference, self.clock.now(),
                                               notice=intent != FORGET_INTENT)
                    log.info("outbox: %s %s delivered to Rasa", reference, intent)
                    return
                problem = f"HTTP {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            problem = type(error).__name__
        attempts = await self.store.retry_later(outbox_id, self.delay, int(time.time() * 1000))
        log.warning("outbox: %s not delivered (%s), attempt %d; will retry",
                    reference, problem, attempts)
