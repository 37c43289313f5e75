"""The dialogue states Rasa's policies predict from: worked out once, matched only as needed.

Every prediction asks for the states of the whole conversation three times (the rule
policy twice alike, with and without the message's text; memoization once, without the
rule-only turns), and each time Rasa replays the conversation event by event and builds one
state per turn: 6.5% of the Rasa process's busy time in `make bench`, growing with the
conversation. Here the states are kept on the tracker until its events change, so the
rule policy's second ask is free, and each caller gets its own copy to change.

The rule policy then narrows its rules turn by turn back through the whole conversation,
though a turn further back than a rule is long cannot rule that rule out (Rasa's own
`_is_rule_applicable` says so): 3.6% of Rasa's busy time. Here it stops at the longest
rule still in play. Same answers in both cases, to the state.
"""

from __future__ import annotations

import functools
from typing import Any

from rasa.core.policies.rule_policy import RulePolicy
from rasa.shared.core.domain import Domain, State
from rasa.shared.core.trackers import DialogueStateTracker


def copy_states(states: list[State]) -> list[State]:
    """Each state and its parts new; the values (strings and tuples) shared.

    Rasa's featurizers delete a state's text or intent in place, and nothing deeper.

    >>> states = [{"user": {"intent": "greet", "text": "hi"}}]
    >>> copied = copy_states(states)
    >>> del copied[0]["user"]["text"]
    >>> states
    [{'user': {'intent': 'greet', 'text': 'hi'}}]
    """
    return [{name: dict(part) for name, part in state.items()} for state in states]


def cache_states() -> None:
    """`Domain.states_for_tracker_history` kept on the tracker until its events change."""
    original = Domain.states_for_tracker_history
    if getattr(original, "__wrapped__", None) is not None:
        return

    @functools.wraps(original)
    def states_for_tracker_history(self: Domain, tracker: DialogueStateTracker,
                                   omit_unset_slots: bool = False,
                                   ignore_rule_only_turns: bool = False,
                                   rule_only_data: dict[str, Any] | None = None) -> list[State]:
        events = tracker.events
        # As for applied events (applied_events.py): events are only ever appended, so
        # the count and the two ends tell whether the states still hold. The domain and
        # the rule-only data are the loaded model's, alive as long as the process.
        key = (len(events), id(events[0]) if events else 0, id(events[-1]) if events else 0,
               id(self), omit_unset_slots, ignore_rule_only_turns, id(rule_only_data))
        cache = tracker.__dict__.setdefault("_states_cache", {})
        states = cache.get(key)
        if states is None:
            states = original(self, tracker, omit_unset_slots, ignore_rule_only_turns,
                              rule_only_data)
            if len(cache) > 8:  # older states of this tracker are never asked for again
                cache.clear()
            cache[key] = states
        return copy_states(states)

    Domain.states_for_tracker_history = states_for_tracker_history  # type: ignore[method-assign]


def match_rules_as_far_back_as_needed() -> None:
    """`RulePolicy._get_possible_keys` stops at the longest rule still possible."""
    original = RulePolicy._get_possible_keys
    if getattr(original, "__wrapped__", None) is not None:
        return

    @functools.wraps(original)
    def _get_possible_keys(self: RulePolicy, lookup: dict[str, str],
                           states: list[State]) -> set[str]:
        possible_keys = set(lookup.keys())
        for index, state in enumerate(reversed(states)):
            longest = max((len(self._rule_key_to_state(key)) for key in possible_keys),
                          default=0)
            if index >= longest:
                break  # every rule left is applicable at this turn and all before it
            possible_keys = {key for key in possible_keys
                             if self._is_rule_applicable(key, index, state)}
        return possible_keys

    RulePolicy._get_possible_keys = _get_possible_keys  # type: ignore[method-assign]


def install() -> None:
    """Both changes (once per process)."""
    cache_states()
    match_rules_as_far_back_as_needed()
