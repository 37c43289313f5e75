"""Notices that no user's message started ("card ready", the lapse reminder), delivered by
path, each attempt answered with what became of it.

The card service keeps the ledger and decides; a channel only tries one path when asked:

    POST /webhooks/<channel>/notice        Authorization: Bearer <JWT, scope "notice">
    {"id": "<ref>:ready_for_collection", "conversation": "wechat:oAbc...", "path":
     "customer_service", "kind": "card_ready", "language": "zh", "last": false,
     "messages": [<what the dialogue said, as Rasa's collecting output gives it>],
     "variables": {"reference": ..., "city": ..., "lapses_on": ...}}
    -> 200 {"outcome": "seen" | "queued" | "retry" | "fallback" | "unreachable",
            "code": "<the provider's error code, or ''>", "detail": "...",
            "retry_after": <seconds or null>}

Outcomes, as the card service reads them:
  seen         a person can see it now: a connected page showed it, the provider accepted
               the send. The notice is delivered.
  queued       kept where the person will see it when they come back (the web chat's
               unread messages); delivered once the page fetched it, asked again later.
  retry        this path may work later (network, 5xx, rate limit, token refresh).
  fallback     this path cannot reach the person now (outside the reply window, not
               subscribed, no template configured): try the next path.
  unreachable  no path of this channel can (blocked the bot, unfollowed, unknown user):
               skip to the paths outside the channel (SMS).

The JWT is signed with RASA_JWT_SECRET, as the card service's other calls to Rasa, and
must carry `"scope": "notice"` and the conversation it is for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import jwt

log = logging.getLogger(__name__)

SEEN, QUEUED, RETRY, FALLBACK, UNREACHABLE = "seen", "queued", "retry", "fallback", "unreachable"
OUTCOMES = (SEEN, QUEUED, RETRY, FALLBACK, UNREACHABLE)
SCOPE = "notice"


@dataclass(frozen=True)
class Notice:
    id: str
    conversation: str
    path: str
    kind: str = "card_ready"  # or "lapse_reminder"
    language: str = "zh"
    # True when no path comes after this one: a path that can keep the notice (the web
    # chat's queue) keeps it rather than give it up.
    last: bool = False
    messages: tuple[dict[str, Any], ...] = ()
    variables: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Notice:
        """Raises ValueError naming the field that is missing or of the wrong type."""
        for name in ("id", "conversation", "path"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise ValueError(f"{name}: required, a non-empty string")
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ValueError("messages: a list of objects")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise ValueError("variables: an object")
        return cls(id=body["id"], conversation=body["conversation"], path=body["path"],
                   kind=str(body.get("kind") or "card_ready"),
                   language=str(body.get("language") or "zh"), last=bool(body.get("last")),
                   messages=tuple(messages),
                   variables={str(k): str(v) for k, v in variables.items()})

    @property
    def texts(self) -> list[str]:
        """The text of each message, buttons' titles listed after it (for apps that show
        text only)."""
        out = []
        for message in self.messages:
            text = message.get("text") or ""
            titles = [b.get("title", "") for b in message.get("buttons") or []]
            if titles:
                text = "\n".join([text, *(f"- {t}" for t in titles if t)]).strip()
            if text:
                out.append(text)
        return out


@dataclass(frozen=True)
class Outcome:
    outcome: str
    code: str = ""
    detail: str = ""
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")

    def as_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "code": self.code, "detail": self.detail,
                "retry_after": self.retry_after}


def token_for(conversation: str, secret: str, seconds: int = 60) -> str:
    """What the card service sends: good for one conversation's notices, for a minute."""
    import time

    claims = {"scope": SCOPE, "conversation": conversation, "exp": int(time.time()) + seconds}
    return jwt.encode(claims, secret, "HS256")


def authorised(header: str | None, conversation: str, secret: str) -> bool:
    """True for a bearer token from `token_for` for this conversation."""
    if not secret or not header or not header.startswith("Bearer "):
        return False
    try:
        claims = jwt.decode(header[len("Bearer "):], secret, algorithms=["HS256"])
    except jwt.PyJWTError:
        return False
    return claims.get("scope") == SCOPE and claims.get("conversation") == conversation


# A template registered with a provider (WhatsApp's through Twilio, Messenger's utility
# messages) is filled by position, {{1}}, {{2}}...: each kind's template is registered with
# its placeholders in this order (card_service/notices.py `variables` gives the values).
TEMPLATE_VARIABLES: dict[str, tuple[str, ...]] = {
    "card_ready": ("reference", "place"),
    "lapse_reminder": ("reference", "lapses_on", "written_report_place"),
}


def template_values(notice: Notice) -> list[str]:
    """The values of the notice's template, in order. Raises ValueError naming a value
    that is missing: a provider would fill the gap with the template's sample text.

    >>> template_values(Notice("n", "telegram:7", "x", variables={
    ...     "reference": "SC-1", "place": "ICBC", "city": "Beijing"}))
    ['SC-1', 'ICBC']
    >>> template_values(Notice("n", "telegram:7", "x", kind="lapse_reminder",
    ...                        variables={"reference": "SC-1"}))
    Traceback (most recent call last):
    ValueError: variables.lapses_on: required by the lapse_reminder template
    """
    names = TEMPLATE_VARIABLES.get(notice.kind)
    if names is None:
        raise ValueError(f"kind: no template for {notice.kind!r}")
    for name in names:
        if not notice.variables.get(name, "").strip():
            raise ValueError(f"variables.{name}: required by the {notice.kind} template")
    return [notice.variables[name].strip() for name in names]
