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

Configuration (the contract in `bot.channels.base`): credentials.yml keys `account_sid`,
`auth_token`, `twilio_number` (`whatsapp:+14155238886`), `webhook_url`, `base_url`; empty
values are read from TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_NUMBER,
TWILIO_WEBHOOK_URL and TWILIO_API_BASE. Without an account, token and number the webhook
answers 503.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qs

import aiohttp
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.twilio import TwilioInput, TwilioOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator

from bot import redis as bot_redis
from bot import settings as bot_settings
from bot.channels.base import (
    HTTP_TIMEOUT_SECONDS,
    MAX_BODY_BYTES,
    ChannelConfig,
    ChannelInput,
    ChannelOutput,
)
from bot.channels.buttons import ButtonMemory
from bot.channels.text import user_text
from bot.crypto import Vault
from bot.rules.identity import mask

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
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
class TwilioConfig(ChannelConfig):
    SECTION: ClassVar[str] = "twilio"
    SETTING_NAMES: ClassVar[Mapping[str, str]] = {
        **ChannelConfig.SETTING_NAMES, "twilio_number": "number"}
    REQUIRED: ClassVar[Mapping[str, re.Pattern[str] | None]] = dict.fromkeys(
        ("account_sid", "auth_token", "twilio_number"))

    account_sid: str = ""
    auth_token: str = ""
    twilio_number: str = ""
    webhook_url: str = ""
    base_url: str = ""
    redis_url: str = ""


class Pseudonyms:
    """A WhatsApp user is their phone number: their conversation is named by a keyed hash of
    it instead (so no key, lock or report holds the number), and the number is kept sealed
    under that name for the replies, as long as a conversation is kept.

    Without a data key (a channel built alone, in a unit test; Rasa does not start without
    one) the number names the conversation itself."""

    PREFIX = "u"  # never the start of Twilio's "whatsapp:+86..."

    def __init__(self, buttons: ButtonMemory, vault: Vault | None, keep_seconds: int) -> None:
        # The button memory's client: made inside the running loop, closed with it.
        self.buttons, self.vault, self.keep_seconds = buttons, vault, keep_seconds

    @property
    def redis(self) -> Any:
        return self.buttons.redis

    def _key(self, name: str) -> str:
        return f"{bot_redis.WHATSAPP}:users:{name}"

    async def name_of(self, address: str) -> str:
        """The user's pseudonym, their sealed number kept (fresh) under it."""
        if self.vault is None:
            return address
        name = self.PREFIX + self.vault.keyed_hash(address)[:32]
        sealed = self.vault.encrypt(address, self._key(name))
        await self.redis.set(self._key(name), sealed, ex=self.keep_seconds)
        return name

    async def address_of(self, name: str) -> str | None:
        """The number a pseudonym stands for; a conversation named by its number (before
        pseudonyms) is its own; None when it is no longer kept."""
        if self.vault is None or not name.startswith(self.PREFIX):
            return name  # Twilio's own form of a number: "whatsapp:+86..."
        sealed = await self.redis.get(self._key(name))
        return self.vault.decrypt(sealed, self._key(name)) if sealed else None


class AsyncTwilioOutput(ChannelOutput, TwilioOutput):
    """Rasa's Twilio output sending through Twilio's aiohttp client, to the number behind a
    conversation's pseudonym."""

    def __init__(self, config: TwilioConfig, http_client: AsyncTwilioHttpClient,
                 buttons: ButtonMemory, pseudonyms: Pseudonyms,
                 raise_errors: bool = False) -> None:
        super(TwilioOutput, self).__init__(config.account_sid, config.auth_token,
                                           http_client=http_client)
        self.api.base_url = config.base_url
        self.twilio_number = config.twilio_number
        self.buttons = buttons
        self.pseudonyms = pseudonyms
        self.raise_errors = raise_errors

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        address = await self.pseudonyms.address_of(recipient_id)
        if address is None:
            # Its conversation has expired with it: nobody to send to, and never will be.
            self.undelivered("a user no longer kept", LookupError(recipient_id),
                             "number not kept", retry_helps=False)
            return
        await super().send_response(address, message)

    async def _send_message(self, message_data: dict[str, Any]) -> Any:
        recipient = str(message_data.get("to", ""))
        try:
            return await self.messages.create_async(**message_data)
        except TwilioRestException as error:
            # 4xx other than 429: a bad number, or outside WhatsApp's 24-hour window.
            self.undelivered(masked(recipient), error,
                             f"HTTP {error.status}, code {error.code}",
                             retry_helps=error.status >= 500 or error.status == 429)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            self.undelivered(masked(recipient), error)
        return None

    async def send_text_with_buttons(self, recipient_id: str, text: str,
                                     buttons: list[dict[str, Any]], **kwargs: Any) -> None:
        rendered = await self.buttons.shown(recipient_id, text, buttons, masked(recipient_id))
        await self._send_message({"to": recipient_id, "from_": self.twilio_number,
                                  "body": rendered})


class SignedTwilioInput(ChannelInput, TwilioInput):
    """`/webhooks/whatsapp/webhook`: form posts from Twilio, signature checked."""

    TITLE = "WhatsApp"

    def __init__(self, config: TwilioConfig) -> None:
        super().__init__(config.account_sid, config.auth_token, config.twilio_number,
                         debug_mode=False)
        self.config: TwilioConfig = config
        self.buttons = ButtonMemory(config.redis_url, bot_redis.WHATSAPP)
        current = bot_settings.settings()
        self.pseudonyms = Pseudonyms(
            self.buttons, current.vault() if current.data_encryption_key else None,
            current.tracker_expiry_seconds)
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
        return AsyncTwilioOutput(self.config, self._http, self.buttons, self.pseudonyms,
                                 raise_errors)

    def proactive_output(self) -> OutputChannel:
        return self.output(raise_errors=True)

    async def receive(self, url: str, headers: Mapping[str, str], body: bytes,
                      on_new_message: Callable[[UserMessage], Awaitable[Any]]
                      ) -> tuple[int, str]:
        """Checks one webhook call and lets Rasa answer it; the answer is (status, text)."""
        if refused := self.refusal(body):
            return refused
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
        if sender and text is not None:  # not media without a caption, nor a status callback
            text = await self.buttons.answered(sender, text)
            await self.hand_over(on_new_message, text, self.output(),
                                 await self.pseudonyms.name_of(sender), masked(sender))
        return 200, EMPTY_TWIML

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        whatsapp = self.webhook_blueprint()

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
