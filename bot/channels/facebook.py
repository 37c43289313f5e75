"""Facebook Messenger: Rasa's connector, configured from the environment and safe when not.

Rasa 3.6's `FacebookInput` handles messages and replies as it is; this subclass only
changes what happens around it:

- It meets the contract in `bot.channels.base`: credentials.yml lists the channel with
  empty values, read from FACEBOOK_VERIFY, FACEBOOK_SECRET, FACEBOOK_PAGE_ACCESS_TOKEN
  and FACEBOOK_API_BASE, and until the three are set the webhook answers 503. Rasa's
  channel with an empty app secret would accept any body signed with the empty key.
  Replies go through Rasa's own output, `MessengerBot`: a Graph call that fails raises,
  in a user's turn as in a proactive message.
- The `X-Hub-Signature-256` (else `X-Hub-Signature`) HMAC is compared in constant time,
  with SHA-256 or SHA-1 only (Rasa's takes the hash name from the header and compares with
  `==`); a bad or missing signature gets 403 instead of a 200 "not validated", an
  unreadable body 400 instead of a 500.
- The Graph API base is configurable (for tests) and every Graph call has a timeout.
  Rasa's Messenger client still calls it with blocking `requests`: a slow Graph API holds
  the server loop up to that timeout.
- Notices (`bot.notices`) go two ways, each one Send API call (aiohttp; the Page
  token in a header, not the URL). "standard": the rendered messages as an UPDATE (Meta's
  type for a message the Page sends unprompted), which Messenger takes only within 24
  hours of the person's last message (error 10/2018278 past it). "utility": a utility
  message from the Page's approved template for the notice (FACEBOOK_UTILITY_TEMPLATE_
  CARD_READY, ..._LAPSE_REMINDER), allowed outside the window for account and order
  updates, which a card ready to collect is. Why not a message tag: ACCOUNT_UPDATE,
  POST_PURCHASE_UPDATE and CONFIRMED_EVENT_UPDATE, the tags that once covered this, are
  refused (error 100) since April 27, 2026, Meta pointing to utility messages instead;
  HUMAN_AGENT is for a person answering by hand within 7 days, not for a bot's notice.
  Utility messages need the `page_utility_messaging` permission and were first offered in
  a few markets only: where Meta refuses one, the path falls back with Meta's code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import requests
from fbmessenger import MessengerClient
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.facebook import FacebookInput, Messenger, MessengerBot
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import notices
from bot.channels.base import HTTP_TIMEOUT_SECONDS, ChannelConfig, ChannelInput
from bot.channels.text import custom_text

log = logging.getLogger(__name__)

_DIGESTS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}
# The Graph API version of the notice calls: utility messages need a recent one.
GRAPH_VERSION = "v25.0"
# The language codes the Page's utility templates are registered under.
TEMPLATE_LANGUAGES = {"zh": "zh_CN", "en": "en_US"}
# Messenger's limits: a text message, a button template's text, its buttons and titles.
MAX_TEXT, MAX_BUTTON_TEXT, MAX_BUTTONS, MAX_TITLE = 2000, 640, 3, 20
# Graph error codes where trying again later can help: unknown and temporary failures,
# rate limits (4, 17, 32, 613), and our Page token refused (190), which a deployer mends.
RETRY_CODES = (1, 2, 4, 17, 32, 190, 613)
# The Page temporarily restricted from sending (code 10 with this subcode).
PAGE_RESTRICTED = 1893063


def graph_outcome(status: int, body: Any) -> notices.Outcome:
    """What became of a Send API call answered with `status` and `body` (its JSON).

    >>> graph_outcome(200, {"recipient_id": "1", "message_id": "m_1"}).outcome
    'seen'
    >>> o = graph_outcome(400, {"error": {"code": 10, "error_subcode": 2018278}})
    >>> o.outcome, o.code
    ('fallback', '10/2018278')
    >>> graph_outcome(400, {"error": {"code": 551, "error_subcode": 1545041}}).outcome
    'unreachable'
    """
    error = body.get("error") if isinstance(body, dict) else None
    if 200 <= status < 300 and not error:
        return notices.Outcome(notices.SEEN, detail="accepted by Messenger")
    error = error if isinstance(error, dict) else {}
    code, subcode = _number(error.get("code")), _number(error.get("error_subcode"))
    label = f"{code}/{subcode}" if subcode else str(code or status)
    # 551 and 200/1545041: the person is not available (blocked the Page, left Messenger);
    # 100/2018001: no such user for this Page.
    if code == 551 or (code, subcode) in ((200, 1545041), (100, 2018001)):
        return notices.Outcome(notices.UNREACHABLE, label, "the person is not available")
    if code == 10 and subcode == PAGE_RESTRICTED:
        return notices.Outcome(notices.RETRY, label, "the Page may not send for now")
    if code == 10:
        return notices.Outcome(notices.FALLBACK, label, "outside Messenger's 24-hour window")
    if code in RETRY_CODES or status >= 500:
        return notices.Outcome(notices.RETRY, label, f"Graph API error (HTTP {status})")
    return notices.Outcome(notices.FALLBACK, label, f"refused by the Graph API (HTTP {status})")


def _number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def standard_message(notice: notices.Notice) -> dict[str, Any] | None:
    """The notice as one Messenger message: a lone message with a few buttons keeps them
    (a button template, as Rasa's replies send them), anything else is text.

    >>> standard_message(notices.Notice("n", "facebook:1", "standard",
    ...                                 messages=({"text": "Ready"},)))
    {'text': 'Ready'}
    >>> standard_message(notices.Notice("n", "facebook:1", "standard", messages=(
    ...     {"text": "Ok?", "buttons": [{"title": "Yes", "payload": "/affirm"}]},))
    ...     )["attachment"]["payload"]["buttons"]
    [{'type': 'postback', 'title': 'Yes', 'payload': '/affirm'}]
    """
    texts = [str(m.get("text") or "") or custom_text(m.get("custom")) or ""
             for m in notice.messages]
    buttons = (notice.messages[0].get("buttons") or []) if len(notice.messages) == 1 else []
    if buttons and len(buttons) <= MAX_BUTTONS and 0 < len(texts[0]) <= MAX_BUTTON_TEXT:
        return {"attachment": {"type": "template", "payload": {
            "template_type": "button", "text": texts[0], "buttons": [
                {"type": "postback", "title": str(b.get("title", ""))[:MAX_TITLE],
                 "payload": str(b.get("payload", ""))} for b in buttons]}}}
    # Buttons beyond a template's reach are listed under the text (Notice.texts).
    text = "\n\n".join(notice.texts or [t for t in texts if t])
    return {"text": text[:MAX_TEXT]} if text.strip() else None


def signature_valid(app_secret: str, body: bytes, header: str | None) -> bool:
    """`sha256=<hex>` or `sha1=<hex>`: the HMAC of the body with the app secret.

    >>> body = b'{"object": "page"}'
    >>> good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    >>> signature_valid("s3cret", body, good), signature_valid("other", body, good)
    (True, False)
    >>> signature_valid("s3cret", body, "md5=" + hashlib.md5(body).hexdigest())
    False
    """
    if not app_secret or not header:
        return False
    method, _, given = header.partition("=")
    digest = _DIGESTS.get(method.strip().lower())
    if digest is None or not given:
        return False
    expected = hmac.new(app_secret.encode("utf-8"), body, digest).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"),
                               given.strip().lower().encode("ascii", "replace"))


def signature_header(headers: Mapping[str, str]) -> str | None:
    return headers.get("X-Hub-Signature-256") or headers.get("X-Hub-Signature")


@dataclass(frozen=True)
class FacebookConfig(ChannelConfig):
    SECTION: ClassVar[str] = "facebook"
    KEYS: ClassVar[Mapping[str, str]] = {"page_access_token": "page-access-token"}
    REQUIRED: ClassVar[Mapping[str, re.Pattern[str] | None]] = dict.fromkeys(
        ("verify", "secret", "page_access_token"))

    verify: str = ""
    secret: str = ""
    page_access_token: str = ""
    base_url: str = ""
    utility_template_card_ready: str = ""
    utility_template_lapse_reminder: str = ""

    def utility_template(self, kind: str) -> str:
        """The name of the Page's utility template for a notice ("" when none)."""
        return str(getattr(self, f"utility_template_{kind}", "") or "")


class _TimeoutSession(requests.Session):
    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["timeout"] = kwargs.get("timeout") or HTTP_TIMEOUT_SECONDS
        return super().request(*args, **kwargs)


def graph_client(config: FacebookConfig) -> MessengerClient:
    client = MessengerClient(config.page_access_token, session=_TimeoutSession())
    client.graph_url = f"{config.base_url}/v{client.api_version}"
    return client


class _GraphMessenger(Messenger):
    """Rasa's webhook handler with our Graph client."""

    def __init__(self, config: FacebookConfig,
                 on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        super().__init__(config.page_access_token, on_new_message)
        self.client = graph_client(config)


class CheckedFacebookInput(ChannelInput, FacebookInput):
    """`/webhooks/facebook/webhook`."""

    TITLE = "Facebook"
    # Messenger may put many events into one call.
    MAX_BODY_BYTES = 256 * 1024
    NOTICE_PATHS = ("standard", "utility")

    def __init__(self, config: FacebookConfig) -> None:
        super().__init__(config.verify, config.secret, config.page_access_token)
        self.config: FacebookConfig = config

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> CheckedFacebookInput:
        return cls(FacebookConfig.from_credentials(credentials))

    def proactive_output(self) -> OutputChannel:
        return MessengerBot(graph_client(self.config))

    async def deliver_notice(self, user: str, notice: notices.Notice) -> notices.Outcome:
        """One Send API call for the notice: the rendered text ("standard") or the Page's
        utility template ("utility"); `user` is the person's page-scoped id."""
        if notice.path == "standard":
            message = standard_message(notice)
            if message is None:
                return notices.Outcome(notices.FALLBACK, detail="no text to send")
            kind = "UPDATE"
        else:
            name = self.config.utility_template(notice.kind)
            if not name:
                return notices.Outcome(notices.FALLBACK, detail=(
                    f"no Messenger utility template configured for {notice.kind}"))
            try:
                values = notices.template_values(notice)
            except ValueError as error:
                return notices.Outcome(notices.FALLBACK, detail=str(error))
            message = {"template": {
                "name": name,
                "language": {"code": TEMPLATE_LANGUAGES.get(notice.language, "zh_CN")},
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "text": value} for value in values]}]}}
            kind = "UTILITY"
        return await self.send_api({"recipient": {"id": user}, "messaging_type": kind,
                                    "message": message})

    async def send_api(self, body: dict[str, Any]) -> notices.Outcome:
        url = f"{self.config.base_url}/{GRAPH_VERSION}/me/messages"
        headers = {"Authorization": f"Bearer {self.config.page_access_token}"}
        try:
            async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS)) as session, \
                    session.post(url, json=body, headers=headers) as answer:
                status = answer.status
                try:
                    payload = await answer.json(content_type=None)
                except ValueError:
                    payload = None
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            return notices.Outcome(notices.RETRY, detail=type(error).__name__)
        return graph_outcome(status, payload)

    # The HTTP side, independent of Sanic so that it can be tested directly -------------

    def check_token(self, query: Mapping[str, str]) -> tuple[int, str]:
        """Facebook's check of the webhook's verify token (GET); the answer is (status, text)."""
        if refused := self.refusal():
            return refused
        given = query.get("hub.verify_token", "")
        if not hmac.compare_digest(given.encode("utf-8"), self.config.verify.encode()):
            return 403, "forbidden"
        return 200, query.get("hub.challenge", "")

    async def receive(self, headers: Mapping[str, str], body: bytes,
                      metadata: dict[str, Any] | None,
                      on_new_message: Callable[[UserMessage], Awaitable[Any]]
                      ) -> tuple[int, str]:
        """Checks one POST and lets Rasa answer its messages; the answer is (status, text)."""
        if refused := self.refusal(body):
            return refused
        if not signature_valid(self.config.secret, body, signature_header(headers)):
            log.warning("facebook: refused a request with a bad or missing signature")
            return 403, "forbidden"
        try:
            payload = json.loads(body.decode("utf-8"))
            entries = payload["entry"]
            if not isinstance(entries, list) or not all(
                    isinstance(e, dict) and isinstance(e.get("messaging", []), list)
                    for e in entries):
                raise ValueError("entry")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            log.warning("facebook: unreadable body (%s)", type(error).__name__)
            return 400, "bad request"
        try:
            await _GraphMessenger(self.config, self.guarded(on_new_message)).handle(
                {"entry": [{"messaging": e.get("messaging", [])} for e in entries]}, metadata)
        except (KeyError, TypeError, AttributeError, IndexError) as error:
            log.warning("facebook: message not understood (%s)", type(error).__name__)
            return 400, "bad request"
        except requests.RequestException as error:
            # Facebook resends what we fail; the message itself was fine.
            log.warning("facebook: Graph API unavailable (%s)", type(error).__name__)
        return 200, "success"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        facebook = self.webhook_blueprint()

        @facebook.route("/webhook", methods=["GET"])
        async def token_verification(request: Request) -> HTTPResponse:
            status, text = self.check_token({name: request.args.get(name) or "" for name in
                                             ("hub.verify_token", "hub.challenge")})
            return response.text(text, status=status)

        @facebook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            status, text = await self.receive(request.headers, request.body or b"",
                                              self.get_metadata(request), on_new_message)
            return response.text(text, status=status)

        return facebook
