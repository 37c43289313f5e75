"""The language slot mapping run by the action server on every user turn."""

from __future__ import annotations

import asyncio
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.language import ValidatePredefinedSlots, language_of

DOMAIN: dict[str, Any] = {
    "slots": {"language": {"type": "categorical", "values": ["en", "zh"],
                           "mappings": [{"type": "custom"}]}},
}


def run(message: dict[str, Any], current: str | None = None) -> list[dict[str, Any]]:
    tracker = Tracker("u", {"language": current}, message, [], False, None, {}, "action_listen")
    return asyncio.run(ValidatePredefinedSlots().run(CollectingDispatcher(), tracker, DOMAIN))


def test_chinese_text_sets_zh() -> None:
    assert run({"text": "你好"}) == [
        {"event": "slot", "timestamp": None, "name": "language", "value": "zh"}
    ]


def test_switching_back_to_english() -> None:
    events = run({"text": "thanks"}, current="zh")
    assert [e["value"] for e in events if e["name"] == "language"] == ["en"]


def test_same_language_sets_nothing() -> None:
    assert run({"text": "hello"}, current="en") == []


def test_digits_keep_the_language_of_the_conversation() -> None:
    assert run({"text": "13800138000"}, current="zh") == []


def test_payload_entity_and_page_locale() -> None:
    assert language_of({"text": "/greet", "entities": [{"entity": "language", "value": "zh"}]}) == "zh"
    assert language_of({"text": "/greet", "metadata": {"language": "zh-CN"}}) == "zh"
    assert language_of({"text": "/greet", "metadata": {"language": "fr-FR"}}) is None
    # What the user writes wins over the browser's locale.
    assert language_of({"text": "hello", "metadata": {"language": "zh-CN"}}) == "en"


def test_an_external_event_keeps_the_language() -> None:
    assert run({"text": "EXTERNAL: EXTERNAL_card_ready", "intent": {"name": "EXTERNAL_card_ready"}},
               current="zh") == []
