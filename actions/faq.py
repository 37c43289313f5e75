"""Answers to the questions about the reissue process, with the city's own figures."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import replies
from actions.card_service import region_for
from bot.rules.free_text import own_card_in
from bot.rules.normalise import normalised


class ActionAnswerFaq(Action):
    def name(self) -> str:
        return "action_answer_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        intent = (tracker.latest_message.get("intent") or {}).get("name", "")
        if intent not in replies.ANSWERS:
            # A city given after an answer: the same question, for that city.
            intent = tracker.get_slot("last_question") or "ask_reissue_steps"
        response = replies.ANSWERS[intent]
        language = tracker.get_slot("language") or "en"
        city = tracker.get_slot("city")
        region = await region_for(city)
        dispatcher.utter_message(response=response, **replies.region_words(region, language))
        if response in replies.CITY_DEPENDENT and not region.known:
            dispatcher.utter_message(response="utter_city_hint")
        return [SlotSet("last_question", intent)]


class ActionAnswerOutOfScope(Action):
    """Outside what the assistant does: said honestly, 12333 and the choices offered; an adult
    who lost their own card gets the adult's steps (nothing is filed for an adult)."""

    def name(self) -> str:
        return "action_answer_out_of_scope"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        text = normalised((tracker.latest_message or {}).get("text") or "").text
        dispatcher.utter_message(
            response="utter_adult_card_steps" if own_card_in(text) else "utter_out_of_scope")
        return []
