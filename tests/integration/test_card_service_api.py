"""Every endpoint of the card service and its error paths, against the real process."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.redis import CARD_SERVICE
from bot.rules import identity, statuses
from card_service.app import (
    BACKOFF_CAP_SECONDS,
    FAILURES_PER_CALLER,
    FAILURES_PER_REFERENCE,
    REFERENCE_WINDOW_SECONDS,
)
from card_service.openapi import document
from card_service.store import CHINA
from tests.integration.conftest import CardService
from tests.testkit import people

pytestmark = pytest.mark.integration
REFERENCE = re.compile(r"^SC-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


def china_today() -> dt.date:
    return dt.datetime.now(CHINA).date()


def file(service: CardService, body: dict | None = None, key: str | None = None
         ) -> requests.Response:
    return service.post("/v1/loss-reports", body or people.report_body(),
                        **{"Idempotency-Key": key or str(uuid.uuid4())})


def filed(service: CardService, **body_args: str) -> tuple[str, dict]:
    body = people.report_body(**body_args)
    response = file(service, body)
    assert response.status_code == 201, response.text
    return response.json()["reference"], body


def caller() -> dict[str, str]:
    return {"X-Caller-Id": str(uuid.uuid4())}


def proof(body: dict, guardian: str | None = None, child: str | None = None) -> dict[str, str]:
    """A cancel's body: the filed numbers unless told otherwise."""
    return {"guardian_id_number": guardian or body["guardian"]["id_number"],
            "child_id_number": child or body["child"]["id_number"]}


def pair_keys(reference: str, who: dict[str, str]) -> tuple[str, str]:
    """The Redis keys of one caller's failures and wait on one reference (card_service/store.py)."""
    pair = hashlib.sha256(f"{reference}\n{who['X-Caller-Id']}".encode()).hexdigest()
    return f"{CARD_SERVICE}fail:pair:{pair}", f"{CARD_SERVICE}fail:wait:{pair}"


def redis_of(service: CardService) -> redis.Redis:
    return redis.Redis.from_url(service.redis_url, decode_responses=True)


def assert_error(response: requests.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    if code:
        assert error["code"] == code
    return error


# Health and tokens.
def test_health_needs_no_token(shared_card_service: CardService) -> None:
    response = requests.get(shared_card_service.url + "/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": True}


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer wrong", "Basic abc", "wrong"])
def test_missing_or_wrong_token_is_401(shared_card_service: CardService,
                                       header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in [("POST", "/v1/loss-reports"), ("GET", "/v1/regions/beijing"),
                         ("GET", "/v1/loss-reports"), ("GET", "/v1/openapi.json"),
                         ("POST", "/v1/loss-reports/SC-0000-0000/events")]:
        response = requests.request(method, shared_card_service.url + path, headers=headers,
                                    json={}, timeout=5)
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_token_of_the_wrong_role_is_403(shared_card_service: CardService) -> None:
    service = shared_card_service
    assert_error(file_as_staff(service), 403, "forbidden")
    assert_error(service.post("/v1/loss-reports/SC-0000-0000/lookup",
                              {"guardian_id_number": people.guardian_id()}, role="staff"), 403)
    assert_error(service.post("/v1/loss-reports/SC-0000-0000/events",
                              {"status": "reported_written"}), 403)
    assert_error(service.get("/v1/loss-reports"), 403)
    assert_error(service.get("/v1/loss-reports/SC-0000-0000"), 403)


def file_as_staff(service: CardService) -> requests.Response:
    return service.post("/v1/loss-reports", people.report_body(), role="staff",
                        **{"Idempotency-Key": "k"})


# Filing.
def test_filing_answers_201_with_reference_and_validity(shared_card_service: CardService) -> None:
    response = file(shared_card_service)
    assert response.status_code == 201
    report = response.json()
    assert REFERENCE.match(report["reference"])
    assert report["status"] == "reported_temporary"
    assert report["valid_until"] == (china_today() + dt.timedelta(days=10)).isoformat()
    assert report["region"]["key"] == "beijing" and report["region"]["known"]
    assert report["next_step"]["key"] == "file_written_report"
    assert report["next_step"]["deadline"] == report["valid_until"]
    assert [entry["status"] for entry in report["history"]] == ["reported_temporary"]
    assert report["child"]["id_number_masked"].count("*") == 10
    assert report["guardian"]["phone_masked"] == "13*******00"
    assert report["can_cancel"] is True


@pytest.mark.parametrize("city, key, days", [("上海市", "shanghai", 5), ("Xi'an", "xian", 7),
                                             ("Chengdu", "chengdu", 7),
                                             ("南京", "default", 15)])
def test_validity_follows_the_city(shared_card_service: CardService, city: str, key: str,
                                   days: int) -> None:
    report = file(shared_card_service, people.report_body(city=city)).json()
    assert report["region"]["key"] == key
    assert report["region"]["known"] is (key != "default")
    assert report["city"] == city
    assert report["valid_until"] == (china_today() + dt.timedelta(days=days)).isoformat()


def test_same_idempotency_key_gives_the_same_report(shared_card_service: CardService) -> None:
    body, key = people.report_body(), str(uuid.uuid4())
    first, again = file(shared_card_service, body, key), file(shared_card_service, body, key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["reference"] == again.json()["reference"]


def test_same_key_with_a_different_body_is_422(shared_card_service: CardService) -> None:
    key = str(uuid.uuid4())
    assert file(shared_card_service, people.report_body(), key).status_code == 201
    other = file(shared_card_service, people.report_body(city="上海"), key)
    error = assert_error(other, 422, "idempotency_key_reused")
    assert error["fields"] == {"Idempotency-Key": "reused"}


def test_missing_idempotency_key_is_400(shared_card_service: CardService) -> None:
    response = shared_card_service.post("/v1/loss-reports", people.report_body())
    error = assert_error(response, 400, "idempotency_key_required")
    assert error["fields"] == {"Idempotency-Key": "missing"}


def test_every_bad_field_is_named(shared_card_service: CardService) -> None:
    body = {
        "child": {"name": "", "id_number": people.guardian_id()},
        "guardian": {"name": 42, "id_number": people.child_id(),
                     "relationship": "mother", "phone": "010 12345678"},
        "conversation_id": "c",
    }
    error = assert_error(file(shared_card_service, body), 422, "invalid_fields")
    assert error["fields"] == {
        "child.name": "missing", "child.id_number": "not_minor",
        "guardian.name": "type", "guardian.id_number": "not_adult",
        "guardian.phone": "not_mobile", "city": "missing",
    }


@pytest.mark.parametrize("child_id, reason", [
    ("110105201501010011", "checksum"), ("1101052015", "length"), (12345, "type"),
    (people.with_check_character("11010520151301001"), "birth_date"), (None, "missing")])
def test_child_id_reasons(shared_card_service: CardService, child_id: object,
                          reason: str) -> None:
    body = people.report_body()
    body["child"]["id_number"] = child_id
    error = assert_error(file(shared_card_service, body), 422)
    assert error["fields"] == {"child.id_number": reason}


def test_wrong_shapes_are_named(shared_card_service: CardService) -> None:
    error = assert_error(file(shared_card_service, {"child": "x", "guardian": [],
                                                     "city": 1, "conversation_id": None}), 422)
    assert error["fields"] == {"child": "type", "guardian": "type", "city": "type",
                               "conversation_id": "missing"}


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe",
                                 b"[" * 8000 + b"]" * 8000])
def test_malformed_bodies_are_400(shared_card_service: CardService, raw: bytes) -> None:
    service = shared_card_service
    for path in ("/v1/loss-reports", "/v1/loss-reports/SC-0000-0000/lookup"):
        response = requests.post(service.url + path, data=raw, timeout=5,
                                 headers=service.headers(**{"Idempotency-Key": "m"}))
        assert_error(response, 400)


@pytest.mark.parametrize("size", [20_000, 2_000_000])
def test_oversized_body_is_413(shared_card_service: CardService, size: int) -> None:
    body = people.report_body()
    body["padding"] = "x" * size
    assert_error(file(shared_card_service, body), 413, "payload_too_large")


def test_oversized_chunked_body_is_413(shared_card_service: CardService) -> None:
    chunks = (b"x" * 4096 for _ in range(10))
    response = requests.post(shared_card_service.url + "/v1/loss-reports", data=chunks,
                             headers=shared_card_service.headers(**{"Idempotency-Key": "c"}),
                             timeout=10)
    assert_error(response, 413)


def test_unknown_route_and_method_keep_the_error_shape(shared_card_service: CardService) -> None:
    assert_error(shared_card_service.get("/v1/nothing"), 404, "not_found")
    response = requests.delete(shared_card_service.url + "/v1/loss-reports", timeout=5,
                               headers=shared_card_service.headers())
    assert_error(response, 405, "method_not_allowed")


# Lookup.
def test_lookup_shows_status_history_and_next_step(shared_card_service: CardService) -> None:
    reference, body = filed(shared_card_service, city="Shanghai")
    typed = reference.lower().replace("-", "")
    response = shared_card_service.post(f"/v1/loss-reports/{typed}/lookup",
                                        {"guardian_id_number": body["guardian"]["id_number"]},
                                        **caller())
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["reference"] == reference
    assert report["status"] == "reported_temporary"
    assert report["history"][0]["status"] == "reported_temporary"
    assert report["next_step"]["where"]["zh"]
    assert report["region"]["temporary_report_days"] == 5
    assert report["guardian"]["id_number_masked"] == people_mask(body["guardian"]["id_number"])


def people_mask(number: str) -> str:
    return number[:4] + "*" * 10 + number[-4:]


def test_lookup_accepts_a_lower_case_guardian_x(shared_card_service: CardService) -> None:
    guardian = people.id_number(dt.date(1980, 3, 3), sequence=5)
    while not guardian.endswith("X"):
        guardian = people.id_number(dt.date(1980, 3, 3), sequence=int(guardian[14:17]) + 1)
    reference, _ = filed(shared_card_service, guardian=guardian)
    response = shared_card_service.post(f"/v1/loss-reports/{reference}/lookup",
                                        {"guardian_id_number": guardian.lower()}, **caller())
    assert response.status_code == 200


def test_unknown_reference_and_wrong_guardian_answer_alike(
        shared_card_service: CardService) -> None:
    reference, _ = filed(shared_card_service)
    someone_else = {"guardian_id_number": people.guardian_id(sequence=77)}
    wrong = shared_card_service.post(f"/v1/loss-reports/{reference}/lookup", someone_else,
                                     **caller())
    unknown = shared_card_service.post("/v1/loss-reports/SC-ZZZZ-ZZZZ/lookup", someone_else,
                                       **caller())
    garbage = shared_card_service.post("/v1/loss-reports/not-a-ref/lookup", someone_else,
                                       **caller())
    assert wrong.status_code == unknown.status_code == garbage.status_code == 404
    assert wrong.content == unknown.content == garbage.content


def test_invalid_guardian_number_is_422(shared_card_service: CardService) -> None:
    response = shared_card_service.post("/v1/loss-reports/SC-0000-0000/lookup",
                                        {"guardian_id_number": "123"}, **caller())
    assert assert_error(response, 422)["fields"] == {"guardian_id_number": "length"}


def test_a_flood_on_one_reference_never_locks_out_the_filing_conversation(
        shared_card_service: CardService) -> None:
    conversation = {"X-Caller-Id": f"conv-{uuid.uuid4()}"}
    reference, body = filed(shared_card_service, conversation_id=conversation["X-Caller-Id"])
    path = f"/v1/loss-reports/{reference}/lookup"
    wrong = {"guardian_id_number": people.guardian_id(sequence=99)}
    right = {"guardian_id_number": body["guardian"]["id_number"]}

    def three_tries(who: dict[str, str]) -> list[requests.Response]:
        return [shared_card_service.post(path, wrong, **who) for _ in range(3)]

    flooders = [caller() for _ in range(50)]
    with ThreadPoolExecutor(16) as pool:
        answers = [answer for tries in pool.map(three_tries, flooders) for answer in tries]
    # However the 150 tries interleave, exactly the limit of them were checked at all.
    assert Counter(a.status_code for a in answers) == {404: FAILURES_PER_REFERENCE,
                                                        429: 150 - FAILURES_PER_REFERENCE}
    # Each 429 gives the longer of the flooder's own backoff (2 s after its second failure)
    # and what is left of the reference's window, which the flood soon reaches.
    waits = [int(a.headers["Retry-After"]) for a in answers if a.status_code == 429]
    window = range(REFERENCE_WINDOW_SECONDS - 60, REFERENCE_WINDOW_SECONDS + 1)
    assert all(wait == 2 or wait in window for wait in waits)
    # At most one 2 s answer per flooder that failed twice.
    assert sum(wait in window for wait in waits) >= len(waits) - FAILURES_PER_REFERENCE // 2
    store = redis_of(shared_card_service)
    assert store.get(f"{CARD_SERVICE}fail:ref:{reference}") == str(FAILURES_PER_REFERENCE)

    # Anyone else, even with the right number, waits out the window ...
    assert_error(shared_card_service.post(path, right, **caller()), 429, "too_many_failures")
    # ... but the conversation that filed the report gets in: a typo is its own (no 429),
    # then the right number works, and it can lift the report.
    assert_error(shared_card_service.post(path, wrong, **conversation), 404)
    looked_up = shared_card_service.post(path, right, **conversation)
    assert looked_up.status_code == 200 and looked_up.json()["reference"] == reference
    cancelled = shared_card_service.post(f"/v1/loss-reports/{reference}/cancel", proof(body),
                                         **conversation)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_a_callers_backoff_grows_then_ends(shared_card_service: CardService) -> None:
    reference, body = filed(shared_card_service)
    path = f"/v1/loss-reports/{reference}/lookup"
    wrong = {"guardian_id_number": people.guardian_id(sequence=96)}
    right = {"guardian_id_number": body["guardian"]["id_number"]}
    who = caller()
    count_key, wait_key = pair_keys(reference, who)
    store = redis_of(shared_card_service)

    assert_error(shared_card_service.post(path, wrong, **who), 404)
    assert store.pttl(wait_key) == -2  # the first failure is free: no wait
    retry_afters = []
    for expected in (2, 4, 8, 16):
        assert_error(shared_card_service.post(path, wrong, **who), 404)
        assert (expected - 1) * 1000 < store.pttl(wait_key) <= expected * 1000
        blocked = shared_card_service.post(path, right, **who)  # even the right number waits
        assert_error(blocked, 429, "too_many_failures")
        retry_afters.append(int(blocked.headers["Retry-After"]))
        # Another caller is not held by this one's backoff.
        assert shared_card_service.post(path, right, **caller()).status_code == 200
        store.pexpire(wait_key, 1)  # the wait runs out (Redis expires it)
        time.sleep(0.01)
    assert retry_afters == [2, 4, 8, 16]

    # However many failures, one wait never exceeds the cap.
    store.set(count_key, 40)
    assert_error(shared_card_service.post(path, wrong, **who), 404)
    assert (BACKOFF_CAP_SECONDS - 1) * 1000 < store.pttl(wait_key) <= BACKOFF_CAP_SECONDS * 1000
    store.pexpire(wait_key, 1)
    time.sleep(0.01)
    # A success ends the pair's backoff: the next typo is free again.
    assert shared_card_service.post(path, right, **who).status_code == 200
    assert store.exists(count_key, wait_key) == 0
    assert_error(shared_card_service.post(path, wrong, **who), 404)
    assert store.pttl(wait_key) == -2


def test_failures_per_caller_are_limited(shared_card_service: CardService) -> None:
    who = caller()
    wrong = {"guardian_id_number": people.guardian_id(sequence=98)}
    codes = [shared_card_service.post(f"/v1/loss-reports/{identity.new_reference()}/lookup",
                                      wrong, **who).status_code
             for _ in range(FAILURES_PER_CALLER + 1)]
    assert codes == [404] * FAILURES_PER_CALLER + [429]
    reference, body = filed(shared_card_service)
    right = {"guardian_id_number": body["guardian"]["id_number"]}
    assert shared_card_service.post(f"/v1/loss-reports/{reference}/lookup", right,
                                    **who).status_code == 429
    assert shared_card_service.post(f"/v1/loss-reports/{reference}/lookup", right,
                                    **caller()).status_code == 200


def test_without_caller_id_the_client_ip_is_the_caller(card_service: CardService) -> None:
    wrong = {"guardian_id_number": people.guardian_id(sequence=97)}
    codes = [card_service.post(f"/v1/loss-reports/SC-1111-{i:04d}/lookup", wrong).status_code
             for i in range(21)]
    assert codes == [404] * 20 + [429]


# Cancel.
def test_cancel_then_cancel_again_is_409(shared_card_service: CardService) -> None:
    reference, body = filed(shared_card_service)
    first = shared_card_service.post(f"/v1/loss-reports/{reference}/cancel", proof(body),
                                     **caller())
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert [e["status"] for e in first.json()["history"]] == ["reported_temporary", "cancelled"]
    again = shared_card_service.post(f"/v1/loss-reports/{reference}/cancel", proof(body),
                                     **caller())
    assert_error(again, 409, "transition_not_allowed")


def test_cancel_after_the_written_report_is_409(shared_card_service: CardService) -> None:
    reference, body = filed(shared_card_service)
    event = shared_card_service.post(f"/v1/loss-reports/{reference}/events",
                                     {"status": "reported_written"}, role="staff")
    assert event.status_code == 200
    response = shared_card_service.post(f"/v1/loss-reports/{reference}/cancel", proof(body),
                                        **caller())
    assert assert_error(response, 409)["fields"] == {"status": "reported_written"}


@pytest.mark.parametrize("sent, fields", [
    ("guardian only", {"child_id_number": "missing"}),
    ("nothing", {"guardian_id_number": "missing", "child_id_number": "missing"}),
    ("short child", {"child_id_number": "length"}),
    ("child as a number", {"child_id_number": "type"}),
])
def test_cancel_names_a_missing_or_invalid_child_id_number(
        shared_card_service: CardService, sent: str, fields: dict[str, str]) -> None:
    reference, body = filed(shared_card_service)
    guardian = body["guardian"]["id_number"]
    bodies = {"guardian only": {"guardian_id_number": guardian}, "nothing": {},
              "short child": {"guardian_id_number": guardian, "child_id_number": "123"},
              "child as a number": {"guardian_id_number": guardian,
                                    "child_id_number": 110105201501010012}}
    response = shared_card_service.post(f"/v1/loss-reports/{reference}/cancel", bodies[sent],
                                        **caller())
    error = assert_error(response, 422, "invalid_fields")
    assert error["fields"] == fields
    assert all(name in error["message"] for name in fields)
    # Not a verification: nothing counted, nothing moved.
    assert redis_of(shared_card_service).get(f"{CARD_SERVICE}fail:ref:{reference}") is None
    assert shared_card_service.get(f"/v1/loss-reports/{reference}",
                                   role="staff").json()["status"] == "reported_temporary"


def test_a_wrong_child_reads_like_a_wrong_guardian_and_cancels_nothing(
        shared_card_service: CardService) -> None:
    reference, body = filed(shared_card_service)
    path = f"/v1/loss-reports/{reference}/cancel"
    someone = people.child_id(sequence=57)
    wrong_child = shared_card_service.post(path, proof(body, child=someone), **caller())
    wrong_guardian = shared_card_service.post(
        path, proof(body, guardian=people.guardian_id(sequence=56)), **caller())
    unknown = shared_card_service.post(f"/v1/loss-reports/{identity.new_reference()}/cancel",
                                       proof(body), **caller())
    assert_error(wrong_child, 404, "not_found")
    assert wrong_child.content == wrong_guardian.content == unknown.content
    assert redis_of(shared_card_service).get(f"{CARD_SERVICE}fail:ref:{reference}") == "2"
    assert shared_card_service.get(f"/v1/loss-reports/{reference}",
                                   role="staff").json()["status"] == "reported_temporary"

    both = shared_card_service.post(path, proof(body), **caller())
    assert both.status_code == 200 and both.json()["status"] == "cancelled"


def test_a_report_filed_before_child_hashes_checks_the_sealed_child_id(
        shared_card_service: CardService) -> None:
    reference, body = filed(shared_card_service)
    store = redis_of(shared_card_service)
    assert store.hdel(f"{CARD_SERVICE}report:{reference}", "child_hash") == 1
    path = f"/v1/loss-reports/{reference}/cancel"
    assert_error(shared_card_service.post(path, proof(body, child=people.child_id(sequence=58)),
                                          **caller()), 404)
    assert shared_card_service.post(path, proof(body), **caller()).json()["status"] == \
        "cancelled"


# Staff events and list.
def test_staff_walk_a_report_along_the_main_line(shared_card_service: CardService) -> None:
    reference, _ = filed(shared_card_service)
    for target in statuses.MAIN_LINE[1:]:
        response = shared_card_service.post(f"/v1/loss-reports/{reference}/events",
                                            {"status": target}, role="staff")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == target
    history = response.json()["history"]
    assert [entry["status"] for entry in history] == list(statuses.MAIN_LINE)
    assert all(entry["at"].endswith("Z") for entry in history)
    assert response.json()["terminal"] is True


@pytest.mark.parametrize("target", ["collected", "in_production", "reported_written2"])
def test_forbidden_or_unknown_transitions(shared_card_service: CardService, target: str) -> None:
    reference, _ = filed(shared_card_service)
    response = shared_card_service.post(f"/v1/loss-reports/{reference}/events",
                                        {"status": target}, role="staff")
    if target in statuses.TABLE:
        assert_error(response, 409, "transition_not_allowed")
    else:
        assert assert_error(response, 422)["fields"] == {"status": "unknown_status"}


def test_expired_cannot_be_set_by_staff(shared_card_service: CardService) -> None:
    reference, _ = filed(shared_card_service)
    response = shared_card_service.post(f"/v1/loss-reports/{reference}/events",
                                        {"status": "expired"}, role="staff")
    assert_error(response, 422)


def test_event_on_unknown_reference_is_404(shared_card_service: CardService) -> None:
    for reference in ("SC-ZZZZ-ZZZY", "bogus"):
        response = shared_card_service.post(f"/v1/loss-reports/{reference}/events",
                                            {"status": "reported_written"}, role="staff")
        assert_error(response, 404, "not_found")


def test_staff_list_and_show_are_masked(shared_card_service: CardService) -> None:
    reference, body = filed(shared_card_service)
    listing = shared_card_service.get("/v1/loss-reports?limit=500", role="staff")
    assert listing.status_code == 200
    assert reference in {report["reference"] for report in listing.json()["reports"]}
    for secret in (body["child"]["id_number"], body["guardian"]["id_number"], "13800138000"):
        assert secret not in listing.text
    only = shared_card_service.get("/v1/loss-reports?status=collected&limit=500", role="staff")
    assert all(report["status"] == "collected" for report in only.json()["reports"])
    shown = shared_card_service.get(f"/v1/loss-reports/{reference.lower()}", role="staff")
    assert shown.json()["reference"] == reference
    assert_error(shared_card_service.get("/v1/loss-reports?status=lost", role="staff"), 422)
    assert_error(shared_card_service.get("/v1/loss-reports?limit=0", role="staff"), 422)
    assert_error(shared_card_service.get("/v1/loss-reports/SC-ZZZZ-ZZZX", role="staff"), 404)


# Regions.
@pytest.mark.parametrize("city, key", [("北京", "beijing"), ("北京市", "beijing"),
                                       ("BEIJING", "beijing"), ("xian", "xian"),
                                       ("西安", "xian"), ("Xi'an", "xian"), ("default", "default")])
def test_region_by_any_name(shared_card_service: CardService, city: str, key: str) -> None:
    response = shared_card_service.get(f"/v1/regions/{requests.utils.quote(city)}")
    assert response.status_code == 200
    assert response.json()["key"] == key
    assert response.json()["hotline"] == "12333"


def test_unknown_region_is_the_national_default(shared_card_service: CardService) -> None:
    region = shared_card_service.get("/v1/regions/Atlantis", role="staff").json()
    assert region["key"] == "default" and region["known"] is False
    assert region["temporary_report_days"] == 15 and region["query"] == "Atlantis"


# Expiry: a second instance of the service whose clock runs 11 days ahead.
def test_temporary_report_reads_as_expired_after_valid_until(
        shared_card_service: CardService) -> None:
    reference, body = filed(shared_card_service, city="北京")
    written, _ = filed(shared_card_service, city="北京")
    shared_card_service.post(f"/v1/loss-reports/{written}/events",
                             {"status": "reported_written"}, role="staff")
    later = shared_card_service.sibling(CARD_SERVICE_CLOCK_OFFSET_DAYS="11").start()
    try:
        guardian = {"guardian_id_number": body["guardian"]["id_number"]}
        report = later.post(f"/v1/loss-reports/{reference}/lookup", guardian, **caller()).json()
        assert report["status"] == "expired"
        assert report["history"][-1]["status"] == "expired"
        assert report["next_step"]["key"] == "report_again"
        assert_error(later.post(f"/v1/loss-reports/{reference}/cancel", proof(body),
                                **caller()), 409)
        assert_error(later.post(f"/v1/loss-reports/{reference}/events",
                                {"status": "reported_written"}, role="staff"), 409)
        # A written report does not lapse.
        assert later.get(f"/v1/loss-reports/{written}", role="staff").json()["status"] == \
            "reported_written"
        # On the real calendar it is still temporary.
        current = shared_card_service.post(f"/v1/loss-reports/{reference}/lookup", guardian,
                                           **caller())
        assert current.json()["status"] == "reported_temporary"
    finally:
        later.stop()


# Data at rest and logs.
def test_numbers_are_encrypted_at_rest_and_not_logged(shared_card_service: CardService) -> None:
    child, guardian = people.child_id(sequence=321), people.guardian_id(sequence=322)
    reference, _ = filed(shared_card_service, child=child, guardian=guardian,
                         phone="139 1234 5678")
    client = redis.Redis.from_url(shared_card_service.redis_url)
    stored = b""
    for key in client.scan_iter("*"):
        kind = client.type(key)
        if kind == b"hash":
            stored += b" ".join(v for pair in client.hgetall(key).items() for v in pair)
        elif kind == b"list":
            stored += b" ".join(client.lrange(key, 0, -1))
        elif kind == b"string":
            stored += client.get(key) or b""
    assert reference.encode() in stored
    for secret in (child, guardian, "13912345678"):
        assert secret.encode() not in stored
        assert secret not in shared_card_service.process.log_path.read_text()


# The OpenAPI document matches the routes, both ways.
def test_the_card_service_refuses_one_token_for_two_roles() -> None:
    from bot.settings import Settings
    from card_service.app import Service

    base = {"CARD_SERVICE_TOKEN": "a", "CARD_SERVICE_STAFF_TOKEN": "b",
            "DATA_ENCRYPTION_KEY": "k" * 32, "RASA_JWT_SECRET": "j" * 32}
    Service(Settings.from_env({**base, "CARD_SERVICE_CONSOLE_TOKEN": "c"}))
    for shared in ("a", "b"):
        with pytest.raises(ValueError, match="must differ"):
            Service(Settings.from_env({**base, "CARD_SERVICE_CONSOLE_TOKEN": shared}))


def test_openapi_document_matches_the_routes(shared_card_service: CardService) -> None:
    from sanic import Sanic

    from bot.settings import Settings
    from card_service.app import create_app

    Sanic.test_mode = True
    settings = Settings.from_env({"CARD_SERVICE_TOKEN": "a", "CARD_SERVICE_STAFF_TOKEN": "b",
                                  "DATA_ENCRYPTION_KEY": "k" * 32, "RASA_JWT_SECRET": "j" * 32})
    app = create_app(settings, name=f"openapi_check_{uuid.uuid4().hex[:8]}")
    routes = set()
    for route in app.router.routes:
        path = "/" + re.sub(r"<(\w+)(:\w+)?>", r"{\1}", route.path)
        for method in route.methods:
            routes.add((method.lower(), path))
    documented = {(method, path) for path, item in document()["paths"].items()
                  for method in item}
    assert routes == documented
    served = shared_card_service.get("/v1/openapi.json")
    assert served.status_code == 200 and served.json() == document()


# Fuzz: whatever JSON arrives, the answer is a 4xx in the error shape or a success, never 500.
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12)
report_like = st.fixed_dictionaries({}, optional={
    "child": st.fixed_dictionaries({}, optional={"name": json_values,
                                                 "id_number": json_values | st.just(
                                                     people.child_id())}),
    "guardian": st.fixed_dictionaries({}, optional={
        "name": json_values, "id_number": json_values | st.just(people.guardian_id()),
        "relationship": json_values, "phone": json_values | st.just("13800138000")}),
    "city": json_values | st.sampled_from(["北京", "xian", ""]),
    "conversation_id": json_values})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values | report_like,
       path=st.sampled_from(["/v1/loss-reports", "/v1/loss-reports/SC-0000-0000/lookup",
                             "/v1/loss-reports/SC-0000-0000/cancel",
                             "/v1/loss-reports/SC-0000-0000/events"]))
def test_no_body_makes_a_500(shared_card_service: CardService, body: object, path: str) -> None:
    role = "staff" if path.endswith("events") else "service"
    response = shared_card_service.post(path, body, role=role,
                                        **{"Idempotency-Key": str(uuid.uuid4()), **caller()})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "fields"}
