"""The handoff model on a real Redis: queue order, one taker, what is kept (masked and
sealed), its key rotation and erasure, and the hook that keeps Rasa out of a held
conversation; staffed hours on a clock the test sets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from datetime import datetime, timezone
from typing import Any, TypeVar

import pytest
import redis
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

import bot.settings
from actions import handoff as handoff_action
from actions.clarify import ActionClarifyIntent
from bot import crypto, handoff
from bot import redis as bot_redis
from bot.crypto import Vault
from bot.settings import Settings

T = TypeVar("T")
CHILD_ID, GUARDIAN_ID, PHONE = "110105201501010013", "110105198001010029", "13800138000"
FRIDAY_10_IN_CHINA = datetime(2026, 12, 4, 2, 0, tzinfo=timezone.utc)
FRIDAY_20_IN_CHINA = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
SUNDAY_10_IN_CHINA = datetime(2026, 12, 6, 2, 0, tzinfo=timezone.utc)
DATA_KEY, NEWER_KEY = "unit-handoff-data-key-0123456789", "unit-handoff-newer-key-0123456789"
VAULT = Vault(DATA_KEY)


def run(scenario: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(scenario)


def conversation_events() -> list[dict[str, Any]]:
    """A report in progress: the form holds names and numbers whole."""
    return [
        {"event": "user", "text": "hello", "timestamp": 1.0,
         "parse_data": {"intent": {"name": "greet"}}},
        {"event": "bot", "text": "Hello! What do you need?", "timestamp": 1.1},
        {"event": "slot", "name": "language", "value": "zh"},
        {"event": "slot", "name": "child_name", "value": "王小明"},
        {"event": "slot", "name": "guardian_name", "value": "李华"},
        {"event": "slot", "name": "child_id_number", "value": CHILD_ID},
        {"event": "user", "text": f"孩子王小明 {CHILD_ID}，我是李华，手机 {PHONE}",
         "timestamp": 2.0, "parse_data": {"intent": {"name": "inform"}}},
        {"event": "bot", "text": f"请确认：王小明，{CHILD_ID}，监护人李华", "timestamp": 2.1},
        {"event": "user", "text": "转人工", "timestamp": 3.0,
         "parse_data": {"intent": {"name": "request_human"}}},
    ]


class Output(CollectingOutputChannel):
    pass


def desk(url: str, events: list[dict[str, Any]] | None = None,
         clock: datetime = FRIDAY_10_IN_CHINA) -> handoff.Desk:
    async def tracker_events(conversation: str) -> list[dict[str, Any]]:
        return list(events if events is not None else conversation_events())

    return handoff.Desk(handoff.Queue(bot_redis.async_client(url, "store"), vault=VAULT),
                        tracker_events,
                        handoff.StaffedHours.parse("Mon-Fri 09:00-17:00"), lambda: clock)


def case(conversation: str, at: float) -> handoff.Case:
    return handoff.Case(conversation=conversation, channel="telegram", language="en",
                        queued_at=at)


def test_the_queue_is_in_the_order_requested_and_a_second_request_keeps_its_place(
        redis_url: str) -> None:
    async def scenario() -> list[tuple[str, float]]:
        queue = desk(redis_url).queue
        assert await queue.add(case("telegram:2", 200.0))
        assert await queue.add(case("telegram:1", 100.0))
        assert await queue.add(case("webchat:abc", 150.0))
        assert not await queue.add(case("telegram:1", 300.0))  # asked again later
        return [(c.conversation, c.queued_at) for c in await queue.cases()]

    assert run(scenario()) == [("telegram:1", 100.0), ("webchat:abc", 150.0),
                               ("telegram:2", 200.0)]


def test_only_one_agent_takes_a_conversation(redis_url: str) -> None:
    async def scenario() -> None:
        queue = desk(redis_url).queue
        await queue.add(case("telegram:7", 100.0))
        results = await asyncio.gather(
            *(queue.take("telegram:7", f"agent{n}", 160.0) for n in range(8)),
            return_exceptions=True)
        winners = [r for r in results if isinstance(r, tuple)]
        assert len(winners) == 1 and winners[0][1] is True
        holder = winners[0][0].agent
        assert all(isinstance(r, handoff.Taken) and r.holder == holder
                   for r in results if not isinstance(r, tuple))
        again, new = await queue.take("telegram:7", str(holder), 170.0)
        assert (again.agent, again.taken_at, new) == (holder, 160.0, False)
        cases = await queue.cases()
        assert [(c.conversation, c.agent) for c in cases] == [("telegram:7", holder)]
        assert cases[0].as_json(200.0)["waiting_seconds"] == 60.0
        with pytest.raises(handoff.Taken):
            await queue.release("telegram:7", "someone-else")
        await queue.release("telegram:7", str(holder))
        assert await queue.cases() == []
        with pytest.raises(handoff.NotFound):
            await queue.take("telegram:7", "agent0", 180.0)
        with pytest.raises(handoff.NotFound):
            await queue.release("telegram:7", str(holder))

    run(scenario())


def test_the_stored_transcript_and_messages_hold_no_whole_name_or_number(
        redis_url: str) -> None:
    async def scenario() -> None:
        front = desk(redis_url)
        queued = await front.enqueue("telegram:42", "telegram", after_hours=False)
        assert (queued.language, queued.reason, queued.channel) == ("zh", "asked", "telegram")
        assert [line["from"] for line in queued.transcript] == [
            "guardian", "assistant", "guardian", "assistant", "guardian"]
        await front.queue.take("telegram:42", "alice", 200.0)

        async def rasa(message: UserMessage) -> None:
            raise AssertionError("Rasa must not see a held conversation's message")

        await front.turn(rasa, UserMessage(f"李华 again: {GUARDIAN_ID} / {PHONE}", Output(),
                                           "telegram:42", input_channel="telegram"))
        [kept] = await front.queue.messages("telegram:42")
        assert kept["from"] == "guardian" and kept["seq"] == 1
        assert kept["text"] == "李* again: 1101**********0029 / 13*******00"

    run(scenario())
    raw = redis.Redis.from_url(redis_url)
    values = {key.decode(): [raw.get(key)] if raw.type(key) == b"string"
              else raw.lrange(key, 0, -1) for key in raw.keys("cardbot:handoff:*")
              if raw.type(key) in (b"string", b"list")}
    assert set(values) == {f"cardbot:handoff:{kind}:telegram:42"
                           for kind in ("case", "agent", "messages")}
    stored = b"".join(b"".join(items) for items in values.values()).decode()
    for whole in (CHILD_ID, GUARDIAN_ID, PHONE, "王小明", "李华", "王**", "1101**********0013"):
        assert whole not in stored  # sealed: not even the masked text shows
    opened = "".join(VAULT.decrypt(item.decode(), key) for key, items in values.items()
                     if ":agent:" not in key for item in items)
    for whole in (CHILD_ID, GUARDIAN_ID, PHONE, "王小明", "李华"):
        assert whole not in opened
    assert "王**" in opened and "1101**********0013" in opened
    for key in values:
        assert 0 < raw.ttl(key) <= handoff.CASE_TTL_S


def test_a_rotation_reseals_the_handoff_and_erasure_forgets_it(redis_url: str) -> None:
    newer = Vault(NEWER_KEY, retired=[DATA_KEY])

    async def before() -> None:
        queue = desk(redis_url).queue
        await queue.add(case("guardian-9", 100.0))
        await queue.take("guardian-9", "alice", 110.0)
        await queue.add_message("guardian-9", handoff.GUARDIAN, "hello", 120.0)
        await queue.keep_for_rest("guardian-9", [{"text": "Hi, Alice here."}])

    run(before())
    counts = crypto.rotate(redis_url, newer, say=lambda line: None)
    assert counts["handoffs"] == 3  # the case, its messages, what waits for REST
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    for key in ("case", "messages", "pending"):
        name = f"cardbot:handoff:{key}:guardian-9"
        stored = [raw.get(name)] if key == "case" else raw.lrange(name, 0, -1)
        assert all(newer.is_current(value) for value in stored), key
        assert raw.ttl(name) > 0
    assert crypto.rotate(redis_url, newer, say=lambda line: None)["handoffs"] == 0

    async def after() -> tuple[handoff.Case, list[dict[str, Any]], list[dict[str, Any]]]:
        queue = handoff.Queue(bot_redis.async_client(redis_url, "store"),
                              vault=Vault(NEWER_KEY))
        found = await queue.case("guardian-9")
        said = await queue.messages("guardian-9")
        _, kept = await queue.holder_and_kept("guardian-9")
        await handoff.forget(queue.redis, "guardian-9")
        with pytest.raises(handoff.NotFound):
            await queue.case("guardian-9")
        assert await queue.cases() == [] and await queue.holder("guardian-9") is None
        return found, said, kept

    found, said, kept = run(after())  # the retired key is dropped: all still opens
    assert (found.agent, [m["text"] for m in said], kept) == (
        "alice", ["hello"], [{"text": "Hi, Alice here."}])
    assert not raw.keys("cardbot:handoff:*")


def test_a_turn_that_promises_a_person_queues_the_conversation_and_others_do_not(
        redis_url: str) -> None:
    async def scenario() -> list[str]:
        front = desk(redis_url)

        def rasa_saying(response: str) -> Any:
            async def rasa(message: UserMessage) -> None:
                await message.output_channel.send_response(
                    message.sender_id, {"text": "...", "utter_action": response})
            return rasa

        await front.turn(rasa_saying("utter_greet"), UserMessage(
            "hi", Output(), "webchat:s1", input_channel="webchat"))
        await front.turn(rasa_saying("utter_handoff_after_hours"), UserMessage(
            "a person", Output(), "webchat:s2", input_channel="webchat"))
        cases = await front.queue.cases()
        assert [c.after_hours for c in cases] == [True]
        return [c.conversation for c in cases]

    assert run(scenario()) == ["webchat:s2"]


def test_a_rest_guardian_gets_what_was_kept_for_them_with_their_next_answer(
        redis_url: str) -> None:
    async def scenario() -> list[str]:
        front = desk(redis_url)
        await front.queue.add(case("guardian-1", 100.0))
        await front.queue.take("guardian-1", "alice", 110.0)
        await front.queue.keep_for_rest("guardian-1", [{"text": "Hello, I am Alice."}])
        output = Output()

        async def rasa(message: UserMessage) -> None:
            raise AssertionError("held")

        await front.turn(rasa, UserMessage("thanks", output, "guardian-1",
                                           input_channel="rest"))
        again = Output()
        await front.turn(rasa, UserMessage("still there?", again, "guardian-1",
                                           input_channel="rest"))
        assert again.messages == []  # given once
        return [m["text"] for m in output.messages]

    assert run(scenario()) == ["Hello, I am Alice."]


@pytest.mark.parametrize(("now", "response"), [
    (FRIDAY_10_IN_CHINA, "utter_handoff"),
    (FRIDAY_20_IN_CHINA, "utter_handoff_after_hours"),
    (SUNDAY_10_IN_CHINA, "utter_handoff_after_hours"),
])
def test_outside_staffed_hours_the_guardian_is_told_so(
        monkeypatch: pytest.MonkeyPatch, now: datetime, response: str) -> None:
    monkeypatch.setattr(bot.settings, "settings", lambda: Settings.from_env(
        {"STAFFED_HOURS": "Mon-Fri 09:00-17:00"}))
    dispatcher = CollectingDispatcher()
    events = handoff_action.hand_over(dispatcher, clock=lambda: now)
    assert [m["response"] for m in dispatcher.messages] == [response]
    assert events == [{"event": "slot", "timestamp": None, "name": "handoff_requested",
                       "value": True}]


def test_staffed_hours_across_the_week_end_and_several_spans() -> None:
    hours = handoff.StaffedHours.parse("Sat-Mon 10:00-12:00, Wed 08:30-24:00")
    assert hours.open_at(SUNDAY_10_IN_CHINA)
    assert not hours.open_at(FRIDAY_10_IN_CHINA)
    assert hours.open_at(datetime(2026, 12, 9, 15, 59, tzinfo=timezone.utc))  # Wed 23:59
    assert not handoff.StaffedHours.parse("").open_at(FRIDAY_10_IN_CHINA)
    for bad in ("Mon-Fri 17:00-09:00", "Mon-Fri 09:00-25:00", "Funday 09:00-10:00"):
        with pytest.raises(ValueError, match="STAFFED_HOURS"):
            handoff.StaffedHours.parse(bad)


def _tracker(intents: list[str]) -> Tracker:
    events: list[dict[str, Any]] = []
    for intent in intents:
        events.append({"event": "user", "text": "???",
                       "parse_data": {"intent": {"name": intent}}})
        events.append({"event": "action", "name": "action_clarify_intent"})
    return Tracker("c", {"language": "en"}, {"intent": {"name": intents[-1]},
                                              "intent_ranking": []},
                   events, False, None, {}, "action_listen")


def test_the_third_failed_try_on_one_question_offers_a_person(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.settings, "settings", lambda: Settings.from_env(
        {"STAFFED_HOURS": "Mon-Sun 00:00-24:00"}))

    def answer(intents: list[str]) -> list[str]:
        dispatcher = CollectingDispatcher()
        asyncio.run(ActionClarifyIntent().run(dispatcher, _tracker(intents), {}))
        return [m["response"] for m in dispatcher.messages]

    assert answer(["nlu_fallback", "nlu_fallback"]) == ["utter_default"]
    assert answer(["nlu_fallback", "greet", "nlu_fallback", "nlu_fallback"]) == [
        "utter_default"]
    assert answer(["nlu_fallback"] * 3) == ["utter_handoff"]


def test_the_case_as_the_api_gives_it() -> None:
    taken = handoff.Case("telegram:1", "telegram", "zh", 100.0, agent="alice", taken_at=130.0,
                         transcript=[{"from": "guardian", "text": "hi", "at": 1.0}])
    body = taken.as_json(500.0)
    assert (body["state"], body["waiting_seconds"], body["agent"]) == ("taken", 30.0, "alice")
    assert json.loads(json.dumps(body))["transcript"][0]["text"] == "hi"
    assert "transcript" not in taken.as_json(500.0, with_transcript=False)
