"""A tracker's applied events worked out once per state of the tracker, not per policy.

The applied events are the conversation with undone turns taken out. Rasa works them out
again, in a pass over the whole conversation, every time a policy asks for them at every
prediction: 6% of the Rasa process's busy time in `make bench`. Here the answer is kept on
the tracker until its events change, and each caller gets its own copy of the list.
"""

from __future__ import annotations

import functools
from typing import Any


def install() -> None:
    """`DialogueStateTracker.applied_events` kept on the tracker until its events change."""
    from rasa.shared.core.trackers import DialogueStateTracker

    original = DialogueStateTracker.applied_events
    if getattr(original, "__wrapped__", None) is not None:
        return

    @functools.wraps(original)
    def applied_events(self: DialogueStateTracker) -> list[Any]:
        events = self.events
        # Events are only ever appended (a bounded history also drops its first one), so
        # the count and the two ends tell whether the answer still holds.
        key = (len(events), id(events[0]) if events else 0, id(events[-1]) if events else 0)
        cached = self.__dict__.get("_applied_events_cache")
        if cached is None or cached[0] != key:
            cached = (key, original(self))
            self.__dict__["_applied_events_cache"] = cached
        # Callers may change the list they get; never the cached one.
        return list(cached[1])

    DialogueStateTracker.applied_events = applied_events  # type: ignore[method-assign]
