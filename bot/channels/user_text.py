"""What a guardian typed into a messaging app, made safe to hand to Rasa."""

from __future__ import annotations

from bot.channels.wechat import typed
from bot.rasa.patches.message_limit import cleaned

# Telegram's and WhatsApp's own limit for one message; anything longer is not from the app.
MAX_CHARACTERS = 4096


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
