"""Settings from the environment: defaults that run on a laptop, overrides, clear errors."""

from __future__ import annotations

import pytest

from bot.settings import Settings


def test_defaults_match_the_contract() -> None:
    settings = Settings.from_env({})
    assert (settings.rasa_port, settings.actions_port, settings.card_service_port) == (
        5005, 5055, 8080,
    )
    assert settings.bind_host == "127.0.0.1"
    assert settings.redis_embedded
    assert settings.redis_url == "redis://127.0.0.1:6390/0"
    assert settings.chat_page_url == "http://127.0.0.1:5005/webhooks/webchat/chat/"


def test_every_port_is_overridable() -> None:
    settings = Settings.from_env(
        {"RASA_PORT": "6005", "ACTIONS_PORT": "6055", "CARD_SERVICE_PORT": "9090"}
    )
    assert (settings.rasa_port, settings.actions_port, settings.card_service_port) == (
        6005, 6055, 9090,
    )


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1"])
def test_a_bad_port_is_named_in_the_error(value: str) -> None:
    with pytest.raises(ValueError, match="RASA_PORT"):
        Settings.from_env({"RASA_PORT": value})


def test_external_redis_replaces_the_embedded_one() -> None:
    settings = Settings.from_env({"REDIS_URL": "redis://:p%40ss@redis.internal:6400/3"})
    assert not settings.redis_embedded
    env = settings.child_env()
    assert (env["REDIS_HOST"], env["REDIS_PORT"], env["REDIS_DB"], env["REDIS_PASSWORD"]) == (
        "redis.internal", "6400", "3", "p@ss",
    )


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
