"""Our Redis tracker store keeps exactly what Rasa's own keeps, on a real Redis."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
from rasa.core.tracker_store import RedisTrackerStore as RasaRedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot.crypto import Vault
from bot.rasa import tracker_store
from bot.rasa.tracker_store import RedisTrackerStore
from bot.settings import ROOT, settings

DOMAIN = Domain.load(str(ROOT / "domain.yml"))
KEY = "tracker-test-key-0123456789"


@pytest.fixture(autouse=True)
def encryption_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_ENCRYPTION_KEY", KEY)
    monkeypatch.delenv("DATA_ENCRYPTION_KEYS_RETIRED", raising=False)
    settings.cache_clear()


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


def opened(client: redis.Redis, key: str) -> str:
    """A record as stored: sealed by ours (opened here with the test key), in clear by Rasa's."""
    raw = client.get(key)
    if raw.startswith("{"):
        return str(raw)
    sender = key.split(":tracker:", 1)[1]
    return Vault(KEY).decrypt(raw, f"tracker:{sender}")


def stored_events(client: redis.Redis, key: str) -> list[dict]:
    return list(json.loads(opened(client, key))["events"])


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
        lambda tracker, stored, closed: full_saves.append(tracker.sender_id)
        or merged(tracker, stored, closed)))

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
    text = opened(client, "ours:tracker:g3")
    assert stored_events(client, "ours:tracker:g3") == stored_events(client, "rasas:tracker:g3")
    whole = asyncio.run(ours.retrieve_full_tracker("g3"))
    assert whole is not None and len(whole.events) == 7 + 4 * 4
    assert text == merged(whole, None, False)


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


# ---- personal data at rest -------------------------------------------------------------------

CHILD_ID, GUARDIAN_ID, PHONE = "110105201501010013", "11010519860512031X", "13912345678"


def form_turns(start: float) -> list[Event]:
    """A report given in one message, its summary, then filed (the personal slots cleared)."""
    typed = f"孩子李娜，身份证 {CHILD_ID[:6]} {CHILD_ID[6:]}，我是妈妈王芳 {GUARDIAN_ID}，手机{PHONE}"
    entities = [{"entity": "id_number", "value": CHILD_ID, "start": 8, "end": 27,
                 "text": f"{CHILD_ID[:6]} {CHILD_ID[6:]}"},
                {"entity": "phone_number", "value": PHONE, "start": 60, "end": 71}]
    values = {"child_name": "李娜", "child_id_number": CHILD_ID, "guardian_name": "王芳",
              "guardian_id_number": GUARDIAN_ID, "phone_number": PHONE}
    return [
        UserUttered(typed, {"name": "report_lost_card", "confidence": 0.99}, entities,
                    timestamp=start, parse_data={"entities": entities, "text": typed}),
        *[SlotSet(name, value, timestamp=start + 0.1) for name, value in values.items()],
        BotUttered("请核对：\n孩子：李娜，身份证 1101**********0013\n监护人：王芳（母亲）",
                   metadata={"child_name": "李娜", "guardian_name": "王芳",
                             "utter_action": "utter_report_summary"}, timestamp=start + 0.2),
        UserUttered("对", {"name": "affirm", "confidence": 0.99}, timestamp=start + 1),
    ]


def filed(start: float) -> list[Event]:
    names = ("child_name", "child_id_number", "guardian_name", "guardian_id_number",
             "phone_number")
    return [ActionExecuted("action_file_report", timestamp=start),
            SlotSet("reference_number", "SC-7K3F-9Q2M", timestamp=start + 0.1),
            *[SlotSet(name, None, timestamp=start + 0.2) for name in names]]


def test_the_stored_record_is_sealed_and_bound_to_its_conversation(redis_url: str) -> None:
    ours, _, client = stores(redis_url)
    asyncio.run(ours.save(DialogueStateTracker.from_events(
        "sealed", [*session(1000.0, "hi"), *form_turns(1100.0)])))
    raw = client.get("ours:tracker:sealed")
    assert raw.startswith(f"v2:{Vault(KEY).key_id}:")
    assert "李娜" not in raw and CHILD_ID not in raw and "events" not in raw
    # Moved to another conversation's key, it does not open.
    client.set("ours:tracker:other", raw)
    with pytest.raises(ValueError):
        asyncio.run(ours.retrieve("other"))


def test_typed_numbers_are_masked_while_the_form_keeps_its_values(redis_url: str) -> None:
    ours, _, client = stores(redis_url)
    asyncio.run(ours.save(DialogueStateTracker.from_events(
        "masked", [*session(1000.0, "hi"), *form_turns(1100.0)])))
    text = opened(client, "ours:tracker:masked")
    user = [e for e in json.loads(text)["events"] if e["event"] == "user"][-2]
    assert "1101**********0013" in user["text"] and "13*******78" in user["text"]
    assert CHILD_ID not in user["text"] and PHONE not in json.dumps(user["parse_data"])
    assert [e["value"] for e in user["parse_data"]["entities"]] == ["1101**********0013",
                                                                    "13*******78"]
    tracker = asyncio.run(ours.retrieve("masked"))
    assert tracker is not None and tracker.get_slot("child_id_number") == CHILD_ID


def test_once_filed_no_value_the_form_held_is_stored_whole(redis_url: str) -> None:
    ours, _, client = stores(redis_url)

    async def conversation() -> None:
        await ours.save(DialogueStateTracker.from_events(
            "closed", [*session(1000.0, "hi"), *form_turns(1100.0)]))
        tracker = await ours.retrieve("closed")
        assert tracker is not None
        tracker.update_with_events(filed(1200.0), DOMAIN, override_timestamp=False)
        await ours.save(tracker)

    asyncio.run(conversation())
    text = opened(client, "ours:tracker:closed")
    for whole in ("李娜", "王芳", CHILD_ID, GUARDIAN_ID, PHONE, CHILD_ID[6:]):
        assert whole not in text, whole
    events = json.loads(text)["events"]
    slots = {e["name"]: e["value"] for e in events if e["event"] == "slot" and e["value"]}
    assert slots["child_name"] == "李*" and slots["guardian_id_number"] == "1101**********031X"
    assert slots["reference_number"] == "SC-7K3F-9Q2M"  # the reference stays usable
    bot = next(e for e in events if e["event"] == "bot")
    assert "孩子：李*" in bot["text"] and bot["metadata"]["guardian_name"] == "王*"


def test_a_record_stored_in_clear_is_read_and_sealed_on_its_next_save(redis_url: str) -> None:
    ours, rasas, client = stores(redis_url)
    asyncio.run(rasas.save(DialogueStateTracker.from_events("legacy", session(1000.0, "hi"))))
    client.set("ours:tracker:legacy", client.get("rasas:tracker:legacy"))
    tracker = asyncio.run(ours.retrieve("legacy"))
    assert tracker is not None and tracker.get_slot("city") == "北京"
    asyncio.run(ours.save(tracker))
    assert client.get("ours:tracker:legacy").startswith("v2:")


def test_rotation_reseals_conversations_and_reports_under_the_new_key(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot import crypto
    from bot.redis import CARD_SERVICE

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    port = client.connection_pool.connection_kwargs["port"]
    old = RedisTrackerStore(DOMAIN, host="127.0.0.1", port=port, key_prefix="cardbot",
                            record_exp=600)
    asyncio.run(old.save(DialogueStateTracker.from_events("rotated", session(1000.0, "hi"))))
    old_vault = Vault(KEY)
    report = f"{CARD_SERVICE}report:SC-ROTA-TE01"
    client.hset(report, mapping={
        "status": "reported_temporary",
        "child_id": old_vault.encrypt(CHILD_ID, "SC-ROTA-TE01:child_id"),
        "guardian_id": old_vault.encrypt(GUARDIAN_ID, "SC-ROTA-TE01:guardian_id"),
        "guardian_hash": old_vault.keyed_hash(GUARDIAN_ID)})

    new_key = "a-brand-new-key-0123456789"
    new_vault = Vault(new_key, retired=[KEY])
    assert new_vault.matches(GUARDIAN_ID, client.hget(report, "guardian_hash"))  # before
    counts = crypto.rotate(redis_url, new_vault, say=lambda line: None)
    assert counts["conversations"] == 1 and counts["reports"] == 1

    only_new = Vault(new_key)  # the retired key dropped: everything still opens
    sealed = client.get("cardbot:tracker:rotated")
    assert sealed.startswith(f"v2:{only_new.key_id}:")
    assert '"events"' in only_new.decrypt(sealed, "tracker:rotated")
    assert only_new.decrypt(client.hget(report, "child_id"),
                            "SC-ROTA-TE01:child_id") == CHILD_ID
    assert only_new.hash_is_current(GUARDIAN_ID, client.hget(report, "guardian_hash"))
    # A report filed before child hashes were kept gets one (cancels check the child's ID).
    assert only_new.hash_is_current(CHILD_ID, client.hget(report, "child_hash"))
    assert client.ttl("cardbot:tracker:rotated") > 0  # the expiry is kept
    assert crypto.rotate(redis_url, new_vault, say=lambda line: None)["current"] == 2
