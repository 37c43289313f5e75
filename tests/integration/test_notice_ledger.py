"""The notice ledger and its outbox: a real card service and Redis, Rasa and the channels'
notice routes stood in for with scripted outcomes, the service's clock moved by the test."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from bot.rules import statuses
from tests.integration.conftest import CardService
from tests.testkit import people
from tests.testkit.processes import free_port, wait_for
from tests.testkit.rasa_stand_in import RasaStandIn

WAIT = 20


@pytest.fixture
def rasa() -> Iterator[RasaStandIn]:
    stand_in = RasaStandIn(free_port()).start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def service(card_service_factory: Callable[..., CardService], rasa: RasaStandIn
            ) -> CardService:
    return card_service_factory(RASA_URL=rasa.url, CARD_SERVICE_OUTBOX_MAX_DELAY="0.2")


def filed(service: CardService, conversation: str, city: str = "上海") -> str:
    body = people.report_body(conversation_id=conversation, city=city)
    response = service.post("/v1/loss-reports", body, **{"Idempotency-Key": conversation})
    assert response.status_code == 201, response.text
    return str(response.json()["reference"])


def ready(service: CardService, reference: str) -> None:
    for status in statuses.MAIN_LINE[1:statuses.MAIN_LINE.index(
            statuses.READY_FOR_COLLECTION) + 1]:
        moved = service.post(f"/v1/loss-reports/{reference}/events", {"status": status},
                             role="staff")
        assert moved.status_code == 200, moved.text


def ledger(service: CardService, reference: str) -> list[dict]:
    response = service.get(f"/v1/loss-reports/{reference}/notices", role="staff")
    assert response.status_code == 200, response.text
    return list(response.json()["notices"])


def settled(service: CardService, reference: str, count: int = 1) -> list[dict]:
    """The report's notices once `count` of them are delivered or given up."""
    def done() -> bool:
        notices = ledger(service, reference)
        return sum(n["state"] in ("delivered", "undeliverable") for n in notices) >= count
    wait_for(done, WAIT, "the notices to settle")
    return ledger(service, reference)


def test_each_path_in_turn_until_one_is_seen(service: CardService, rasa: RasaStandIn) -> None:
    rasa.outcomes = {"customer_service": ["fallback"], "subscription": ["fallback"]}
    reference = filed(service, "wechat:oWindowClosed")
    ready(service, reference)
    [notice] = settled(service, reference)
    assert notice["state"] == "delivered" and notice["delivered_path"] == "template"
    assert [(a["path"], a["outcome"]) for a in notice["attempts"]] == [
        ("customer_service", "fallback"), ("subscription", "fallback"), ("template", "seen")]
    assert [n["body"]["path"] for n in rasa.notices] == [
        "customer_service", "subscription", "template"]
    assert len(rasa.received) == 1  # rendered once, whatever the paths
    shown = service.get(f"/v1/loss-reports/{reference}", role="staff").json()
    assert shown["notified_by"] == "template" and shown["notified_at"]


def test_retries_then_seen_and_nothing_after(service: CardService, rasa: RasaStandIn) -> None:
    rasa.outcomes = {"message": ["retry", "retry"]}
    reference = filed(service, "telegram:4242")
    ready(service, reference)
    [notice] = settled(service, reference)
    assert [a["outcome"] for a in notice["attempts"]] == ["retry", "retry", "seen"]
    time.sleep(1)
    assert len(rasa.notices) == 3  # delivered: never tried again


def test_unreachable_skips_the_channels_other_paths(service: CardService, rasa: RasaStandIn
                                                    ) -> None:
    rasa.outcomes = {"customer_service": ["unreachable"]}
    reference = filed(service, "wechat:oUnfollowed")
    ready(service, reference)
    [notice] = settled(service, reference)
    # No SMS consent: nothing after WeChat's own paths, and none of them can reach them.
    assert notice["state"] == "undeliverable"
    assert [a["path"] for a in notice["attempts"]] == ["customer_service"]
    shown = service.get(f"/v1/loss-reports/{reference}", role="staff").json()
    assert shown["notified_at"] is None


def test_a_rest_conversation_has_no_path_but_still_hears_it(service: CardService,
                                                            rasa: RasaStandIn) -> None:
    reference = filed(service, "guardian-rest-1")
    ready(service, reference)
    [notice] = settled(service, reference)
    assert notice["state"] == "undeliverable" and notice["paths"] == []
    assert len(rasa.received) == 1 and rasa.notices == []  # said in the conversation only


def test_a_conversation_named_before_channel_prefixes_is_reached_by_its_channel(
        service: CardService, rasa: RasaStandIn) -> None:
    rasa.latest_input_channel = "telegram"  # what its tracker says it last came in by
    reference = filed(service, "7561618097")
    ready(service, reference)
    [notice] = settled(service, reference)
    assert (notice["channel"], notice["paths"]) == ("telegram", ["message"])
    assert notice["delivered_path"] == "message"
    assert rasa.notices[0]["path"] == "/webhooks/telegram/notice"


def test_a_queued_notice_is_asked_about_again_later(service: CardService, rasa: RasaStandIn
                                                    ) -> None:
    rasa.outcomes = {"page": ["queued"]}
    reference = filed(service, "webchat:session-queued")
    ready(service, reference)
    wait_for(lambda: len(rasa.notices) == 1, WAIT, "the first try")
    time.sleep(1)
    [notice] = ledger(service, reference)
    assert notice["state"] == "queued"
    assert rasa.notices[0]["body"]["last"] is True  # nothing after the page: keep it
    # A day later (past the ten-minute check) the page has fetched it.
    service.stop()
    later = service.sibling(CARD_SERVICE_CLOCK_OFFSET_DAYS="1").start()
    try:
        [notice] = settled(later, reference)
        assert notice["state"] == "delivered" and notice["delivered_path"] == "page"
        assert [a["outcome"] for a in notice["attempts"]] == ["queued", "seen"]
        assert len(rasa.received) == 1
    finally:
        later.stop()


def test_the_ledger_is_for_staff_only(service: CardService) -> None:
    reference = filed(service, "webchat:staff-only")
    assert service.get(f"/v1/loss-reports/{reference}/notices").status_code == 403
    assert service.get("/v1/loss-reports/SC-ZZZZ-ZZZZ/notices", role="staff").status_code == 404
    assert ledger(service, reference) == []


def test_sms_consent_is_the_filing_conversations_to_give(service: CardService) -> None:
    reference = filed(service, "webchat:consent")
    path = f"/v1/loss-reports/{reference}/sms-consent"
    missing = service.post(path, {"conversation_id": "webchat:consent"})
    assert missing.status_code == 422
    assert missing.json()["error"]["fields"] == {"consent": "missing"}
    wrong_type = service.post(path, {"conversation_id": "webchat:consent", "consent": "yes"})
    assert wrong_type.json()["error"]["fields"] == {"consent": "type"}
    other = service.post(path, {"conversation_id": "webchat:someone-else", "consent": True})
    assert other.status_code == 404
    assert service.post(path, {"conversation_id": "webchat:consent", "consent": True},
                        role="staff").status_code == 403
    given = service.post(path, {"conversation_id": "webchat:consent", "consent": True})
    assert given.status_code == 200 and given.json()["sms_consent"] is True
    assert given.json()["guardian"]["phone_masked"].count("*") >= 4


def test_the_lapse_reminder_comes_two_days_before_and_only_if_still_temporary(
        service: CardService, rasa: RasaStandIn) -> None:
    waiting = filed(service, "telegram:5001")  # Shanghai: temporary for 5 days
    moved_on = filed(service, "telegram:5002")
    assert service.post(f"/v1/loss-reports/{moved_on}/events",
                        {"status": statuses.MAIN_LINE[1]}, role="staff").status_code == 200
    valid_until = service.get(f"/v1/loss-reports/{waiting}", role="staff").json()["valid_until"]
    # Due at 10:00 in China, two days before the last valid day.
    due = dt.datetime.combine(dt.date.fromisoformat(valid_until) - dt.timedelta(days=2),
                              dt.time(10), dt.timezone(dt.timedelta(hours=8)))
    reminders = dict(redis.Redis.from_url(service.redis_url).zrange(
        "cardsvc:reminders", 0, -1, withscores=True))
    # The one that moved on keeps its entry until then, and is dropped when it comes due.
    assert reminders[waiting.encode()] == due.timestamp() * 1000
    service.stop()
    # Day 2: not yet (the reminder is on day 3, two days before the last valid day 5).
    early = service.sibling(CARD_SERVICE_CLOCK_OFFSET_DAYS="2").start()
    time.sleep(1.5)
    early.stop()
    assert rasa.received == []
    later = service.sibling(CARD_SERVICE_CLOCK_OFFSET_DAYS="4").start()
    try:
        [notice] = settled(later, waiting)
        assert notice["kind"] == "lapse_reminder" and notice["state"] == "delivered"
        assert rasa.received[0]["body"] == {
            "name": "EXTERNAL_lapse_reminder",
            "entities": {"reference_number": waiting, "valid_until": valid_until}}
        time.sleep(1)
        assert len(rasa.received) == 1  # none for the report that moved on, none twice
        assert ledger(later, moved_on) == []
        shown = later.get(f"/v1/loss-reports/{waiting}", role="staff").json()
        assert shown["reminded_at"] and shown["notified_at"] is None
    finally:
        later.stop()
    assert redis.Redis.from_url(service.redis_url).zcard("cardsvc:reminders") == 0
