"""Filing the confirmed loss report with the card service, once, whatever fails on the way."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import replies
from actions.card_service import client
from actions.notices import offer_texts
from actions.report_form import DETAILS, clear_personal
from bot.card_client import CardServiceUnavailable, Invalid
from bot.rules import identity

logger = logging.getLogger(__name__)

# The API's field paths back to the form's slots, for a 422.
FIELD_SLOTS = {
    "child.name": "child_name", "child.id_number": "child_id_number",
    "guardian.name": "guardian_name", "guardian.id_number": "guardian_id_number",
    "guardian.relationship": "relationship", "guardian.phone": "phone_number",
    "city": "city",
}


def idempotency_key(conversation_id: str, details: dict[str, Any]) -> str:
    """The same conversation filing the same confirmed details is the same report, so a
    retry after a timeout can never file twice; a corrected detail is a new request."""
    canonical = json.dumps({"conversation": conversation_id, **details}, sort_keys=True,
                           ensure_ascii=False)
    return "conv-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


class ActionFileReport(Action):
    def name(self) -> str:
        return "action_file_report"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        details = {slot: tracker.get_slot(slot) for slot in DETAILS}
        if any(value is None for value in details.values()):
            # The details were cleared (filed or stopped): nothing to file.
            dispatcher.utter_message(response="utter_nothing_to_stop")
            return [SlotSet("filing_failed", False)]
        language = tracker.get_slot("language") or "en"
        try:
            report = await client().file_report_async(
                child_name=details["child_name"],
                child_id_number=details["child_id_number"],
                guardian_name=details["guardian_name"],
                guardian_id_number=details["guardian_id_number"],
                relationship=details["relationship"],
                phone=details["phone_number"],
                city=details["city"],
                conversation_id=tracker.sender_id,
                idempotency_key=idempotency_key(tracker.sender_id, details),
            )
        except CardServiceUnavailable as error:
            logger.warning("filing failed, details kept for a retry: %s", error)
            dispatcher.utter_message(response="utter_filing_failed")
            return [SlotSet("filing_failed", True)]
        except Invalid as error:
            slots = sorted({FIELD_SLOTS[f] for f in error.fields if f in FIELD_SLOTS})
            logger.warning("card service refused fields %s", ", ".join(error.fields))
            dispatcher.utter_message(response="utter_filing_rejected",
                                     fields=replies.refused_items(slots, language))
            return [*(SlotSet(slot, None) for slot in slots), SlotSet("report_confirmed", None),
                    SlotSet("filing_failed", False), FollowupAction("loss_report_form")]
        logger.info("filed %s for child %s", report.reference,
                    identity.mask(details["child_id_number"]))
        dispatcher.utter_message(
            response="utter_report_filed",
            reference=report.reference,
            status_label=replies.status_label(report.status, language),
            valid_until=report.valid_until,
            **replies.region_words(report.region, language),
        )
        offer_texts(dispatcher, tracker, report)
        return [SlotSet("reference_number", report.reference), SlotSet("filing_failed", False),
                *clear_personal()]


class ActionDeclineRetry(Action):
    """"Not now" after a failed filing: nothing filed, details forgotten, 12333 offered."""

    def name(self) -> str:
        return "action_decline_retry"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        dispatcher.utter_message(response="utter_filing_declined")
        return [SlotSet("filing_failed", False), *clear_personal()]
