"""The client and the staff command line against the real card service."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot import card_client
from bot.card_client import CardClient
from bot.settings import ROOT
from tests.integration.conftest import CardService
from tests.testkit import people

pytestmark = pytest.mark.integration


def filing(body: dict) -> dict[str, str]:
    return dict(child_name=body["child"]["name"], child_id_number=body["child"]["id_number"],
                guardian_name=body["guardian"]["name"],
                guardian_id_number=body["guardian"]["id_number"],
                relationship=body["guardian"]["relationship"], phone=body["guardian"]["phone"],
                city=body["city"], conversation_id=body["conversation_id"])


def test_the_client_through_a_report_s_life(shared_card_service: CardService) -> None:
    client = CardClient(shared_card_service.url, shared_card_service.service_token)
    body = people.report_body(city="Xi'an")
    report = client.file_report(**filing(body), idempotency_key="client-1")
    assert report.created and report.status == "reported_temporary"
    assert report.region.key == "xian" and report.region.temporary_report_days == 7
    again = client.file_report(**filing(body), idempotency_key="client-1")
    assert again.reference == report.reference and not again.created

    guardian = body["guardian"]["id_number"]
    status = client.lookup(report.reference.lower(), guardian, caller="conv-client")
    assert status.history[0].status == "reported_temporary" and status.can_cancel
    with pytest.raises(card_client.NotFound):
        client.lookup(report.reference, people.guardian_id(sequence=61), caller="conv-client")
    with pytest.raises(card_client.Invalid) as invalid:
        client.lookup(report.reference, "12345", caller="conv-client")
    assert invalid.value.fields == {"guardian_id_number": "length"}

    child = body["child"]["id_number"]
    with pytest.raises(card_client.NotFound):  # the guardian's number alone is not enough
        client.cancel(report.reference, guardian, people.child_id(sequence=62),
                      caller="conv-client-2")
    assert client.cancel(report.reference, guardian, child,
                         caller="conv-client").status == "cancelled"
    with pytest.raises(card_client.Conflict) as conflict:
        client.cancel(report.reference, guardian, child, caller="conv-client")
    assert conflict.value.status == "cancelled"


def test_client_invalid_filing_names_fields(shared_card_service: CardService) -> None:
    client = CardClient(shared_card_service.url, shared_card_service.service_token)
    body = people.report_body(phone="12345")
    body["child"]["id_number"] = people.guardian_id()
    with pytest.raises(card_client.Invalid) as invalid:
        client.file_report(**filing(body))
    assert invalid.value.fields == {"child.id_number": "not_minor", "guardian.phone": "not_mobile"}


def test_client_region_and_wrong_token(shared_card_service: CardService) -> None:
    client = CardClient(shared_card_service.url, shared_card_service.service_token)
    assert client.region("上海市").temporary_report_days == 5
    assert client.region("Lhasa").known is False
    with pytest.raises(card_client.Unauthorized):
        CardClient(shared_card_service.url, "wrong").region("上海")


def run_cli(service: CardService, *args: str, token: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = {**service.env, "CARD_SERVICE_STAFF_TOKEN": token or service.staff_token}
    return subprocess.run([sys.executable, "-m", "card_service", *args], env=env,
                          cwd=str(ROOT), capture_output=True, text=True, timeout=30)


def test_staff_command_line(shared_card_service: CardService) -> None:
    client = CardClient(shared_card_service.url, shared_card_service.service_token)
    body = people.report_body()
    reference = client.file_report(**filing(body)).reference

    listed = run_cli(shared_card_service, "list", "--limit", "500")
    assert listed.returncode == 0, listed.stderr
    assert reference in listed.stdout
    assert body["child"]["id_number"] not in listed.stdout

    moved = run_cli(shared_card_service, "advance", reference.lower().replace("-", ""))
    assert moved.returncode == 0, moved.stderr
    assert f"{reference} is now reported_written" in moved.stdout

    refused = run_cli(shared_card_service, "advance", reference, "--to", "cancelled")
    assert refused.returncode != 0
    assert "cannot become cancelled" in refused.stderr

    shown = run_cli(shared_card_service, "show", reference)
    assert "reported_written" in shown.stdout and "reported_temporary" in shown.stdout

    wrong = run_cli(shared_card_service, "list", token="nope")
    assert wrong.returncode != 0 and "401" in wrong.stderr
    unknown = run_cli(shared_card_service, "show", "SC-ZZZZ-ZZZW")
    assert unknown.returncode != 0 and "404" in unknown.stderr


@pytest.mark.parametrize("missing", ["DATA_ENCRYPTION_KEY", "CARD_SERVICE_TOKEN",
                                     "RASA_JWT_SECRET"])
def test_the_service_refuses_to_start_without_its_secrets(shared_card_service: CardService,
                                                          missing: str) -> None:
    env = {**shared_card_service.env, missing: "", "CARD_SERVICE_PORT": "1"}
    result = subprocess.run([sys.executable, "-m", "card_service", "serve"], env=env,
                            cwd=str(ROOT), capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert missing in result.stderr
