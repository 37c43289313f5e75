"""Nothing lost, nothing doubled: concurrency, restarts of the service and of Redis, the outbox."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from bot.rules import statuses
from tests.integration.conftest import CardService
from tests.testkit import people
from tests.testkit.processes import free_port, wait_for
from tests.testkit.rasa_stand_in import RasaStandIn
from tests.testkit.redis_server import RedisServer

pytestmark = pytest.mark.integration


def file(service: CardService, body: dict, key: str) -> requests.Response:
    return service.post("/v1/loss-reports", body, **{"Idempotency-Key": key})


def walk_to(service: CardService, reference: str, target: str) -> None:
    for status in statuses.MAIN_LINE[1:statuses.MAIN_LINE.index(target) + 1]:
        response = service.post(f"/v1/loss-reports/{reference}/events", {"status": status},
                                role="staff")
        assert response.status_code == 200, response.text


def test_fifty_concurrent_identical_posts_make_one_report(card_service: CardService) -> None:
    body, key = people.report_body(), str(uuid.uuid4())
    barrier = threading.Barrier(50)

    def post(_: int) -> requests.Response:
        barrier.wait()
        return file(card_service, body, key)

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(post, range(50)))
    assert Counter(r.status_code for r in responses) == {201: 1, 200: 49}
    assert len({r.json()["reference"] for r in responses}) == 1
    assert redis.Redis.from_url(card_service.redis_url).zcard("cardsvc:reports") == 1


def test_concurrent_posts_with_different_keys_make_distinct_reports(
        card_service: CardService) -> None:
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda i: file(card_service, people.report_body(f"c{i}"),
                                                 f"key-{i}"), range(60)))
    assert all(r.status_code == 201 for r in responses)
    assert len({r.json()["reference"] for r in responses}) == 60


def test_concurrent_events_lose_no_update(card_service: CardService) -> None:
    body = people.report_body()
    reference = file(card_service, body, "k").json()["reference"]
    barrier = threading.Barrier(30)

    def act(i: int) -> int:
        barrier.wait()
        if i % 2:
            return card_service.post(f"/v1/loss-reports/{reference}/events",
                                     {"status": "reported_written"}, role="staff").status_code
        return card_service.post(f"/v1/loss-reports/{reference}/cancel",
                                 {"guardian_id_number": body["guardian"]["id_number"],
                                  "child_id_number": body["child"]["id_number"]},
                                 **{"X-Caller-Id": f"c{i}"}).status_code

    with ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(act, range(30)))
    assert Counter(codes) == {200: 1, 409: 29}
    report = card_service.get(f"/v1/loss-reports/{reference}", role="staff").json()
    assert len(report["history"]) == 2
    assert report["status"] == report["history"][-1]["status"]


def test_a_restarted_service_still_has_the_report(card_service: CardService) -> None:
    body = people.report_body()
    reference = file(card_service, body, "k").json()["reference"]
    card_service.kill()
    card_service.start()
    response = card_service.post(f"/v1/loss-reports/{reference}/lookup",
                                 {"guardian_id_number": body["guardian"]["id_number"]})
    assert response.status_code == 200
    assert file(card_service, body, "k").json()["reference"] == reference


@pytest.mark.slow
def test_redis_killed_mid_stream_loses_no_accepted_report(
        redis_server_factory: Callable[[], RedisServer],
        card_service_factory: Callable[..., CardService]) -> None:
    server = redis_server_factory()
    service = card_service_factory(server.url)
    accepted: list[str] = []
    stop = threading.Event()

    def keep_filing() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                response = file(service, people.report_body(f"conv-{i}"), f"stream-{i}")
            except requests.RequestException:
                continue
            if response.status_code == 201:
                accepted.append(response.json()["reference"])

    filer = threading.Thread(target=keep_filing)
    filer.start()
    wait_for(lambda: len(accepted) >= 30, 20, "30 accepted reports")
    server.kill()  # SIGKILL, as a crash or power cut would
    time.sleep(0.5)
    server.start()  # same directory: the append-only file is replayed
    wait_for(lambda: len(accepted) >= 60, 30, "filing after the Redis restart")
    stop.set()
    filer.join(15)
    stored = redis.Redis.from_url(server.url, decode_responses=True)
    missing = [ref for ref in accepted if not stored.exists(f"cardsvc:report:{ref}")]
    assert missing == []
    assert stored.zcard("cardsvc:reports") >= len(accepted)


def test_outbox_delivers_once_rasa_comes_up(card_service_factory: Callable[..., CardService]
                                            ) -> None:
    rasa = RasaStandIn(free_port(), failures_first=2)
    service = card_service_factory(RASA_URL=rasa.url, CARD_SERVICE_OUTBOX_MAX_DELAY="1")
    body = people.report_body(conversation_id="webchat:conversation-7")
    reference = file(service, body, "k").json()["reference"]
    walk_to(service, reference, statuses.READY_FOR_COLLECTION)
    time.sleep(1.5)  # Rasa is down: a few attempts fail
    assert redis.Redis.from_url(service.redis_url).zcard("cardsvc:outbox") == 1
    rasa.start()
    try:
        wait_for(lambda: len(rasa.notices) >= 1, 15, "the card_ready notice")
        time.sleep(1.5)  # no second rendering or delivery turns up
        assert len(rasa.received) == 1 and len(rasa.notices) == 1
        rendered = rasa.received[0]
        # No secret in the URL; the stand-in took the one-conversation token in the header.
        # Rendered by the conversation (no output channel), then taken to the page.
        assert rendered["path"] == "/conversations/webchat:conversation-7/trigger_intent"
        assert rasa.refused == []
        assert rendered["body"] == {"name": "EXTERNAL_card_ready",
                                    "entities": {"reference_number": reference}}
        notice = rasa.notices[0]
        assert notice["path"] == "/webhooks/webchat/notice"
        assert notice["body"]["path"] == "page"
        assert notice["body"]["messages"][0]["text"] == f"EXTERNAL_card_ready {reference}"
        assert redis.Redis.from_url(service.redis_url).zcard("cardsvc:outbox") == 0
        shown = service.get(f"/v1/loss-reports/{reference}", role="staff").json()
        assert shown["notified_at"] and shown["notified_by"] == "page"
    finally:
        rasa.stop()


def test_outbox_survives_a_service_restart(card_service_factory: Callable[..., CardService]
                                           ) -> None:
    rasa = RasaStandIn(free_port())
    service = card_service_factory(RASA_URL=rasa.url, CARD_SERVICE_OUTBOX_MAX_DELAY="1")
    reference = file(service, people.report_body(conversation_id="telegram:c-restart"), "k"
                     ).json()["reference"]
    walk_to(service, reference, statuses.READY_FOR_COLLECTION)
    service.kill()
    rasa.start()
    try:
        time.sleep(0.5)
        assert rasa.received == []
        service.start()
        wait_for(lambda: len(rasa.notices) >= 1, 15, "the notice after the restart")
        assert rasa.received[0]["body"]["entities"] == {"reference_number": reference}
        assert rasa.notices[0]["body"]["path"] == "message"
    finally:
        rasa.stop()


def test_redis_down_is_503_and_up_again_is_served(
        redis_server_factory: Callable[[], RedisServer],
        card_service_factory: Callable[..., CardService]) -> None:
    server = redis_server_factory()
    service = card_service_factory(server.url)
    body = people.report_body()
    reference = file(service, body, "before").json()["reference"]
    server.stop()
    response = file(service, people.report_body("other"), "during")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"] == "1"
    assert requests.get(service.url + "/health", timeout=10).status_code == 503
    server.start()
    wait_for(service.healthy, 10, "health after the Redis restart")
    again = service.post(f"/v1/loss-reports/{reference}/lookup",
                         {"guardian_id_number": body["guardian"]["id_number"]})
    assert again.status_code == 200
