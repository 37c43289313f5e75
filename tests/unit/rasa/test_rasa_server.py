"""The Rasa server's compiled check of action-server replies gives Rasa's own verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot.rasa import server as rasa_server

GOOD = {"events": [{"event": "slot", "name": "language", "value": "zh"}],
        "responses": [{"response": "utter_greet"}]}
BAD = [
    {"events": [{"event": "slot"}]},            # a slot event without its name
    {"events": [{"event": "no_such_event"}]},
    {"events": "not a list"},
    {"responses": ["not an object"]},
    {"events": ["not an object"]},
    {"events": [{"name": "no event name"}]},
    {"events": [{"event": 7}]},
    {"events": [{"event": "slot", "name": 3, "value": 1}]},
    {"events": [{"event": "bot", "text": "hi"}, {"event": "user", "text": 5}]},
    {"events": [{"event": "user", "text": "hi", "timestamp": "noon"}]},
    "not an object",
]
MORE_GOOD = [
    {},
    {"events": []},
    {"events": [{"event": "bot", "text": "hi", "data": {}, "metadata": {}},
                {"event": "active_loop", "name": None}, {"event": "restart"},
                {"event": "followup", "name": "action_x", "timestamp": 1.5},
                {"event": "slot", "name": "requested_slot", "value": None}],
     "responses": [{"text": "hello"}]},
]


def test_install_keeps_rasas_verdicts() -> None:
    action = RemoteAction("action_x", None)
    rasa_server.install()
    rasa_server.install()  # twice is once
    assert RemoteAction._validate_action_result.__wrapped__ is not None  # type: ignore[attr-defined]
    assert action._validate_action_result(GOOD) is True
    for reply in MORE_GOOD:
        assert action._validate_action_result(reply) is True
    for reply in BAD:
        with pytest.raises(ValidationError, match="Failed to validate Action server response"):
            action._validate_action_result(reply)


def test_reply_check_by_event_name_agrees_with_the_whole_schema() -> None:
    from jsonschema import Draft202012Validator

    whole = Draft202012Validator(RemoteAction.action_response_format_spec()).is_valid
    by_name = rasa_server._reply_validator()
    names = [branch["properties"]["event"]["const"] for branch in
             RemoteAction.action_response_format_spec()["properties"]["events"]["items"]
             ["oneOf"]]
    values: list[object] = [None, "x", 1, 2.5, True, [], {}, ["a"], {"a": 1}]
    fields = ["name", "value", "text", "entities", "intent", "timestamp", "metadata", "data"]
    checked = 0
    for name in [*names, "no_such_event"]:
        for field in fields:
            for value in values:
                reply = {"events": [{"event": name, field: value}]}
                assert by_name(reply) == whole(reply), reply
                checked += 1
    assert checked > 1500
    for reply in [GOOD, *MORE_GOOD, *BAD]:
        assert by_name(reply) == whole(reply), reply


def test_the_loaded_model_is_frozen_out_of_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import gc

    import rasa.core.run

    loaded = object()

    async def load_agent_on_start(*args: object) -> object:
        return loaded

    monkeypatch.setattr(rasa.core.run, "load_agent_on_start", load_agent_on_start)
    rasa_server.freeze_after_loading()
    rasa_server.freeze_after_loading()  # twice is once
    wrapped = rasa.core.run.load_agent_on_start
    assert wrapped.__wrapped__ is load_agent_on_start  # type: ignore[attr-defined]
    try:
        assert asyncio.run(wrapped("model", None, None, None, None)) is loaded
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_event_classes_found_by_name_as_rasa_finds_them() -> None:
    from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
    from rasa.shared.utils.common import all_subclasses

    scan = {cls.type_name: cls for cls in reversed(all_subclasses(Event))}
    rasa_server.cache_event_types()
    rasa_server.cache_event_types()  # twice is once
    assert Event.resolve_by_type.__wrapped__ is not None  # type: ignore[attr-defined]
    for name, cls in scan.items():
        assert Event.resolve_by_type(name) is cls
    assert Event.resolve_by_type("slot") is SlotSet
    assert Event.resolve_by_type("user") is UserUttered
    assert Event.resolve_by_type("no_such_event", ActionExecuted) is ActionExecuted
    assert Event.resolve_by_type("topic") is None
    with pytest.raises(ValueError, match="Unknown event name 'no_such_event'"):
        Event.resolve_by_type("no_such_event")
    assert Event.from_parameters({"event": "slot", "name": "city", "value": "Beijing"}) == \
        SlotSet("city", "Beijing")


def test_applied_events_cached_give_rasas_answer_at_every_step() -> None:
    from rasa.shared.core.events import (
        ActionExecuted,
        ActionReverted,
        ActiveLoop,
        Restarted,
        SlotSet,
        UserUtteranceReverted,
        UserUttered,
    )
    from rasa.shared.core.trackers import DialogueStateTracker

    rasa_server.cache_applied_events()
    rasa_server.cache_applied_events()  # twice is once
    original = DialogueStateTracker.applied_events.__wrapped__  # type: ignore[attr-defined]
    form = "loss_report_form"
    events = [
        ActionExecuted("action_listen"), UserUttered("hi", {"name": "greet"}),
        ActionExecuted("utter_greet"), ActionExecuted("action_listen"),
        UserUttered("yes", {"name": "affirm"}), ActionExecuted(form), ActiveLoop(form),
        SlotSet("requested_slot", "child_name"), ActionExecuted("action_listen"),
        UserUttered("Li Ming", {"name": "inform"}), ActionExecuted(form),
        SlotSet("child_name", "Li Ming"), ActionExecuted("action_listen"),
        UserUttered("why?", {"name": "ask_fee"}), ActionExecuted("utter_fee"),
        ActionReverted(), UserUtteranceReverted(), ActionExecuted(form),
        ActiveLoop(None), Restarted(), ActionExecuted("action_listen"),
    ]
    tracker = DialogueStateTracker("u", [])
    for event in events:
        tracker.update(event)
        first = tracker.applied_events()
        assert first == original(tracker)
        first.clear()  # a caller changing its list leaves the cache alone
        assert tracker.applied_events() == original(tracker)
    # A bounded history drops its first event: same count, other answer.
    bounded = DialogueStateTracker("b", [], max_event_history=3)
    for event in events[:6]:
        bounded.update(event)
        assert bounded.applied_events() == original(bounded)


class _Value:
    """Graph components for a small graph: a constant, a sum, and one that fails."""

    calls: list[str] = []


def _components() -> tuple[type, type, type]:
    from rasa.engine.graph import GraphComponent

    class Constant(GraphComponent):
        def __init__(self, config: dict[str, object]) -> None:
            self.value = config["value"]

        @classmethod
        def create(cls, config: dict[str, object], **context: object) -> Constant:
            return cls(config)

        def provide(self) -> object:
            _Value.calls.append(f"constant {self.value}")
            return self.value

    class Add(GraphComponent):
        @classmethod
        def create(cls, config: dict[str, object], **context: object) -> Add:
            return cls()

        def add(self, left: int, right: int) -> int:
            _Value.calls.append(f"add {left} {right}")
            return left + right

    class Fail(GraphComponent):
        @classmethod
        def create(cls, config: dict[str, object], **context: object) -> Fail:
            return cls()

        def fail(self, value: int) -> int:
            raise RuntimeError(f"no {value}")

    return Constant, Add, Fail


def test_graph_runs_in_order_as_rasas_runner_runs_it(tmp_path: Path) -> None:
    from rasa.engine.exceptions import GraphComponentException, GraphRunError
    from rasa.engine.graph import ExecutionContext, GraphSchema, SchemaNode
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.engine.storage.local_model_storage import LocalModelStorage

    constant, add, fail = _components()

    def node(uses: type, fn: str, needs: dict[str, str], **config: object) -> SchemaNode:
        return SchemaNode(needs=needs, uses=uses, constructor_name="create", fn=fn,
                          config=config)

    schema = GraphSchema({
        "one": node(constant, "provide", {}, value=1),
        "two": node(add, "add", {"left": "one", "right": "one"}),
        "from_input": node(add, "add", {"left": "two", "right": "__number__"}),
        "both": node(add, "add", {"left": "two", "right": "from_input"}),
        "broken": node(fail, "fail", {"value": "one"}),
    })
    runner = DaskGraphRunner(schema, LocalModelStorage(tmp_path), ExecutionContext(schema))
    rasa_server.run_graph_in_order()
    rasa_server.run_graph_in_order()  # twice is once
    original = DaskGraphRunner.run.__wrapped__  # type: ignore[attr-defined]

    def both_ways(**kwargs: object) -> tuple[object, list[str]]:
        answers = []
        for run in (original, DaskGraphRunner.run):
            _Value.calls.clear()
            for _ in range(2):  # the second run takes the worked-out order
                answer = run(runner, **kwargs)
                answers.append((answer, sorted(_Value.calls)))
                _Value.calls.clear()
        assert all(pair == answers[0] for pair in answers), answers
        return answers[0]

    answer, calls = both_ways(inputs={"__number__": 10}, targets=["both"])
    assert answer == {"both": 14}
    assert calls == ["add 1 1", "add 2 10", "add 2 12", "constant 1"]  # each node once
    assert both_ways(inputs={"__number__": 10}, targets=["two", "from_input"])[0] == \
        {"two": 2, "from_input": 12}
    # An input named as a node stands in for it (what that node needs still runs).
    answer, calls = both_ways(inputs={"two": 5, "__number__": 1}, targets=["both"])
    assert answer == {"both": 11} and calls == ["add 5 1", "add 5 6", "constant 1"]
    for run in (original, DaskGraphRunner.run):
        with pytest.raises(GraphRunError, match="clashes with a node name"):
            run(runner, inputs={"__number__": "one"}, targets=["from_input"])
        with pytest.raises(GraphComponentException, match="broken"):
            run(runner, targets=["broken"])
