"""The Redis store's scripts directly: reference collisions and the outbox lease."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import redis.asyncio as aioredis

from card_service.store import Store

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.timezone.utc)
FIELDS = {"status": "reported_temporary", "valid_until": "2026-12-05"}


def test_a_taken_reference_is_never_overwritten(redis_url: str) -> None:
    async def scenario() -> None:
        store = Store(aioredis.Redis.from_url(redis_url))
        first = await store.create("key-1", "f1", "SC-AAAA-AAAA", FIELDS, NOW)
        clash = await store.create("key-2", "f2", "SC-AAAA-AAAA", {**FIELDS, "status": "x"}, NOW)
        replay = await store.create("key-1", "f1", "SC-BBBB-BBBB", FIELDS, NOW)
        mismatch = await store.create("key-1", "other", "SC-CCCC-CCCC", FIELDS, NOW)
        assert first is not None and first.outcome == "created"
        assert clash is None
        assert replay is not None and (replay.outcome, replay.reference) == ("existing",
                                                                             "SC-AAAA-AAAA")
        assert mismatch is not None and mismatch.outcome == "mismatch"
        found = await store.get("SC-AAAA-AAAA")
        assert found is not None and found[0]["status"] == "reported_temporary"
        assert await store.get("SC-BBBB-BBBB") is None
        await store.redis.close()

    asyncio.run(scenario())


def test_a_claimed_notification_comes_back_after_its_lease(redis_url: str) -> None:
    async def scenario() -> None:
        store = Store(aioredis.Redis.from_url(redis_url))
        await store.redis.zadd("cardsvc:outbox", {"SC-AAAA-AAAA:ready_for_collection": 1000})
        assert await store.claim_due(2000, 500, 10) == ["SC-AAAA-AAAA:ready_for_collection"]
        assert await store.claim_due(2400, 500, 10) == []  # leased: a crash here loses nothing
        assert await store.claim_due(2500, 500, 10) == ["SC-AAAA-AAAA:ready_for_collection"]
        await store.redis.close()

    asyncio.run(scenario())
