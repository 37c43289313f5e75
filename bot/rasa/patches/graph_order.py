"""The model's graph run node by node, in a dependency order worked out once per target list.

On every parse and every prediction Rasa's runner works out the part of the graph the run
needs (a walk that visits shared nodes once per path to them) and hands it to dask, which
orders it again: 11% of the Rasa process's busy time in `make bench`. Here the order is
worked out once per list of targets and inputs and kept on the runner. Same nodes, same
inputs, same results and errors.
"""

from __future__ import annotations

import functools
from typing import Any

Plan = tuple[list[tuple[str, tuple[str, ...]]], frozenset[str]]


def install() -> None:
    """`DaskGraphRunner.run` follows the kept order (once per process)."""
    from rasa.engine.exceptions import GraphRunError
    from rasa.engine.runner.dask import DaskGraphRunner

    original = DaskGraphRunner.run
    if getattr(original, "__wrapped__", None) is not None:
        return

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
