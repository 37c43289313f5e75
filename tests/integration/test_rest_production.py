"""The REST channel in production: behind a bearer token, or off when no token is set.

Each case is a real `rasa run` with the project's credentials.yml and endpoints.yml;
no model is loaded (the gate is in front of the model, and a server without one
starts in seconds).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bot.settings import Settings
from bot.stack.launcher import stack_environment
from tests.testkit.processes import Process, free_port, wait_for
from tests.testkit.redis_server import RedisServer

pytestmark = pytest.mark.integration

TOKEN = "rest-test-token-0123456789"


class RasaServer:
    def __init__(self, name: str, redis_url: str, log_dir: Path, env: dict[str, str]):
        empty = log_dir / f"{name}-no-model"
        empty.mkdir()
        port = free_port()
        settings = Settings.from_env({"REDIS_URL": redis_url, "RASA_PORT": str(port),
                                      "ACTIONS_PORT": str(free_port())})
        self.url = settings.rasa_url
        base = {k: v for k, v in os.environ.items()
                if k not in ("BOT_ENV", "REST_TOKEN")}
        self.process = Process(name, [
            str(Path(sys.executable).parent / "rasa"), "run", "--model", str(empty),
            "--port", str(port), "--interface", "127.0.0.1",
            # Without a model `rasa run` stays up only with the HTTP API on.
            "--enable-api", "--auth-token", "rest-test-rasa-token",
            "--credentials", "credentials.yml", "--endpoints", "endpoints.yml",
        ], {**stack_environment(base, settings),
            # The tracker store seals conversations: it does not start without a key.
            "DATA_ENCRYPTION_KEY": "rest-production-test-key-0123456789", **env}, log_dir)

    def up(self) -> bool:
        try:
            return requests.get(self.url + "/", timeout=1).ok
        except requests.RequestException:
            return False

    def post(self, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.post(f"{self.url}/webhooks/rest/webhook",
                             json={"sender": "rest-test", "message": "hi"},
                             headers=headers or {}, timeout=30)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RasaServer]]:
    log_dir = tmp_path_factory.mktemp("rest")
    (log_dir / "redis").mkdir()
    redis = RedisServer(log_dir / "redis", log_dir).start()
    servers = {
        "development": RasaServer("rasa-development", redis.url, log_dir, {}),
        "no-token": RasaServer("rasa-no-token", redis.url, log_dir, {"BOT_ENV": "production"}),
        "token": RasaServer("rasa-token", redis.url, log_dir,
                            {"BOT_ENV": "production", "REST_TOKEN": TOKEN}),
    }
    try:
        for server in servers.values():
            server.process.start()
        for name, server in servers.items():
            try:
                wait_for(server.up, 120, name)
            except TimeoutError as error:
                raise TimeoutError(f"{error}\n{server.process.log_tail()}") from None
        yield servers
    finally:
        for server in servers.values():
            server.process.stop()
        redis.stop()


def test_development_keeps_the_webhook_open(servers: dict[str, RasaServer]) -> None:
    assert servers["development"].post().status_code == 200


def test_production_without_a_token_turns_the_webhook_off(
        servers: dict[str, RasaServer]) -> None:
    server = servers["no-token"]
    assert server.post().status_code == 404
    assert server.post({"Authorization": "Bearer anything"}).status_code == 404
    assert "REST channel off" in server.process.log_path.read_text()


def test_production_with_a_token_requires_it(servers: dict[str, RasaServer]) -> None:
    server = servers["token"]
    missing = server.post()
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert server.post({"Authorization": "Bearer wrong"}).status_code == 401
    assert server.post({"Authorization": TOKEN}).status_code == 401
    accepted = server.post({"Authorization": f"Bearer {TOKEN}"})
    assert accepted.status_code == 200
    assert isinstance(accepted.json(), list)


def test_the_rest_of_the_server_is_not_behind_the_rest_token(
        servers: dict[str, RasaServer]) -> None:
    # The web chat page is its own channel: production does not lock it.
    page = requests.get(f"{servers['token'].url}/webhooks/webchat/chat/", timeout=10)
    assert page.status_code in (200, 503)
