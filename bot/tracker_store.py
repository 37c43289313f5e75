"""Rasa's Redis tracker store with a save that does not replay the conversation twice.

Rasa 3.6's `RedisTrackerStore.save` reads the stored tracker back, rebuilds it event by
event, rebuilds the new one up to the old one's last timestamp, compares them, and only
then writes: three replays of the whole conversation on every message (15% of the Rasa
process's busy time in `make bench`). The stored form is the same JSON list of events, so
the same check can be made on the events as JSON, without rebuilding any tracker.
"""

from __future__ import annotations

import json

from rasa.core import tracker_store as rasa_stores
from rasa.shared.core.trackers import DialogueStateTracker


def merged_events(stored: list[str], current: list[str]) -> list[str]:
    """The events to keep, each as its JSON text, as Rasa's `_merge_trackers` keeps them.

    `current` usually continues `stored` and replaces it. When it holds only the latest
    conversation session (what `retrieve` hands out), the earlier sessions are kept in front.

    >>> merged_events(['"a"', '"b"'], ['"a"', '"b"', '"c"'])
    ['"a"', '"b"', '"c"']
    >>> merged_events(['"a"', '"b"', '"c"'], ['"c"', '"d"'])
    ['"a"', '"b"', '"c"', '"d"']
    """
    if current[: len(stored)] == stored:
        return current
    known = set(stored)
    return stored + [event for event in current if event not in known]


class RedisTrackerStore(rasa_stores.RedisTrackerStore):
    """Configured in endpoints.yml as `type: bot.tracker_store.RedisTrackerStore`."""

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        await self.stream_events(tracker)
        if not timeout and self.record_exp:
            timeout = self.record_exp
        key = self.key_prefix + tracker.sender_id
        dialogue = tracker.as_dialogue().as_dict()
        current = [json.dumps(event) for event in dialogue.pop("events")]
        stored = self.red.get(key)
        if stored is not None:
            # Re-dumping what json.loads read gives the same text for the same event.
            previous = [json.dumps(event) for event in json.loads(stored).get("events", [])]
            current = merged_events(previous, current)
        head = json.dumps(dialogue)[:-1]
        separator = ", " if dialogue else ""
        self.red.set(key, f'{head}{separator}"events": [{", ".join(current)}]}}', ex=timeout)
