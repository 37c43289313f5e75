"""A report's personal data erased after its retention, or when the filing conversation asks:
the real card service on a real Redis, the clock moved by CARD_SERVICE_CLOCK_OFFSET_DAYS."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
import requests

from bot.card_client import CardClient, NotFound
from bot.crypto import REPORT_FIELDS
from bot.rules import identity, statuses
from bot.settings import ROOT
from card_service.store import CHINA, PERSONAL_FIELDS
from tests.integration.conftest import CardService
from tests.testkit import people
from tests.testkit.processes import free_port, wait_for
from tests.testkit.rasa_stand_in import RasaStandIn

pytestmark = pytest.mark.integration
DAYS = 30
# What an erased report may still hold: no field here names or points at a person.
KEPT = {"status", "created_at", "filed_on", "valid_until", "region", "notified_at",
        "personal_data_erased_at", "erase_requested_at"}


class Guardian:
    """One family's made-up details, distinct from every other test's, to scan Redis for."""

    def __init__(self, sequence: int):
        self.conversation = f"conversation-{uuid.uuid4().hex}"
        self.child_id = people.child_id(sequence=sequence)
        self.guardian_id = people.guardian_id(sequence=sequence + 1)
        self.phone = f"1390000{sequence:04d}"  # masked ends differ too: 13*******01
        self.body = people.report_body(conversation_id=self.conversation, child=self.child_id,
                                       guardian=self.guardian_id, phone=self.phone)
        self.body["child"]["name"] = f"林小雨{sequence}"
        self.body["guardian"]["name"] = f"林建国{sequence}"

    def secrets(self) -> list[str]:
        """Every piece of this family's data, whole and masked."""
        return [self.child_id, self.guardian_id, self.phone, self.body["child"]["name"],
                self.body["guardian"]["name"], self.conversation, identity.mask(self.child_id),
                identity.mask(self.guardian_id), identity.mask(self.phone)]


def file(service: CardService, guardian: Guardian, key: str | None = None) -> str:
    response = service.post("/v1/loss-reports", guardian.body,
                            **{"Idempotency-Key": key or str(uuid.uuid4())})
    assert response.status_code == 201, response.text
    return str(response.json()["reference"])


def move(service: CardService, reference: str, *targets: str) -> requests.Response:
    response = None
    for target in targets:
        response = service.post(f"/v1/loss-reports/{reference}/events", {"status": target},
                                role="staff")
        assert response.status_code == 200, response.text
    assert response is not None
    return response


def collect(service: CardService, reference: str) -> requests.Response:
    return move(service, reference, *statuses.MAIN_LINE[1:])


def purge(service: CardService, days_later: int, retention: int = DAYS
          ) -> subprocess.CompletedProcess[str]:
    """`python -m card_service purge` as cron runs it, on a clock `days_later` ahead."""
    env = {**service.env, "CARD_SERVICE_CLOCK_OFFSET_DAYS": str(days_later),
           "REPORT_RETENTION_DAYS": str(retention)}
    return subprocess.run([sys.executable, "-m", "card_service", "purge"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def erased_count(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stdout + result.stderr
    return int(result.stdout.split("personal data of ")[1].split()[0])


def stored(service: CardService, leave_out: tuple[str, ...] = ()) -> str:
    """Every key and every value in Redis, as text; but the hash fields of `leave_out`."""
    client = redis.Redis.from_url(service.redis_url, decode_responses=True)
    parts = []
    for key in client.scan_iter("*"):
        parts.append(key)
        kind = client.type(key)
        if kind == "hash":
            parts += [item for pair in client.hgetall(key).items() for item in pair
                      if pair[0] not in leave_out]
        elif kind == "list":
            parts += client.lrange(key, 0, -1)
        elif kind == "zset":
            parts += client.zrange(key, 0, -1)
        elif kind == "string":
            parts.append(client.get(key) or "")
    return "\n".join(parts)


def report_fields(service: CardService, reference: str) -> dict[str, str]:
    client = redis.Redis.from_url(service.redis_url, decode_responses=True)
    return client.hgetall(f"cardsvc:report:{reference}")


def assert_erased(service: CardService, reference: str, *guardians: Guardian) -> None:
    """The report keeps no personal field, and no key or value in Redis holds any piece of
    these families' data, whole or masked."""
    fields = report_fields(service, reference)
    assert fields["personal_data_erased_at"]
    assert set(fields) <= KEPT, set(fields) - KEPT
    assert not set(fields) & set(PERSONAL_FIELDS)
    assert not any(value.startswith(("v1:", "v2:")) for value in fields.values())
    # Retention run out: the filing conversation is yet to be told to forget, and that notice
    # must name it until Rasa takes it (a guardian who asked had theirs deleted already).
    client = redis.Redis.from_url(service.redis_url, decode_responses=True)
    notices = client.hgetall("cardsvc:outbox:payload")
    forgets = tuple(name for name in notices if name.endswith(":forget"))
    for name in forgets:
        assert json.loads(notices[name]) == {
            "reference": name.removesuffix(":forget"), "intent": "EXTERNAL_forget",
            "conversation_id": json.loads(notices[name])["conversation_id"]}
    if f"{reference}:forget" in notices:
        named = json.loads(notices[f"{reference}:forget"])["conversation_id"]
        assert named in {guardian.conversation for guardian in guardians}
    everything = stored(service, leave_out=forgets)
    for guardian in guardians:
        for secret in guardian.secrets():
            assert secret not in everything, secret


def lookup(service: CardService, reference: str, guardian: Guardian) -> requests.Response:
    return service.post(f"/v1/loss-reports/{reference}/lookup",
                        {"guardian_id_number": guardian.guardian_id},
                        **{"X-Caller-Id": str(uuid.uuid4())})


def erase(service: CardService, reference: str, conversation: object,
          role: str = "service") -> requests.Response:
    return service.post(f"/v1/loss-reports/{reference}/erase",
                        {"conversation_id": conversation}, role=role)


@pytest.fixture
def service(card_service_factory: Callable[..., CardService]) -> CardService:
    return card_service_factory(REPORT_RETENTION_DAYS=str(DAYS))


@pytest.fixture
def notified(card_service_factory: Callable[..., CardService]
             ) -> Iterator[tuple[CardService, RasaStandIn]]:
    """A card service whose notices go to a Rasa stand-in, retried within a second."""
    rasa = RasaStandIn(free_port()).start()
    try:
        yield card_service_factory(REPORT_RETENTION_DAYS=str(DAYS), RASA_URL=rasa.url,
                                   CARD_SERVICE_OUTBOX_MAX_DELAY="1"), rasa
    finally:
        rasa.stop()


# Retention.
def test_personal_data_goes_the_set_days_after_collection(service: CardService) -> None:
    family = Guardian(401)
    reference = file(service, family)
    collect(service, reference)
    for secret in (family.child_id, family.guardian_id, family.phone):
        assert secret not in stored(service)  # sealed while kept

    assert erased_count(purge(service, DAYS - 1)) == 0
    assert set(report_fields(service, reference)) >= set(REPORT_FIELDS)
    assert lookup(service, reference, family).status_code == 200

    assert erased_count(purge(service, DAYS)) == 1
    assert_erased(service, reference, family)
    assert "v2:" not in stored(service)  # the only report: nothing sealed left anywhere
    history = [entry["status"] for entry in
               service.get(f"/v1/loss-reports/{reference}", role="staff").json()["history"]]
    assert history == list(statuses.MAIN_LINE)
    # Nothing left to check a guardian against: the lookup is an unknown reference's 404.
    gone = lookup(service, reference, family)
    unknown = lookup(service, "SC-ZZZZ-ZZZZ", family)
    assert gone.status_code == unknown.status_code == 404
    assert gone.json() == unknown.json()
    shown = service.get(f"/v1/loss-reports/{reference}", role="staff").json()
    assert (shown["personal_data"], shown["status"], shown["region"]["key"]) == \
        ("erased", "collected", "beijing")
    assert shown["personal_data_erased_at"].endswith("Z")
    assert shown["city"] is None and shown["child"]["id_number_masked"] is None
    assert shown["guardian"] == {"id_number_masked": None, "phone_masked": None,
                                 "relationship": None}
    assert shown["filed_on"] == dt.datetime.now(CHINA).date().isoformat()
    listed = service.get("/v1/loss-reports", role="staff").json()["reports"]
    assert [report["personal_data"] for report in listed] == ["erased"]
    # Again: nothing more to do, nothing changes.
    before = report_fields(service, reference)
    assert erased_count(purge(service, DAYS + 5)) == 0
    assert report_fields(service, reference) == before


def test_the_service_sweeps_by_itself(service: CardService) -> None:
    family = Guardian(411)
    reference = file(service, family)
    collect(service, reference)
    later = service.sibling(CARD_SERVICE_CLOCK_OFFSET_DAYS=str(DAYS)).start()
    try:
        wait_for(lambda: "personal_data_erased_at" in report_fields(service, reference), 20,
                 "the running service's sweep")
        assert_erased(service, reference, family)
    finally:
        later.stop()


def test_the_filing_conversation_is_told_to_forget_once_retention_ran_out(
        notified: tuple[CardService, RasaStandIn]) -> None:
    service, rasa = notified
    family = Guardian(481)
    reference = file(service, family)
    move(service, reference, statuses.CANCELLED)
    assert erased_count(purge(service, DAYS)) == 1
    wait_for(lambda: len(rasa.received) >= 1, 15, "the forget notice")
    assert rasa.received[0]["path"].startswith(f"/conversations/{family.conversation}/")
    assert rasa.received[0]["body"] == {"name": "EXTERNAL_forget"}
    wait_for(lambda: family.conversation not in stored(service), 10, "the notice gone")
    assert_erased(service, reference, family)
    assert "notified_at" not in report_fields(service, reference)  # nobody was told


def test_a_lapsed_report_counts_from_its_lapse(service: CardService) -> None:
    family, moved_on = Guardian(421), Guardian(423)
    reference = file(service, family)  # Beijing: valid 10 days, expired from the 11th
    written = file(service, moved_on)
    move(service, written, statuses.REPORTED_WRITTEN)  # no longer lapses: stays
    assert erased_count(purge(service, 10 + 3, retention=3)) == 0
    assert erased_count(purge(service, 11 + 3, retention=3)) == 1
    assert_erased(service, reference, family)
    assert report_fields(service, written)["guardian_id"].startswith("v2:")
    later = service.sibling(CARD_SERVICE_CLOCK_OFFSET_DAYS="14").start()
    try:
        assert later.get(f"/v1/loss-reports/{reference}", role="staff").json()["status"] == \
            "expired"
    finally:
        later.stop()


def test_no_retention_erases_as_soon_as_final(
        card_service_factory: Callable[..., CardService]) -> None:
    service = card_service_factory(REPORT_RETENTION_DAYS="0")
    family, active = Guardian(431), Guardian(433)
    reference = file(service, family)
    kept = file(service, active)
    cancelled = move(service, reference, statuses.CANCELLED).json()
    assert (cancelled["status"], cancelled["personal_data"]) == ("cancelled", "erased")
    assert report_fields(service, kept)["guardian_id"].startswith("v2:")
    fields = report_fields(service, reference)
    assert set(fields) <= KEPT
    # but the notice telling its conversation to forget it (the next test follows one)
    left = stored(service, leave_out=(f"{reference}:forget",))
    for secret in family.secrets():
        assert secret not in left


def test_reports_filed_before_the_index_are_found(service: CardService) -> None:
    family = Guardian(441)
    reference = file(service, family)
    collect(service, reference)
    client = redis.Redis.from_url(service.redis_url)
    client.delete("cardsvc:retention", "cardsvc:retention:indexed")
    client.hdel(f"cardsvc:report:{reference}", "idem")
    assert erased_count(purge(service, DAYS - 1)) == 0
    assert client.zscore("cardsvc:retention", reference) is not None
    assert erased_count(purge(service, DAYS)) == 1
    assert_erased(service, reference, family)


def test_two_sweeps_at_once_erase_each_report_once(service: CardService) -> None:
    families = [Guardian(500 + 2 * n) for n in range(12)]
    references = [file(service, family) for family in families]
    for reference in references:
        collect(service, reference)
    env = {**service.env, "CARD_SERVICE_CLOCK_OFFSET_DAYS": str(DAYS),
           "REPORT_RETENTION_DAYS": str(DAYS)}
    sweeps = [subprocess.Popen([sys.executable, "-m", "card_service", "purge"], env=env,
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
    results = [subprocess.CompletedProcess(s.args, s.wait(60), *s.communicate())
               for s in sweeps]
    assert sum(erased_count(result) for result in results) == len(references)
    for reference in references:
        assert_erased(service, reference, *families)
        history = service.get(f"/v1/loss-reports/{reference}", role="staff").json()["history"]
        assert [entry["status"] for entry in history] == list(statuses.MAIN_LINE)
    assert erased_count(purge(service, DAYS)) == 0


# Erasure asked for by the conversation that filed the report.
def test_erase_on_a_final_report_erases_now(service: CardService) -> None:
    family = Guardian(451)
    key = str(uuid.uuid4())
    reference = file(service, family, key)
    move(service, reference, statuses.CANCELLED)
    response = erase(service, reference, family.conversation)
    assert response.status_code == 200, response.text
    assert response.json() == {"reference": reference, "status": "cancelled",
                               "personal_data": "erased"}
    assert_erased(service, reference, family)
    # Asked again: nothing is left to recognise the conversation by.
    again, unknown = erase(service, reference, family.conversation), \
        erase(service, "SC-ZZZZ-ZZZZ", family.conversation)
    assert again.status_code == unknown.status_code == 404
    assert again.json() == unknown.json()
    # The idempotency key went too: the same filing again is a new report, not the erased one.
    again_filed = service.post("/v1/loss-reports", family.body, **{"Idempotency-Key": key})
    assert again_filed.status_code == 201 and again_filed.json()["reference"] != reference


def test_erase_on_an_active_report_waits_for_collection(
        notified: tuple[CardService, RasaStandIn]) -> None:
    service, rasa = notified
    family = Guardian(461)
    reference = file(service, family)
    move(service, reference, statuses.REPORTED_WRITTEN)
    response = erase(service, reference, family.conversation)
    assert response.status_code == 200, response.text
    assert response.json() == {"reference": reference, "status": "reported_written",
                               "personal_data": "kept", "erase_after_days": 0,
                               "reason": "active"}
    assert set(report_fields(service, reference)) >= set(REPORT_FIELDS)
    seen = lookup(service, reference, family).json()
    assert seen["personal_data"] == "kept" and seen["erase_requested_at"]
    # The card is still made and its notice still reaches the conversation.
    move(service, reference, statuses.REPLACEMENT_APPLIED, statuses.IN_PRODUCTION,
         statuses.READY_FOR_COLLECTION)
    wait_for(lambda: len(rasa.received) >= 1, 15, "the card-ready notice")
    assert rasa.received[0]["path"].startswith(f"/conversations/{family.conversation}/")
    assert report_fields(service, reference)["guardian_id"].startswith("v2:")
    # Collected: erased at once, not DAYS later.
    collected = move(service, reference, statuses.COLLECTED).json()
    assert collected["personal_data"] == "erased"
    assert_erased(service, reference, family)


def test_an_asked_report_that_lapses_is_erased_at_its_lapse(service: CardService) -> None:
    family = Guardian(471)
    reference = file(service, family)
    assert erase(service, reference, family.conversation).json()["personal_data"] == "kept"
    assert erased_count(purge(service, 10)) == 0  # still temporary on its last valid day
    assert erased_count(purge(service, 11)) == 1  # lapsed: erased then, not DAYS after
    assert_erased(service, reference, family)


def test_only_the_filing_conversation_may_ask(service: CardService) -> None:
    family = Guardian(481)
    reference = file(service, family)
    move(service, reference, statuses.CANCELLED)
    other = erase(service, reference, "conversation-of-someone-else")
    prefix = erase(service, reference, family.conversation[:-1])
    unknown = erase(service, "SC-ZZZZ-ZZZZ", family.conversation)
    garbage = erase(service, "not-a-reference", family.conversation)
    for response in (other, prefix, unknown, garbage):
        assert response.status_code == 404
        assert response.json() == unknown.json()
    assert unknown.json()["error"]["code"] == "not_found"
    assert report_fields(service, reference)["guardian_id"].startswith("v2:")
    assert erase(service, reference, family.conversation, role="staff").status_code == 403


def test_the_bots_client_asks_and_reads_the_answer(service: CardService) -> None:
    client = CardClient(service.url, service.service_token)
    family = Guardian(491)
    reference = file(service, family)
    kept = client.erase(reference, family.conversation)
    assert (kept.erased, kept.personal_data, kept.erase_after_days, kept.reason) == \
        (False, "kept", 0, "active")
    with pytest.raises(NotFound):
        client.erase(reference, "conversation-of-someone-else")
    move(service, reference, statuses.CANCELLED)  # asked before: erased at the move
    staff = CardClient(service.url, service.staff_token)
    shown = staff.get_report(reference)
    assert (shown.personal_data, shown.status, shown.city, shown.child_id_masked) == \
        ("erased", "cancelled", "", "")
    with pytest.raises(NotFound):
        client.erase(reference, family.conversation)


@pytest.mark.parametrize("conversation, reason", [(None, "missing"), ("", "missing"),
                                                  (42, "type"), (["c"], "type"),
                                                  ("c" * 201, "too_long")])
def test_a_bad_conversation_id_is_named(shared_card_service: CardService, conversation: object,
                                        reason: str) -> None:
    response = erase(shared_card_service, "SC-ZZZZ-ZZZZ", conversation)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["fields"]) == ("invalid_fields", {"conversation_id": reason})
