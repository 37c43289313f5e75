"""Rasa's readiness check keeps its credential out of the URL when it can: a short JWT in a
header. The real Rasa accepting it is what every integration test's stack start relies on;
here a local server checks the request the way Rasa's `requires_auth` does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.settings import Settings
from bot.stack.health import rasa_ready
from tests.testkit.local_server import LocalServer
from tests.testkit.rasa_stand_in import allowed

SECRET = "health-test-jwt-secret-0123456789abcdef"
TOKEN = "health-test-rasa-token"


class FakeRasa(LocalServer):
    """/status with a model, for an admin JWT signed with SECRET or ?token=TOKEN."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        super().__init__()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                fake.paths.append(self.path)
                url = urlsplit(self.path)
                ok = (parse_qs(url.query).get("token") == [TOKEN]
                      or allowed(self.headers.get("Authorization"), self.path, SECRET) == 200)
                status, body = (200, {"model_id": "m1"}) if ok else (401, {})
                self.send_response(status if url.path == "/status" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    fake = FakeRasa().start()
    yield fake
    fake.stop()


def settings_for(rasa: FakeRasa, **env: str) -> Settings:
    return Settings.from_env({"RASA_PORT": str(rasa.port), **env})


def test_with_a_jwt_secret_the_token_stays_out_of_the_url(rasa: FakeRasa) -> None:
    settings = settings_for(rasa, RASA_TOKEN=TOKEN, RASA_JWT_SECRET=SECRET)
    assert rasa_ready(settings)
    assert rasa.paths == ["/status"]


def test_a_jwt_signed_with_another_secret_is_not_ready(rasa: FakeRasa) -> None:
    settings = settings_for(rasa, RASA_TOKEN=TOKEN, RASA_JWT_SECRET="another-secret-" * 3)
    assert not rasa_ready(settings)
    assert TOKEN not in rasa.paths[0]


def test_with_only_a_token_rasa_is_asked_the_one_way_it_knows(rasa: FakeRasa) -> None:
    assert rasa_ready(settings_for(rasa, RASA_TOKEN=TOKEN))
    assert rasa.paths == [f"/status?token={TOKEN}"]
