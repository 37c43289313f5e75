"""The console's client for the Handoff API that Rasa serves (docs/contract.md "Handoff
API", bot/channels/handoff.py): every call as one logged-in agent (`X-Agent`), with the
shared `HANDOFF_TOKEN` that never leaves the console's server.

aiohttp rather than `requests` in a thread (how the console reaches the card service): the
live page keeps one long poll open per agent for up to LONG_POLL_S, and that many blocked
threads would starve the default executor the card service calls share.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

CONNECT_S = 3.05
READ_S = 15.0
LONG_POLL_S = 20  # the API waits up to 25 s; under it, so a proxy's idle timeout never cuts in
MAX_REPLY = 2000  # characters, as the API allows
NOT_CONFIGURED = ("HANDOFF_TOKEN is not set: the console calls Rasa's handoff API with it "
                  "(the same value Rasa has)")


class HandoffError(Exception):
    """The API answered with its error shape: `status`, `code`, `fields`."""

    def __init__(self, status: int, code: str, message: str,
                 fields: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.fields = status, code, fields or {}


class NotQueued(HandoffError):
    """404: handed back, closed, never queued, or expired."""


class Held(HandoffError):
    """409: another agent holds it (`taken`), or nobody has taken it yet (`not_taken`)."""


class HandoffUnavailable(Exception):
    """No token, Rasa not reachable, timed out, or answering 5xx (or 401: tokens differ)."""


@dataclass(frozen=True)
class Messages:
    messages: list[dict[str, Any]]
    next: int
    state: str
    agent: str | None


def path_of(conversation: str) -> str:
    """A conversation id as one path segment ("webchat:ab/c" -> "webchat%3Aab%2Fc")."""
    return "/conversations/" + quote(conversation, safe="")


class HandoffClient:
    """One HTTP session to Rasa for the console's life, opened on first use."""

    def __init__(self, rasa_url: str, token: str):
        self.base = rasa_url.rstrip("/") + "/webhooks/handoff"
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    @property
    def configured(self) -> bool:
        return bool(self.token)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(connect=CONNECT_S, sock_read=READ_S))
        return self._session

    async def call(self, agent: str, method: str, path: str, *, body: dict[str, Any] | None = None,
                   params: dict[str, str] | None = None, read_s: float = READ_S) -> Any:
        if not self.configured:
            raise HandoffUnavailable(NOT_CONFIGURED)
        headers = {"Authorization": f"Bearer {self.token}", "X-Agent": agent,
                   "Accept": "application/json"}
        try:
            async with self.session().request(
                    method, self.base + path, headers=headers, json=body, params=params,
                    timeout=aiohttp.ClientTimeout(connect=CONNECT_S, sock_read=read_s)
            ) as answer:
                text = await answer.text()
                status = answer.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as failure:
            raise HandoffUnavailable(f"Rasa's handoff API: {type(failure).__name__}") \
                from failure
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        if status < 300:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        code, message = str(error.get("code", "")), str(error.get("message", text[:200]))
        if status == 401 or status >= 500:
            # 401 is the console's own fault (its token is not Rasa's): nothing the agent did.
            raise HandoffUnavailable(f"Rasa's handoff API answered {status} {code}".strip())
        kind = NotQueued if status == 404 else Held if status == 409 else HandoffError
        raise kind(status, code, message, error.get("fields"))

    async def queue(self, agent: str) -> dict[str, Any]:
        """{"waiting": [...] longest first, "taken": [...], "staffed_now"}."""
        return dict(await self.call(agent, "GET", "/queue"))

    async def case(self, agent: str, conversation: str) -> dict[str, Any]:
        return dict(await self.call(agent, "GET", path_of(conversation)))

    async def take(self, agent: str, conversation: str) -> dict[str, Any]:
        return dict(await self.call(agent, "POST", path_of(conversation) + "/take", body={}))

    async def messages(self, agent: str, conversation: str, after: int = 0,
                       wait: float = 0) -> Messages:
        """What the guardian and the agent said since it was taken, after `after`; waits up
        to `wait` seconds for the next one."""
        wait = max(0.0, min(float(wait), LONG_POLL_S))
        data = await self.call(agent, "GET", path_of(conversation) + "/messages",
                               params={"after": str(max(0, after)), "wait": f"{wait:g}"},
                               read_s=READ_S + wait)
        return Messages(list(data.get("messages") or []), int(data.get("next", after)),
                        str(data.get("state", "")), data.get("agent"))

    async def reply(self, agent: str, conversation: str, text: str) -> dict[str, Any]:
        """{"seq", "outcome", "code", "detail", "retry_after"}: what the guardian's channel
        made of it."""
        return dict(await self.call(agent, "POST", path_of(conversation) + "/replies",
                                    body={"text": text}))

    async def hand_back(self, agent: str, conversation: str) -> dict[str, Any]:
        return dict(await self.call(agent, "POST", path_of(conversation) + "/hand-back",
                                    body={}))

    async def close_case(self, agent: str, conversation: str) -> dict[str, Any]:
        return dict(await self.call(agent, "POST", path_of(conversation) + "/close", body={}))
