"""Event classes looked up by name are the classes Rasa's scan finds."""

from __future__ import annotations

import pytest

from bot.rasa.patches import event_types


def test_event_classes_found_by_name_as_rasa_finds_them() -> None:
    from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
    from rasa.shared.utils.common import all_subclasses

    scan = {cls.type_name: cls for cls in reversed(all_subclasses(Event))}
    event_types.install()
    event_types.install()  # twice is once
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
