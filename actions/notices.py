"""Notices the card service sends unasked (the lapse reminder; "card ready" is in
progress.py), and the guardian's answer to "shall I also text you?"."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.card_service import client
from actions.progress import unasked
from bot.card_client import CardServiceUnavailable, LossReport, NotFound

logger = logging.getLogger(__name__)


def offer_texts(dispatcher: CollectingDispatcher, tracker: Tracker, report: LossReport) -> None:
    """After a filing: the SMS question, and in WeChat its own subscription (the channel
    turns `notice_offer` into WeChat's subscribe page; other apps show nothing for it)."""
    if report.phone_masked:
        dispatcher.utter_message(response="utter_ask_sms_consent",
                                 phone_masked=report.phone_masked)
    if tracker.sender_id.startswith("wechat:"):
        dispatcher.utter_message(json_message={"notice_offer": {
            "reference": report.reference, "kind": "card_ready",
            "language": tracker.get_slot("language") or "zh"}})


class ActionSmsConsent(Action):
    """The buttons under utter_ask_sms_consent: the card service records the answer for the
    report this conversation filed."""

    def name(self) -> str:
        return "action_sms_consent"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        agreed = (tracker.latest_message.get("intent") or {}).get("name") == "agree_sms"
        reference = tracker.get_slot("reference_number")
        if not reference:
            dispatcher.utter_message(response="utter_sms_consent_no_report")
            return []
        try:
            report = await client().sms_consent_async(reference, tracker.sender_id, agreed)
        except NotFound:
            dispatcher.utter_message(response="utter_sms_consent_no_report")
            return []
        except CardServiceUnavailable:
            dispatcher.utter_message(response="utter_service_unavailable")
            return []
        logger.info("%s: SMS notices %s", reference, "agreed" if agreed else "declined")
        dispatcher.utter_message(
            response="utter_sms_consent_given" if agreed else "utter_sms_consent_declined",
            phone_masked=report.phone_masked)
        return []


class ActionLapseReminder(Action):
    """Said unasked, two days before a temporary report lapses while still temporary."""

    def name(self) -> str:
        return "action_lapse_reminder"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        given, reference, words = await unasked(tracker)
        dispatcher.utter_message(response="utter_lapse_reminder", reference=reference,
                                 valid_until=given.get("valid_until") or "", **words)
        return []
