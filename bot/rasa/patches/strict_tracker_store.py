"""Tracker store failures reach the channel instead of a silent in-memory fallback.

Rasa's Agent wraps every tracker store in a FailSafeTrackerStore: while Redis is away, a
read answers "no such conversation" (the turn then runs on a blank one, the HTTP API
shows an empty tracker) and a write goes to the process's memory. Either way the user
gets an ordinary answer for a turn that the conversation in Redis does not have; seen in
tests/integration/test_faults.py with Redis killed under load. Here errors propagate:
the turn fails, the REST channel answers 503 and the message can be sent again.
"""

from __future__ import annotations

from collections.abc import Iterable

from rasa.core.tracker_store import FailSafeTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker


class StrictTrackerStore(FailSafeTrackerStore):
    """Rasa's wrapper, minus the fallback: every call goes to the real store, errors too."""

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        return await self._tracker_store.retrieve(sender_id)

    async def retrieve_full_tracker(self, conversation_id: str) -> DialogueStateTracker | None:
        return await self._tracker_store.retrieve_full_tracker(conversation_id)

    async def keys(self) -> Iterable[str]:
        return await self._tracker_store.keys()

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self._tracker_store.save(tracker)


def install() -> None:
    """Rasa's Agent wraps its tracker store in this instead (once per process)."""
    import rasa.core.agent

    rasa.core.agent.FailSafeTrackerStore = StrictTrackerStore  # type: ignore[misc]
