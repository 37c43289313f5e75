"""WhatsApp through Twilio: Rasa's Twilio connector with the request signature checked,
replies sent without blocking the event loop, and buttons as a numbered list.

What this subclass adds over Rasa 3.6's `TwilioInput`:

- `X-Twilio-Signature` is verified with the `twilio` library's `RequestValidator`
  (HMAC-SHA1 of the webhook URL and the sorted form fields, keyed with the auth token);
  a missing or wrong signature gets 403 and reaches no conversation. Twilio signs the
  public URL it called: behind a proxy set TWILIO_WEBHOOK_URL to exactly the URL entered
  in the Twilio console.
- Replies go out with Twilio's asynchronous HTTP client (Rasa's blocks the server loop on
  every message) against a configurable API base (TWILIO_API_BASE, for tests).
- Typed text is never read as a Rasa payload; buttons become a numbered list and a typed
  number stands for its button's payload (kept in Redis, so any Rasa process knows it).
- A failed reply is logged, not raised, so the turn is still saved; a failed proactive
  message raises, so the card service tries again, except when retrying cannot help
  (WhatsApp takes free-form messages only within 24 hours of the user's last one).
- Phone numbers are masked in our logs.

Configuration: credentials.yml keys `account_sid`, `auth_token`, `twilio_number`
(`whatsapp:+14155238886`), `webhook_url`, `base_url`; empty values are read from
TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_NUMBER, TWILIO_WEBHOOK_URL and
TWILIO_API_BASE. Without an account, token and number the webhook answers 503.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.twilio import TwilioInput, TwilioOutput
from redis.exceptions import RedisError
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator

from bot.channels.buttons import ButtonMemory
from bot.channels.credentials import setting
from bot.channels.user_text import user_text
from bot.channels.wechat import chosen_payload, render_buttons
from bot.rules.identity import mask
from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.twilio.com"
SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_BODY_BYTES = 64 * 1024
HTTP_TIMEOUT_SECONDS = 10.0
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class BadForm(ValueError):
    """The body is not a form Twilio would send."""


def parse_form(body: bytes) -> dict[str, list[str]]:
    """An `application/x-www-form-urlencoded` body, every value kept (the signature covers
    repeated fields too).

    >>> parse_form(b"From=whatsapp%3A%2B8613912345678&Body=%E4%BD%A0%E5%A5%BD")
    {'From': ['whatsapp:+8613912345678'], 'Body': ['你好']}
    """
    if len(body) > MAX_BODY_BYTES:
        raise BadForm("too large")
    try:
        text = body.decode("utf-8")
        return parse_qs(text, keep_blank_values=True, strict_parsing=bool(text),
                        errors="strict", max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadForm(type(error).__name__) from None


def signature_valid(auth_token: str, url: str, form: Mapping[str, list[str]],
                    signature: str | None) -> bool:
    """Twilio's signature of `url` and the form fields, checked by Twilio's own validator
    (which also tries the URL with and without its default port)."""
    if not auth_token or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, _Form(form), signature))


class _Form(dict):  # type: ignore[type-arg]
    """Every value of a field for RequestValidator (it looks for a `getall` method)."""

    def getall(self, name: str) -> list[str]:
        return list(self[name])


def masked(address: str) -> str:
    """`whatsapp:+8613912345678` in logs.

    >>> masked("whatsapp:+8613912345678")
    'whatsapp:+86********678'
    """
    channel, sep, number = address.rpartition(":")
    return f"{channel}{sep}{mask(number)}"


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str = ""
    auth_token: str = ""
    twilio_number: str = ""
    webhook_url: str = ""
    base_url: str = DEFAULT_BASE_URL
    redis_url: str = field(default_factory=lambda: Settings.from_env().redis_url)

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any] | None,
                         env: Mapping[str, str] | None = None) -> TwilioConfig:
        env = os.environ if env is None else env
        return cls(
            account_sid=setting(credentials, "account_sid", env, "TWILIO_ACCOUNT_SID"),
            auth_token=setting(credentials, "auth_token", env, "TWILIO_AUTH_TOKEN"),
            twilio_number=setting(credentials, "twilio_number", env, "TWILIO_NUMBER"),
            webhook_url=setting(credentials, "webhook_url", env, "TWILIO_WEBHOOK_URL"),
            base_url=setting(credentials, "base_url", env, "TWILIO_API_BASE",
                             DEFAULT_BASE_URL).rstrip("/"),
            redis_url=Settings.from_env(dict(env)).redis_url,
        )

    @property
    def configured(self) -> bool:
        return bool(self.account_sid and self.auth_token and self.twilio_number)


class AsyncTwilioOutput(TwilioOutput):
    """Rasa's Twilio output sending through Twilio's aiohttp client."""

    def __init__(self, config: TwilioConfig, http_client: AsyncTwilioHttpClient,
                 buttons: ButtonMemory, raise_errors: bool = False) -> None:
        super(TwilioOutput, self).__init__(config.account_sid, config.auth_token,
                                           http_client=http_client)
        self.api.base_url = config.base_url
        self.twilio_number = config.twilio_number
        self.buttons = buttons
        self.raise_errors = raise_errors

    async def _send_message(self, message_data: dict[str, Any]) -> Any:
        recipient = str(message_data.get("to", ""))
        try:
            return await self.messages.create_async(**message_data)
        except TwilioRestException as error:
            log.warning("whatsapp: message to %s refused: HTTP %s, code %s",
                        masked(recipient), error.status, error.code)
            # 4xx other than 429: a bad number, or outside WhatsApp's 24-hour window.
            if self.raise_errors and (error.status >= 500 or error.status == 429):
                raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            log.warning("whatsapp: message to %s not sent (%s)", masked(recipient),
                        type(error).__name__)
            if self.raise_errors:
                raise
        return None

    async def send_text_with_buttons(self, recipient_id: str, text: str,
                                     buttons: list[dict[str, Any]], **kwargs: Any) -> None:
        rendered, _ = render_buttons(text, buttons)
        try:
            await self.buttons.remember(recipient_id, buttons)
        except RedisError as error:  # the list still reads as a list; numbers go to NLU
            log.warning("whatsapp: buttons for %s not kept (%s)", masked(recipient_id),
                        type(error).__name__)
        await self._send_message({"to": recipient_id, "from_": self.twilio_number,
                                  "body": rendered})

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any],
                               **kwargs: Any) -> None:
        # Custom payloads are meant for the web page; WhatsApp gets their text, if any.
        text = json_message.get("text") if isinstance(json_message, dict) else None
        if isinstance(text, str) and text:
            await self.send_text_message(recipient_id, text)


class SignedTwilioInput(TwilioInput):
    """`/webhooks/whatsapp/webhook`: form posts from Twilio, signature checked."""

    def __init__(self, config: TwilioConfig) -> None:
        super().__init__(config.account_sid, config.auth_token, config.twilio_number,
                         debug_mode=False)
        self.config = config
        self.buttons = ButtonMemory(config.redis_url, "whatsapp")
        self._http: AsyncTwilioHttpClient | None = None

    @classmethod
    def name(cls) -> str:
        return "whatsapp"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> SignedTwilioInput:
        return cls(TwilioConfig.from_credentials(credentials))

    def output(self, raise_errors: bool = False) -> AsyncTwilioOutput:
        if self._http is None:  # its aiohttp session must be made inside the server loop
            self._http = AsyncTwilioHttpClient(timeout=HTTP_TIMEOUT_SECONDS)
        return AsyncTwilioOutput(self.config, self._http, self.buttons, raise_errors)

    def get_output_channel(self) -> OutputChannel | None:  # type: ignore[override]
        if not self.config.configured:
            return None
        return self.output(raise_errors=True)

    async def receive(self, url: str, headers: Mapping[str, str], body: bytes,
                      on_new_message: Callable[[UserMessage], Awaitable[Any]]
                      ) -> tuple[int, str]:
        """Checks one webhook call and lets Rasa answer it; the answer is (status, text)."""
        if not self.config.configured:
            return 503, "WhatsApp channel not configured"
        if len(body) > MAX_BODY_BYTES:
            return 413, "too large"
        try:
            form = parse_form(body)
        except BadForm as error:
            log.warning("whatsapp: unreadable form (%s)", error)
            return 400, "bad request"
        signed_url = self.config.webhook_url or url
        if not signature_valid(self.config.auth_token, signed_url, form,
                               headers.get(SIGNATURE_HEADER)):
            log.warning("whatsapp: refused a request with a bad or missing signature")
            return 403, "forbidden"
        sender = (form.get("From") or [""])[0]
        text = user_text((form.get("Body") or [""])[0])
        if not sender or text is None:  # media without a caption, status callbacks
            return 200, EMPTY_TWIML
        try:
            shown = await self.buttons.take(sender)
        except RedisError as error:
            log.warning("whatsapp: buttons unavailable (%s)", type(error).__name__)
            shown = []
        if shown:
            text = chosen_payload(text, [b["payload"] for b in shown],
                                  [b["title"] for b in shown]) or text
        try:
            await on_new_message(UserMessage(
                text, self.output(), sender, input_channel=self.name(),
                metadata={"channel": self.name()}))
        except Exception:
            log.exception("whatsapp: message from %s failed", masked(sender))
        return 200, EMPTY_TWIML

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        whatsapp = Blueprint("whatsapp_webhook", __name__)

        @whatsapp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok", "configured": self.config.configured})

        @whatsapp.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            status, text = await self.receive(request.url, request.headers,
                                              request.body or b"", on_new_message)
            content_type = "text/xml" if status == 200 else "text/plain"
            return response.text(text, status=status, content_type=content_type)

        @whatsapp.listener("before_server_stop")
        async def stop(*_: Any) -> None:
            if self._http is not None:
                await self._http.close()
            await self.buttons.close()

        return whatsapp
