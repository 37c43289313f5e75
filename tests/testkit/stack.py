"""The real stack for integration tests: the Procfile's own commands, on free ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from bot.settings import Settings
from bot.stack import health
from bot.stack.launcher import procfile_commands, stack_environment
from tests.testkit.processes import Process, free_port, wait_for


class Stack:
    """Redis (given), action server and Rasa server, each a separate real process."""

    def __init__(self, redis_url: str, log_dir: Path, extra_env: dict[str, str] | None = None):
        env = {
            # Not the developer's `.env` from `make run`: its Redis passwords and tokens
            # would fill in underneath and lock the processes out of this Redis.
            "ENV_FILE": os.devnull,
            "RASA_PORT": str(free_port()),
            "ACTIONS_PORT": str(free_port()),
            "CARD_SERVICE_PORT": str(free_port()),
            "STAFF_CONSOLE_PORT": str(free_port()),
            "REDIS_URL": redis_url,
            "RASA_TOKEN": "test-rasa-token",
            "RASA_JWT_SECRET": "test-rasa-jwt-secret-0123456789abc",
            "CARD_SERVICE_TOKEN": "test-service-token",
            "CARD_SERVICE_STAFF_TOKEN": "test-staff-token",
            "CARD_SERVICE_CONSOLE_TOKEN": "test-console-token",
            "DATA_ENCRYPTION_KEY": "test-data-encryption-key-0123456789",
            "DATA_DIR": str(log_dir / "var"),
            # Every test client (and the bench's guardians) comes from 127.0.0.1: one address
            # standing for many people. The per-conversation limits stay on.
            "RATE_PER_ADDRESS": "0",
            **(extra_env or {}),
        }
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RASA_", "REDIS_"))}
        self.settings = Settings.from_env({**base, **env})
        self.env = stack_environment({**base, **env}, self.settings)
        commands = procfile_commands(self.settings)
        self.processes = {
            name: Process(name, command, self.env, log_dir)
            for name, command in commands.items()
            if name != "redis"
        }

    def start(self, *names: str, timeout: float = 120) -> Stack:
        return self.launch(*names).wait(*names, timeout=timeout)

    def launch(self, *names: str) -> Stack:
        """Start without waiting, so that several stacks load their models at once."""
        for name in names or tuple(self.processes):
            self.processes[name].start()
        return self

    def wait(self, *names: str, timeout: float = 120) -> Stack:
        names = names or tuple(self.processes)
        checks = health.checks(self.settings)
        for name in names:
            if name in checks:
                process, check = self.processes[name], checks[name]

                def up(process: Process = process, check: health.Check = check) -> bool:
                    if not process.running:
                        raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
                    return check()

                try:
                    wait_for(up, timeout, name)
                except (TimeoutError, RuntimeError) as error:
                    # A fixture that fails here never reaches stop(): leave nothing behind.
                    self.stop()
                    raise TimeoutError(f"{error}\n{process.log_tail()}") from None
        return self

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    @property
    def rasa_url(self) -> str:
        return self.settings.rasa_url

    def say(self, sender: str, message: str) -> list[dict]:
        response = requests.post(
            f"{self.rasa_url}/webhooks/rest/webhook",
            json={"sender": sender, "message": message},
            timeout=30,
        )
        response.raise_for_status()
        return list(response.json())

    def tracker(self, sender: str) -> dict:
        response = requests.get(
            f"{self.rasa_url}/conversations/{sender}/tracker",
            params={"token": self.settings.rasa_token},
            timeout=30,
        )
        response.raise_for_status()
        return dict(response.json())


def texts(replies: list[dict]) -> str:
    return "\n".join(reply.get("text", "") for reply in replies)


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@contextmanager
def running_stack(directory: Path, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A fresh Redis and the whole stack on it, stopped afterwards whatever happens."""
    from tests.testkit.redis_server import RedisServer

    redis_dir = directory / "redis"
    redis_dir.mkdir()
    redis = RedisServer(redis_dir, directory).start()
    stack = Stack(redis.url, directory, extra_env)
    try:
        yield stack.start()
    finally:
        stack.stop()
        redis.stop()
