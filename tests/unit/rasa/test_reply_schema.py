"""The compiled check of action-server replies gives Rasa's own verdicts."""

from __future__ import annotations

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot.rasa.patches import reply_schema

GOOD = {"events": [{"event": "slot", "name": "language", "value": "zh"}],
        "responses": [{"response": "utter_greet"}]}
BAD = [
    {"events": [{"event": "slot"}]},            # a slot event without its name
    {"events": [{"event": "no_such_event"}]},
    {"events": "not a list"},
    {"responses": ["not an object"]},
    {"events": ["not an object"]},
    {"events": [{"name": "no event name"}]},
    {"events": [{"event": 7}]},
    {"events": [{"event": "slot", "name": 3, "value": 1}]},
    {"events": [{"event": "bot", "text": "hi"}, {"event": "user", "text": 5}]},
    {"events": [{"event": "user", "text": "hi", "timestamp": "noon"}]},
    "not an object",
]
MORE_GOOD = [
    {},
    {"events": []},
    {"events": [{"event": "bot", "text": "hi", "data": {}, "metadata": {}},
                {"event": "active_loop", "name": None}, {"event": "restart"},
                {"event": "followup", "name": "action_x", "timestamp": 1.5},
                {"event": "slot", "name": "requested_slot", "value": None}],
     "responses": [{"text": "hello"}]},
]


def test_install_keeps_rasas_verdicts() -> None:
    action = RemoteAction("action_x", None)
    reply_schema.install()
    reply_schema.install()  # twice is once
    assert RemoteAction._validate_action_result.__wrapped__ is not None  # type: ignore[attr-defined]
    assert action._validate_action_result(GOOD) is True
    for reply in MORE_GOOD:
        assert action._validate_action_result(reply) is True
    for reply in BAD:
        with pytest.raises(ValidationError, match="Failed to validate Action server response"):
            action._validate_action_result(reply)


def test_reply_check_by_event_name_agrees_with_the_whole_schema() -> None:
    from jsonschema import Draft202012Validator

    whole = Draft202012Validator(RemoteAction.action_response_format_spec()).is_valid
    by_name = reply_schema.reply_validator()
    names = [branch["properties"]["event"]["const"] for branch in
             RemoteAction.action_response_format_spec()["properties"]["events"]["items"]
             ["oneOf"]]
    values: list[object] = [None, "x", 1, 2.5, True, [], {}, ["a"], {"a": 1}]
    fields = ["name", "value", "text", "entities", "intent", "timestamp", "metadata", "data"]
    checked = 0
    for name in [*names, "no_such_event"]:
        for field in fields:
            for value in values:
                reply = {"events": [{"event": name, field: value}]}
                assert by_name(reply) == whole(reply), reply
                checked += 1
    assert checked > 1500
    for reply in [GOOD, *MORE_GOOD, *BAD]:
        assert by_name(reply) == whole(reply), reply
