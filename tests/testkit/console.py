"""The staff console as a real process (`python -m console serve`) beside a real card
service, and its accounts made with its own command (`python -m console user add`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bot.settings import ROOT
from tests.testkit.processes import HttpProcess
from tests.testkit.redis_server import RedisServer

if TYPE_CHECKING:
    from tests.integration.conftest import CardService


class ConsoleServer(HttpProcess):
    label = "staff console"

    def __init__(self, redis_url: str, card_service_url: str, console_token: str, log_dir: Path,
                 env: dict[str, str] | None = None):
        super().__init__()
        self.env = {name: value for name, value in os.environ.items()
                    if not name.startswith(("REDIS_", "STAFF_CONSOLE_", "CARD_SERVICE_"))}
        self.env.update({
            "STAFF_CONSOLE_PORT": str(self.port),
            "BIND_HOST": "127.0.0.1",
            "REDIS_URL": redis_url,
            "CARD_SERVICE_URL": card_service_url,
            "CARD_SERVICE_CONSOLE_TOKEN": console_token,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        })
        self._child([sys.executable, "-m", "console", "serve"], self.env, log_dir)

    def command(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """`python -m console ...` with this console's settings."""
        return subprocess.run([sys.executable, "-m", "console", *args], input=stdin,
                              capture_output=True, text=True, env=self.env, cwd=str(ROOT),
                              timeout=60, check=False)

    def add_user(self, name: str, role: str, password: str) -> None:
        done = self.command("user", "add", name, "--role", role, stdin=password + "\n")
        assert done.returncode == 0, done.stderr


@contextmanager
def console_stack(directory: Path, users: Mapping[str, str], password: str,
                  console_env: Mapping[str, str] | None = None
                  ) -> Iterator[tuple[ConsoleServer, CardService, RedisServer]]:
    """Redis, a card service and a console on them (with `console_env` added to its
    environment), an account per `users` entry (name -> role), all sharing `password`;
    stopped in reverse order."""
    from tests.integration.conftest import CardService

    (directory / "redis").mkdir()
    with ExitStack() as running:
        redis_server = RedisServer(directory / "redis", directory).start()
        running.callback(redis_server.stop)
        card = CardService(redis_server.url, directory).start()
        running.callback(card.stop)
        console = ConsoleServer(redis_server.url, card.url, card.console_token, directory,
                                dict(console_env or {})).start()
        running.callback(console.stop)
        for name, role in users.items():
            console.add_user(name, role, password)
        yield console, card, redis_server
