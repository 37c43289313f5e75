""""Delete my data": the conversation goes, and the report filed in it where its status allows.

The conversation itself is deleted by the tracker store when this action ends the turn with
`Restarted` (bot/rasa/tracker_store.py); the report's personal data is the card service's
to erase (POST /v1/loss-reports/{reference}/erase, by the conversation that filed it).
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, Restarted
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.card_service import client
from bot.card_client import CardServiceUnavailable, NotFound

logger = logging.getLogger(__name__)
ACTION = "action_delete_my_data"
FORGET = "action_forget_conversation"
# The confirm button's payload: the request, once the guardian has read what it does.
CONFIRMED = "/delete_my_data"


class ActionDeleteMyData(Action):
    """Any form in progress ends, whatever follows (the rules say so once for all)."""

    def name(self) -> str:
        return ACTION

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        text = (tracker.latest_message or {}).get("text") or ""
        if not text.startswith(CONFIRMED):
            # It cannot be undone: asked once, with the button that confirms it.
            dispatcher.utter_message(response="utter_confirm_erasure")
            return [ActiveLoop(None)]
        reference = tracker.get_slot("reference_number")
        if reference:
            try:
                erasure = await client().erase_async(reference, tracker.sender_id)
            except NotFound:
                erasure = None  # a reference typed to check a report filed elsewhere
            except CardServiceUnavailable:
                # Nothing is deleted, so that asking again can still reach the report.
                dispatcher.utter_message(response="utter_erasure_unavailable")
                return [ActiveLoop(None)]
            if erasure is not None and erasure.erased:
                dispatcher.utter_message(response="utter_report_data_erased",
                                         reference=erasure.reference)
            elif erasure is not None:
                dispatcher.utter_message(response="utter_report_data_kept",
                                         reference=erasure.reference)
        logger.info("conversation erased at the guardian's request")
        dispatcher.utter_message(response="utter_conversation_erased")
        return [ActiveLoop(None), Restarted()]


class ActionForgetConversation(Action):
    """EXTERNAL_forget, from the card service when a report's retention ran out: the
    conversation that filed it is deleted, silently. Not while a form is in progress: the
    guardian is in the middle of telling us something, and the record expires by itself."""

    def name(self) -> str:
        return FORGET

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        if (tracker.active_loop or {}).get("name"):
            logger.info("forget left for later: a form is in progress")
            return []
        return [Restarted()]
