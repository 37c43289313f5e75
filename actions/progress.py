"""Progress and changes: status checks, "the card was found", and the card-ready message."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import replies
from actions.card_service import client, region_for
from bot.card_client import CardServiceUnavailable, Conflict, LossReport, NotFound, RateLimited
from bot.rules import identity, statuses
from bot.rules.free_text import id_number_in

logger = logging.getLogger(__name__)
MAX_VERIFICATION_FAILURES = 3


def checked_id(slot: str, value: Any, dispatcher: CollectingDispatcher) -> dict[str, Any]:
    """The ID number typed for `slot`, normalised; None and the reason said when invalid."""
    checked = identity.check_id_number(id_number_in(str(value or "")))
    if not checked.ok:
        dispatcher.utter_message(response=replies.invalid_id(checked.reason))
        return {slot: None}
    return {slot: checked.value}


class _ValidateVerification(FormValidationAction):
    """Both verification forms ask the reference and the guardian's ID number."""

    @abstractmethod
    def name(self) -> str: ...

    async def validate_reference_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        checked = identity.parse_reference(str(value or ""))
        if not checked.ok:
            dispatcher.utter_message(response="utter_invalid_reference")
            return {"reference_number": None}
        return {"reference_number": checked.value}

    async def validate_verify_id_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return checked_id("verify_id_number", value, dispatcher)


class ValidateStatusForm(_ValidateVerification):
    def name(self) -> str:
        return "validate_status_form"


class ValidateCardFoundForm(_ValidateVerification):
    """Lifting a report asks the child's ID number too: more than a relative may know."""

    def name(self) -> str:
        return "validate_card_found_form"

    async def validate_verify_child_id_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return checked_id("verify_child_id_number", value, dispatcher)


class _VerifiedAction(Action, ABC):
    """Runs a verified call; a wrong ID and an unknown reference read the same."""

    # The numbers typed to prove who asks: cleared after the call, whatever it answered.
    proof_slots: tuple[str, ...] = ("verify_id_number",)

    @abstractmethod
    async def call(self, tracker: Tracker, reference: str, id_number: str) -> LossReport: ...

    @abstractmethod
    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     report: LossReport, language: str) -> list[dict[str, Any]]: ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        reference = tracker.get_slot("reference_number") or ""
        id_number = tracker.get_slot("verify_id_number") or ""
        language = tracker.get_slot("language") or "en"
        forget = [SlotSet(slot, None) for slot in self.proof_slots]
        failures = int(tracker.get_slot("verification_failures") or 0)
        try:
            report = await self.call(tracker, reference, id_number)
        except NotFound:
            failures += 1
            logger.info("verification failed for %s (%d)", reference, failures)
            if failures >= MAX_VERIFICATION_FAILURES:
                dispatcher.utter_message(response="utter_verification_locked")
            else:
                dispatcher.utter_message(response="utter_not_verified")
            return [*forget, SlotSet("reference_number", None),
                    SlotSet("verification_failures", float(failures))]
        except RateLimited:
            dispatcher.utter_message(response="utter_verification_locked")
            return [*forget, SlotSet("reference_number", None)]
        except CardServiceUnavailable:
            dispatcher.utter_message(response="utter_service_unavailable")
            return forget
        return [*forget, SlotSet("verification_failures", 0.0),
                *await self.answer(dispatcher, tracker, report, language)]


class ActionCheckStatus(_VerifiedAction):
    def name(self) -> str:
        return "action_check_status"

    async def call(self, tracker: Tracker, reference: str, id_number: str) -> LossReport:
        return await client().lookup_async(reference, id_number, tracker.sender_id)

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     report: LossReport, language: str) -> list[dict[str, Any]]:
        dispatcher.utter_message(
            response="utter_status", reference=report.reference,
            status_label=replies.status_label(report.status, language),
            history=replies.history(report.history, language),
        )
        dispatcher.utter_message(response=replies.next_step(report.next_step),
                                 valid_until=report.valid_until,
                                 **replies.region_words(report.region, language))
        if report.notified_at:
            dispatcher.utter_message(response="utter_notice_already_sent",
                                     notified_on=replies.china_date(report.notified_at),
                                     notice_path=replies.notice_path(report.notified_by,
                                                                     language))
        return []


class ActionCancelReport(_VerifiedAction):
    def name(self) -> str:
        return "action_cancel_report"

    proof_slots = ("verify_id_number", "verify_child_id_number")

    async def call(self, tracker: Tracker, reference: str, id_number: str) -> LossReport:
        child_id_number = tracker.get_slot("verify_child_id_number") or ""
        try:
            return await client().cancel_async(reference, id_number, child_id_number,
                                               tracker.sender_id)
        except Conflict:
            # Verified but too late to lift: say where it stands instead.
            return await client().lookup_async(reference, id_number, tracker.sender_id)

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     report: LossReport, language: str) -> list[dict[str, Any]]:
        if report.status == statuses.CANCELLED:
            dispatcher.utter_message(response="utter_report_cancelled",
                                     reference=report.reference)
        else:
            dispatcher.utter_message(response="utter_cannot_cancel",
                                     reference=report.reference,
                                     status_label=replies.status_label(report.status, language))
        return []


async def unasked(tracker: Tracker) -> tuple[dict[str, Any], Any, dict[str, str]]:
    """For a message the card service sent (an EXTERNAL_ intent): the entities it gave, the
    report it is about (else the conversation's), and the city's words in the language."""
    given = {e.get("entity"): e.get("value")
             for e in tracker.latest_message.get("entities") or []}
    reference = given.get("reference_number") or tracker.get_slot("reference_number")
    region = await region_for(tracker.get_slot("city"))
    return given, reference, replies.region_words(region, tracker.get_slot("language") or "en")


class ActionCardReady(Action):
    """Said unasked, when the card service reports the card can be collected."""

    def name(self) -> str:
        return "action_card_ready"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        _, reference, words = await unasked(tracker)
        dispatcher.utter_message(response="utter_card_ready", reference=reference, **words)
        return [SlotSet("reference_number", reference)] if reference else []
