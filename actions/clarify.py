"""When the model is torn between two meanings, ask which one instead of guessing."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import handoff, replies

# Two meanings this close, each this likely, are worth a question; anything less clear gets
# the usual "say it again" with the main choices.
CLOSE = 0.25
LIKELY = 0.15


def torn_between(ranking: list[dict[str, Any]]) -> list[str]:
    """The two intents the model could not choose between, when there are such two.

    >>> torn_between([{"name": "nlu_fallback", "confidence": 0.6},
    ...               {"name": "check_status", "confidence": 0.52},
    ...               {"name": "card_found", "confidence": 0.42}])
    ['check_status', 'card_found']
    >>> torn_between([{"name": "ask_fee", "confidence": 0.3},
    ...               {"name": "greet", "confidence": 0.29}])
    []
    """
    titled = replies.words()["intent_title"]
    candidates = [item for item in ranking if item.get("name") in titled]
    if len(candidates) < 2:
        return []
    first, second = candidates[0], candidates[1]
    if second["confidence"] < LIKELY or first["confidence"] - second["confidence"] > CLOSE:
        return []
    return [first["name"], second["name"]]


class ActionClarifyIntent(Action):
    def name(self) -> str:
        return "action_clarify_intent"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        if handoff.failed_tries(tracker.events) >= handoff.FAILED_TRIES:
            return handoff.hand_over(dispatcher)  # a person rather than a fourth try
        ranking = list((tracker.latest_message or {}).get("intent_ranking") or [])
        choices = torn_between(ranking)
        if not choices:
            dispatcher.utter_message(response="utter_default")
            return []
        language = tracker.get_slot("language") or "en"
        dispatcher.utter_message(response="utter_clarify", buttons=[
            {"title": replies.intent_title(intent, language), "payload": f"/{intent}"}
            for intent in choices])
        return []
