"""`rasa` as the stack runs it: Rasa's own command line, with eight changes to its server.

- Action-server replies are checked by a schema compiled once. Rasa 3.6 calls
  `jsonschema.validate()`, which re-checks its large events schema against the
  meta-schema and builds a new validator on every reply: 45% of the Rasa process's busy
  time in `make bench`. Same verdict, a fraction of the cost.
- Every channel's messages are cleaned and cut to one length (bot/message_limit.py).
- Tracker-store failures fail the turn instead of answering from memory
  (bot/strict_tracker_store.py).
- The `language` slot is set inside Rasa, not by an action-server call on every message
  (bot/language_slot.py).
- An event's class is found by its name in a table, not by walking every subclass of
  `Event` (with an `isabstract` check each) for every event read: rebuilding the tracker
  on each message did that for every event of the conversation, 10% of Rasa's busy time.
- A tracker's applied events (the history with undone turns taken out) are worked out once
  per state of the tracker, not again by every policy for every prediction: a pass over
  the whole conversation each time, 6% of Rasa's busy time.
- Request bodies to the action server are encoded with ujson (bot/fast_json.py).
- The loaded model is frozen out of the garbage collector: a full collection walked all
  of its objects, 0.5-1 s with the event loop stopped, twice per 1,000 turns in
  `make bench`; it now takes a few milliseconds.

    python -m bot.rasa_server run --model models/bot.tar.gz ...   # any `rasa` arguments
"""

from __future__ import annotations

import functools
import gc
import sys
from typing import Any

from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction


@functools.lru_cache(maxsize=1)
def _reply_validator() -> Any:
    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    if _reply_validator().is_valid(result):
        return True
    # A bad reply is rare: Rasa's own check then raises its own error, with its wording.
    original = RemoteAction._validate_action_result.__wrapped__  # type: ignore[attr-defined]
    return bool(original(self, result))


def install() -> None:
    """Replace Rasa's per-call schema compilation with the compiled validator."""
    if getattr(RemoteAction._validate_action_result, "__wrapped__", None) is not None:
        return
    original = RemoteAction._validate_action_result
    patched = functools.wraps(original)(_validate_action_result)
    RemoteAction._validate_action_result = patched  # type: ignore[method-assign]


def cache_event_types() -> None:
    """Look event classes up by name once (same answer as Rasa's scan, first match wins)."""
    from rasa.shared.core.events import Event

    original = Event.resolve_by_type
    if getattr(original, "__wrapped__", None) is not None:
        return
    found: dict[str, type[Event]] = {}

    @functools.wraps(original)
    def resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
        cls = found.get(type_name)
        if cls is None:
            # Unknown names keep Rasa's handling: old "topic" events, the default, the error.
            cls = original(type_name, default)
            if cls is not None and cls is not default:
                found[type_name] = cls
        return cls

    Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign]


def cache_applied_events() -> None:
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


def freeze_after_loading() -> None:
    """Move the loaded model out of the garbage collector's sight (once per process)."""
    import rasa.core.run

    original = rasa.core.run.load_agent_on_start
    if getattr(original, "__wrapped__", None) is not None:
        return

    @functools.wraps(original)
    async def load_agent_on_start(*args: Any, **kwargs: Any) -> Any:
        agent = await original(*args, **kwargs)
        gc.collect()
        gc.freeze()
        return agent

    rasa.core.run.load_agent_on_start = load_agent_on_start


def main() -> None:
    install()
    cache_event_types()
    cache_applied_events()
    freeze_after_loading()
    from bot import fast_json, language_slot, message_limit, strict_tracker_store

    fast_json.install()
    language_slot.install()
    message_limit.install()
    strict_tracker_store.install()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    sys.argv[0] = "rasa"
    main()

