"""Answers to the questions about the reissue process, with the city's own figures."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.card_service import region_for, region_words

# intent -> response; every one of these answers may use the region's words.
ANSWERS = {
    "ask_reissue_steps": "utter_reissue_steps",
    "ask_loss_channels": "utter_loss_channels",
    "ask_required_documents": "utter_required_documents",
    "ask_where_to_go": "utter_where_to_go",
    "ask_processing_time": "utter_processing_time",
    "ask_fee": "utter_fee",
    "ask_card_info": "utter_card_info",
    "ask_activation": "utter_activation",
    # "No" to filing now: the steps, so the guardian knows what to do instead.
    "deny": "utter_reissue_steps",
}
CITY_DEPENDENT = {"utter_reissue_steps", "utter_loss_channels", "utter_where_to_go",
                  "utter_processing_time", "utter_fee"}


class ActionAnswerFaq(Action):
    def name(self) -> str:
        return "action_answer_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        intent = (tracker.latest_message.get("intent") or {}).get("name", "")
        if intent not in ANSWERS:
            # A city given after an answer: the same question, for that city.
            intent = tracker.get_slot("last_question") or "ask_reissue_steps"
        response = ANSWERS[intent]
        language = tracker.get_slot("language") or "en"
        city = tracker.get_slot("city")
        region = await region_for(city)
        dispatcher.utter_message(response=response, **region_words(region, language))
        if response in CITY_DEPENDENT and not region.known:
            dispatcher.utter_message(response="utter_city_hint")
        return [SlotSet("last_question", intent)]
