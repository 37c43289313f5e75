"""The loss report form: each answer checked by the shared validators, the reason said back."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import replies
from bot.rules import identity, regions
from bot.rules.free_text import (
    id_number_in,
    item_in,
    name_in,
    not_guardian_in,
    phone_in,
    quotable,
    relationship_in,
)
from bot.rules.normalise import normalised
from bot.rules.report_details import details_in

CHINA = ZoneInfo("Asia/Shanghai")
MAX_FAILURES = 3
CITY_BUTTONS = 5
DETAILS = ["child_name", "child_id_number", "guardian_name", "guardian_id_number",
           "relationship", "phone_number", "city"]
# Cleared when the report is filed or the form stopped; the reference and city stay.
PERSONAL = [*DETAILS[:-1], "report_confirmed", "item_to_change", "failed_attempts"]
NATIONAL = "全国"  # the city value the card service files under the national default rules
# What a guardian may type for a city without rules of its own.
OTHER_CITY = ("other", "others", "national", "其他", "其它", "别的", "全国")


def today() -> dt.date:
    return dt.datetime.now(CHINA).date()


def clear_personal() -> list[dict[str, Any]]:
    return [SlotSet(slot, None) for slot in PERSONAL]


class ValidateLossReportForm(FormValidationAction):
    def name(self) -> str:
        return "validate_loss_report_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        # "No" to the summary leaves report_confirmed False: ask which item, then
        # that item alone, then the summary again.
        if tracker.get_slot("report_confirmed") is False:
            return domain_slots
        return [slot for slot in domain_slots if slot != "item_to_change"]

    def _failed(
        self, slot: str, response: str, dispatcher: CollectingDispatcher, tracker: Tracker,
        **values: Any,
    ) -> dict[str, Any]:
        """Say why, count the failure, offer 12333 from the third; the form asks again."""
        counts = dict(tracker.get_slot("failed_attempts") or {})
        counts[slot] = int(counts.get(slot, 0)) + 1
        dispatcher.utter_message(response=response, **values)
        if counts[slot] >= MAX_FAILURES:
            dispatcher.utter_message(response="utter_too_many_failures")
        return {slot: None, "failed_attempts": counts}

    def _passed(self, slot: str, value: Any, tracker: Tracker) -> dict[str, Any]:
        counts = dict(tracker.get_slot("failed_attempts") or {})
        counts.pop(slot, None)
        return {slot: value, "failed_attempts": counts or None}

    def _name(self, slot: str, value: Any, dispatcher: CollectingDispatcher,
              tracker: Tracker) -> dict[str, Any]:
        name = name_in(str(value or ""))
        if name is None:
            return self._failed(slot, "utter_invalid_name", dispatcher, tracker)
        return self._passed(slot, name, tracker)

    def _id_number(self, slot: str, value: Any, dispatcher: CollectingDispatcher,
                   tracker: Tracker) -> dict[str, Any]:
        check = (identity.check_child_id_number if slot == "child_id_number"
                 else identity.check_guardian_id_number)
        checked = check(id_number_in(str(value or "")), today())
        if not checked.ok:
            return self._failed(slot, replies.invalid_id(checked.reason), dispatcher, tracker)
        return self._passed(slot, checked.value, tracker)

    async def validate_child_name(self, value: Any, dispatcher: CollectingDispatcher,
                                  tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        return self._name("child_name", value, dispatcher, tracker)

    async def validate_guardian_name(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        return self._name("guardian_name", value, dispatcher, tracker)

    async def validate_child_id_number(self, value: Any, dispatcher: CollectingDispatcher,
                                       tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        return self._id_number("child_id_number", value, dispatcher, tracker)

    async def validate_guardian_id_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._id_number("guardian_id_number", value, dispatcher, tracker)

    async def validate_relationship(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        text = normalised(str(value or "")).text
        relationship = relationship_in(text)
        if relationship is None and not_guardian_in(text) is not None:
            # An uncle or a teacher: who may report instead; the form waits for the answer.
            return self._failed("relationship", "utter_relationship_not_guardian", dispatcher,
                                tracker)
        if relationship is None:
            return self._failed("relationship", "utter_invalid_relationship", dispatcher,
                                tracker)
        return self._passed("relationship", relationship, tracker)

    async def validate_phone_number(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        checked = identity.check_mobile(phone_in(str(value or "")))
        if not checked.ok:
            return self._failed("phone_number", "utter_invalid_phone", dispatcher, tracker)
        return self._passed("phone_number", checked.value, tracker)

    async def validate_city(self, value: Any, dispatcher: CollectingDispatcher,
                            tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        text = str(value or "").strip()
        if text.casefold() in OTHER_CITY:
            return self._passed("city", NATIONAL, tracker)
        region = regions.lookup(text)
        if region is None:
            language = tracker.get_slot("language") or "en"
            return self._failed("city", "utter_unknown_city", dispatcher, tracker,
                                city=quotable(text), known_cities=replies.known_cities(language))
        return self._passed("city", region.name_zh, tracker)

    async def validate_report_confirmed(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {"report_confirmed": bool(value)}

    async def validate_item_to_change(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        item = item_in(str(value or ""))
        if item is None:
            dispatcher.utter_message(response="utter_invalid_item")
            return {"item_to_change": None}
        # Only that item is asked again, then the summary.
        return {item: None, "item_to_change": None, "report_confirmed": None}


class ActionAskReportConfirmed(Action):
    """The summary before filing, ID and phone numbers masked."""

    def name(self) -> str:
        return "action_ask_report_confirmed"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        language = tracker.get_slot("language") or "en"
        dispatcher.utter_message(
            response="utter_report_summary",
            child_name=tracker.get_slot("child_name"),
            child_id=identity.mask(tracker.get_slot("child_id_number") or ""),
            guardian_name=tracker.get_slot("guardian_name"),
            relationship=replies.relationship(tracker.get_slot("relationship") or "",
                                              language),
            guardian_id=identity.mask(tracker.get_slot("guardian_id_number") or ""),
            phone=identity.mask(tracker.get_slot("phone_number") or ""),
            city=replies.city_name(tracker.get_slot("city") or "", language),
        )
        return []


class ActionAskCity(Action):
    """The city question; where the child's ID number was registered in a city we know, that
    city comes first as a one-tap answer (a card is usually issued where the child is
    registered, so it is offered, never assumed)."""

    def name(self) -> str:
        return "action_ask_city"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        child_id = tracker.get_slot("child_id_number")
        region = regions.registered_in(child_id) if child_id else None
        if region is None:
            dispatcher.utter_message(response="utter_ask_city")
            return []
        language = tracker.get_slot("language") or "en"
        offered = [region, *(other for other in regions.known_cities() if other != region)]
        names = [replies.city_name(city.name_zh, language) for city in offered[:CITY_BUTTONS]]
        dispatcher.utter_message(response="utter_ask_city_registered", city=names[0],
                                 buttons=[{"title": name, "payload": name} for name in names])
        return []


class ActionStopReport(Action):
    """`stop` during the form: nothing filed, the details forgotten."""

    def name(self) -> str:
        return "action_stop_report"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        if tracker.active_loop_name:
            dispatcher.utter_message(response="utter_report_stopped")
        else:
            dispatcher.utter_message(response="utter_nothing_to_stop")
        return [ActiveLoop(None), SlotSet("requested_slot", None), *clear_personal(),
                SlotSet("verify_id_number", None), SlotSet("verify_child_id_number", None),
                SlotSet("filing_failed", False)]


class ActionExplainRequest(Action):
    """"Why do you need this?" in the middle of the form; the form then asks again."""

    def name(self) -> str:
        return "action_explain_request"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        dispatcher.utter_message(response="utter_why_details")
        return []


class ActionReadReportDetails(Action):
    """Every detail the loss report message carries, each in its own slot, before the offer:
    the form then asks only for what is missing (bot/rules/report_details.py)."""

    def name(self) -> str:
        return "action_read_report_details"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        text = (tracker.latest_message or {}).get("text") or ""
        found = details_in(text, today())
        # A detail already given in this conversation is not replaced by a guess.
        return [SlotSet(slot, value) for slot, value in found.items()
                if not tracker.get_slot(slot)]
