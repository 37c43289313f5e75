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


def test_event_classes_found_by_name_as_rasa_finds_them() -> None:
    from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
    from rasa.shared.utils.common import all_subclasses

    scan = {cls.type_name: cls for cls in reversed(all_subclasses(Event))}
    rasa_server.cache_event_types()
    rasa_server.cache_event_types()  # twice is once
    assert Event.resolve_by_type.__wrapped__ is not None  # type: ignore[attr-defined]
    for name, cls in scan.items():
        assert Event.resolve_by_type(name) is cls
    assert Event.resolve_by_type("slot") is SlotSet
    assert Event.resolve_by_type("user") is UserUttered
    assert Event.resolve_by_type("no_such_event", ActionExecuted) is ActionExecuted
    assert Event.resolve_by_type("topic") is None
    with pytest.raises(ValueError, match="Unknown event name 'no_such_event'"):
        Event.resolve_by_type("no_such_event")
    assert Event.from_parameters({"event": "slot", "name": "city", "value": "Beijing"}) == \
        SlotSet("city", "Beijing")


def test_applied_events_cached_give_rasas_answer_at_every_step() -> None:
    from rasa.shared.core.events import (
        ActionExecuted,
        ActionReverted,
        ActiveLoop,
        Restarted,
        SlotSet,
        UserUtteranceReverted,
        UserUttered,
    )
    from rasa.shared.core.trackers import DialogueStateTracker

    rasa_server.cache_applied_events()
    rasa_server.cache_applied_events()  # twice is once
    original = DialogueStateTracker.applied_events.__wrapped__  # type: ignore[attr-defined]
    form = "loss_report_form"
    events = [
        ActionExecuted("action_listen"), UserUttered("hi", {"name": "greet"}),
        ActionExecuted("utter_greet"), ActionExecuted("action_listen"),
        UserUttered("yes", {"name": "affirm"}), ActionExecuted(form), ActiveLoop(form),
        SlotSet("requested_slot", "child_name"), ActionExecuted("action_listen"),
        UserUttered("Li Ming", {"name": "inform"}), ActionExecuted(form),
        SlotSet("child_name", "Li Ming"), ActionExecuted("action_listen"),
        UserUttered("why?", {"name": "ask_fee"}), ActionExecuted("utter_fee"),
        ActionReverted(), UserUtteranceReverted(), ActionExecuted(form),
        ActiveLoop(None), Restarted(), ActionExecuted("action_listen"),
    ]
    tracker = DialogueStateTracker("u", [])
    for event in events:
        tracker.update(event)
        first = tracker.applied_events()
        assert first == original(tracker)
        first.clear()  # a caller changing its list leaves the cache alone
        assert tracker.applied_events() == original(tracker)
    # A bounded history drops its first event: same count, other answer.
    bounded = DialogueStateTracker("b", [], max_event_history=3)
    for event in events[:6]:
        bounded.update(event)
        assert bounded.applied_events() == original(bounded)
