"""The Telegram channel: Rasa's connector with an authenticated webhook and an output that
also works for proactive messages.

What Rasa 3.6's `TelegramInput` gets wrong, and what this subclass does instead:

- Its `get_output_channel` runs `asyncio.run(set_webhook(...))`, which raises inside the
  running server loop: `trigger_intent?output_channel=latest` (our "card ready" notice)
  always failed. Here the output channel is a plain Bot API client made once per process,
  and the webhook is registered in the background after start-up, retried with backoff,
  so an unreachable Bot API neither blocks nor breaks the start.
- Its `verify` compares the bot's own username, which is no authentication at all. Here
  the webhook is registered with a `secret_token` and every update must carry it in the
  `X-Telegram-Bot-Api-Secret-Token` header (compared in constant time), else 403.
- Typed text is never read as a Rasa payload (`/affirm` is text); `/start` greets in the
  language of the user's Telegram app; buttons keep their payloads (`callback_data`).
- A failed reply is logged, not raised, so the turn is still saved; a failed proactive
  message raises, so the card service tries again (unless retrying cannot help).
- A notice (`bot.notices`) has one path, "message": Telegram has no reply window,
  so a bot reaches any user who started it and has not blocked it. The Bot API's answer
  decides the outcome: 403 (blocked, account deleted, never started) and "chat not found"
  leave no way through Telegram; 429 says when to try again (`parameters.retry_after`).

Configuration (the contract in `bot.channels.base`): credentials.yml keys
`access_token`, `verify` (the bot's username, only for logs), `webhook_url`,
`secret_token`, `base_url`; empty values are read from TELEGRAM_ACCESS_TOKEN,
TELEGRAM_VERIFY, TELEGRAM_WEBHOOK_URL, TELEGRAM_SECRET_TOKEN and TELEGRAM_API_BASE.
Without a well-formed token and secret the webhook answers 503.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
from aiogram.bot.api import TelegramAPIServer
from aiogram.utils import exceptions
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.telegram import TelegramInput, TelegramOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import notices
from bot.channels.base import HTTP_TIMEOUT_SECONDS, ChannelConfig, ChannelInput, ChannelOutput
from bot.channels.text import GREETING, MAX_CHARACTERS, custom_text, user_text

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# Only these updates are asked for; others are acknowledged and ignored.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
REGISTER_DELAYS_SECONDS = (2, 5, 15, 30, 60, 120, 300)


def secret_valid(expected: str, presented: str | None) -> bool:
    """The header carries the secret given to setWebhook.

    >>> secret_valid("s" * 16, "s" * 16), secret_valid("s" * 16, "t" * 16)
    (True, False)
    >>> secret_valid("", ""), secret_valid("s" * 16, None)
    (False, False)
    """
    if not expected or not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "replace"), expected.encode("utf-8"))


@dataclass(frozen=True)
class Inbound:
    """One update, as far as the bot cares."""

    chat_id: str
    text: str
    language: str | None = None


class BadUpdate(ValueError):
    """The body is not a Telegram update we can read."""


def _language(user: Any) -> str | None:
    code = user.get("language_code") if isinstance(user, dict) else None
    return code if isinstance(code, str) and code else None


def parse_update(update: Any) -> Inbound | None:
    """What to tell Rasa about one update: None for updates without text (stickers,
    photos, joins), which are acknowledged and ignored.

    >>> parse_update({"update_id": 1, "message": {"message_id": 2, "chat": {"id": 7},
    ...     "from": {"id": 7, "language_code": "zh-hans"}, "text": "/start"}})
    Inbound(chat_id='7', text='/greet', language='zh-hans')
    >>> parse_update({"update_id": 1, "callback_query": {"id": "9", "data": "/affirm",
    ...     "from": {"id": 7}, "message": {"message_id": 3, "chat": {"id": 7}}}}).text
    '/affirm'
    >>> parse_update({"update_id": 1, "message": {"chat": {"id": 7}, "text": "/affirm"}}).text
    'affirm'
    """
    update_id = update.get("update_id") if isinstance(update, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise BadUpdate("not an update")
    callback = update.get("callback_query")
    if isinstance(callback, dict):
        message, raw, user, is_button = callback.get("message"), callback.get("data"), \
            callback.get("from"), True
    else:
        message = update.get("message") or update.get("edited_message")
        if message is None:
            return None
        raw = message.get("text") if isinstance(message, dict) else None
        user, is_button = message.get("from") if isinstance(message, dict) else None, False
    chat = message.get("chat") if isinstance(message, dict) else None
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if not isinstance(chat_id, int) or isinstance(chat_id, bool):
        raise BadUpdate("no chat id")
    if not isinstance(raw, str):
        return None
    if is_button:  # our own button's payload, as the web chat sends it
        text: str | None = raw.strip() or None
    elif raw.strip().split("@")[0] == "/start":  # Telegram's first message to a bot
        text = GREETING
    else:
        text = user_text(raw)
    if text is None:
        return None
    return Inbound(str(chat_id), text, _language(user))


def split_message(text: str, limit: int = MAX_CHARACTERS) -> list[str]:
    """Telegram takes at most 4096 characters a message.

    >>> [len(part) for part in split_message("a" * 5000)]
    [4096, 904]
    """
    return [text[start:start + limit] for start in range(0, len(text), limit)] or [text]


@dataclass(frozen=True)
class TelegramConfig(ChannelConfig):
    """Served only with a well-formed token and a strong secret.

    >>> TelegramConfig(access_token="123:" + "a" * 30, secret_token="short").missing
    ('secret_token',)
    """

    SECTION: ClassVar[str] = "telegram"
    REQUIRED: ClassVar[Mapping[str, re.Pattern[str] | None]] = {
        "access_token": re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,}"),
        # setWebhook allows 1-256 characters; we want entropy.
        "secret_token": re.compile(r"[A-Za-z0-9_-]{16,256}"),
    }

    access_token: str = ""
    verify: str = ""
    webhook_url: str = ""
    secret_token: str = ""
    base_url: str = ""


# Retrying cannot help: the user blocked the bot, or the chat is gone or unknown.
PERMANENT_ERRORS = (exceptions.Unauthorized, exceptions.BadRequest)
# A 400 that names the user's chat as gone, not our message as wrong.
NO_CHAT = ("chat not found", "user not found", "peer_id_invalid")


def telegram_outcome(status: int, body: Any) -> notices.Outcome:
    """What became of a Bot API call answered with `status` and `body` (its JSON).

    >>> o = telegram_outcome(403, {"ok": False, "error_code": 403,
    ...                            "description": "Forbidden: bot was blocked by the user"})
    >>> o.outcome, o.code, o.detail
    ('unreachable', '403', 'Forbidden: bot was blocked by the user')
    >>> telegram_outcome(429, {"ok": False, "error_code": 429, "description": "Too Many "
    ...                        "Requests: retry after 17", "parameters": {"retry_after": 17}}
    ...                  ).retry_after
    17.0
    >>> telegram_outcome(400, {"ok": False, "error_code": 400,
    ...                        "description": "Bad Request: message is too long"}).outcome
    'fallback'
    """
    body = body if isinstance(body, dict) else {}
    if 200 <= status < 300 and body.get("ok"):
        return notices.Outcome(notices.SEEN, detail="accepted by Telegram")
    code = body.get("error_code") if isinstance(body.get("error_code"), int) else status
    description = str(body.get("description") or f"HTTP {status}")[:200]
    wait = (body.get("parameters") or {}).get("retry_after")
    if code == 429 or wait:
        return notices.Outcome(notices.RETRY, str(code), description,
                               float(wait) if isinstance(wait, (int, float)) else None)
    if code == 403 or (code == 400 and any(s in description.lower() for s in NO_CHAT)):
        return notices.Outcome(notices.UNREACHABLE, str(code), description)
    # 401 and 404: our token or the API's address is wrong, which a deployer can mend.
    if code in (401, 404) or code >= 500 or status >= 500:
        return notices.Outcome(notices.RETRY, str(code), description)
    return notices.Outcome(notices.FALLBACK, str(code), description)


def notice_requests(chat_id: str, notice: notices.Notice) -> list[dict[str, Any]]:
    """The sendMessage calls for a notice: each message whole (cut at Telegram's limit
    only), its buttons as the inline keyboard replies have (one a row).

    >>> [call] = notice_requests("7", notices.Notice("n", "telegram:7", "message", messages=(
    ...     {"text": "Ready?", "buttons": [{"title": "Yes", "payload": "/affirm"}]},)))
    >>> call["chat_id"], call["text"], call["reply_markup"]["inline_keyboard"]
    ('7', 'Ready?', [[{'text': 'Yes', 'callback_data': '/affirm'}]])
    """
    calls = []
    for message in notice.messages:
        text = str(message.get("text") or "") or custom_text(message.get("custom")) or ""
        if not text.strip():
            continue
        pieces = split_message(text.strip())
        buttons = [b for b in message.get("buttons") or [] if b.get("title")]
        for n, piece in enumerate(pieces, 1):
            call: dict[str, Any] = {"chat_id": chat_id, "text": piece}
            if buttons and n == len(pieces):
                call["reply_markup"] = {"inline_keyboard": [
                    [{"text": str(b["title"]), "callback_data": str(b.get("payload") or "")}]
                    for b in buttons]}
            calls.append(call)
    return calls


class BotApiOutput(ChannelOutput, TelegramOutput):
    """Rasa's Telegram output against a configurable Bot API server, with a timeout.

    Made inside the running loop (aiogram's HTTP session belongs to the loop that first
    uses it) and kept for the process.
    """

    def __init__(self, config: TelegramConfig, raise_errors: bool = False) -> None:
        # TelegramOutput's own __init__ passes the token only.
        super(TelegramOutput, self).__init__(
            config.access_token, timeout=HTTP_TIMEOUT_SECONDS,
            server=TelegramAPIServer.from_base(config.base_url))
        self.raise_errors = raise_errors

    async def _guarded(self, recipient_id: str, send: Awaitable[Any]) -> None:
        try:
            await send
        except PERMANENT_ERRORS as error:
            self.undelivered(f"chat {recipient_id}", error, str(error), retry_helps=False)
        except (exceptions.TelegramAPIError, aiohttp.ClientError,
                asyncio.TimeoutError) as error:
            self.undelivered(f"chat {recipient_id}", error)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        for part in text.strip().split("\n\n"):
            for piece in split_message(part):
                await self._guarded(recipient_id, self.send_message(recipient_id, piece))

    async def send_text_with_buttons(self, recipient_id: str, text: str,
                                     buttons: list[dict[str, Any]],
                                     button_type: str | None = "vertical",
                                     **kwargs: Any) -> None:
        # One button a row: Chinese titles do not fit side by side on a phone.
        await self._guarded(recipient_id, super().send_text_with_buttons(
            recipient_id, text, buttons, button_type=button_type, **kwargs))

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self._guarded(recipient_id, super().send_image_url(recipient_id, image))

    async def register_webhook(self, url: str, secret: str) -> bool:
        """setWebhook with our secret; False (logged) when the Bot API says no or is away."""
        try:
            with self.request_timeout(HTTP_TIMEOUT_SECONDS):
                await self.request("setWebhook", {
                    "url": url, "secret_token": secret,
                    "allowed_updates": json.dumps(ALLOWED_UPDATES),
                })
        except (exceptions.TelegramAPIError, aiohttp.ClientError, asyncio.TimeoutError,
                OSError) as error:
            log.warning("telegram: setWebhook failed (%s: %s)", type(error).__name__, error)
            return False
        log.info("telegram: webhook registered")
        return True


class SecretTelegramInput(ChannelInput, TelegramInput):
    """`/webhooks/telegram/webhook`, authenticated by the webhook's secret token."""

    TITLE = "Telegram"
    NOTICE_PATHS = ("message",)

    def __init__(self, config: TelegramConfig) -> None:
        super().__init__(config.access_token, config.verify, config.webhook_url,
                         debug_mode=False)
        self.config: TelegramConfig = config
        self._outputs: dict[bool, BotApiOutput] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> SecretTelegramInput:
        return cls(TelegramConfig.from_credentials(credentials))

    def output(self, raise_errors: bool = False) -> BotApiOutput:
        if raise_errors not in self._outputs:
            self._outputs[raise_errors] = BotApiOutput(self.config, raise_errors)
        return self._outputs[raise_errors]

    def proactive_output(self) -> OutputChannel:
        # No set_webhook here (Rasa's get_output_channel runs asyncio.run in a loop).
        return self.output(raise_errors=True)

    async def deliver_notice(self, user: str, notice: notices.Notice) -> notices.Outcome:
        """sendMessage for each part of the notice; the first part refused decides (the
        next attempt sends the earlier parts again: better twice than never)."""
        calls = notice_requests(user, notice)
        if not calls:
            return notices.Outcome(notices.FALLBACK, detail="no text to send")
        url = f"{self.config.base_url}/bot{self.config.access_token}/sendMessage"
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS)
        outcome = notices.Outcome(notices.SEEN)
        for call in calls:
            try:
                # aiogram's session for this process: made in the server loop, closed at stop.
                async with self.output().session.post(url, json=call,
                                                      timeout=timeout) as answer:
                    status = answer.status
                    try:
                        body = await answer.json(content_type=None)
                    except ValueError:
                        body = None
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                return notices.Outcome(notices.RETRY, detail=type(error).__name__)
            outcome = telegram_outcome(status, body)
            if outcome.outcome != notices.SEEN:
                return outcome
        return outcome

    async def register_webhook(self) -> None:
        """Registers the webhook in the background, trying again until the Bot API agrees."""
        if not self.config.webhook_url:
            log.info("telegram: no webhook URL set; register it with setWebhook yourself")
            return
        for delay in (0, *REGISTER_DELAYS_SECONDS):
            await asyncio.sleep(delay)
            if await self.output().register_webhook(self.config.webhook_url,
                                                    self.config.secret_token):
                return
        log.error("telegram: webhook not registered; updates will not arrive")

    async def receive(self, headers: Mapping[str, str], body: bytes,
                      on_new_message: Callable[[UserMessage], Awaitable[Any]]
                      ) -> tuple[int, str]:
        """Checks one update and lets Rasa answer it; the answer is (status, text)."""
        if refused := self.refusal(body):
            return refused
        if not secret_valid(self.config.secret_token, headers.get(SECRET_HEADER)):
            log.warning("telegram: refused an update without the webhook's secret token")
            return 403, "forbidden"
        try:
            inbound = parse_update(json.loads(body.decode("utf-8")))
        except (UnicodeDecodeError, ValueError) as error:  # BadUpdate and bad JSON
            log.warning("telegram: unreadable update: %s", type(error).__name__)
            return 400, "bad request"
        if inbound is not None:
            await self.hand_over(on_new_message, inbound.text, self.output(), inbound.chat_id,
                                 f"chat {inbound.chat_id}", inbound.language)
        return 200, "success"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        telegram = self.webhook_blueprint()

        @telegram.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            status, text = await self.receive(request.headers, request.body or b"",
                                              on_new_message)
            return response.text(text, status=status)

        @telegram.listener("after_server_start")
        async def start(*_: Any) -> None:
            if self.config.configured:
                task = asyncio.create_task(self.register_webhook())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        @telegram.listener("before_server_stop")
        async def stop(*_: Any) -> None:
            for task in list(self._tasks):
                task.cancel()
            for output in self._outputs.values():
                session = output._session  # made on first use; none to close otherwise
                if session is not None:
                    await session.close()

        return telegram
