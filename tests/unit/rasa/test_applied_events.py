"""Applied events kept on the tracker are Rasa's answer at every step."""

from __future__ import annotations

from bot.rasa.patches import applied_events


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

    applied_events.install()
    applied_events.install()  # twice is once
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
