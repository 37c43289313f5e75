"""While the loss report form waits for an answer, a plain answer is read as one.

The NLU model judges a message alone: `母亲` came out as `affirm`, `mum` as `ask_fee` and
`uncle` as `stop`, so the form either asked the same question again for ever or ended and
forgot every detail. The message's meaning depends on the question just asked, which only
the tracker knows: here, before the policies run, a message that plainly answers the
requested slot (bot/rules/free_text.py `answers`) becomes `inform`, so the slot's validator
judges it and says why when it is wrong. A `stop` without a stop-like word, a name the
model could not place, and a name written as names are ("Sun Hao", read as `affirm`), go
to the validator too. A real question, `stop` in words, or asking for a person still leave
the slot as before.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from bot.rules.free_text import answers, name_in, sounds_like_stop, written_as_a_name
from bot.rules.normalise import normalised

log = logging.getLogger(__name__)

FORM = "loss_report_form"
ANSWER = "inform"
NAME_SLOTS = ("child_name", "guardian_name")
# What the model answers when it cannot place a name at all.
UNPLACED = ("nlu_fallback", "out_of_scope")


def read_as_answer(parse_data: dict[str, Any], active_loop: str | None,
                   requested_slot: str | None) -> bool:
    """Whether this parse, made while `requested_slot` was asked, is the slot's answer.

    >>> parse = {"text": "uncle", "intent": {"name": "stop", "confidence": 0.98}}
    >>> read_as_answer(parse, FORM, "relationship")
    True
    >>> read_as_answer({"text": "算了不办了", "intent": {"name": "stop"}}, FORM, "relationship")
    False
    >>> read_as_answer(parse, None, None)
    False
    """
    if active_loop != FORM or not requested_slot:
        return False
    text = normalised(str(parse_data.get("text") or "")).text
    intent = (parse_data.get("intent") or {}).get("name")
    if intent == ANSWER:
        return False
    if answers(requested_slot, text):
        return True
    if intent == "stop":
        return not sounds_like_stop(text)
    if requested_slot not in NAME_SLOTS or name_in(text) is None:
        return False
    # A name typed in letters is read as "yes" or "found" often enough ("Sun Hao"): its
    # shape decides, not the model.
    return intent in UNPLACED or written_as_a_name(text)


def install() -> None:
    """Rasa's `MessageProcessor.parse_message` reads a form answer as `inform` (once)."""
    from rasa.core.processor import MessageProcessor

    original = MessageProcessor.parse_message
    if getattr(original, "__wrapped__", None) is not None:
        return

    @functools.wraps(original)
    async def parse_message(self: MessageProcessor, message: Any, tracker: Any = None,
                            only_output_properties: bool = True) -> dict[str, Any]:
        parse_data = await original(self, message, tracker, only_output_properties)
        if tracker is not None and read_as_answer(
                parse_data, tracker.active_loop_name, tracker.get_slot("requested_slot")):
            log.debug("read as the answer to %s (model said %s)",
                      tracker.get_slot("requested_slot"), parse_data["intent"].get("name"))
            parse_data["intent"] = {"name": ANSWER, "confidence": 1.0}
        return parse_data

    MessageProcessor.parse_message = parse_message  # type: ignore[method-assign]
    _in_story_tests()


def _in_story_tests() -> None:
    """`rasa test` parses a story's messages without the tracker: it judges them the same
    way with the story's tracker so far, so test stories check what the server does."""
    import rasa.core.test

    original = rasa.core.test._collect_user_uttered_predictions
    if getattr(original, "__wrapped__", None) is not None:
        return

    @functools.wraps(original)
    def collect(event: Any, predicted: dict[str, Any], partial_tracker: Any,
                fail_on_prediction_errors: bool) -> Any:
        if read_as_answer(predicted, partial_tracker.active_loop_name,
                          partial_tracker.get_slot("requested_slot")):
            predicted = {**predicted, "intent": {"name": ANSWER, "confidence": 1.0}}
        return original(event, predicted, partial_tracker, fail_on_prediction_errors)

    rasa.core.test._collect_user_uttered_predictions = collect
