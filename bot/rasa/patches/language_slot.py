"""The `language` slot, set inside Rasa from every user message, so replies follow the user.

Rasa 3.6 fills a `custom` slot mapping only through the action server: on every message
`action_extract_slots` rebuilds the conversation event by event and posts all of it to
`action_validate_slot_mappings`, for a value that depends on that one message alone (a
fifth of the Rasa process's busy time in `make bench`, and an HTTP call per message).
Here the built-in action sets it itself, after Rasa's own mappings. An NLU entity would
do the same without a patch, but would have to be annotated in every end-to-end story.
"""

from __future__ import annotations

from typing import Any

from rasa.core.actions.action import ActionExtractSlots
from rasa.shared.core.events import Event, SlotSet

from bot.rules.language import language_of

SLOT = "language"


def language_event(tracker: Any, domain: Any) -> list[Event]:
    """A `SlotSet` for the language of the latest user message, when it changes."""
    if not any(slot.name == SLOT for slot in domain.slots):
        return []
    message = tracker.latest_message
    if message is None:
        return []
    language = language_of(message.text, message.entities or (), message.metadata)
    if language is None or language == tracker.get_slot(SLOT):
        return []
    return [SlotSet(SLOT, language)]


def install() -> None:
    """Make `action_extract_slots` also set the language slot (once per process)."""
    if getattr(ActionExtractSlots.run, "__wrapped__", None) is not None:
        return
    original = ActionExtractSlots.run

    async def run(self: ActionExtractSlots, output_channel: Any, nlg: Any, tracker: Any,
                  domain: Any) -> list[Event]:
        events = await original(self, output_channel, nlg, tracker, domain)
        return [*events, *language_event(tracker, domain)]

    run.__wrapped__ = original  # type: ignore[attr-defined]
    ActionExtractSlots.run = run  # type: ignore[method-assign]
