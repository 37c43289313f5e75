"""The graph run in a worked-out order gives what Rasa's dask runner gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.rasa.patches import graph_order


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
    graph_order.install()
    graph_order.install()  # twice is once
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
