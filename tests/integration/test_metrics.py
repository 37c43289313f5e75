"""GET /metrics of the real processes: counts moved by exactly what a scripted conversation,
a filing and its notices did; who may read a page."""

from __future__ import annotations

import collections
import socket
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from bot import metrics
from bot.rules import statuses
from bot.stack.launcher import metrics_lines, procfile_commands
from tests.integration.conftest import CardService
from tests.testkit import people
from tests.testkit.processes import wait_for
from tests.testkit.stack import Stack, running_stack

pytestmark = pytest.mark.integration

FORM = "loss_report_form"
# A greeting, an FAQ question, a report started and its first two questions answered.
CHILD = people.child_id(age=9, sequence=171)
SCRIPT = ("hi", "how much does a new card cost?", "my son lost his social security card",
          "yes", "Li Ming", CHILD)
ASKED = {"child_name", "child_id_number", "guardian_name"}
FILLED = {"child_name", "child_id_number"}
# Each path retried at once rather than after seconds, so a notice settles within the test.
FAST_OUTBOX = {"CARD_SERVICE_OUTBOX_MAX_DELAY": "0.05"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("metrics"), FAST_OUTBOX) as running:
        yield running


def pages(stack: Stack) -> dict[str, metrics.Samples]:
    settings = stack.settings
    return {name: metrics.scrape(url) for name, url in (
        ("rasa", settings.rasa_url), ("actions", settings.actions_url),
        ("card", settings.card_service_url))}


def moved(before: metrics.Samples, after: metrics.Samples, name: str) -> dict[tuple, float]:
    """Every sample of `name` that changed, by its labels, with the change."""
    keys = set(before.get(name, {})) | set(after.get(name, {}))
    changes = {key: after.get(name, {}).get(key, 0.0) - before.get(name, {}).get(key, 0.0)
               for key in keys}
    return {key: change for key, change in changes.items() if change}


def labelled(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def test_a_scripted_conversation_moves_rasa_s_and_the_action_server_s_counts(
        stack: Stack) -> None:
    sender = f"metrics-{uuid.uuid4().hex[:10]}"
    before = pages(stack)
    languages: collections.Counter[str] = collections.Counter()
    for message in SCRIPT:
        assert stack.say(sender, message), message
        languages[stack.tracker(sender)["slots"].get("language") or "other"] += 1
    after = pages(stack)
    rasa_before, rasa_after = before["rasa"], after["rasa"]
    tracker = stack.tracker(sender)
    intents = collections.Counter(event["parse_data"]["intent"]["name"]
                                  for event in tracker["events"] if event["event"] == "user")
    assert {"greet", "affirm"} <= set(intents), intents  # the script was read as meant
    assert tracker["active_loop"].get("name") == FORM
    assert tracker["slots"]["requested_slot"] == "guardian_name"

    turns = moved(rasa_before, rasa_after, "cardbot_turns_total")
    assert turns == {labelled(channel="rest", language=language): count
                     for language, count in languages.items()}
    assert sum(turns.values()) == len(SCRIPT)
    assert moved(rasa_before, rasa_after, "cardbot_turn_seconds_count") == \
        {labelled(channel="rest"): len(SCRIPT)}
    assert moved(rasa_before, rasa_after, "cardbot_intents_total") == \
        {labelled(intent=name): count for name, count in intents.items()}
    fallbacks = {name: count for name, count in intents.items()
                 if name in metrics.FALLBACK_INTENTS}
    assert moved(rasa_before, rasa_after, "cardbot_fallbacks_total") == \
        {labelled(intent=name): count for name, count in fallbacks.items()}
    assert moved(rasa_before, rasa_after, "cardbot_form_slots_asked_total") == \
        {labelled(form=FORM, slot=slot): 1 for slot in ASKED}
    assert moved(rasa_before, rasa_after, "cardbot_form_slots_filled_total") == \
        {labelled(form=FORM, slot=slot): 1 for slot in FILLED}
    responses = moved(rasa_before, rasa_after, "cardbot_http_responses_total")
    assert responses[labelled(route="webhooks/rest/webhook", status="2xx")] == len(SCRIPT)
    # The tracker reads between the turns, as the route's pattern, never the raw path.
    tracker_route = labelled(route="conversations/<conversation_id:path>/tracker",
                             status="2xx")
    assert responses[tracker_route] == len(SCRIPT)
    assert not any(sender in value for key in rasa_after["cardbot_http_responses_total"]
                   for _, value in key)

    # The action server: every call it answered is one action run, the form's validator
    # among them once per form turn (opening it and two answers).
    actions = moved(before["actions"], after["actions"], "cardbot_action_calls_total")
    webhook = moved(before["actions"], after["actions"], "cardbot_http_responses_total")
    assert sum(actions.values()) == webhook[labelled(route="webhook", status="2xx")]
    assert actions[labelled(action="validate_loss_report_form")] == 3, actions


def test_every_page_make_run_lists_answers(stack: Stack) -> None:
    lines = metrics_lines(stack.settings, procfile_commands(stack.settings))
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["(rasa)", "(actions)", "(card)"]
    for line in lines:
        url = line.split()[1]
        page = requests.get(url, timeout=5)
        assert page.status_code == 200, url
        assert "cardbot_http_responses_total" in page.text, url


def staff(stack: Stack, method: str, path: str, body: dict | None = None) -> requests.Response:
    return requests.request(method, f"{stack.settings.card_service_url}{path}", json=body,
                            headers={"Authorization": f"Bearer {stack.settings.staff_token}"},
                            timeout=10)


def file(stack: Stack, body: dict, key: str) -> requests.Response:
    return requests.post(f"{stack.settings.card_service_url}/v1/loss-reports", json=body,
                         headers={"Authorization": f"Bearer {stack.settings.card_service_token}",
                                  "Idempotency-Key": key}, timeout=10)


def ready(stack: Stack, reference: str) -> None:
    for status in (statuses.REPORTED_WRITTEN, statuses.REPLACEMENT_APPLIED,
                   statuses.IN_PRODUCTION, statuses.READY_FOR_COLLECTION):
        answer = staff(stack, "POST", f"/v1/loss-reports/{reference}/events", {"status": status})
        assert answer.ok, answer.text


def settled_ledger(stack: Stack, reference: str) -> list[dict]:
    """The report's notices once each is delivered or undeliverable."""
    found: list[dict] = []

    def done() -> bool:
        found[:] = staff(stack, "GET", f"/v1/loss-reports/{reference}/notices").json()["notices"]
        return bool(found) and all(n["state"] in ("delivered", "undeliverable") for n in found)

    wait_for(done, 90, f"notices of {reference} settled", interval=0.2)
    return found


def test_filings_and_notices_are_counted_as_the_ledger_has_them(stack: Stack) -> None:
    before = metrics.scrape(stack.settings.card_service_url)
    # A REST conversation (no path reaches its guardian) and a Telegram one (one path, which
    # keeps answering "retry" here: no bot token is set).
    rest_body = people.report_body(conversation_id=f"metrics-{uuid.uuid4().hex[:8]}")
    telegram_body = people.report_body(conversation_id=f"telegram:{uuid.uuid4().int % 10**9}",
                                       child=people.child_id(sequence=173))
    references = []
    for body, key in ((rest_body, "metrics-a"), (telegram_body, "metrics-b")):
        first = file(stack, body, key)
        assert first.status_code == 201, first.text
        references.append(first.json()["reference"])
    assert file(stack, rest_body, "metrics-a").status_code == 200  # the same filing again
    bad = people.report_body(phone="12345")
    assert file(stack, bad, "metrics-c").status_code == 422
    assert file(stack, rest_body, "").status_code == 400  # no Idempotency-Key
    for reference in references:
        ready(stack, reference)
    ledgers = [notice for reference in references
               for notice in settled_ledger(stack, reference)]
    after = metrics.scrape(stack.settings.card_service_url)

    assert moved(before, after, "cardbot_filings_total") == {
        labelled(outcome="created"): 2, labelled(outcome="existing"): 1,
        labelled(outcome="rejected"): 2}
    attempts = collections.Counter((attempt["path"], attempt["outcome"])
                                   for notice in ledgers for attempt in notice["attempts"])
    assert attempts[("message", "retry")] >= 1  # Telegram's one path was tried
    assert moved(before, after, "cardbot_notice_attempts_total") == \
        {labelled(path=path, outcome=outcome): count
         for (path, outcome), count in attempts.items()}
    settled = collections.Counter((n["kind"], n["state"], n["delivered_path"] or "none")
                                  for n in ledgers)
    assert settled == {("card_ready", "undeliverable", "none"): 2}
    assert moved(before, after, "cardbot_notices_settled_total") == \
        {labelled(kind=kind, state=state, path=path): count
         for (kind, state, path), count in settled.items()}
    assert metrics.total(after, "cardbot_outbox_backlog") == 0


# Who may read, on the card service alone (the same code serves Rasa and the actions).
def local_address() -> str | None:
    """This machine's address on its first network (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if metrics.is_loopback(address) else address


def test_without_a_token_only_loopback_may_read(
        card_service_factory: Callable[..., CardService]) -> None:
    address = local_address()
    if address is None:
        pytest.skip("no network address besides loopback on this machine")
    service = card_service_factory(BIND_HOST="0.0.0.0")
    assert requests.get(f"{service.url}/metrics", timeout=5).status_code == 200
    outside = requests.get(f"http://{address}:{service.port}/metrics", timeout=5)
    assert outside.status_code == 403 and "cardbot_" not in outside.text
    assert requests.get(f"http://{address}:{service.port}/health", timeout=5).ok


def test_with_a_token_every_reader_must_present_it(
        card_service_factory: Callable[..., CardService]) -> None:
    service = card_service_factory(METRICS_TOKEN="scrape-token-for-the-test")
    page = f"{service.url}/metrics"
    assert requests.get(page, timeout=5).status_code == 401
    wrong = requests.get(page, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    # The service's own API token is not the metrics token.
    assert requests.get(page, headers=service.headers(), timeout=5).status_code == 401
    read = requests.get(page, headers={"Authorization": "Bearer scrape-token-for-the-test"},
                        timeout=5)
    assert read.status_code == 200 and read.headers["Content-Type"].startswith("text/plain")
    assert "cardbot_outbox_backlog" in read.text


def test_metrics_off_serves_no_page(card_service_factory: Callable[..., CardService]) -> None:
    service = card_service_factory(METRICS="off")
    assert requests.get(f"{service.url}/metrics", timeout=5).status_code == 404
    assert requests.get(f"{service.url}/health", timeout=5).ok


def test_the_backlog_is_read_when_scraped(card_service: CardService) -> None:
    """Rasa is down for this service: a card-ready notice waits in the outbox."""
    assert metrics.total(metrics.scrape(card_service.url), "cardbot_outbox_backlog") == 0
    filed = card_service.post("/v1/loss-reports", people.report_body(),
                              **{"Idempotency-Key": "backlog-1"})
    reference = filed.json()["reference"]
    for status in (statuses.REPORTED_WRITTEN, statuses.REPLACEMENT_APPLIED,
                   statuses.IN_PRODUCTION, statuses.READY_FOR_COLLECTION):
        assert card_service.post(f"/v1/loss-reports/{reference}/events", {"status": status},
                                 role="staff").ok
    page = metrics.scrape(card_service.url)
    assert metrics.total(page, "cardbot_outbox_backlog") == 1

    def render_tried() -> bool:
        return metrics.total(metrics.scrape(card_service.url), "cardbot_notice_attempts_total",
                             path="render", outcome="retry") >= 1

    wait_for(render_tried, 30, "a render attempt", interval=0.2)
    ledger = card_service.get(f"/v1/loss-reports/{reference}/notices", role="staff").json()
    renders = [a for n in ledger["notices"] for a in n["attempts"] if a["path"] == "render"]
    assert renders and all(a["outcome"] == "retry" for a in renders)
