"""The REST channel: open for local use and tests, behind a token (or off) in production.

Rasa's `--auth-token` never covers channel webhooks, so without this anyone who can
reach the server could post as any conversation. With `BOT_ENV=production` the channel
answers only requests carrying `Authorization: Bearer $REST_TOKEN`, and is not served at
all when no token is set. The name stays "rest": the URL is `/webhooks/rest/webhook`.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

log = logging.getLogger(__name__)

PRODUCTION = "production"


class TokenRestInput(RestInput):
    """Rasa's REST channel with a bearer token in production."""

    def __init__(self, production: bool = False, token: str = "") -> None:
        self.production = production
        self.token = token

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> TokenRestInput:
        return cls.from_env(os.environ)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TokenRestInput:
        return cls(
            production=env.get("BOT_ENV", "").strip().lower() == PRODUCTION,
            token=env.get("REST_TOKEN", "").strip(),
        )

    @property
    def enabled(self) -> bool:
        return not self.production or bool(self.token)

    def authorized(self, request: Request) -> bool:
        """Outside production every request; in production the bearer token, compared
        in constant time."""
        if not self.production:
            return True
        scheme, _, presented = (request.headers.get("Authorization") or "").partition(" ")
        return (
            bool(self.token)
            and scheme.lower() == "bearer"
            and hmac.compare_digest(presented.strip().encode(), self.token.encode())
        )

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[None]]
    ) -> Blueprint:
        if not self.enabled:
            log.warning("REST channel off: BOT_ENV=production and no REST_TOKEN set")
            # Registered but empty: /webhooks/rest/webhook answers 404.
            return Blueprint("rest_webhook_off", __name__)
        blueprint = super().blueprint(on_new_message)

        @blueprint.on_request
        async def require_token(request: Request) -> HTTPResponse | None:
            if self.authorized(request):
                return None
            return response.json(
                {"error": {"code": "unauthorized", "message": "Bearer token required"}},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )

        return blueprint
