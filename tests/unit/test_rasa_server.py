"""The Rasa server's compiled check of action-server replies gives Rasa's own verdicts."""

from __future__ import annotations

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot import rasa_server

GOOD = {"events": [{"event": "slot", "name": "language", "value": "zh"}],
        "responses": [{"response": "utter_greet"}]}
BAD = [
    {"events": [{"event": "slot"}]},            # a slot event without its name
    {"events": [{"event": "no_such_event"}]},
    {"events": "not a list"},
    {"responses": ["not an object"]},
]


def test_install_keeps_rasas_verdicts() -> None:
    action = RemoteAction("action_x", None)
    rasa_server.install()
    rasa_server.install()  # twice is once
    assert RemoteAction._validate_action_result.__wrapped__ is not None  # type: ignore[attr-defined]
    assert action._validate_action_result(GOOD) is True
    for reply in BAD:
        with pytest.raises(ValidationError, match="Failed to validate Action server response"):
            action._validate_action_result(reply)
