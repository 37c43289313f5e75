"""The custom actions against a real card service on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from rasa_sdk.executor import CollectingDispatcher

from actions import card_service
from actions.faq import ActionAnswerFaq
from actions.filing import ActionFileReport, idempotency_key
from actions.handoff import ActionHandoff
from actions.notices import ActionSmsConsent
from actions.progress import (
    ActionCancelReport,
    ActionCardReady,
    ActionCheckStatus,
    ValidateCardFoundForm,
)
from actions.report_form import DETAILS
from bot.rules import regions
from bot.settings import settings
from tests.integration.conftest import CardService
from tests.testkit.people import child_id, guardian_id
from tests.testkit.trackers import DOMAIN, responses, run, slot_values, tracker

pytestmark = pytest.mark.integration


def point_actions_at(service: CardService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARD_SERVICE_PORT", str(service.port))
    monkeypatch.setenv("BIND_HOST", "127.0.0.1")
    monkeypatch.setenv("CARD_SERVICE_TOKEN", service.service_token)
    # Settings are read once per process: read them again with this service's address.
    settings.cache_clear()
    card_service.client.cache_clear()


@pytest.fixture
def service(shared_card_service: CardService, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[CardService]:
    point_actions_at(shared_card_service, monkeypatch)
    yield shared_card_service
    settings.cache_clear()
    card_service.client.cache_clear()


def details(sequence: int = 1) -> dict[str, str]:
    return {"child_name": "李娜", "child_id_number": child_id(age=7, sequence=sequence),
            "guardian_name": "李强", "guardian_id_number": guardian_id(sequence=sequence + 1),
            "relationship": "father", "phone_number": "13800138000", "city": "北京"}


def file(sender: str, slots: dict[str, str], language: str = "en"):  # type: ignore[no-untyped-def]
    state = tracker(intent="affirm", slots={**slots, "language": language}, sender=sender)
    return run(ActionFileReport(), state)


def test_faq_uses_the_citys_rules_from_the_service(service: CardService) -> None:
    _, messages = run(ActionAnswerFaq(), tracker(intent="ask_fee", slots={"city": "上海"}))
    assert responses(messages) == ["utter_fee"]
    assert messages[0]["region_name"] == "Shanghai"
    _, messages = run(ActionAnswerFaq(), tracker(intent="ask_loss_channels",
                                                 slots={"city": "Shanghai"}))
    assert messages[0]["validity_days"] == "5"


def test_faq_without_a_city_gives_national_figures_and_asks_for_the_city(
        service: CardService) -> None:
    events, messages = run(ActionAnswerFaq(), tracker(intent="ask_processing_time",
                                                      slots={"language": "zh"}))
    assert responses(messages) == ["utter_processing_time", "utter_city_hint"]
    assert slot_values(events) == {"last_question": "ask_processing_time"}


def test_a_city_given_after_an_answer_re_answers_that_question(service: CardService) -> None:
    state = tracker(intent="inform", slots={"city": "西安", "last_question": "ask_fee"})
    _, messages = run(ActionAnswerFaq(), state)
    assert responses(messages) == ["utter_fee"] and messages[0]["region_name"] == "Xi'an"


def test_filing_returns_reference_status_and_lapse_date_and_clears_personal_slots(
        service: CardService) -> None:
    events, messages = file("conv-file-1", details(1))
    values = slot_values(events)
    reference = values["reference_number"]
    assert reference.startswith("SC-") and len(reference) == 12
    assert all(values[slot] is None for slot in DETAILS if slot != "city")
    said = messages[0]
    assert said["response"] == "utter_report_filed" and said["reference"] == reference
    assert said["validity_days"] == "10"  # Beijing
    assert said["status_label"] and said["valid_until"][:2] == "20"
    # Nothing whole in the reply.
    assert details(1)["child_id_number"] not in str(messages)


def test_filing_twice_for_the_same_conversation_is_one_report(service: CardService) -> None:
    first, _ = file("conv-file-2", details(3))
    again, _ = file("conv-file-2", details(3))
    assert slot_values(first)["reference_number"] == slot_values(again)["reference_number"]


def test_the_key_depends_on_conversation_and_details() -> None:
    assert idempotency_key("a", details(1)) == idempotency_key("a", details(1))
    assert idempotency_key("a", details(1)) != idempotency_key("b", details(1))
    changed = {**details(1), "phone_number": "13912345678"}
    assert idempotency_key("a", details(1)) != idempotency_key("a", changed)


def test_service_down_keeps_the_details_and_offers_a_retry(
        card_service_factory, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    service = card_service_factory()
    point_actions_at(service, monkeypatch)
    service.stop()
    events, messages = file("conv-down", details(5), language="zh")
    values = slot_values(events)
    assert values == {"filing_failed": True}  # nothing cleared
    assert responses(messages) == ["utter_filing_failed"]

    service.start()
    events, messages = file("conv-down", details(5), language="zh")
    assert slot_values(events)["reference_number"].startswith("SC-")
    listed = service.get("/v1/loss-reports", role="staff").json()["reports"]
    assert len(listed) == 1


def test_status_check_verifies_the_guardian_and_gives_history_and_next_step(
        service: CardService) -> None:
    slots = details(7)
    reference = slot_values(file("conv-status", slots)[0])["reference_number"]
    state = tracker(intent="inform", slots={"reference_number": reference,
                                            "verify_id_number": slots["guardian_id_number"]})
    events, messages = run(ActionCheckStatus(), state)
    assert responses(messages) == ["utter_status", "utter_next_step_file_written_report"]
    assert messages[0]["reference"] == reference
    assert slot_values(events)["verify_id_number"] is None  # the ID is not kept


def test_wrong_id_and_unknown_reference_answer_alike_then_12333(service: CardService) -> None:
    slots = details(9)
    reference = slot_values(file("conv-wrong", slots)[0])["reference_number"]
    said = []
    failures = 0.0
    for ref in (reference, "SC-0000-0000", reference):
        state = tracker(slots={"reference_number": ref, "verification_failures": failures,
                               "verify_id_number": guardian_id(age=50, sequence=99)},
                        sender="conv-wrong")
        events, messages = run(ActionCheckStatus(), state)
        failures = slot_values(events).get("verification_failures", failures)
        said += responses(messages)
    assert said == ["utter_not_verified", "utter_not_verified", "utter_verification_locked"]


def test_card_found_lifts_a_temporary_report_but_not_a_written_one(service: CardService) -> None:
    slots = details(11)
    reference = slot_values(file("conv-found", slots)[0])["reference_number"]
    verify = {"reference_number": reference, "verify_id_number": slots["guardian_id_number"],
              "verify_child_id_number": child_id(age=7, sequence=12)}
    events, messages = run(ActionCancelReport(), tracker(slots=verify, sender="conv-found"))
    assert responses(messages) == ["utter_not_verified"]  # the guardian's number alone is not enough
    assert slot_values(events)["verify_child_id_number"] is None
    listed = service.get(f"/v1/loss-reports/{reference}", role="staff").json()
    assert listed["status"] == "reported_temporary"

    verify["verify_child_id_number"] = slots["child_id_number"]
    events, messages = run(ActionCancelReport(), tracker(slots=verify, sender="conv-found"))
    assert responses(messages) == ["utter_report_cancelled"]
    assert slot_values(events)["verify_id_number"] is None  # neither number is kept
    assert slot_values(events)["verify_child_id_number"] is None

    slots = details(13)
    reference = slot_values(file("conv-found-2", slots)[0])["reference_number"]
    assert service.post(f"/v1/loss-reports/{reference}/events", {"status": "reported_written"},
                        role="staff").status_code == 200
    _, messages = run(ActionCancelReport(), tracker(slots={
        "reference_number": reference, "verify_id_number": slots["guardian_id_number"],
        "verify_child_id_number": slots["child_id_number"]}))
    assert responses(messages) == ["utter_cannot_cancel"]


def test_card_found_form_checks_the_childs_id_number() -> None:
    validator = ValidateCardFoundForm()
    state = tracker(active_loop="card_found_form")
    dispatcher = CollectingDispatcher()
    good = child_id(age=7, sequence=15)
    assert asyncio.run(validator.validate_verify_child_id_number(
        f"{good[:6]} {good[6:14]} {good[14:]}", dispatcher, state, DOMAIN)) == {
        "verify_child_id_number": good}
    assert asyncio.run(validator.validate_verify_child_id_number(
        good[:-1] + ("0" if good[-1] != "0" else "1"), dispatcher, state, DOMAIN)) == {
        "verify_child_id_number": None}
    assert responses(dispatcher.messages) == ["utter_invalid_id_checksum"]


def test_card_ready_names_the_reference_and_where_to_collect(service: CardService) -> None:
    state = tracker(intent="EXTERNAL_card_ready", slots={"city": "成都", "language": "zh"},
                    entities=[{"entity": "reference_number", "value": "SC-7K3F-9Q2M"}])
    events, messages = run(ActionCardReady(), state)
    assert messages[0]["response"] == "utter_card_ready"
    assert messages[0]["reference"] == "SC-7K3F-9Q2M"
    assert messages[0]["bank_place"] == regions.resolve("成都").bank_zh
    assert slot_values(events) == {"reference_number": "SC-7K3F-9Q2M"}


def test_handoff_marks_the_conversation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAFFED_HOURS", "Mon-Sun 00:00-24:00")  # staffed, whatever the hour
    settings.cache_clear()
    events, messages = run(ActionHandoff(), tracker(intent="request_human"))
    assert slot_values(events) == {"handoff_requested": True}
    assert responses(messages) == ["utter_handoff"]


def test_filing_asks_whether_to_text_the_masked_number_and_records_the_answer(
        service: CardService) -> None:
    events, messages = file("wechat:oConsentAsked", details(11), language="zh")
    reference = slot_values(events)["reference_number"]
    assert responses(messages)[:2] == ["utter_report_filed", "utter_ask_sms_consent"]
    assert messages[1]["phone_masked"] == "13*******00"  # 13800138000, masked
    # In WeChat the subscription notification is offered too, in the guardian's language.
    assert messages[2]["custom"] == {"notice_offer": {
        "reference": reference, "kind": "card_ready", "language": "zh"}}
    shown = service.get(f"/v1/loss-reports/{reference}", role="staff").json()
    assert shown["sms_consent"] is False  # nothing is assumed

    agreed = tracker(intent="agree_sms", slots={"reference_number": reference},
                     sender="wechat:oConsentAsked")
    _, said = run(ActionSmsConsent(), agreed)
    assert responses(said) == ["utter_sms_consent_given"]
    assert said[0]["phone_masked"] == "13*******00"
    assert service.get(f"/v1/loss-reports/{reference}", role="staff").json()["sms_consent"]

    declined = tracker(intent="decline_sms", slots={"reference_number": reference},
                       sender="wechat:oConsentAsked")
    assert responses(run(ActionSmsConsent(), declined)[1]) == ["utter_sms_consent_declined"]
    assert not service.get(f"/v1/loss-reports/{reference}", role="staff").json()["sms_consent"]


def test_only_the_filing_conversation_can_say_yes_to_texts(service: CardService) -> None:
    reference = slot_values(file("conv-consent-own", details(13))[0])["reference_number"]
    other = tracker(intent="agree_sms", slots={"reference_number": reference},
                    sender="conv-consent-other")
    assert responses(run(ActionSmsConsent(), other)[1]) == ["utter_sms_consent_no_report"]
    nothing = tracker(intent="agree_sms", sender="conv-consent-none")
    assert responses(run(ActionSmsConsent(), nothing)[1]) == ["utter_sms_consent_no_report"]
    assert not service.get(f"/v1/loss-reports/{reference}", role="staff").json()["sms_consent"]


def test_a_status_check_says_when_and_how_the_card_ready_notice_went(
        service: CardService) -> None:
    slots = details(15)
    reference = slot_values(file("conv-told", slots, language="zh")[0])["reference_number"]
    for status in ("reported_written", "replacement_applied", "in_production",
                   "ready_for_collection"):
        assert service.post(f"/v1/loss-reports/{reference}/events", {"status": status},
                            role="staff").status_code == 200
    state = tracker(intent="inform", slots={"reference_number": reference, "language": "zh",
                                            "verify_id_number": slots["guardian_id_number"]})
    assert "utter_notice_already_sent" not in responses(run(ActionCheckStatus(), state)[1])
    # What the outbox writes when a path reported the notice seen (here: Rasa is not up).
    redis.Redis.from_url(service.redis_url).hset(
        f"cardsvc:report:{reference}",
        mapping={"notified_at": "2026-12-04T17:30:00Z", "notified_by": "sms"})
    _, messages = run(ActionCheckStatus(), state)
    assert responses(messages)[-1] == "utter_notice_already_sent"
    assert messages[-1]["notified_on"] == "2026-12-05"  # the day in China
    assert messages[-1]["notice_path"] == "通过短信"
