"""The REST channel: open for local use and tests, behind a token (or off) in production.

Rasa's `--auth-token` never covers channel webhooks, so without this anyone who can
reach the server could post as any conversation. With `BOT_ENV=production` the channel
answers only requests carrying `Authorization: Bearer $REST_TOKEN`, and is not served at
all when no token is set. The name stays "rest": the URL is `/webhooks/rest/webhook`.

A body that is not a message is a 400 naming what is wrong, and a message Rasa failed to
handle is a 503 (send it again), never a 500 or a partial answer. A sender may not contain
":": the other channels' conversations are named `<channel>:<user>`, and no REST client
may speak in one of them. A client past the limits of `bot.channels.limits` gets 429
with Retry-After and the "slow down" text; its message is not run.

Of the contract in `bot.channels.base` it needs no configuration (off is 404: the URL is
then no webhook at all), and keeps Rasa's health route and Rasa's way with proactive
messages (trigger_intent answers with them).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import handoff
from bot.channels.base import ChannelConfig, ChannelInput, limiter
from bot.channels.limits import slow_down_text

log = logging.getLogger(__name__)

PRODUCTION = "production"
# Set when Rasa could not handle the message of the request being answered.
_turn_failed: ContextVar[bool] = ContextVar("rest_turn_failed", default=False)
# The client address of the request being answered, and the seconds it must wait when the
# limits refused its message.
_address: ContextVar[str | None] = ContextVar("rest_address", default=None)
_wait: ContextVar[float] = ContextVar("rest_wait", default=0.0)
# Longer than any id a channel issues (web chat sessions have at most 128 characters).
MAX_SENDER_CHARACTERS = 128


def body_problem(body: Any) -> str | None:
    """Why a webhook body cannot be a user's message, or None when it can.

    Rasa's REST channel takes whatever JSON comes: a list is a 500, a missing sender
    puts the message into a conversation named "default", a message that is not a
    string gets an empty answer.

    >>> body_problem({"sender": "me", "message": "hi"}) is None
    True
    >>> body_problem([1, 2])
    'the body must be a JSON object'
    >>> body_problem({"message": "hi"})
    '"sender" must be a string of 1 to 128 characters'
    >>> body_problem({"sender": "me", "message": {"text": "hi"}})
    '"message" must be a string'
    >>> body_problem({"sender": "wechat:oA1b2C3d4E5f6G7h8", "message": "hi"})
    '"sender" may not contain ":" (that names a conversation of another channel)'
    """
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    sender = body.get("sender")
    if not (isinstance(sender, str) and sender.strip() and len(sender) <= MAX_SENDER_CHARACTERS
            and _encodable(sender)):
        return f'"sender" must be a string of 1 to {MAX_SENDER_CHARACTERS} characters'
    if ":" in sender:
        return '"sender" may not contain ":" (that names a conversation of another channel)'
    if not isinstance(body.get("message"), str):
        return '"message" must be a string'
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        return '"metadata" must be an object'
    return None


def _encodable(text: str) -> bool:
    """False for a lone surrogate (JSON allows "\\ud800"): it cannot be a Redis key."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class RestConfig(ChannelConfig):
    """BOT_ENV and REST_TOKEN.

    >>> RestConfig("Production ", "").production, RestConfig("production", "t").enabled
    (True, True)
    >>> RestConfig("production", "").enabled
    False
    """

    SETTING_NAMES: ClassVar[Mapping[str, str]] = {"token": "rest_token"}

    bot_env: str = ""
    token: str = ""

    @property
    def production(self) -> bool:
        return self.bot_env.strip().lower() == PRODUCTION

    @property
    def enabled(self) -> bool:
        return not self.production or bool(self.token)


class TokenRestInput(ChannelInput, RestInput):
    """Rasa's REST channel with a bearer token in production."""

    def __init__(self, config: RestConfig | None = None) -> None:
        self.config: RestConfig = config or RestConfig()

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> TokenRestInput:
        return cls(RestConfig.from_credentials(credentials))

    def authorized(self, request: Request) -> bool:
        """Outside production every request; in production the bearer token, compared
        in constant time."""
        if not self.config.production:
            return True
        scheme, _, presented = (request.headers.get("Authorization") or "").partition(" ")
        token = self.config.token
        return (
            bool(token)
            and scheme.lower() == "bearer"
            and hmac.compare_digest(presented.strip().encode(), token.encode())
        )

    def _extract_input_channel(self, req: Request) -> str:
        # Not the body's "input_channel": a REST client must not pass for another channel.
        return self.name()

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[None]]
    ) -> Blueprint:
        if not self.config.enabled:
            log.warning("REST channel off: BOT_ENV=production and no REST_TOKEN set")
            # Registered but empty: /webhooks/rest/webhook answers 404.
            return Blueprint("rest_webhook_off", __name__)
        async def handle(message: UserMessage) -> None:
            conversation = message.sender_id
            wait = await limiter().admit(conversation, _address.get())
            if wait:
                _wait.set(wait)
                return
            try:
                # As `guarded` does: an agent holding the conversation gets the message.
                await handoff.turn(on_new_message, message)
            except Exception:
                _turn_failed.set(True)
                raise
            finally:
                await limiter().done(conversation)

        blueprint = super().blueprint(handle)

        @blueprint.on_request
        async def require_token(request: Request) -> HTTPResponse | None:
            _turn_failed.set(False)  # requests on one connection share a task
            _wait.set(0.0)
            # Sanic's remote_addr: the forwarded address when told to trust a proxy.
            _address.set(request.remote_addr or request.ip)
            if not self.authorized(request):
                return response.json(
                    {"error": {"code": "unauthorized", "message": "Bearer token required"}},
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if request.method == "POST":
                problem = body_problem(request.json)  # malformed JSON: Sanic's own 400
                if problem:
                    return response.json({"error": {"code": "bad_request", "message": problem}},
                                         status=400)
            return None

        @blueprint.on_response
        async def failed_turn_is_503(request: Request, _: HTTPResponse) -> HTTPResponse | None:
            if wait := _wait.get():
                body = request.json if isinstance(request.json, dict) else {}
                return response.json(
                    {"error": {"code": "slow_down",
                               "message": slow_down_text(body.get("message"), wait)}},
                    status=429, headers={"Retry-After": str(max(1, round(wait + 0.49)))})
            if not _turn_failed.get():
                return None
            # Rasa's channel would answer with what the bot said before the failure (Redis
            # gone before the turn was saved, say): the guardian would read a turn that the
            # conversation does not have.
            return response.json(
                {"error": {"code": "unavailable",
                           "message": "The message was not handled; send it again."}},
                status=503, headers={"Retry-After": "1"})

        return blueprint
