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
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from fbmessenger import MessengerClient
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.facebook import FacebookInput, Messenger, MessengerBot
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.base import HTTP_TIMEOUT_SECONDS, ChannelConfig, ChannelInput

log = logging.getLogger(__name__)

_DIGESTS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}


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

    def __init__(self, config: FacebookConfig) -> None:
        super().__init__(config.verify, config.secret, config.page_access_token)
        self.config: FacebookConfig = config

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> CheckedFacebookInput:
        return cls(FacebookConfig.from_credentials(credentials))

    def proactive_output(self) -> OutputChannel:
        return MessengerBot(graph_client(self.config))

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
