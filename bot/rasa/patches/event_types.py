"""An event's class found by its name in a table, not by walking every subclass of `Event`.

Rasa's `Event.resolve_by_type` walks every subclass of `Event`, with an `isabstract` check
each, for every event it reads: rebuilding the tracker on each message did that for every
event of the conversation, 10% of the Rasa process's busy time in `make bench`. Here each
name is looked up once and kept: the same class as Rasa's scan (its first match wins).
"""

from __future__ import annotations

import functools


def install() -> None:
    """`Event.resolve_by_type` answers from a table filled by Rasa's scan (once per process)."""
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
