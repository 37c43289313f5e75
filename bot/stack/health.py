"""Health checks of each part of the stack, used by the launcher and the tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import jwt
import redis
import requests

from bot import redis as bot_redis
from bot.settings import Settings

Check = Callable[[], bool]


def redis_ready(url: str) -> bool:
    try:
        return bool(bot_redis.client(url, "health").ping())
    except (redis.RedisError, OSError):
        return False


def http_ready(url: str, expect: Callable[[requests.Response], bool] | None = None,
               headers: Mapping[str, str] | None = None) -> bool:
    try:
        response = requests.get(url, timeout=2, headers=headers)
    except requests.RequestException:
        return False
    return response.ok and (expect is None or expect(response))


def rasa_ready(settings: Settings) -> bool:
    """Up and with a model loaded: /status answers only once the model is in."""
    url, headers = f"{settings.rasa_url}/status", {}
    if settings.rasa_jwt_secret:
        # A half-minute token in a header: a query-string token ends up in logs.
        claims = {"user": {"username": "health", "role": "admin"}, "exp": int(time.time()) + 30}
        headers["Authorization"] = "Bearer " + jwt.encode(claims, settings.rasa_jwt_secret,
                                                          "HS256")
    elif settings.rasa_token:
        url += f"?token={settings.rasa_token}"  # Rasa's only other way in
    return http_ready(url, lambda r: bool(r.json().get("model_id")), headers)


def checks(settings: Settings) -> dict[str, Check]:
    return {
        "redis": lambda: redis_ready(settings.redis_url),
        "actions": lambda: http_ready(f"{settings.actions_url}/health"),
        "card": lambda: http_ready(f"{settings.card_service_url}/health"),
        "console": lambda: http_ready(f"{settings.staff_console_url}/health"),
        "rasa": lambda: rasa_ready(settings),
    }


def wait_until(
    parts: dict[str, Check],
    timeout: float,
    on_ready: Callable[[str, float], None] | None = None,
    interval: float = 0.5,
) -> list[str]:
    """Poll every check until all pass; return the names still failing at the deadline."""
    start = time.monotonic()
    pending = dict(parts)
    while pending and time.monotonic() - start < timeout:
        for name, check in list(pending.items()):
            if check():
                del pending[name]
                if on_ready:
                    on_ready(name, time.monotonic() - start)
        if pending:
            time.sleep(interval)
    return sorted(pending)
