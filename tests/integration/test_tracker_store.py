"""Our Redis tracker store keeps exactly what Rasa's own keeps, on a real Redis."""

from __future__ import annotations

import asyncio
import json

import redis
from rasa.core.tracker_store import RedisTrackerStore as RasaRedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot.config import ROOT
from bot.tracker_store import RedisTrackerStore

DOMAIN = Domain.load(str(ROOT / "domain.yml"))


def session(start: float, text: str) -> list[Event]:
    return [
        ActionExecuted("action_session_start", timestamp=start),
        SessionStarted(timestamp=start + 0.1),
        ActionExecuted("action_listen", timestamp=start + 0.2),
        UserUttered(text, {"name": "greet", "confidence": 0.99}, timestamp=start + 0.3,
                    parse_data={"entities": [], "text": text}),
        SlotSet("language", "zh", timestamp=start + 0.4),
        ActiveLoop("loss_report_form", timestamp=start + 0.5),
        SlotSet("city", "北京", timestamp=start + 0.6),
    ]


def stores(redis_url: str) -> tuple[RedisTrackerStore, RasaRedisTrackerStore, redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    port = client.connection_pool.connection_kwargs["port"]
    ours = RedisTrackerStore(DOMAIN, host="127.0.0.1", port=port, key_prefix="ours",
                             record_exp=60)
    rasas = RasaRedisTrackerStore(DOMAIN, host="127.0.0.1", port=port, key_prefix="rasas",
                                  record_exp=60)
    return ours, rasas, client


def stored_events(client: redis.Redis, key: str) -> list[dict]:
    return list(json.loads(client.get(key))["events"])


def test_saves_what_rasas_store_saves_through_sessions(redis_url: str) -> None:
    ours, rasas, client = stores(redis_url)

    async def conversation() -> None:
        for store in (ours, rasas):
            tracker = DialogueStateTracker.from_events("guardian", session(1000.0, "hi"))
            await store.save(tracker)
            # The same turn saved twice (a retried save) doubles nothing.
            await store.save(tracker)
            # A new session: what retrieve hands out is the latest session only, and the
            # saved conversation must still hold the first one in front.
            tracker.update_with_events(session(2000.0, "你好"), DOMAIN, override_timestamp=False)
            await store.save(tracker)
            latest = await store.retrieve("guardian")
            assert latest is not None
            latest.update(UserUttered("again", timestamp=3000.0))
            await store.save(latest)

    asyncio.run(conversation())
    ours_events = stored_events(client, "ours:tracker:guardian")
    assert ours_events == stored_events(client, "rasas:tracker:guardian")
    assert [e["event"] for e in ours_events].count("session_started") == 2
    assert ours_events[-1]["text"] == "again"
    assert 0 < client.ttl("ours:tracker:guardian") <= 60


def test_retrieves_what_it_saved(redis_url: str) -> None:
    ours, _, _ = stores(redis_url)

    async def round_trip() -> DialogueStateTracker | None:
        await ours.save(DialogueStateTracker.from_events("g2", session(1000.0, "hello")))
        return await ours.retrieve_full_tracker("g2")

    tracker = asyncio.run(round_trip())
    assert tracker is not None
    assert tracker.get_slot("language") == "zh"
    assert tracker.active_loop_name == "loss_report_form"
    assert tracker.latest_message is not None and tracker.latest_message.text == "hello"
