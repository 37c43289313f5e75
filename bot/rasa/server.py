"""`rasa` as the stack runs it: Rasa's own command line, with thirteen changes to its server.

- Action-server replies are checked by a schema compiled once, each event against the
  branch of its own event name. Rasa 3.6 calls `jsonschema.validate()`, which re-checks
  its large events schema against the meta-schema, builds a new validator and tries every
  event on two dozen branches on every reply: 45% of the Rasa process's busy time in
  `make bench`. Same verdict, a fraction of the cost.
- Every channel's messages are cleaned and cut to one length (bot/rasa/patches/message_limit.py).
- Tracker-store failures fail the turn instead of answering from memory
  (bot/rasa/patches/strict_tracker_store.py).
- The `language` slot is set inside Rasa, not by an action-server call on every message
  (bot/rasa/patches/language_slot.py).
- An event's class is found by its name in a table, not by walking every subclass of
  `Event` (with an `isabstract` check each) for every event read: rebuilding the tracker
  on each message did that for every event of the conversation, 10% of Rasa's busy time.
- A tracker's applied events (the history with undone turns taken out) are worked out once
  per state of the tracker, not again by every policy for every prediction: a pass over
  the whole conversation each time, 6% of Rasa's busy time.
- Requests to the action server share kept-alive connections and are encoded with ujson
  (bot/rasa/patches/rasa_http.py).
- The model's graph runs in an order worked out once, not by dask on every parse and
  prediction (11% of Rasa's busy time).
- TensorFlow serves with one thread per pool, and DIET's traced graph is called directly
  (bot/rasa/patches/model_call.py).
- A message's sparse features are joined in one step (bot/rasa/patches/sparse_features.py).
- The policies' dialogue states are worked out once per tracker state, and rules matched
  only as far back as the longest rule (bot/rasa/patches/dialogue_states.py).
- The loaded model is frozen out of the garbage collector: a full collection walked all
  of its objects, 0.5-1 s with the event loop stopped, twice per 1,000 turns in
  `make bench`; it now takes a few milliseconds.

    python -m bot.rasa.server run --model models/bot.tar.gz ...   # any `rasa` arguments
"""

from __future__ import annotations

import copy
import functools
import gc
import os
import sys
from collections.abc import Callable
from typing import Any

from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction


@functools.lru_cache(maxsize=1)
def _reply_validator() -> Callable[[Any], bool]:
    """Rasa's reply schema as one check per event, against that event's own branch.

    Its events are `oneOf` two dozen branches, each fixing `event` to one name, so a whole
    check tries every branch on every event. Only the branch of the event's own name can
    match, so checking that one alone gives the same verdict at a fraction of the cost.
    """
    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    items = schema["properties"]["events"]["items"]
    branches = items.get("oneOf", [])
    names = [branch.get("properties", {}).get("event", {}).get("const") for branch in branches]
    if not branches or not all(isinstance(name, str) for name in names) \
            or len(set(names)) != len(names):
        return validator_class(schema).is_valid  # a schema of another shape: whole
    outer = copy.deepcopy(schema)
    del outer["properties"]["events"]["items"]["oneOf"]
    outer_check = validator_class(outer).is_valid
    by_name = {name: validator_class(branch).is_valid
               for name, branch in zip(names, branches, strict=True)}

    def is_valid(reply: Any) -> bool:
        # The outer check makes `events`, when there, a list of objects with a string name.
        if not outer_check(reply):
            return False
        for event in reply.get("events", []):
            check = by_name.get(event["event"])
            if check is None or not check(event):
                return False
        return True

    return is_valid


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    if _reply_validator()(result):
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


def run_graph_in_order() -> None:
    """Rasa's graph runs, node by node in a dependency order worked out once per target list.

    Rasa's runner works out the part of the graph a run needs (a walk that visits shared
    nodes once per path to them) and hands it to dask, which orders it again, on every
    parse and every prediction. Same nodes, same inputs, same results and errors.
    """
    from rasa.engine.exceptions import GraphRunError
    from rasa.engine.runner.dask import DaskGraphRunner

    original = DaskGraphRunner.run
    if getattr(original, "__wrapped__", None) is not None:
        return

    Plan = tuple[list[tuple[str, tuple[str, ...]]], frozenset[str]]

    def plan(runner: DaskGraphRunner, targets: list[str], given: frozenset[str]) -> Plan:
        """The nodes to run in order with what each needs, and every node of the run."""
        plans = runner.__dict__.setdefault("_run_plans", {})
        key = (tuple(targets), given)
        if key not in plans:
            nodes = runner._graph_schema.minimal_graph_schema(targets).nodes
            order: list[tuple[str, tuple[str, ...]]] = []
            placed: set[str] = set()

            def place(name: str) -> None:
                # Rasa refuses graphs with cycles when it loads them.
                if name in placed or name not in nodes:
                    return
                placed.add(name)
                needs = tuple(nodes[name].needs.values())
                for need in needs:
                    place(need)
                if name not in given:  # an input stands in for the node of its name
                    order.append((name, needs))

            for target in targets:
                place(target)
            plans[key] = (order, frozenset(nodes))
        return plans[key]

    @functools.wraps(original)
    def run(self: DaskGraphRunner, inputs: dict[str, Any] | None = None,
            targets: list[str] | None = None) -> dict[str, Any]:
        run_targets = targets if targets else self._graph_schema.target_names
        inputs = inputs or {}
        order, names = plan(self, run_targets, frozenset(inputs))
        results: dict[str, Any] = {}
        for name, value in inputs.items():
            if isinstance(value, str) and (value in names or value in results):
                raise GraphRunError(
                    f"Input value '{value}' clashes with a node name. Make sure that none "
                    f"of the input names passed to the `run` method are the same as node "
                    f"names in the graph schema.")
            results[name] = (name, value)
        try:
            for name, needs in order:
                # A need nothing provides reaches the node as its bare name, as in dask.
                node = self._instantiated_nodes[name]
                results[name] = node(*(results.get(need, need) for need in needs))
        except RuntimeError as error:
            raise GraphRunError("Error running runner.") from error
        return dict(results[target] for target in run_targets)

    DaskGraphRunner.run = run  # type: ignore[method-assign]


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


def one_thread_per_model_call() -> None:
    """TensorFlow's thread pools at one thread each while serving (an operator may set more).

    A message's tensors are tiny: a second thread per op costs more in handing work over
    than it saves, and deploy/ runs one Rasa process per core. In `make bench` this took
    Rasa from 39 to 35 ms of CPU per turn. Training keeps TensorFlow's defaults.
    """
    if sys.argv[1:2] == ["run"]:
        os.environ.setdefault("TF_INTRA_OP_PARALLELISM_THREADS", "1")
        os.environ.setdefault("TF_INTER_OP_PARALLELISM_THREADS", "1")


def main() -> None:
    one_thread_per_model_call()
    install()
    cache_event_types()
    cache_applied_events()
    run_graph_in_order()
    freeze_after_loading()
    from bot.rasa.patches import (
        dialogue_states,
        language_slot,
        message_limit,
        model_call,
        rasa_http,
        sparse_features,
        strict_tracker_store,
    )

    dialogue_states.install()
    sparse_features.join_at_once()
    model_call.call_traced_graph()
    rasa_http.install()
    language_slot.install()
    message_limit.install()
    strict_tracker_store.install()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    sys.argv[0] = "rasa"
    main()

