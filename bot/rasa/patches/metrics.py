"""Rasa counts its turns for bot/metrics.py and serves them at GET /metrics.

Three of Rasa's functions are wrapped, each in the same way (call Rasa's, note something):
`configure_app` adds the route and the HTTP response counter to the app every channel
hangs on; `MessageProcessor.handle_message` (one call per guardian message, whichever
channel) times the turn and counts it when it ends; `run_action_extract_slots` (once per
such message, right after the message is logged) marks where the turn's events start and
which form question was open, so the end of the turn reads only its own events: about ten,
in memory. Triggered intents (notices, reminders) do not pass through `handle_message` and
are not turns.

A form's progress: a slot is *asked* when `requested_slot` moves to it (the same question
asked again after a bad answer is not counted twice) and *filled* when `requested_slot`
moves past it, or the form ends, while the slot holds a value. Asked minus filled is where
guardians stopped, per slot.

METRICS=off installs nothing.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import islice
from typing import Any

from bot import metrics

log = logging.getLogger(__name__)

REQUESTED_SLOT = "requested_slot"
LANGUAGE_SLOT = "language"
NO_FORM = "none"
_MARK = "_cardbot_metrics"


@dataclass
class Turn:
    """What the start of a turn leaves for its end."""

    tracker: Any = None
    start: int = 0
    form: str | None = None
    requested: str | None = None


_turn: ContextVar[Turn | None] = ContextVar("cardbot_metrics_turn", default=None)


def form_progress(events: Iterable[Any], form: str | None, requested: str | None,
                  value_of: Callable[[str], Any]
                  ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The (form, slot) pairs asked and filled by a turn's `events`, given the form and the
    slot asked when it began; `value_of(slot)` is the slot's value at the turn's end.

    >>> from rasa.shared.core.events import ActiveLoop, SlotSet
    >>> values = {"child_name": "李娜"}
    >>> form_progress([ActiveLoop("f"), SlotSet("requested_slot", "child_name")],
    ...               None, None, values.get)
    ([('f', 'child_name')], [])
    >>> form_progress([SlotSet("child_name", "李娜"), SlotSet("requested_slot", "phone")],
    ...               "f", "child_name", values.get)
    ([('f', 'phone')], [('f', 'child_name')])
    >>> form_progress([SlotSet("requested_slot", "phone")], "f", "phone", values.get)
    ([], [])
    >>> form_progress([ActiveLoop(None), SlotSet("requested_slot", None)], "f", "phone",
    ...               values.get)
    ([], [])
    """
    asked: list[tuple[str, str]] = []
    filled: list[tuple[str, str]] = []

    def settle() -> None:
        if requested and value_of(requested) is not None:
            filled.append((form or NO_FORM, requested))

    for event in events:
        kind = getattr(event, "type_name", "")
        if kind == "active_loop" and event.name != form:
            settle()
            form, requested = event.name, None
        elif kind == "slot" and event.key == REQUESTED_SLOT and event.value != requested:
            settle()
            requested = event.value
            if requested:
                asked.append((form or NO_FORM, str(requested)))
    return asked, filled


def turn_events(tracker: Any, start: int) -> list[Any]:
    """The events added since `start`, read from the end (a long conversation costs the
    same as a short one)."""
    events = tracker.events
    return list(islice(reversed(events), max(len(events) - start, 0)))[::-1]


def finish(message: Any, turn: Turn, seconds: float) -> None:
    """Counts one ended turn."""
    channel = metrics.label(getattr(message, "input_channel", None), "unknown")
    metrics.TURN_SECONDS.labels(channel).observe(seconds)
    tracker = turn.tracker
    language = tracker.get_slot(LANGUAGE_SLOT) if tracker is not None else None
    metrics.TURNS.labels(channel, metrics.language_label(language)).inc()
    if tracker is None:
        return
    latest = tracker.latest_message
    metrics.count_intent((getattr(latest, "intent", None) or {}).get("name"))
    asked, filled = form_progress(turn_events(tracker, turn.start), turn.form, turn.requested,
                                  tracker.get_slot)
    for form, slot in asked:
        metrics.SLOTS_ASKED.labels(metrics.label(form), metrics.label(slot)).inc()
    for form, slot in filled:
        metrics.SLOTS_FILLED.labels(metrics.label(form), metrics.label(slot)).inc()


def install() -> None:
    """Wraps Rasa's app factory and turn (once per process; nothing with METRICS=off)."""
    from bot.settings import settings

    config = settings()
    if not config.metrics_enabled:
        return
    import rasa.core.run
    from rasa.core.processor import MessageProcessor

    if getattr(rasa.core.run.configure_app, _MARK, False):
        return
    configure_original = rasa.core.run.configure_app
    handle_original = MessageProcessor.handle_message
    extract_original = MessageProcessor.run_action_extract_slots

    @functools.wraps(configure_original)
    def configure_app(*args: Any, **kwargs: Any) -> Any:
        app = configure_original(*args, **kwargs)
        metrics.attach(app, config.metrics_token)
        return app

    @functools.wraps(handle_original)
    async def handle_message(self: MessageProcessor, message: Any) -> Any:
        turn = Turn()
        token = _turn.set(turn)
        started = time.perf_counter()
        try:
            return await handle_original(self, message)
        finally:
            _turn.reset(token)
            try:
                finish(message, turn, time.perf_counter() - started)
            except Exception:  # a count gone wrong must never cost the guardian a reply
                log.exception("metrics: turn not counted")

    @functools.wraps(extract_original)
    async def run_action_extract_slots(self: MessageProcessor, output_channel: Any,
                                       tracker: Any) -> Any:
        turn = _turn.get()
        if turn is not None and turn.tracker is None:
            turn.tracker, turn.start = tracker, len(tracker.events)
            turn.form = tracker.active_loop_name
            turn.requested = tracker.get_slot(REQUESTED_SLOT)
        return await extract_original(self, output_channel, tracker)

    for wrapper in (configure_app, handle_message, run_action_extract_slots):
        setattr(wrapper, _MARK, True)
    rasa.core.run.configure_app = configure_app
    MessageProcessor.handle_message = handle_message  # type: ignore[method-assign]
    MessageProcessor.run_action_extract_slots = run_action_extract_slots  # type: ignore[method-assign]
