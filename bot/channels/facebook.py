"""Facebook Messenger: Rasa's connector, configured from the environment and safe when not.

Rasa 3.6's `FacebookInput` handles messages and replies as it is; this subclass only
changes what happens around it:

- credentials.yml can list the channel with empty values (Rasa stops at start-up on an
  unset `${VAR}`): they are read from FACEBOOK_VERIFY, FACEBOOK_SECRET,
  FACEBOOK_PAGE_ACCESS_TOKEN and FACEBOOK_API_BASE, and until the three are set the
  webhook answers 503. Rasa's channel with an empty app secret would accept any body
  signed with the empty key.
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
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from fbmessenger import MessengerClient
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.facebook import FacebookInput, Messenger, MessengerBot
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.credentials import setting

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://graph.facebook.com"
MAX_BODY_BYTES = 256 * 1024
HTTP_TIMEOUT_SECONDS = 10.0
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
class FacebookConfig:
    verify: str = ""
    secret: str = ""
    page_access_token: str = ""
    base_url: str = DEFAULT_BASE_URL

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any] | None,
                         env: Mapping[str, str] | None = None) -> FacebookConfig:
        env = os.environ if env is None else env
        return cls(
            verify=setting(credentials, "verify", env, "FACEBOOK_VERIFY"),
            secret=setting(credentials, "secret", env, "FACEBOOK_SECRET"),
            page_access_token=setting(credentials, "page-access-token", env,
                                      "FACEBOOK_PAGE_ACCESS_TOKEN"),
            base_url=setting(credentials, "base_url", env, "FACEBOOK_API_BASE",
                             DEFAULT_BASE_URL).rstrip("/"),
        )

    @property
    def configured(self) -> bool:
        return bool(self.verify and self.secret and self.page_access_token)


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


class CheckedFacebookInput(FacebookInput):
    """`/webhooks/facebook/webhook`."""

    def __init__(self, config: FacebookConfig) -> None:
        super().__init__(config.verify, config.secret, config.page_access_token)
        self.config = config

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> CheckedFacebookInput:
        return cls(FacebookConfig.from_credentials(credentials))

    def get_output_channel(self) -> OutputChannel | None:  # type: ignore[override]
        if not self.config.configured:
            return None
        return MessengerBot(graph_client(self.config))

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        facebook = Blueprint("fb_webhook", __name__)

        @facebook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok", "configured": self.config.configured})

        @facebook.route("/webhook", methods=["GET"])
        async def token_verification(request: Request) -> HTTPResponse:
            if not self.config.configured:
                return response.text("Facebook channel not configured", status=503)
            given = request.args.get("hub.verify_token") or ""
            if not hmac.compare_digest(given.encode("utf-8"), self.config.verify.encode()):
                return response.text("forbidden", status=403)
            return response.text(request.args.get("hub.challenge") or "")

        @facebook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if not self.config.configured:
                return response.text("Facebook channel not configured", status=503)
            body = request.body or b""
            if len(body) > MAX_BODY_BYTES:
                return response.text("too large", status=413)
            if not signature_valid(self.config.secret, body, signature_header(request.headers)):
                log.warning("facebook: refused a request with a bad or missing signature")
                return response.text("forbidden", status=403)
            try:
                payload = json.loads(body.decode("utf-8"))
                entries = payload["entry"]
                if not isinstance(entries, list) or not all(
                        isinstance(e, dict) and isinstance(e.get("messaging", []), list)
                        for e in entries):
                    raise ValueError("entry")
            except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
                log.warning("facebook: unreadable body (%s)", type(error).__name__)
                return response.text("bad request", status=400)
            try:
                await _GraphMessenger(self.config, on_new_message).handle(
                    {"entry": [{"messaging": e.get("messaging", [])} for e in entries]},
                    self.get_metadata(request))
            except (KeyError, TypeError, AttributeError, IndexError) as error:
                log.warning("facebook: message not understood (%s)", type(error).__name__)
                return response.text("bad request", status=400)
            except requests.RequestException as error:
                # Facebook resends what we fail; the message itself was fine.
                log.warning("facebook: Graph API unavailable (%s)", type(error).__name__)
            return response.text("success")

        return facebook
