"""Settings from the environment: defaults that run on a laptop, overrides, clear errors,
`.env` underneath, and no other module reading the environment."""

from __future__ import annotations

import ast
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from bot import settings as bot_settings
from bot.settings import (
    GENERATED_SECRETS,
    ROOT,
    FacebookSettings,
    Settings,
    TelegramSettings,
    TwilioSettings,
    WeChatSettings,
    ensure_secrets,
    environment,
)


def test_defaults_match_the_contract() -> None:
    settings = Settings.from_env({})
    assert (settings.rasa_port, settings.actions_port, settings.card_service_port) == (
        5005, 5055, 8080,
    )
    assert settings.bind_host == "127.0.0.1"
    assert settings.redis_embedded
    assert settings.redis_url == "redis://127.0.0.1:6390/0"
    assert settings.chat_page_url == "http://127.0.0.1:5005/webhooks/webchat/chat/"


def test_the_other_defaults_run_on_a_laptop() -> None:
    settings = Settings.from_env({})
    assert (settings.bot_env, settings.rest_token) == ("development", "")
    assert settings.webchat_turns_at_once == 4
    assert settings.start_timeout == 300.0
    assert settings.env_file == ROOT / ".env"
    assert settings.rasa_patches_off == ()
    assert settings.wechat == WeChatSettings("", "", "", "https://api.weixin.qq.com")
    assert settings.telegram == TelegramSettings("", "", "", "", "https://api.telegram.org")
    assert settings.twilio == TwilioSettings("", "", "", "", "https://api.twilio.com")
    assert settings.facebook == FacebookSettings("", "", "", "https://graph.facebook.com")


def test_every_port_is_overridable() -> None:
    settings = Settings.from_env(
        {"RASA_PORT": "6005", "ACTIONS_PORT": "6055", "CARD_SERVICE_PORT": "9090"}
    )
    assert (settings.rasa_port, settings.actions_port, settings.card_service_port) == (
        6005, 6055, 9090,
    )


def test_the_other_settings_are_overridable() -> None:
    settings = Settings.from_env({
        "BOT_ENV": " Production ", "REST_TOKEN": " t0k ", "WEBCHAT_TURNS_AT_ONCE": " 0 ",
        "START_TIMEOUT": "42.5", "ENV_FILE": "/etc/cardbot/env",
        "RASA_PATCHES_OFF": " model_call, ,rasa_http ,", "TRACKER_EXPIRY_SECONDS": "60",
        "CARD_SERVICE_CLOCK_OFFSET_DAYS": "-2", "CARD_SERVICE_OUTBOX_MAX_DELAY": "1.5",
    })
    assert (settings.bot_env, settings.rest_token) == ("production", "t0k")
    assert settings.webchat_turns_at_once == 0
    assert settings.start_timeout == 42.5
    assert settings.env_file == Path("/etc/cardbot/env")
    assert settings.rasa_patches_off == ("model_call", "rasa_http")
    assert (settings.tracker_expiry_seconds, settings.clock_offset_days) == (60, -2)
    assert settings.outbox_max_delay_seconds == 1.5
    assert Settings.from_env({"RASA_PATCHES_OFF": "all"}).rasa_patches_off == ("all",)


def test_each_channel_reads_its_own_variables_trimmed() -> None:
    env = {
        "WECHAT_TOKEN": " wt ", "WECHAT_APP_ID": "wx1", "WECHAT_APP_SECRET": "ws",
        "WECHAT_API_BASE": "http://127.0.0.1:9",
        "TELEGRAM_ACCESS_TOKEN": "1:t", "TELEGRAM_SECRET_TOKEN": "ts",
        "TELEGRAM_WEBHOOK_URL": "https://bot.example/tg", "TELEGRAM_VERIFY": "cardbot",
        "TELEGRAM_API_BASE": "http://127.0.0.1:10",
        "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "ta",
        "TWILIO_NUMBER": "whatsapp:+14155238886", "TWILIO_WEBHOOK_URL": "https://bot.example/wa",
        "TWILIO_API_BASE": "http://127.0.0.1:11",
        "FACEBOOK_VERIFY": "fv", "FACEBOOK_SECRET": "fs", "FACEBOOK_PAGE_ACCESS_TOKEN": "fp",
        "FACEBOOK_API_BASE": "http://127.0.0.1:12",
    }
    settings = Settings.from_env(env)
    assert settings.wechat == WeChatSettings("wt", "wx1", "ws", "http://127.0.0.1:9")
    assert settings.telegram == TelegramSettings("1:t", "ts", "https://bot.example/tg",
                                                 "cardbot", "http://127.0.0.1:10")
    assert settings.twilio == TwilioSettings("AC1", "ta", "whatsapp:+14155238886",
                                             "https://bot.example/wa", "http://127.0.0.1:11")
    assert settings.facebook == FacebookSettings("fv", "fs", "fp", "http://127.0.0.1:12")


def test_an_empty_api_base_keeps_the_public_one() -> None:
    assert Settings.from_env({"WECHAT_API_BASE": ""}).wechat.api_base == \
        "https://api.weixin.qq.com"


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1"])
def test_a_bad_port_is_named_in_the_error(value: str) -> None:
    with pytest.raises(ValueError, match="RASA_PORT"):
        Settings.from_env({"RASA_PORT": value})


@pytest.mark.parametrize(("name", "value", "message"), [
    ("WEBCHAT_TURNS_AT_ONCE", "many", "must be a whole number from 0 to 64, not 'many'"),
    ("WEBCHAT_TURNS_AT_ONCE", "65", "must be a whole number from 0 to 64"),
    ("WEBCHAT_TURNS_AT_ONCE", "-1", "must be a whole number from 0 to 64"),
    ("START_TIMEOUT", "soon", "must be a number, got 'soon'"),
    ("TRACKER_EXPIRY_SECONDS", "90d", "must be a whole number, got '90d'"),
    ("CARD_SERVICE_CLOCK_OFFSET_DAYS", "1.5", "must be a whole number"),
    ("CARD_SERVICE_OUTBOX_MAX_DELAY", "a minute", "must be a number"),
])
def test_a_bad_value_is_named_in_the_error(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} {message}"):
        Settings.from_env({name: value})


def test_external_redis_replaces_the_embedded_one() -> None:
    settings = Settings.from_env({"REDIS_URL": "redis://:p%40ss@redis.internal:6400/3"})
    assert not settings.redis_embedded
    env = settings.child_env()
    assert (env["REDIS_HOST"], env["REDIS_PORT"], env["REDIS_DB"], env["REDIS_PASSWORD"]) == (
        "redis.internal", "6400", "3", "p@ss",
    )
    assert settings.redis_password == "p@ss"


def test_embedded_redis_uses_the_generated_password() -> None:
    settings = Settings.from_env({"REDIS_PASSWORD": "s3cret", "REDIS_EMBEDDED_PORT": "6999"})
    assert settings.redis_url == "redis://:s3cret@127.0.0.1:6999/0"
    assert settings.child_env()["REDIS_PASSWORD"] == "s3cret"


def test_a_wildcard_bind_is_reached_through_loopback() -> None:
    settings = Settings.from_env({"BIND_HOST": "0.0.0.0"})
    assert settings.rasa_url == "http://127.0.0.1:5005"
    assert settings.child_env()["SANIC_HOST"] == "0.0.0.0"


def test_services_on_other_hosts_are_reached_by_url() -> None:
    settings = Settings.from_env({"CARD_SERVICE_URL": "http://cards.internal:8080/",
                                  "RASA_URL": "http://rasa.internal:5005"})
    assert settings.card_service_url == "http://cards.internal:8080"
    assert settings.rasa_url == "http://rasa.internal:5005"
    assert settings.child_env()["CARD_SERVICE_URL"] == "http://cards.internal:8080"


# The process's settings: the environment with `.env` underneath, read once -----------


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    bot_settings.settings.cache_clear()
    yield
    bot_settings.settings.cache_clear()


def test_the_process_reads_env_file_underneath_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None) -> None:
    path = tmp_path / "env"
    path.write_text("RASA_PORT=6105\nREST_TOKEN=from-file\nWECHAT_APP_ID=wx-file\n")
    monkeypatch.setenv("ENV_FILE", str(path))
    monkeypatch.setenv("RASA_PORT", "6205")
    monkeypatch.delenv("REST_TOKEN", raising=False)
    monkeypatch.delenv("WECHAT_APP_ID", raising=False)
    settings = bot_settings.settings()
    assert settings.env_file == path
    assert settings.rasa_port == 6205
    assert (settings.rest_token, settings.wechat.app_id) == ("from-file", "wx-file")


def test_the_process_reads_its_settings_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None) -> None:
    monkeypatch.setenv("ENV_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("RASA_PORT", "6305")
    first = bot_settings.settings()
    monkeypatch.setenv("RASA_PORT", "6306")
    assert bot_settings.settings() is first
    bot_settings.settings.cache_clear()
    assert bot_settings.settings().rasa_port == 6306


# The .env file: made once with mode 600, never rewritten, below the real environment ----


def test_first_run_writes_every_secret_private(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    added = ensure_secrets(path)
    assert set(added) == set(GENERATED_SECRETS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = dotenv_values(path)
    assert len({values[name] for name in GENERATED_SECRETS}) == len(added)
    assert all(len(values[name] or "") >= 40 for name in added)


def test_existing_values_are_kept_and_only_missing_ones_added(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("RASA_TOKEN=mine\nOTHER=1")
    added = ensure_secrets(path)
    assert "RASA_TOKEN" not in added
    values = dotenv_values(path)
    assert values["RASA_TOKEN"] == "mine" and values["OTHER"] == "1"
    assert all(values.get(name) for name in GENERATED_SECRETS)


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("RASA_TOKEN=from-file\nCARD_SERVICE_TOKEN=file\n")
    env = environment(path, {"RASA_TOKEN": "from-env"})
    assert env["RASA_TOKEN"] == "from-env"
    assert env["CARD_SERVICE_TOKEN"] == "file"


# One place reads the environment ------------------------------------------------------


def environment_reads(tree: ast.AST) -> Iterator[int]:
    """Lines reading the environment: any use of os.environ/os.environb/os.getenv but a
    `os.environ.setdefault(...)` (a write: TensorFlow's defaults), and importing them."""
    writes = {id(node.func.value) for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "setdefault"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv") \
                and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and id(node) not in writes:
            yield node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                alias.name in ("environ", "environb", "getenv") for alias in node.names):
            yield node.lineno


def test_only_settings_reads_the_environment() -> None:
    readers = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in ("bot", "actions", "card_service")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "bot" / "settings.py"
        for line in environment_reads(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert readers == [], "read settings through bot.settings.settings() instead"


def test_the_check_sees_each_way_of_reading() -> None:
    source = """
import os
from os import getenv
a = os.environ.get("A")
b = os.environ["B"]
c = os.getenv("C")
d = dict(os.environ)
e = {k: v for k, v in os.environ.items()}
os.environ.setdefault("TF_INTRA_OP_PARALLELISM_THREADS", "1")
"""
    assert list(sorted(environment_reads(ast.parse(source)))) == [3, 4, 5, 6, 7, 8]
