"""Every Redis client of ours comes from here, every key prefix we write is listed here, and
so is the Redis user (ACL) of each component with the keys and commands it may use."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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
LIMITS = "cardbot:limits:"
HANDOFF = "cardbot:handoff:"
SOCKETIO = "cardbot:socketio"
CARD_SERVICE = "cardsvc:"
CONSOLE = "cardstaff:"
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
             "(turns in progress), alive:<process>; notices for pages: "
             "presence:<conversation> (its connected pages), unread:<conversation> and "
             "notice:<conversation>:<notice id> (kept, sealed, for a closed page), "
             "shown:<notice id>",
    LIMITS: "how fast each client talks (bot/channels/limits.py): flight:<conversation> "
            "(turns running or waiting), conversation:<conversation> and address:<client "
            "address> (when the next message is due)",
    HANDOFF: "live handoff to a person (bot/handoff.py): waiting and taken (the queue), "
             "case:<conversation> (masked transcript, language, channel), agent:<conversation> "
             "(who holds it), messages:<conversation>, pending:<conversation>",
    SOCKETIO: "the pub/sub channel through which web chat processes share socket.io rooms",
    CARD_SERVICE: "the card service: reports, their history, idempotency keys, failure "
                  "counters, lapse reminders, the outbox of notices to send and their "
                  "ledger (notice:<id>, notices:<ref>)",
    CONSOLE: "the staff console (console/): user:<name> (accounts, argon2 hashes), users, "
             "session:<sha256 of id>, fail:user:<name> and fail:addr:<sha256> (failed "
             "logins), audit (who saw which report's fields)",
    WECHAT: "wechat:<app id>: the access token and its lock, the JS-SDK ticket, messages "
            "seen (duplicates), buttons shown, subscribed:<keyed digest of the user> "
            "(subscription notifications the user accepted)",
    WHATSAPP: "whatsapp:buttons:<sha256 of the user>: buttons shown; whatsapp:users:<name>: "
              "the sealed number behind a conversation's pseudonym, and :wrote, when the "
              "user last wrote (their 24-hour window)",
}


# Redis users, one per component that uses Redis (the action server uses none, so it has no
# user). With them configured the default user is off: a client must name its user.
ADMIN_USER = "admin"  # operators and maintenance tools (key rotation, benchmarks): everything
RASA_USER = "rasa"
CARD_SERVICE_USER = "card-service"
CONSOLE_USER = "console"


@dataclass(frozen=True)
class AclUser:
    """What one component may touch: key patterns, pub/sub channels and command rules."""

    keys: tuple[str, ...]
    channels: tuple[str, ...]
    commands: str


# Data-type categories rather than a command list, so a new call on a type a component
# already uses keeps working. Never granted: @dangerous (FLUSHALL, KEYS, CONFIG, CLIENT...),
# and SCAN and RANDOMKEY, which name keys outside the user's patterns. Scripts run under the
# caller's user, so a Lua script reaches no further than the commands it could send itself.
_SCRIPTS = "+evalsha +eval +script|load +script|exists"
ACL_USERS: dict[str, AclUser] = {
    # Tracker and lock stores, web chat's shared turns and rate tallies, the channels'
    # buttons and WeChat's token; socket.io rooms over one channel. TIME: the lock and rate
    # scripts read Redis's clock.
    RASA_USER: AclUser(
        keys=(f"{TRACKER}:*", f"{WECHAT}*", f"{WHATSAPP}:*"),
        channels=(SOCKETIO,),
        commands="-@all +@string +@list +@set +@sortedset +@keyspace +@transaction "
                 f"-@dangerous -scan -randomkey +ping +echo +time {_SCRIPTS} "
                 "+publish +subscribe +unsubscribe"),
    # Reports, their history and indexes, idempotency keys, failure counters, the outbox.
    CARD_SERVICE_USER: AclUser(
        keys=(f"{CARD_SERVICE}*",),
        channels=(),
        commands="-@all +@string +@hash +@list +@sortedset +@keyspace +@transaction "
                 f"-@dangerous -scan -randomkey +ping +echo {_SCRIPTS}"),
    # Staff accounts, sessions, failed-login tallies and the audit log; never a report.
    CONSOLE_USER: AclUser(
        keys=(f"{CONSOLE}*",),
        channels=(),
        commands="-@all +@string +@hash +@list +@set +@keyspace +@transaction "
                 "-@dangerous -scan -randomkey +ping +echo"),
}
DEFAULT_USER_OFF = "user default off resetpass resetkeys resetchannels -@all"


def acl_lines(passwords: dict[str, str], admin_password: str) -> list[str]:
    """Redis config lines for the admin and each component user with a password, the
    default user off. Only SHA-256 digests of the passwords are written.

    >>> lines = acl_lines({"rasa": "r"}, "a")
    >>> lines[0]
    'user default off resetpass resetkeys resetchannels -@all'
    >>> lines[2].split(" #")[0], "~cardsvc:*" in lines[2], "&cardbot:socketio" in lines[2]
    ('user rasa on', False, True)
    """
    unknown = set(passwords) - set(ACL_USERS)
    if unknown:
        raise ValueError(f"no Redis user {sorted(unknown)}; one of {', '.join(ACL_USERS)}")
    if not admin_password:
        raise ValueError("Redis users need an admin password (REDIS_PASSWORD)")
    return [DEFAULT_USER_OFF, f"user {ADMIN_USER} on #{_digest(admin_password)} ~* &* +@all",
            *(f"user {name} {acl_rule(name, _digest(password))}"
              for name, password in passwords.items())]


def acl_rule(name: str, password_digest: str) -> str:
    """One component user's rules after `user <name>`, given its password's SHA-256 (deploy/
    writes the same rules, the digest computed in the Redis container)."""
    user = ACL_USERS[name]
    return " ".join([f"on #{password_digest} resetkeys", *(f"~{key}" for key in user.keys),
                     "resetchannels", *(f"&{channel}" for channel in user.channels),
                     user.commands])


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


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
