"""Every Redis client of ours comes from here, and every key prefix we write is listed here."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

# The timeouts of each purpose a client is made for (seconds). A Redis that stops
# answering fails the request at hand instead of hanging it.
ROLES: dict[str, dict[str, float]] = {
    # The card service's store, the text channels' button memory and WeChat's state.
    "store": {"socket_timeout": 5.0, "socket_connect_timeout": 5.0},
    # A readiness check: no answer within a second is "not ready".
    "health": {"socket_timeout": 1.0},
    # Web chat's shared turns: a read blocks up to 1 s, so the socket waits 5 s beyond it.
    "turns": {"socket_timeout": 6.0, "socket_connect_timeout": 5.0},
    # Rasa's tracker store and lock store (bot/rasa/): a turn fails rather than hangs.
    "tracker": {"socket_timeout": 10.0, "socket_connect_timeout": 10.0},
    "lock": {"socket_timeout": 10.0, "socket_connect_timeout": 10.0},
    # Measuring and maintenance tools (tools/bench, key rotation): they wait as long as it takes.
    "tool": {},
}

# Key prefixes; PREFIXES says what lives under each.
TRACKER = "cardbot"
LOCK_TICKETS = "tickets:"
LOCK_COUNTER = "ticket_counter:"
WEBCHAT = "cardbot:webchat:"
SOCKETIO = "cardbot:socketio"
CARD_SERVICE = "cardsvc:"
WECHAT = "wechat:"
WHATSAPP = "whatsapp"

PREFIXES: dict[str, str] = {
    TRACKER: "endpoints.yml's key_prefix for both stores: Rasa's tracker store keeps each "
             "conversation's events at cardbot:tracker:<conversation>",
    LOCK_TICKETS: "after the key_prefix (cardbot:tickets:<conversation>): the lock store's "
                  "waiting and working tickets of a conversation",
    LOCK_COUNTER: "after the key_prefix (cardbot:ticket_counter:<conversation>): the lock "
                  "store's last ticket number of a conversation",
    WEBCHAT: "web chat's shared turns: turns (waiting), processes, claimed:<process> "
             "(turns in progress), alive:<process>",
    SOCKETIO: "the pub/sub channel through which web chat processes share socket.io rooms",
    CARD_SERVICE: "the card service: reports, their history, idempotency keys, failure "
                  "counters and the outbox of notifications to send",
    WECHAT: "wechat:<app id>: the access token and its lock, messages seen (duplicates), "
            "buttons shown",
    WHATSAPP: "whatsapp:buttons:<sha256 of the user>: buttons shown",
}


def client(url: str, role: str, **overrides: Any) -> redis.Redis:
    """A blocking client for `url` with the timeouts of `role`; `overrides` win."""
    return redis.Redis.from_url(url, **_options(role, overrides))


def async_client(url: str, role: str, **overrides: Any) -> redis.asyncio.Redis:
    """An asyncio client for `url` with the timeouts of `role`; `overrides` win."""
    return redis.asyncio.Redis.from_url(url, **_options(role, overrides))


def endpoint_url(host: str, port: int | str, db: int | str, ssl: bool = False) -> str:
    """The URL of an endpoints.yml-style Redis (host, port, db); credentials go as options.

    >>> endpoint_url("redis.internal", 6379, 2), endpoint_url("::1", "6390", 0, ssl=True)
    ('redis://redis.internal:6379/2', 'rediss://[::1]:6390/0')
    """
    host = f"[{host}]" if ":" in host else host
    return f"{'rediss' if ssl else 'redis'}://{host}:{int(port)}/{int(db)}"


def _options(role: str, overrides: dict[str, Any]) -> dict[str, Any]:
    if role not in ROLES:
        raise ValueError(f"unknown Redis role {role!r}; one of {', '.join(ROLES)}")
    return {**ROLES[role], **overrides}
