"""The contract every channel of ours meets, written once here and shared by all of them.

A channel is an entry in credentials.yml naming an `InputChannel` class. Rasa builds it
with `from_credentials(<the entry's values>)`, serves its `blueprint` under
`/webhooks/<name>/`, and asks it for an output channel when a message is pushed to a
conversation (`trigger_intent`: the card service's "card ready"). Every channel of ours:

1. Is a `ChannelInput` whose `config` is a `ChannelConfig`: each value is the
   credentials.yml entry's when set there, else the channel's settings in
   `bot.settings` (the environment, or `.env`), trimmed. credentials.yml lists every
   channel with empty values, since Rasa stops at start-up on an unset `${VAR}`: the
   secrets live in the environment. `config.missing` names what is unset or malformed,
   and the log says so at start-up.
2. Answers 503 "<Title> channel not configured" until nothing is missing, and gives
   `trigger_intent` no output channel either. `refusal(body)` is the first question
   every webhook asks, before it reads anything.
3. Refuses a body over `MAX_BODY_BYTES` with 413 (the same question).
4. Waits at most `HTTP_TIMEOUT_SECONDS` for an app's API: no outside call without a
   timeout.
5. Answers `GET /webhooks/<name>/` with `{"status": "ok", "configured": ...}`.
6. Names its conversations `<channel>:<the app's id for the user>` (`conversation_id`):
   a WeChat openid or a Messenger id would otherwise fit the web chat's session ids, and a
   client of one channel could drive another's conversation. REST's senders may not
   contain ":", so it can name none of them. Its replies go to the app's own id again.
7. Hands a message to Rasa only within the limits of `bot.channels.limits` (a turn or two
   in flight per conversation, so many a minute); past them the user is told to slow
   down and the message is not run. `guarded(on_new_message)` does both, and keeps the
   message from Rasa for the agent while a person holds the conversation (`bot.handoff`).
8. Replies through a `ChannelOutput`. In a user's turn a reply the app refuses is
   logged, not raised (Rasa would not save the turn). The output handed to
   `trigger_intent` raises `NotDelivered` instead, so that the card service sends the
   message again later; where trying again cannot help (the user blocked the bot or is
   outside the app's reply window), it is logged and dropped.

Where a channel differs, it says so in its module: REST needs no configuration (with
`BOT_ENV=production` and no `REST_TOKEN` it is not served at all: 404) and keeps Rasa's
health route; the web chat needs only Redis, and pushes through its socket.io rooms;
Messenger replies through Rasa's own output (a failed Graph call raises either way) and
takes larger bodies.

To add a channel: a module `bot/channels/<app>.py` with a `ChannelConfig` subclass (its
settings in `bot/settings.py`), a `ChannelInput` subclass built on `webhook_blueprint()`,
an entry with empty values in credentials.yml, and it joins `tests/unit/channels/
test_contract.py` by itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import handoff, notices
from bot import settings as bot_settings
from bot.channels.limits import TurnLimiter, slow_down_text
from bot.channels.text import custom_text

log = logging.getLogger(__name__)

# Every app's webhook call is one small message; a larger body is not from the app.
MAX_BODY_BYTES = 64 * 1024
# For every call to an app's API (sending a reply, fetching a token, setting a webhook).
HTTP_TIMEOUT_SECONDS = 10.0

C = TypeVar("C", bound="ChannelConfig")
OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
_limiters: dict[str, TurnLimiter] = {}


def conversation_id(channel: str, user: str) -> str:
    """The conversation of `user` (the app's id for them) on `channel`.

    >>> conversation_id("wechat", "oA1b2C3d4E5f6G7h8I9j0K1l2M3n")
    'wechat:oA1b2C3d4E5f6G7h8I9j0K1l2M3n'
    """
    return f"{channel}:{user}"


def user_id(channel: str, conversation: str) -> str:
    """The app's id for the user of a conversation on `channel`. A conversation named before
    conversations had their channel's prefix (a notice filed then) is its user's id as it is.

    >>> user_id("telegram", "telegram:42"), user_id("telegram", "42")
    ('42', '42')
    """
    prefix = channel + ":"
    return conversation[len(prefix):] if conversation.startswith(prefix) else conversation


def limiter() -> TurnLimiter:
    """This process's limiter (one Redis connection pool for every channel)."""
    current = bot_settings.settings()
    if current.redis_url not in _limiters:
        _limiters[current.redis_url] = TurnLimiter(current.redis_url, current.limits)
    return _limiters[current.redis_url]


class Addressed(OutputChannel):
    """An app's output for a conversation of ours: Rasa addresses replies to the
    conversation, the app wants its own id for the user."""

    def __init__(self, channel: str, output: OutputChannel) -> None:
        self.channel = channel
        self.output = output

    def name(self) -> str:
        return self.output.name()

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        await self.output.send_response(user_id(self.channel, recipient_id), message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.output, name)


@dataclass(frozen=True)
class ChannelConfig:
    """What a channel needs before it serves. Subclasses are frozen dataclasses of the
    credentials.yml keys they read, with defaults, and say where their values come from."""

    # The sub-object of `Settings` the values fall back to ("wechat"...); "" for Settings
    # itself. A field found in neither (say `redis_url`) is read from Settings itself.
    SECTION: ClassVar[str] = ""
    # credentials.yml's key for a field, where it is not the field's name.
    KEYS: ClassVar[Mapping[str, str]] = {}
    # The settings' name for a field, where it is not the field's name.
    SETTING_NAMES: ClassVar[Mapping[str, str]] = {"base_url": "api_base"}
    # The fields that must be set before the channel serves, with the shape each must
    # have (None: any non-empty value).
    REQUIRED: ClassVar[Mapping[str, re.Pattern[str] | None]] = {}

    @classmethod
    def from_credentials(cls: type[C], credentials: Mapping[str, Any] | None,
                         settings: bot_settings.Settings | None = None) -> C:
        """credentials.yml's values, each falling back to its setting; trimmed, and an
        API base without its trailing "/"."""
        settings = settings or bot_settings.settings()
        section = getattr(settings, cls.SECTION) if cls.SECTION else settings
        given = credentials or {}
        values: dict[str, Any] = {}
        for field in fields(cls):
            name = cls.SETTING_NAMES.get(field.name, field.name)
            fallback = getattr(section, name) if hasattr(section, name) else getattr(settings, name)
            value = given.get(cls.KEYS.get(field.name, field.name)) or fallback
            if isinstance(fallback, str):
                value = str(value).strip()
                if field.name == "base_url":
                    value = value.rstrip("/")
            values[field.name] = value
        return cls(**values)

    @property
    def missing(self) -> tuple[str, ...]:
        """The required fields that are unset or not of the required shape."""
        return tuple(name for name, shape in self.REQUIRED.items()
                     if not getattr(self, name)
                     or (shape is not None and not shape.fullmatch(getattr(self, name))))

    @property
    def configured(self) -> bool:
        return not self.missing


class ChannelInput(InputChannel):
    """An input channel of ours: put it before Rasa's class it extends, so that the
    contract's methods are the ones Rasa calls."""

    # How the channel is named to the app's operator ("WeChat channel not configured").
    TITLE: ClassVar[str] = ""
    MAX_BODY_BYTES: ClassVar[int] = MAX_BODY_BYTES
    # The ways a notice can reach this channel's user, first tried first (notices.py); the
    # card service tries them in this order and adds its own (SMS) after them.
    NOTICE_PATHS: ClassVar[tuple[str, ...]] = ()
    config: ChannelConfig

    def refusal(self, body: bytes = b"") -> tuple[int, str] | None:
        """(status, text) when the request must not be read at all, else None."""
        if not self.config.configured:
            return 503, f"{self.TITLE} channel not configured"
        if len(body) > self.MAX_BODY_BYTES:
            return 413, "too large"
        return None

    def guarded(self, on_new_message: OnNewMessage, address: str | None = None
                ) -> OnNewMessage:
        """`on_new_message` for a message whose sender is the app's id for the user: the
        message goes to the user's conversation on this channel, within the limits (else
        the user is told to slow down and Rasa never sees it). `address`: the client's,
        where the channel has one."""
        channel = self.name()

        async def handle(message: UserMessage) -> None:
            user = message.sender_id
            conversation = conversation_id(channel, user)
            wait = await limiter().admit(conversation, address)
            if wait:
                log.info("%s: a message refused, the client is too fast (%.1f s)", channel,
                         wait)
                language = (message.metadata or {}).get("language")
                await message.output_channel.send_response(
                    user, {"text": slow_down_text(message.text, wait, language)})
                return
            message.sender_id = conversation
            message.output_channel = Addressed(channel, message.output_channel)
            try:
                # While an agent holds the conversation, the message is theirs (bot/handoff.py).
                await handoff.turn(on_new_message, message)
            finally:
                await limiter().done(conversation)

        return handle

    async def hand_over(self, on_new_message: OnNewMessage,
                        text: str, output: OutputChannel, sender: str, shown_as: str,
                        language: str | None = None) -> None:
        """Lets Rasa answer a user's message (`guarded`), with the channel (and the language
        the app reports) in its metadata. A failure is logged, not raised: the app would
        only send the same message again and again, and the fault is ours."""
        metadata: dict[str, Any] = {"channel": self.name()}
        if language:
            metadata["language"] = language
        try:
            await self.guarded(on_new_message)(UserMessage(
                text, output, sender, input_channel=self.name(), metadata=metadata))
        except Exception:
            log.exception("%s: message from %s failed", self.name(), shown_as)

    def get_output_channel(self) -> OutputChannel | None:
        """For trigger_intent: none until configured (Rasa then gathers the messages into
        trigger_intent's answer instead)."""
        output = self.proactive_output() if self.config.configured else None
        return Addressed(self.name(), output) if output is not None else None

    def proactive_output(self) -> OutputChannel | None:
        """The output for messages that no user's message started; raises when one is
        not delivered and trying again can help."""
        return None

    def webhook_blueprint(self) -> Blueprint:
        """The channel's blueprint with the health and notice routes; the channel adds its
        webhook."""
        blueprint = Blueprint(f"{self.name()}_webhook")
        self.add_health(blueprint)
        self.add_notice_route(blueprint)
        return blueprint

    async def deliver_notice(self, user: str, notice: notices.Notice) -> notices.Outcome:
        """Tries `notice.path` once for `user` (the app's id for them). A channel with
        paths overrides this; an exception is read as `retry`."""
        return notices.Outcome(notices.UNREACHABLE, detail=f"{self.name()} has no notice path")

    def add_notice_route(self, blueprint: Blueprint) -> None:
        channel = self.name()

        async def notice(request: Request) -> HTTPResponse:
            body = request.json if isinstance(request.json, dict) else {}
            try:
                given = notices.Notice.from_json(body)
            except ValueError as error:
                return response.json({"error": "invalid", "message": str(error)}, status=422)
            if not notices.authorised(request.headers.get("Authorization"), given.conversation,
                                      bot_settings.settings().rasa_jwt_secret):
                return response.json({"error": "unauthorized"}, status=401)
            if not self.config.configured:
                outcome = notices.Outcome(notices.RETRY, detail=f"{channel} not configured")
            elif given.path not in self.NOTICE_PATHS:
                outcome = notices.Outcome(notices.FALLBACK, detail=f"no path {given.path!r}")
            else:
                try:
                    outcome = await self.deliver_notice(user_id(channel, given.conversation),
                                                        given)
                except Exception as error:  # a fault of ours or the network's: try again
                    log.warning("%s: notice %s on %s failed (%s)", channel, given.id,
                                given.path, type(error).__name__)
                    outcome = notices.Outcome(notices.RETRY, detail=type(error).__name__)
            log.info("%s: notice %s on %s: %s %s", channel, given.id, given.path,
                     outcome.outcome, outcome.code)
            return response.json(outcome.as_json())

        blueprint.add_route(notice, "/notice", methods=["POST"], name="notice")

    def add_health(self, blueprint: Blueprint) -> None:
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok", "configured": self.config.configured})

        async def say_what_is_missing(*_: Any) -> None:
            if self.config.missing:
                log.info("%s: not configured (missing %s); the webhook answers 503",
                         self.name(), ", ".join(self.config.missing))

        blueprint.add_route(health, "/", methods=["GET"], name="health")
        blueprint.listener("after_server_start")(say_what_is_missing)


class NotDelivered(RuntimeError):
    """A message the app did not take, sent where a failure must be seen (trigger_intent);
    its sender should try again."""


class ChannelOutput(OutputChannel):
    """An output channel of ours for an app that shows text (custom payloads are meant for
    the web page: the app gets their text, if any)."""

    # True for the output handed to trigger_intent: see the contract above.
    raise_errors: bool = False

    def undelivered(self, who: str, error: BaseException, problem: str = "",
                    retry_helps: bool = True) -> None:
        """Logs a message the app did not take (`who` as logs may show them); raises
        `NotDelivered` from `error` when failures are to be raised and a retry can help."""
        log.warning("%s: message to %s not delivered (%s)", self.name(), who,
                    problem or type(error).__name__)
        if self.raise_errors and retry_helps:
            raise NotDelivered(f"{self.name()}: message to {who} not delivered: "
                               f"{type(error).__name__}: {error}") from error

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any],
                               **kwargs: Any) -> None:
        text = custom_text(json_message)
        if text:
            await self.send_text_message(recipient_id, text)
