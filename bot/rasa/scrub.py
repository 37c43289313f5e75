"""What a stored conversation may keep of a guardian's personal data.

A stored record never holds a whole ID or mobile number in what was typed: the text and the
parsed entities of every user message keep them masked (`1101**********3329`). The form's
slots hold the whole values while the form needs them (the record is sealed at rest by the
tracker store); once a report is filed or the form stopped and those slots are cleared,
`closed` is true and every earlier value, names included, is masked wherever it appears:
slot events, the text a guardian typed, and the bot's own messages and their metadata.

>>> masked_numbers("孩子身份证 110105 20150101 0013，手机１３８００１３８０００")
'孩子身份证 1101**********0013，手机13*******00'
>>> mask_name("王小明"), mask_name("Li Ming")
('王**', 'L* M***')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.rules.identity import mask, masked_numbers

# Every slot that holds a person's data while the form runs (cleared once it has ended).
NUMBER_SLOTS = ("child_id_number", "guardian_id_number", "phone_number", "verify_id_number",
                "verify_child_id_number")
NAME_SLOTS = ("child_name", "guardian_name")
PERSONAL_SLOTS = (*NUMBER_SLOTS, *NAME_SLOTS)
NUMBER_ENTITIES = ("id_number", "phone_number")
def mask_name(name: str) -> str:
    """The first letter of each part of a name, the rest starred."""
    return " ".join(part[:1] + "*" * (len(part) - 1) for part in name.split(" "))


def personal_values(events: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Every value the form held, whole -> masked, longest first (a name inside a longer one)."""
    found: dict[str, str] = {}
    for event in events:
        if event.get("event") == "slot" and event.get("name") in PERSONAL_SLOTS:
            value = event.get("value")
            if isinstance(value, str) and len(value) >= 2 and "*" not in value:
                found[value] = mask_name(value) if event["name"] in NAME_SLOTS else mask(value)
    return dict(sorted(found.items(), key=lambda item: -len(item[0])))


# Keys whose values name things rather than say them: left exactly as they are.
_KEPT_KEYS = frozenset({"event", "name", "message_id", "input_channel", "policy",
                        "action_name", "sender_id", "utter_action", "intent_name"})


def _replaced(value: Any, known: dict[str, str]) -> Any:
    if isinstance(value, str):
        for whole, masked in known.items():
            if whole in value:
                value = value.replace(whole, masked)
        return masked_numbers(value)
    if isinstance(value, list):
        return [_replaced(item, known) for item in value]
    if isinstance(value, dict):
        return {key: item if key in _KEPT_KEYS else _replaced(item, known)
                for key, item in value.items()}
    return value


def _user_event(event: dict[str, Any]) -> dict[str, Any]:
    event = dict(event)
    event["text"] = masked_numbers(event.get("text") or "")
    parse_data = dict(event.get("parse_data") or {})
    if parse_data:
        parse_data["text"] = masked_numbers(parse_data.get("text") or "")
        parse_data["entities"] = [
            {**entity, "value": mask(str(entity.get("value") or "")),
             **({"text": masked_numbers(entity["text"])} if entity.get("text") else {})}
            if entity.get("entity") in NUMBER_ENTITIES else entity
            for entity in parse_data.get("entities") or []]
        event["parse_data"] = parse_data
    return event


def scrubbed(events: list[dict[str, Any]],
             known: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The events as they may be stored: typed numbers always masked, and each of `known`
    (`personal_values` of the record, once the form has ended) masked wherever it appears."""
    result = [_user_event(event) if event.get("event") == "user" else event for event in events]
    if not known:
        return result
    return [_replaced(event, known) for event in result]


def closes(new_events: Iterable[dict[str, Any]], current_slots: dict[str, Any]) -> bool:
    """This turn ended the form's hold on personal data: it cleared a personal slot and none
    holds a value any more (a failed filing keeps them for the retry, so it does not close)."""
    cleared = any(event.get("event") == "slot" and event.get("name") in PERSONAL_SLOTS
                  and event.get("value") is None for event in new_events)
    return cleared and all(current_slots.get(slot) is None for slot in PERSONAL_SLOTS)
