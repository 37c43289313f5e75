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


def test_the_loaded_model_is_frozen_out_of_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import gc

    import rasa.core.run

    loaded = object()

    async def load_agent_on_start(*args: object) -> object:
        return loaded

    monkeypatch.setattr(rasa.core.run, "load_agent_on_start", load_agent_on_start)
    rasa_server.freeze_after_loading()
    rasa_server.freeze_after_loading()  # twice is once
    wrapped = rasa.core.run.load_agent_on_start
    assert wrapped.__wrapped__ is load_agent_on_start  # type: ignore[attr-defined]
    try:
        assert asyncio.run(wrapped("model", None, None, None, None)) is loaded
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
