"""The language slot, set by Rasa's own `action_extract_slots` with bot/rasa/patches/language_slot.py."""

from __future__ import annotations

import asyncio
from typing import Any

from rasa.core.actions.action import ActionExtractSlots
from rasa.core.channels import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.rasa.patches import language_slot
from bot.settings import ROOT

DOMAIN = Domain.load(ROOT / "domain.yml")


def extract(text: str, current: str | None = None, entities: list[dict[str, Any]] | None = None,
            metadata: dict[str, Any] | None = None) -> list[Any]:
    language_slot.install()
    events: list[Any] = [UserUttered(text, {"name": "greet", "confidence": 1.0},
                                     entities or [], metadata=metadata)]
    if current:
        events.insert(0, SlotSet("language", current))
    tracker = DialogueStateTracker.from_events("u", events, slots=DOMAIN.slots)
    # No action endpoint: the language must not need the action server.
    action = ActionExtractSlots(None)
    nlg = TemplatedNaturalLanguageGenerator(DOMAIN.responses)
    return asyncio.run(action.run(CollectingOutputChannel(), nlg, tracker, DOMAIN))


def language_events(events: list[Any]) -> list[Any]:
    return [e.value for e in events if isinstance(e, SlotSet) and e.key == "language"]


def test_chinese_text_sets_zh() -> None:
    assert language_events(extract("你好")) == ["zh"]


def test_switching_back_to_english() -> None:
    assert language_events(extract("thanks", current="zh")) == ["en"]


def test_same_language_sets_nothing() -> None:
    assert language_events(extract("hello", current="en")) == []


def test_digits_keep_the_language_of_the_conversation() -> None:
    assert language_events(extract("13800138000", current="zh")) == []


def test_payload_entity_and_page_locale() -> None:
    assert language_events(extract('/greet{"language": "zh"}', current="en",
                                    entities=[{"entity": "language", "value": "zh"}])) == ["zh"]
    assert language_events(extract("/greet", metadata={"language": "zh-CN"})) == ["zh"]
    assert language_events(extract("/greet", metadata={"language": "fr-FR"})) == []
    # What the user writes wins over the browser's locale.
    assert language_events(extract("hello", metadata={"language": "zh-CN"})) == ["en"]


def test_an_external_event_keeps_the_language() -> None:
    assert language_events(extract("EXTERNAL: EXTERNAL_card_ready", current="zh")) == []


def test_install_is_once() -> None:
    language_slot.install()
    wrapped = ActionExtractSlots.run
    language_slot.install()
    assert ActionExtractSlots.run is wrapped
    assert getattr(wrapped, "__wrapped__", None) is not None
