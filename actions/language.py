"""The `language` slot, refreshed from every user message so replies follow the user.

A slot mapping rather than an NLU entity: an entity would have to be annotated in
every end-to-end test story, and a whole-message span cannot nest with others.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import ValidationAction
from rasa_sdk.types import DomainDict

from bot.language import detect

SUPPORTED = ("en", "zh")


def language_of(message: dict[str, Any]) -> str | None:
    """The language a message asks for: an explicit `language` entity (a button or the
    page's first payload carries one), else the script of the text, else None."""
    text = str(message.get("text") or "")
    if text.startswith("EXTERNAL: "):
        # An event from the card service, not the guardian: the language stays.
        return None
    for entity in message.get("entities") or []:
        if entity.get("entity") == "language" and entity.get("value") in SUPPORTED:
            return str(entity["value"])
    metadata = message.get("metadata") or {}
    text_language = detect(text)
    if text_language:
        return text_language
    locale = str(metadata.get("language") or "")
    if locale[:2].lower() in SUPPORTED:
        return locale[:2].lower()
    return None


class ValidatePredefinedSlots(ValidationAction):
    """Runs inside `action_extract_slots` on every user turn."""

    async def extract_language(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        language = language_of(tracker.latest_message or {})
        if language is None or language == tracker.get_slot("language"):
            return {}
        return {"language": language}
