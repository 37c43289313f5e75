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
- Notices (`bot.notices`) go two ways. "session": a free-form message, which
  WhatsApp takes only within 24 hours of the user's last message (Twilio error 63016 past
  it); the channel keeps when each user last wrote and does not try once that is over
  (Twilio may take a free-form message and report 63016 only later, to a status
  callback). "template": an approved WhatsApp template sent by its Twilio Content SID
  (`ContentSid`, with `ContentVariables`, a JSON string of the numbered variables in the
  order `notices.TEMPLATE_VARIABLES` gives), allowed at any time.

Configuration (the contract in `bot.channels.base`): credentials.yml keys `account_sid`,
`auth_token`, `twilio_number` (`whatsapp:+14155238886`), `webhook_url`, `base_url`; empty
values are read from TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_NUMBER,
TWILIO_WEBHOOK_URL and TWILIO_API_BASE. Without an account, token and number the webhook
answers 503. The notices' templates: TWILIO_CONTENT_SID_CARD_READY and
TWILIO_CONTENT_SID_LAPSE_REMINDER (see `content_sid`); unset, the template path falls back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
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

from bot import notices
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
from bot.channels.text import custom_text, user_text
from bot.crypto import Vault
from bot.rules.identity import mask

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# WhatsApp's customer service window: free-form messages only this long after the user's
# last message. A notice is not tried as one this close to its end: Twilio may accept it
# and fail it once the window has closed.
WINDOW_SECONDS = 24 * 3600
WINDOW_MARGIN_SECONDS = 10 * 60

# Twilio's error codes (twilio.com/docs/api/errors) where trying again later can help:
# too many requests, our credentials refused, the WhatsApp sender's rate and daily limits.
RETRY_CODES = {20429: "too many requests", 20003: "Twilio refused our credentials",
               63018: "WhatsApp rate limit", 63038: "daily message limit"}
# Where no WhatsApp message of ours can reach the person. 21211: not a valid number;
# 21610: they opted out (STOP); 21614: not a mobile number; 63003: no WhatsApp account on
# it; 63024: WhatsApp says not a valid recipient; 63014: they blocked us.
UNREACHABLE_CODES = {21211: "not a valid number", 21610: "the user opted out",
                     21614: "not a mobile number", 63003: "not on WhatsApp",
                     63024: "not a valid WhatsApp recipient", 63014: "blocked by the user"}
OUTSIDE_WINDOW = 63016


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


def content_sid(setting: str, language: str) -> str | None:
    """The Content SID of a template for `language`: `setting` is one SID for every
    language, or `zh:HX...,en:HX...` (a bare SID among them serves the other languages).
    Each language needs its own approved WhatsApp template.

    >>> zh, en = "HX" + "1" * 32, "HX" + "2" * 32
    >>> content_sid(zh, "en") == zh, content_sid(f"zh:{zh}, en:{en}", "en") == en
    (True, True)
    >>> content_sid(f"zh:{zh}", "en") is None, content_sid("", "zh") is None
    (True, True)
    """
    bare, by_language = None, {}
    for item in (part.strip() for part in setting.split(",")):
        language_of, sep, sid = item.rpartition(":")
        if not sid:
            continue
        if sep:
            by_language[language_of.strip().lower()] = sid.strip()
        else:
            bare = sid
    return by_language.get(language.lower()) or bare


def retry_after(header: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not worth reading here).

    >>> retry_after("7"), retry_after(None), retry_after("Wed, 21 Oct 2015 07:28:00 GMT")
    (7.0, None, None)
    """
    try:
        return max(0.0, float(header)) if header else None
    except ValueError:
        return None


def twilio_outcome(status: int, body: str, retry_after_header: str | None = None
                   ) -> notices.Outcome:
    """What became of a message Twilio answered with `status` and `body` (its JSON). The
    detail is ours, never Twilio's message: that can hold the number.

    >>> twilio_outcome(201, '{"sid": "SM1"}').outcome
    'seen'
    >>> o = twilio_outcome(400, '{"code": 63016, "message": "...", "status": 400}')
    >>> o.outcome, o.code
    ('fallback', '63016')
    >>> twilio_outcome(429, '{"code": 20429}', "7").retry_after
    7.0
    """
    if 200 <= status < 300:
        return notices.Outcome(notices.SEEN, detail="accepted by Twilio")
    try:
        code = int(json.loads(body).get("code") or 0)
    except (ValueError, TypeError, AttributeError):
        code = 0
    label = str(code or status)
    if status == 429 or status >= 500 or code in RETRY_CODES:
        return notices.Outcome(notices.RETRY, label, RETRY_CODES.get(code, f"HTTP {status}"),
                               retry_after(retry_after_header))
    if code in UNREACHABLE_CODES:
        return notices.Outcome(notices.UNREACHABLE, label, UNREACHABLE_CODES[code])
    if code == OUTSIDE_WINDOW:
        return notices.Outcome(notices.FALLBACK, label, "outside WhatsApp's 24-hour window")
    # Template problems (21655 unknown Content SID, 21656 bad variables, 63027/63028
    # template and parameters, 63013/63021 policy and content) and anything else this path
    # cannot mend by trying again.
    return notices.Outcome(notices.FALLBACK, label, f"refused by Twilio (HTTP {status})")


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
    content_sid_card_ready: str = ""
    content_sid_lapse_reminder: str = ""

    def content_sid(self, kind: str, language: str) -> str | None:
        """The notice's template, if the deployer registered one."""
        return content_sid(getattr(self, f"content_sid_{kind}", "") or "", language)


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
        self.clock = time.time  # a test moves it

    @property
    def redis(self) -> Any:
        return self.buttons.redis

    def _key(self, name: str) -> str:
        return f"{bot_redis.WHATSAPP}:users:{name}"

    async def name_of(self, address: str) -> str:
        """The user's pseudonym, their sealed number kept (fresh) under it, and the time
        they wrote (this is called for their every message)."""
        if self.vault is None:
            return address
        name = self.PREFIX + self.vault.keyed_hash(address)[:32]
        sealed = self.vault.encrypt(address, self._key(name))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key(name), sealed, ex=self.keep_seconds)
            pipe.set(self._key(name) + ":wrote", str(self.clock()), ex=WINDOW_SECONDS)
            await pipe.execute()
        return name

    async def in_window(self, name: str) -> bool | None:
        """Whether the user wrote recently enough for a free-form message; None where the
        channel cannot tell (no pseudonyms)."""
        if self.vault is None or not name.startswith(self.PREFIX):
            return None
        wrote = await self.redis.get(self._key(name) + ":wrote")
        return wrote is not None and (
            self.clock() - float(wrote) < WINDOW_SECONDS - WINDOW_MARGIN_SECONDS)

    async def address_of(self, name: str) -> str | None:
        """The number a pseudonym stands for; a conversation named by its number (before
        pseudonyms) is its own; None when it is no longer kept."""
        if self.vault is None or not name.startswith(self.PREFIX):
            return name  # Twilio's own form of a number: "whatsapp:+86..."
        sealed = await self.redis.get(self._key(name))
        return self.vault.decrypt(sealed, self._key(name)) if sealed else None


class TimedTwilioHttpClient(AsyncTwilioHttpClient):
    """Twilio's aiohttp client, held to its own timeout: twilio 8.2's applies only a timeout
    given with each call, which the library's `create_async` never gives."""

    async def request(self, method: str, url: str, params: Any = None, data: Any = None,
                      headers: Any = None, auth: Any = None, timeout: float | None = None,
                      allow_redirects: bool = False) -> Any:
        return await super().request(method, url, params, data, headers, auth,
                                     timeout or self.timeout, allow_redirects)


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
    NOTICE_PATHS = ("session", "template")

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

    def http(self) -> AsyncTwilioHttpClient:
        if self._http is None:  # its aiohttp session must be made inside the server loop
            self._http = TimedTwilioHttpClient(timeout=HTTP_TIMEOUT_SECONDS)
        return self._http

    def output(self, raise_errors: bool = False) -> AsyncTwilioOutput:
        return AsyncTwilioOutput(self.config, self.http(), self.buttons, self.pseudonyms,
                                 raise_errors)

    def proactive_output(self) -> OutputChannel:
        return self.output(raise_errors=True)

    async def deliver_notice(self, user: str, notice: notices.Notice) -> notices.Outcome:
        """One Twilio message for the notice: free-form ("session") or the approved
        template ("template"); `user` is the conversation's pseudonym."""
        address = await self.pseudonyms.address_of(user)
        if address is None:  # kept as long as the conversation: nobody to send to
            return notices.Outcome(notices.UNREACHABLE, detail="the number is no longer kept")
        fields = {"To": address, "From": self.config.twilio_number}
        if notice.path == "session":
            if await self.pseudonyms.in_window(user) is False:
                return notices.Outcome(notices.FALLBACK,
                                       detail="outside WhatsApp's 24-hour window")
            fields["Body"] = await self.notice_text(address, notice)
            if not fields["Body"]:
                return notices.Outcome(notices.FALLBACK, detail="no text to send")
        else:
            sid = self.config.content_sid(notice.kind, notice.language)
            if not sid:
                return notices.Outcome(notices.FALLBACK, detail=(
                    f"no WhatsApp template configured for {notice.kind} ({notice.language})"))
            try:
                values = notices.template_values(notice)
            except ValueError as error:
                return notices.Outcome(notices.FALLBACK, detail=str(error))
            fields["ContentSid"] = sid
            fields["ContentVariables"] = json.dumps(
                {str(n): value for n, value in enumerate(values, 1)}, ensure_ascii=False)
        url = (f"{self.config.base_url}/2010-04-01/Accounts/{self.config.account_sid}"
               "/Messages.json")
        try:
            answer = await self.http().request(
                "POST", url, data=fields, auth=(self.config.account_sid, self.config.auth_token))
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            return notices.Outcome(notices.RETRY, detail=type(error).__name__)
        return twilio_outcome(answer.status_code, answer.text,
                              (answer.headers or {}).get("Retry-After"))

    async def notice_text(self, address: str, notice: notices.Notice) -> str:
        """The notice's messages as one WhatsApp text (one message: it is taken or not as a
        whole), buttons as a numbered list the user can answer by number."""
        parts = []
        for message in notice.messages:
            text = str(message.get("text") or "") or custom_text(message.get("custom")) or ""
            buttons = message.get("buttons") or []
            if buttons:
                text = await self.buttons.shown(address, text, buttons, masked(address))
            if text.strip():
                parts.append(text.strip())
        return "\n\n".join(parts)

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
