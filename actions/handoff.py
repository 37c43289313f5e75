"""Handing a conversation to a person: the guardian is told one will come (or, outside
staffed hours, that the request waits and 12333 is there now). The Rasa process queues the
conversation when it sees that reply go out (bot/handoff.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot import handoff
from bot import settings as bot_settings

# Failed tries on one question before a person is offered instead of a fourth "say it again".
FAILED_TRIES = 3
FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTION = "action_default_fallback"


def failed_tries(events: Iterable[dict[str, Any]]) -> int:
    """How many of the latest user messages in a row the assistant did not understand
    (NLU unsure, or no rule fitted: Rasa's fallback). An understood message, or a handoff,
    starts the count again: the count is per question.

    >>> def said(intent): return {"event": "user", "parse_data": {"intent": {"name": intent}}}
    >>> fallback = {"event": "action", "name": "action_default_fallback"}
    >>> failed_tries([said("greet"), said("nlu_fallback"), said("ask_fee"), fallback,
    ...               said("nlu_fallback")])
    3
    >>> failed_tries([said("nlu_fallback"), said("check_status"), said("nlu_fallback")])
    1
    >>> handed = {"event": "slot", "name": "handoff_requested", "value": True}
    >>> failed_tries([said("nlu_fallback"), handed, said("nlu_fallback")])
    1
    """
    turns: list[list[dict[str, Any]]] = []
    for event in events:
        if event.get("event") == "user":
            turns.append([event])
        elif turns:
            turns[-1].append(event)
    count = 0
    for turn in reversed(turns):
        intent = ((turn[0].get("parse_data") or {}).get("intent") or {}).get("name")
        actions = [e.get("name") for e in turn[1:] if e.get("event") == "action"]
        if any(e.get("event") == "slot" and e.get("name") == "handoff_requested"
               and e.get("value") for e in turn[1:]):
            break
        if intent != FALLBACK_INTENT and FALLBACK_ACTION not in actions:
            break
        count += 1
    return count


def hand_over(dispatcher: CollectingDispatcher,
              clock: Callable[[], datetime] = handoff.now_utc) -> list[dict[str, Any]]:
    """Tells the guardian a person will come, or that none is there now (the request still
    waits, and 12333 answers)."""
    staffed = handoff.StaffedHours.parse(bot_settings.settings().staffed_hours)
    dispatcher.utter_message(
        response="utter_handoff" if staffed.open_at(clock()) else "utter_handoff_after_hours")
    return [SlotSet("handoff_requested", True)]


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        return hand_over(dispatcher)
