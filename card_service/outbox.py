"""Delivers notices to guardians, and "forget" to conversations, from the Redis outbox.

A notice ("card ready", the lapse reminder) is first rendered by the conversation itself
(Rasa's trigger_intent without an output channel: the dialogue says it, in the guardian's
language, and remembers it), then taken down its paths (notices.plan) until one reports
that a person can see it. Every attempt goes into the ledger (card_service/notices.py).
"Forget" (retention ran out) is handed to Rasa as before: a 2xx is the end of it.

Nothing leaves the outbox before its outcome is written: a failure, or a crash mid-delivery
(the lease runs out), puts it back with a capped exponential backoff, on the service's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt
import redis

from bot import notices as outcomes
from card_service import metrics, notices
from card_service.store import FORGET_INTENT, PREFIX, Clock, Store, _ms, iso, parse_iso

log = logging.getLogger("card_service.outbox")

INTENT = notices.INTENTS[notices.CARD_READY]
POLL_SECONDS = 0.5
TIMEOUT_SECONDS = 10.0
TOKEN_SECONDS = 60
LEASE_MS = 30_000
# Tries of one path that keeps answering `retry` before the next path is tried.
TRIES_PER_PATH = 8
# A notice kept for a page (queued) is asked about this often (the page's return is known
# to the channel; asking is one call), so the ledger says "delivered" soon after...
QUEUE_CHECK_MS = 10 * 60 * 1000
# ...and given up on after this long when no path is left (the page's unread messages
# expire then too).
GIVE_UP_DAYS = 30


class Retry(Exception):
    """Rendering failed; the notice waits and comes back."""


class Outbox:
    def __init__(self, store: Store, clock: Clock, rasa_url: str, jwt_secret: str,
                 max_delay: float = 60.0, *, vault: Any = None, sms: Any = None,
                 queue_wait_hours: float = 24.0):
        self.store = store
        self.ledger = notices.Ledger(store.redis) if store is not None else None
        self.clock = clock
        self.rasa_url = rasa_url.rstrip("/")
        self.jwt_secret = jwt_secret
        self.max_delay = max_delay
        self.vault = vault
        self.sms = sms  # card_service.sms.AliyunSms, or None: SMS is off
        self.queue_wait_ms = int(queue_wait_hours * 3600 * 1000)
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

    def now_ms(self) -> int:
        return _ms(self.clock.now())

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
        due = await self.store.claim_due(self.now_ms(), LEASE_MS, limit=20)
        for outbox_id in due:
            await self.deliver(session, outbox_id)
        return len(due)

    async def deliver(self, session: aiohttp.ClientSession, outbox_id: str) -> None:
        payload = await self.store.payload(outbox_id)
        if payload is None:  # already done by another worker
            await self.store.redis.zrem(PREFIX + "outbox", outbox_id)
            return
        if payload.get("intent") == FORGET_INTENT:
            await self.forget(session, outbox_id, payload)
        else:
            await self.notify(session, outbox_id, payload)

    async def forget(self, session: aiohttp.ClientSession, outbox_id: str,
                     payload: dict[str, Any]) -> None:
        reference, conversation = payload["reference"], payload["conversation_id"]
        url = (f"{self.rasa_url}/conversations/{quote(conversation, safe='')}/trigger_intent"
               "?output_channel=latest")
        problem = ""
        try:
            async with session.post(url, json={"name": FORGET_INTENT},
                                    headers=self.authorization(conversation)) as response:
                if 200 <= response.status < 300:
                    await self.store.delivered(outbox_id, reference, self.clock.now(),
                                               notice=False)
                    log.info("outbox: %s forget delivered to Rasa", reference)
                    return
                problem = f"HTTP {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            problem = type(error).__name__
        attempts = await self.store.retry_later(outbox_id, self.delay, self.now_ms())
        log.warning("outbox: %s forget not delivered (%s), attempt %d; will retry",
                    reference, problem, attempts)

    # Notices: render once, then path by path.
    async def notify(self, session: aiohttp.ClientSession, outbox_id: str,
                     payload: dict[str, Any]) -> None:
        assert self.ledger is not None
        reference, conversation = payload["reference"], payload["conversation_id"]
        kind = payload.get("kind") or notices.CARD_READY
        now = self.clock.now()
        # Read once per attempt: the plan, the rendering and every path use the same record.
        found = await self.store.get(reference)
        record = found[0] if found else {}
        entry = await self.ledger.get(outbox_id)
        if entry is None:
            consent = record.get("sms_consent") == "yes" and self.sms is not None
            entry = await self.ledger.open(outbox_id, reference, kind,
                                           notices.channel_of(conversation),
                                           notices.plan(conversation, consent), iso(now))
        if "messages" not in payload:
            try:
                payload.update(await self.render(session, conversation, reference, kind,
                                                 record))
            except Retry as problem:
                await self.ledger.attempt(entry, "render", outcomes.RETRY, iso(now),
                                          detail=str(problem))
                metrics.notice_attempt("render", outcomes.RETRY)
                attempts = await self.store.retry_later(outbox_id, self.delay, self.now_ms())
                log.warning("outbox: %s %s not rendered (%s), attempt %d; will retry",
                            reference, kind, problem, attempts)
                return
            await self.store.save_payload(outbox_id, payload)
            came_by = payload.get("channel") or ""
            if (entry.channel == "rest" and came_by in notices.CHANNEL_PATHS
                    and came_by != "rest" and ":" not in conversation):
                await self.ledger.replan(entry, came_by, notices.plan(
                    conversation, notices.SMS in entry.paths, came_by))
        path = entry.path
        if path is None:
            await self.give_up(outbox_id, entry, "no path reaches this guardian")
            return
        keep = (entry.step == len(entry.paths) - 1 or (
            entry.queued_since != ""
            and self.now_ms() - _ms(parse_iso(entry.queued_since)) < self.queue_wait_ms))
        if path == notices.SMS:
            outcome = await self.text(reference, kind, payload, record)
        else:
            outcome = await self.try_path(session, entry, path, conversation, payload, keep,
                                          record)
        await self.ledger.attempt(entry, path, outcome.outcome, iso(now), outcome.code,
                                  outcome.detail)
        metrics.notice_attempt(path, outcome.outcome)
        await self.act(outbox_id, entry, path, outcome, now)

    async def render(self, session: aiohttp.ClientSession, conversation: str,
                     reference: str, kind: str, record: dict[str, str]) -> dict[str, Any]:
        """What the conversation says for this notice (Rasa's collecting output), and the
        guardian's language."""
        url = f"{self.rasa_url}/conversations/{quote(conversation, safe='')}/trigger_intent"
        entities = {"reference_number": reference}
        if kind == notices.LAPSE_REMINDER:
            entities["valid_until"] = record.get("valid_until", "")
        body = {"name": notices.INTENTS[kind], "entities": entities}
        try:
            async with session.post(url, json=body,
                                    headers=self.authorization(conversation)) as response:
                if not 200 <= response.status < 300:
                    raise Retry(f"HTTP {response.status}")
                answer = await response.json(content_type=None) or {}
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as error:
            raise Retry(type(error).__name__) from error
        tracker = answer.get("tracker") or {}
        slots = tracker.get("slots") or {}
        return {"messages": answer.get("messages") or [],
                "language": slots.get("language") or "zh",
                "channel": tracker.get("latest_input_channel") or ""}

    async def try_path(self, session: aiohttp.ClientSession, entry: notices.Entry, path: str,
                       conversation: str, payload: dict[str, Any], keep: bool,
                       record: dict[str, str]) -> outcomes.Outcome:
        language = payload.get("language") or "zh"
        body = {"id": entry.id, "conversation": conversation, "path": path,
                "kind": entry.kind, "language": language, "last": keep,
                "messages": payload.get("messages") or [],
                "variables": notices.variables(entry.reference, record, language,
                                               self.clock.today())}
        url = f"{self.rasa_url}/webhooks/{entry.channel}/notice"
        token = outcomes.token_for(conversation, self.jwt_secret, TOKEN_SECONDS)
        try:
            async with session.post(url, json=body,
                                    headers={"Authorization": "Bearer " + token}) as response:
                if response.status != 200:
                    return outcomes.Outcome(outcomes.RETRY, detail=f"HTTP {response.status}")
                answer = await response.json(content_type=None)
            return outcomes.Outcome(answer["outcome"], str(answer.get("code") or ""),
                                    str(answer.get("detail") or ""), answer.get("retry_after"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError, KeyError,
                TypeError) as error:
            return outcomes.Outcome(outcomes.RETRY, detail=type(error).__name__)

    async def text(self, reference: str, kind: str, payload: dict[str, Any],
                   record: dict[str, str]) -> outcomes.Outcome:
        """The SMS path: the phone number is opened here, at send time, and nowhere else."""
        if self.sms is None or "phone" not in record or self.vault is None:
            return outcomes.Outcome(outcomes.FALLBACK, detail="no SMS or no phone number")
        try:
            phone = self.vault.decrypt(record["phone"], f"{reference}:phone")
        except ValueError:
            return outcomes.Outcome(outcomes.FALLBACK, detail="phone number unreadable")
        language = payload.get("language") or "zh"
        result: outcomes.Outcome = await self.sms.send(
            phone, kind, notices.variables(reference, record, language, self.clock.today()),
            out_id=f"{reference}:{kind}")
        return result

    async def act(self, outbox_id: str, entry: notices.Entry, path: str,
                  outcome: outcomes.Outcome, now: Any) -> None:
        reference = entry.reference
        if outcome.outcome == outcomes.SEEN:
            entry.state, entry.delivered_at, entry.delivered_path = (
                notices.DELIVERED, iso(now), path)
            await self.ledger.save(entry)  # type: ignore[union-attr]
            await self.store.delivered(outbox_id, reference, now, path=path)
            metrics.notice_settled(entry.kind, notices.DELIVERED, path)
            log.info("outbox: %s %s delivered by %s", reference, entry.kind, path)
            return
        if outcome.outcome == outcomes.QUEUED:
            if not entry.queued_since:
                entry.queued_since = iso(now)
            entry.state = notices.QUEUED
            if self.now_ms() - _ms(parse_iso(entry.created_at)) > GIVE_UP_DAYS * 86_400_000:
                await self.give_up(outbox_id, entry, "kept, never fetched")
                return
            await self.ledger.save(entry)  # type: ignore[union-attr]
            await self.store.due_at(outbox_id, self.now_ms() + QUEUE_CHECK_MS)
            return
        if outcome.outcome == outcomes.RETRY and entry.tries + 1 < TRIES_PER_PATH:
            entry.tries += 1
            await self.ledger.save(entry)  # type: ignore[union-attr]
            wait = outcome.retry_after if outcome.retry_after else self.delay(entry.tries)
            await self.store.due_at(outbox_id, self.now_ms() + int(float(wait) * 1000))
            log.warning("outbox: %s %s on %s: retry (%s %s)", reference, entry.kind, path,
                        outcome.code, outcome.detail)
            return
        # fallback, unreachable, or a path that kept failing: the next one, now.
        entry.step = (notices.after_channel(entry.paths, entry.step)
                      if outcome.outcome == outcomes.UNREACHABLE else entry.step + 1)
        entry.tries, entry.queued_since, entry.state = 0, "", notices.PENDING
        log.info("outbox: %s %s: %s on %s (%s); next: %s", reference, entry.kind,
                 outcome.outcome, path, outcome.code, entry.path or "none")
        if entry.path is None:
            await self.give_up(outbox_id, entry, f"last path {path}: {outcome.outcome}")
            return
        await self.ledger.save(entry)  # type: ignore[union-attr]
        await self.store.due_at(outbox_id, self.now_ms())

    async def give_up(self, outbox_id: str, entry: notices.Entry, why: str) -> None:
        entry.state = notices.UNDELIVERABLE
        await self.ledger.save(entry)  # type: ignore[union-attr]
        await self.store.settled(outbox_id)
        metrics.notice_settled(entry.kind, notices.UNDELIVERABLE)
        log.warning("outbox: %s %s undeliverable (%s)", entry.reference, entry.kind, why)

