"""What a user typed into a messaging app, made safe for Rasa, and buttons as numbered text.

Pure functions every text channel shares (WeChat, Telegram, WhatsApp): no I/O here; the
buttons last shown to a user are kept in Redis by `bot.channels.buttons.ButtonMemory`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from bot.rasa.patches.message_limit import cleaned

# The message a channel sends Rasa for a user's first contact (WeChat's subscribe event,
# Telegram's /start): the bot greets them.
GREETING = "/greet"
# Telegram's and WhatsApp's own limit for one message; anything longer is not from the app.
MAX_CHARACTERS = 4096


def typed(text: str) -> str | None:
    """What a user typed, never read as a Rasa payload: a leading "/" would let anyone
    name an intent and its entities directly (buttons are mapped by number instead).

    >>> typed('/inform{"city": "北京"}')
    'inform{"city": "北京"}'
    >>> typed(" // ") is None
    True
    """
    return text.strip().lstrip("/").strip() or None


def user_text(raw: str, limit: int = MAX_CHARACTERS) -> str | None:
    """Control characters dropped (line breaks kept), cut at `limit` characters, never read
    as a Rasa payload (`typed`); None when nothing is left.

    >>> user_text("/affirm\\x00\\x1b[2J")
    'affirm[2J'
    >>> user_text("\\x07 ") is None
    True
    >>> len(user_text("好" * 5000) or "")
    4096
    """
    return typed(cleaned(raw, limit) or "")


def render_buttons(text: str, buttons: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """An app without buttons gets a numbered list, and the payloads in the same order.

    >>> render_buttons("Report?", [{"title": "Yes", "payload": "/affirm"},
    ...                            {"title": "No", "payload": "/deny"}])
    ('Report?\\n\\n1. Yes\\n2. No', ['/affirm', '/deny'])
    """
    lines = [text] if text else []
    if buttons:
        options = [f"{n}. {button.get('title', '')}" for n, button in enumerate(buttons, 1)]
        lines.append("\n".join(options))
    return "\n\n".join(lines), [str(button.get("payload", "")) for button in buttons]


_CHOICE = re.compile(r"^\s*(\d{1,2})\s*[.、)）]?\s*$")


def chosen_payload(answer: str, payloads: list[str], titles: list[str] | None = None) -> str | None:
    """The payload a user picked by typing a button's number (or its title), else None.

    >>> chosen_payload("２", ["/affirm", "/deny"])
    '/deny'
    >>> chosen_payload("3", ["/affirm", "/deny"]) is None
    True
    """
    normal = unicodedata.normalize("NFKC", answer).strip()
    match = _CHOICE.match(normal)
    if match:
        index = int(match.group(1)) - 1
        return payloads[index] if 0 <= index < len(payloads) and payloads[index] else None
    for title, payload in zip(titles or [], payloads, strict=False):
        if title and payload and normal.casefold() == unicodedata.normalize(
                "NFKC", title).strip().casefold():
            return payload
    return None


def custom_text(json_message: Any) -> str | None:
    """The text of a custom payload, if it has one: custom payloads are meant for the web
    page, and a user of a text app must not see raw JSON.

    >>> custom_text({"text": "hi", "kind": "card"}), custom_text({"kind": "card"})
    ('hi', None)
    """
    text = json_message.get("text") if isinstance(json_message, dict) else None
    return text if isinstance(text, str) and text else None
