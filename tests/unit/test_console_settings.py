"""Where the console runs and which Redis user it is: its port, its URL in `make run`, its
own user limited to `cardstaff:`, its health check and its Procfile line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import redis as bot_redis
from bot.settings import Settings
from bot.stack import health
from bot.stack.launcher import process_environment, procfile_commands, stack_environment

SECRETS = {"REDIS_PASSWORD": "admin-secret", "REDIS_RASA_PASSWORD": "rasa-secret",
           "REDIS_CARD_SERVICE_PASSWORD": "card-secret", "REDIS_CONSOLE_PASSWORD": "staff-secret"}


def test_the_console_port_defaults_to_8090_and_is_checked() -> None:
    assert Settings.from_env({}).staff_console_port == 8090
    settings = Settings.from_env({"STAFF_CONSOLE_PORT": "9100", "BIND_HOST": "0.0.0.0"})
    assert settings.staff_console_url == "http://127.0.0.1:9100"
    assert settings.child_env()["STAFF_CONSOLE_PORT"] == "9100"
    with pytest.raises(ValueError, match="STAFF_CONSOLE_PORT"):
        Settings.from_env({"STAFF_CONSOLE_PORT": "console"})


def test_the_console_connects_as_its_own_redis_user(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), **SECRETS})
    env = stack_environment({"PATH": "/usr/bin", **SECRETS}, settings)
    console = process_environment(env, settings, "console")
    assert console["REDIS_URL"] == "redis://console:staff-secret@127.0.0.1:6390/0"
    assert not {"admin-secret", "rasa-secret", "card-secret"} & set(console.values())
    card = process_environment(env, settings, "card")
    assert "staff-secret" not in card.values()


def test_the_console_user_reaches_only_its_prefix() -> None:
    rule = bot_redis.acl_rule(bot_redis.CONSOLE_USER, "0" * 64)
    assert "~cardstaff:*" in rule and "~cardsvc:*" not in rule and "~*" not in rule.split()
    assert "-@dangerous" in rule and "+@hash" in rule
    assert bot_redis.CONSOLE in bot_redis.PREFIXES


def test_make_run_starts_the_console_and_waits_for_its_health() -> None:
    settings = Settings.from_env({})
    assert procfile_commands(settings)["console"] == "exec python -m console serve"
    assert "console" in health.checks(settings)
