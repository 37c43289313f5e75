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

from bot.rasa import tracker_store
from bot.rasa.tracker_store import RedisTrackerStore
from bot.settings import ROOT

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


def turn(start: float, text: str) -> list[Event]:
    return [UserUttered(text, {"name": "inform", "confidence": 0.9}, timestamp=start,
                        parse_data={"entities": [], "text": text}),
            SlotSet("child_name", text, timestamp=start + 0.1),
            ActionExecuted("utter_ask_city", timestamp=start + 0.2),
            ActionExecuted("action_listen", timestamp=start + 0.3)]


def test_a_turn_saves_its_new_events_after_what_it_read(redis_url: str, monkeypatch) -> None:
    """The short save writes the very text the full one would, and is the one taken."""
    ours, rasas, client = stores(redis_url)
    full_saves = []
    merged = RedisTrackerStore._merged
    monkeypatch.setattr(RedisTrackerStore, "_merged", staticmethod(
        lambda tracker, stored: full_saves.append(tracker.sender_id) or merged(tracker, stored)))

    async def conversation() -> None:
        for store in (ours, rasas):
            await store.save(DialogueStateTracker.from_events("g3", session(1000.0, "hi")))
            for number in range(4):
                tracker = await store.retrieve("g3")
                assert tracker is not None
                tracker.update_with_events(turn(1100.0 + number, f"小明{number} </script>"),
                                           DOMAIN, override_timestamp=False)
                await store.save(tracker)
            # A turn that adds nothing still saves (the expiry is renewed).
            tracker = await store.retrieve("g3")
            assert tracker is not None
            await store.save(tracker)

    asyncio.run(conversation())
    assert full_saves == ["g3"]  # only the first save, which had read nothing
    text = client.get("ours:tracker:g3")
    assert stored_events(client, "ours:tracker:g3") == stored_events(client, "rasas:tracker:g3")
    whole = asyncio.run(ours.retrieve_full_tracker("g3"))
    assert whole is not None and len(whole.events) == 7 + 4 * 4
    assert text == merged(whole, None)


def test_a_save_after_someone_else_wrote_keeps_both(redis_url: str) -> None:
    ours, _, client = stores(redis_url)

    async def conversation() -> DialogueStateTracker | None:
        await ours.save(DialogueStateTracker.from_events("g4", session(1000.0, "hi")))
        tracker = await ours.retrieve("g4")
        assert tracker is not None
        # Another writer between this process's read and its save.
        other = RedisTrackerStore(DOMAIN, host="127.0.0.1",
                                  port=client.connection_pool.connection_kwargs["port"],
                                  key_prefix="ours", record_exp=60)
        theirs = await other.retrieve("g4")
        assert theirs is not None
        theirs.update(UserUttered("theirs", timestamp=1200.0))
        await other.save(theirs)
        tracker.update(UserUttered("mine", timestamp=1300.0))
        await ours.save(tracker)
        # A tracker built anew (not the one a read handed out) is merged too.
        rebuilt = DialogueStateTracker.from_events(
            "g4", [*session(1000.0, "hi"), UserUttered("rebuilt", timestamp=1400.0)])
        await ours.save(rebuilt)
        return await ours.retrieve_full_tracker("g4")

    whole = asyncio.run(conversation())
    assert whole is not None
    texts = [event.text for event in whole.events if isinstance(event, UserUttered)]
    assert texts == ["hi", "theirs", "mine", "rebuilt"]


def test_remembers_a_bounded_number_of_reads(redis_url: str) -> None:
    ours, _, _ = stores(redis_url)

    async def many() -> None:
        for number in range(tracker_store.REMEMBERED_READS + 10):
            sender = f"bounded-{number}"
            await ours.save(DialogueStateTracker.from_events(sender, session(1000.0, "hi")))
            assert await ours.retrieve(sender) is not None

    asyncio.run(many())
    assert len(ours._reads) == tracker_store.REMEMBERED_READS
    assert "bounded-0" not in ours._reads
