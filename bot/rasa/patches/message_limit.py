"""One limit on what a user's message may carry, for every channel at once.

Rasa's NLU cost grows with the square of a message's length (DIET's attention): here a
10,000-character message held the Rasa process for about 10 s and 20,000 for over 30 s,
and since that runs on its event loop, every other conversation waited as long. No
guardian needs more than a few hundred characters (every detail at once is about 150),
so each message is cut to MAX_CHARACTERS before Rasa reads it. Control characters (no
keyboard types them) and lone surrogates (they cannot be stored as UTF-8) are dropped.

`install()` puts this in front of Rasa's `Agent.handle_message`, where every channel
(REST, web chat, WeChat, the messaging apps) hands over its messages.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_CHARACTERS = 1000


def cleaned(text: str | None, limit: int = MAX_CHARACTERS) -> str | None:
    """The message as Rasa should read it: control characters (but line breaks and tabs)
    and lone surrogates dropped, cut at `limit` characters.

    >>> cleaned("hi\\x00\\x1b[2J there\\n")
    'hi[2J there\\n'
    >>> len(cleaned("好" * 5000) or "")
    1000
    >>> cleaned(None) is None
    True
    """
    if text is None:
        return None
    kept = "".join(ch for ch in text[: limit * 2]
                   if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))
    return kept[:limit]


def install() -> None:
    """Every message Rasa's agent handles is `cleaned` first (once per process)."""
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage

    original: Callable[..., Awaitable[Any]] = Agent.handle_message
    if getattr(original, "__wrapped__", None) is not None:
        return

    @functools.wraps(original)
    async def handle_message(self: Agent, message: UserMessage) -> Any:
        text = cleaned(message.text)
        if text != message.text:
            # Lengths only: what people type stays out of the logs.
            log.info("message of %d characters cleaned to %d", len(message.text or ""),
                     len(text or ""))
            message.text = text
        return await original(self, message)

    Agent.handle_message = handle_message  # type: ignore[method-assign]
