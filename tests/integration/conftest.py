"""The card service as a real process (`python -m card_service serve`) on a real Redis.

`card_service` gives a fresh service on a fresh Redis; `card_service_factory` makes more
(on a given Redis, with extra environment such as RASA_URL or a clock offset).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.testkit.processes import HttpProcess, free_port
from tests.testkit.rasa_stand_in import JWT_SECRET
from tests.testkit.redis_server import RedisServer


class CardService(HttpProcess):
    label = "card service"

    def __init__(self, redis_url: str, log_dir: Path, env: dict[str, str] | None = None,
                 service_token: str | None = None, staff_token: str | None = None,
                 encryption_key: str | None = None, console_token: str | None = None):
        super().__init__()
        self.redis_url = redis_url
        self.service_token = service_token or secrets.token_urlsafe(24)
        self.staff_token = staff_token or secrets.token_urlsafe(24)
        self.encryption_key = encryption_key or secrets.token_urlsafe(32)
        self.console_token = console_token or secrets.token_urlsafe(24)
        self.env = dict(os.environ)
        for name in ("RASA_URL", "CARD_SERVICE_CLOCK_OFFSET_DAYS", "CARD_SERVICE_OUTBOX_MAX_DELAY"):
            self.env.pop(name, None)
        self.env.update({
            "CARD_SERVICE_PORT": str(self.port),
            "BIND_HOST": "127.0.0.1",
            "REDIS_URL": redis_url,
            "CARD_SERVICE_TOKEN": self.service_token,
            "CARD_SERVICE_STAFF_TOKEN": self.staff_token,
            "CARD_SERVICE_CONSOLE_TOKEN": self.console_token,
            "DATA_ENCRYPTION_KEY": self.encryption_key,
            # Nothing answers here unless a test says otherwise: Rasa is "down".
            "RASA_URL": f"http://127.0.0.1:{free_port()}",
            "RASA_JWT_SECRET": JWT_SECRET,
            "PYTHONUNBUFFERED": "1",
        })
        self.env.update(env or {})
        self._child([sys.executable, "-m", "card_service", "serve"], self.env, log_dir)

    def kill(self) -> None:
        self.process.kill()

    def restart(self) -> CardService:
        self.stop()
        return self.start()

    def sibling(self, **env: str) -> CardService:
        """Another instance on the same Redis with the same secrets (not started)."""
        inherited = {name: value for name, value in self.env.items()
                     if name != "CARD_SERVICE_PORT"}
        return CardService(self.redis_url, self.process.log_path.parent, {**inherited, **env},
                           self.service_token, self.staff_token, self.encryption_key,
                           self.console_token)

    def headers(self, role: str = "service", **extra: str) -> dict[str, str]:
        token = {"service": self.service_token, "staff": self.staff_token,
                 "console": self.console_token}[role]
        return {"Authorization": f"Bearer {token}", **extra}

    def post(self, path: str, body: Any = None, role: str = "service",
             **headers: str) -> requests.Response:
        return requests.post(self.url + path, json=body, headers=self.headers(role, **headers),
                             timeout=10)

    def get(self, path: str, role: str = "service") -> requests.Response:
        return requests.get(self.url + path, headers=self.headers(role), timeout=10)


@pytest.fixture
def card_service_factory(redis_server_factory: Callable[[], RedisServer],
                         tmp_path: Path) -> Iterator[Callable[..., CardService]]:
    started: list[CardService] = []

    def make(redis_url: str | None = None, **env: str) -> CardService:
        url = redis_url or redis_server_factory().url
        service = CardService(url, tmp_path, env)
        started.append(service)
        return service.start()

    yield make
    for service in started:
        service.stop()


@pytest.fixture
def card_service(card_service_factory: Callable[..., CardService]) -> CardService:
    """A fresh card service on a fresh Redis, Rasa unreachable."""
    return card_service_factory()


@pytest.fixture(scope="module")
def shared_card_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardService]:
    """One service and Redis for a whole module of tests that do not disturb each other."""
    directory = tmp_path_factory.mktemp("card-service")
    (directory / "redis").mkdir()
    redis_server = RedisServer(directory / "redis", directory).start()
    service = CardService(redis_server.url, directory).start()
    yield service
    service.stop()
    redis_server.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes several seconds (Redis crash and restart)")
