"""The card service client's error paths, against a scripted local HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bot import card_client
from bot.card_client import CardClient
from tests.testkit.processes import free_port

REPORT = {
    "reference": "SC-7K3F-9Q2M", "status": "reported_temporary", "valid_until": "2026-12-05",
    "city": "北京", "can_cancel": True, "terminal": False,
    "history": [{"status": "reported_temporary", "at": "2026-11-25T09:00:00Z"}],
    "next_step": {"key": "file_written_report", "where": None, "deadline": "2026-12-05"},
    "child": {"id_number_masked": "1101**********0019"},
    "guardian": {"id_number_masked": "1101**********002X", "phone_masked": "13*******00",
                 "relationship": "mother"},
    "region": {"key": "beijing", "known": True, "name_en": "Beijing", "name_zh": "北京",
               "temporary_report_days": 10, "fee_yuan": 20, "processing_days_min": 0,
               "processing_days_max": 10, "hotline": "12333", "written_report_en": "w",
               "written_report_zh": "w", "bank_en": "b", "bank_zh": "b"},
}
FILING = dict(child_name="a", child_id_number="1", guardian_name="b", guardian_id_number="2",
              relationship="mother", phone="3", city="北京", conversation_id="c")


class Scripted:
    """Answers each request with the next scripted (status, body, headers, delay)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, Any, dict[str, str], float]] = []
        self.requests: list[dict[str, Any]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                scripted.requests.append({"method": self.command, "path": self.path,
                                          "headers": dict(self.headers),
                                          "body": self.rfile.read(length)})
                status, body, headers, delay = (scripted.script.pop(0) if scripted.script
                                                else (200, REPORT, {}, 0.0))
                time.sleep(delay)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = answer  # noqa: N815 - the http.server API

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def then(self, status: int, body: Any = None, delay: float = 0.0,
             **headers: str) -> Scripted:
        self.script.append((status, REPORT if body is None else body, headers, delay))
        return self


@pytest.fixture
def server() -> Iterator[Scripted]:
    scripted = Scripted()
    yield scripted
    scripted.server.shutdown()
    scripted.server.server_close()


def client_for(server: Scripted, **kwargs: Any) -> CardClient:
    return CardClient(server.url, "secret", retry_delays=(0.01, 0.01, 0.01), **kwargs)


def error(code: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": code, "fields": fields or {}}}


def test_filing_returns_a_typed_report_and_sends_token_and_key(server: Scripted) -> None:
    server.then(201)
    report = client_for(server).file_report(**FILING, idempotency_key="form-1")
    assert report.reference == "SC-7K3F-9Q2M" and report.created
    assert report.region.temporary_report_days == 10
    assert report.history[0].status == "reported_temporary"
    headers = server.requests[0]["headers"]
    assert headers["Authorization"] == "Bearer secret"
    assert headers["Idempotency-Key"] == "form-1"
    assert json.loads(server.requests[0]["body"])["guardian"]["phone"] == "3"


def test_filing_retries_5xx_with_the_same_key(server: Scripted) -> None:
    server.then(503, error("unavailable")).then(502, b"bad gateway").then(200)
    report = client_for(server).file_report(**FILING)
    assert not report.created
    keys = {request["headers"]["Idempotency-Key"] for request in server.requests}
    assert len(server.requests) == 3 and len(keys) == 1


def test_persistent_5xx_is_unavailable(server: Scripted) -> None:
    for _ in range(4):
        server.then(500, error("internal"))
    with pytest.raises(card_client.CardServiceUnavailable):
        client_for(server).lookup("SC-7K3F-9Q2M", "x")
    assert len(server.requests) == 4


def test_cancel_is_not_retried(server: Scripted) -> None:
    server.then(503, error("unavailable"))
    with pytest.raises(card_client.CardServiceUnavailable):
        client_for(server).cancel("SC-7K3F-9Q2M", "x", "y")
    assert len(server.requests) == 1


def test_timeout_is_unavailable(server: Scripted) -> None:
    for _ in range(4):
        server.then(200, delay=0.6)
    started = time.monotonic()
    with pytest.raises(card_client.CardServiceUnavailable):
        client_for(server, timeout=(0.5, 0.2)).region("北京")
    assert time.monotonic() - started < 5


def test_connection_refused_is_unavailable() -> None:
    client = CardClient(f"http://127.0.0.1:{free_port()}", "t", retry_delays=(0.01,))
    with pytest.raises(card_client.CardServiceUnavailable):
        client.lookup("SC-7K3F-9Q2M", "x")


@pytest.mark.parametrize("status, body, raised", [
    (401, error("unauthorized"), card_client.Unauthorized),
    (403, error("forbidden"), card_client.Unauthorized),
    (404, error("not_found"), card_client.NotFound),
    (409, error("transition_not_allowed", {"status": "reported_written"}),
     card_client.Conflict),
    (400, b"<html>bad</html>", card_client.Invalid),
    (413, error("payload_too_large"), card_client.Invalid),
    (418, error("teapot"), card_client.CardServiceError),
])
def test_statuses_become_named_errors(server: Scripted, status: int, body: Any,
                                      raised: type[Exception]) -> None:
    server.then(status, body)
    with pytest.raises(raised):
        client_for(server).lookup("SC-7K3F-9Q2M", "x")
    assert len(server.requests) == 1


def test_invalid_carries_the_fields(server: Scripted) -> None:
    server.then(422, error("invalid_fields", {"child.id_number": "checksum"}))
    with pytest.raises(card_client.Invalid) as raised:
        client_for(server).file_report(**FILING)
    assert raised.value.fields == {"child.id_number": "checksum"}
    assert raised.value.code == "invalid_fields"


def test_conflict_carries_the_status(server: Scripted) -> None:
    server.then(409, error("transition_not_allowed", {"status": "reported_written"}))
    with pytest.raises(card_client.Conflict) as raised:
        client_for(server).cancel("SC-7K3F-9Q2M", "x", "y")
    assert raised.value.status == "reported_written"


def test_rate_limited_carries_retry_after(server: Scripted) -> None:
    server.then(429, error("too_many_failures"), **{"Retry-After": "120"})
    with pytest.raises(card_client.RateLimited) as raised:
        client_for(server).lookup("SC-7K3F-9Q2M", "x")
    assert raised.value.retry_after == 120


def test_a_2xx_that_is_not_json_is_unavailable(server: Scripted) -> None:
    server.then(200, b"<html>proxy page</html>")
    with pytest.raises(card_client.CardServiceUnavailable):
        client_for(server).region("beijing")


def test_reference_and_city_are_quoted_in_the_path(server: Scripted) -> None:
    client = client_for(server)
    client.lookup("sc 7k3f/9q2m", "x")
    server.then(200, REPORT["region"])
    client.region("北京")
    assert server.requests[0]["path"] == "/v1/loss-reports/sc%207k3f%2F9q2m/lookup"
    assert server.requests[1]["path"] == "/v1/regions/%E5%8C%97%E4%BA%AC"


def test_async_twins_run_off_the_loop(server: Scripted) -> None:
    server.then(200, delay=0.3)
    client = client_for(server)

    async def both() -> tuple[Any, float]:
        started = time.monotonic()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while ticks < 5:
                await asyncio.sleep(0.02)
                ticks += 1

        report, _ = await asyncio.gather(client.lookup_async("SC-7K3F-9Q2M", "x"), tick())
        return report, time.monotonic() - started

    report, elapsed = asyncio.run(both())
    assert report.reference == "SC-7K3F-9Q2M" and elapsed < 2


def test_caller_header_is_passed(server: Scripted) -> None:
    client_for(server).lookup("SC-7K3F-9Q2M", "x", caller="conversation-1")
    assert server.requests[0]["headers"]["X-Caller-Id"] == "conversation-1"


def test_cancel_sends_both_numbers_and_the_caller(server: Scripted) -> None:
    report = asyncio.run(client_for(server).cancel_async(
        "SC-7K3F-9Q2M", "guardian-number", "child-number", caller="conversation-2"))
    assert report.reference == "SC-7K3F-9Q2M"
    sent = server.requests[0]
    assert sent["path"] == "/v1/loss-reports/SC-7K3F-9Q2M/cancel"
    assert json.loads(sent["body"]) == {"guardian_id_number": "guardian-number",
                                        "child_id_number": "child-number"}
    assert sent["headers"]["X-Caller-Id"] == "conversation-2"
    # A lookup sends the guardian's number alone: the child's is asked only to cancel.
    client_for(server).lookup("SC-7K3F-9Q2M", "guardian-number")
    assert json.loads(server.requests[1]["body"]) == {"guardian_id_number": "guardian-number"}
