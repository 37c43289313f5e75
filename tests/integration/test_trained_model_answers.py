"""With the trained model, bot/'s shortcuts through Rasa give Rasa's own answers.

Every shortcut is compared with the code it stands in for (kept as `__wrapped__`) on the
project's own data: each NLU example parsed both ways, each policy's prediction at every
step of every training story both ways.
"""

from __future__ import annotations

import asyncio
import doctest
from collections.abc import Iterator
from typing import Any

import pytest
from rasa.core.agent import Agent
from rasa.core.policies.rule_policy import RulePolicy
from rasa.core.training import load_data
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.loading import load_data as load_nlu
from rasa.shared.nlu.training_data.message import Message
from rasa.utils.tensorflow.models import RasaModel

from bot.rasa.patches import dialogue_states, model_call, sparse_features
from bot.settings import ROOT

MODEL = ROOT / "models" / "bot.tar.gz"


@pytest.fixture(scope="module")
def agent() -> Iterator[Agent]:
    if not MODEL.exists():
        pytest.fail(f"{MODEL} missing: `make train` first (make test does)")
    yield Agent.load(str(MODEL))


def component(agent: Agent, name: str) -> Any:
    return agent.processor.graph_runner._instantiated_nodes[name]._component


def originals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rasa's own code back in place for the rest of the test (undone after it)."""
    for owner, name, wrap in ((Message, "_combine_features", staticmethod),
                              (RasaModel, "_rasa_predict", None),
                              (Domain, "states_for_tracker_history", None),
                              (RulePolicy, "_get_possible_keys", None)):
        original = getattr(owner.__dict__[name], "__func__", owner.__dict__[name]).__wrapped__
        monkeypatch.setattr(owner, name, wrap(original) if wrap else original)


def install_all() -> None:
    for _ in range(2):  # twice is once
        sparse_features.join_at_once()
        model_call.call_traced_graph()
        dialogue_states.install()


def test_doctests() -> None:
    for module in (dialogue_states, sparse_features):
        assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


def test_every_nlu_example_parses_as_with_rasas_code(agent: Agent) -> None:
    texts = sorted({example.get("text") for example in
                    load_nlu(str(ROOT / "data" / "nlu")).intent_examples})
    install_all()

    async def parse_all() -> list[dict[str, Any]]:
        return [await agent.parse_message(text) for text in texts]

    ours = asyncio.run(parse_all())
    with pytest.MonkeyPatch.context() as monkeypatch:
        originals(monkeypatch)
        rasas = asyncio.run(parse_all())
    assert len(texts) > 500
    for text, mine, theirs in zip(texts, ours, rasas, strict=True):
        assert mine == theirs, text  # intents, confidences, rankings, entities: all equal


def story_steps(domain: Domain) -> Iterator[DialogueStateTracker]:
    """Each training story, rule and test story up to every action it predicts."""
    trackers = [tracker for source in (ROOT / "data", ROOT / "tests" / "stories")
                for tracker in load_data(str(source), domain, augmentation_factor=0)]
    assert len(trackers) > 80
    for story in trackers:
        events = list(story.events)
        for end, event in enumerate(events):
            if isinstance(event, ActionExecuted) and end > 0:
                yield DialogueStateTracker.from_events(story.sender_id, events[:end],
                                                       slots=domain.slots)


def test_every_prediction_of_every_story_as_with_rasas_code(agent: Agent) -> None:
    domain = agent.domain
    assert domain is not None
    rules = component(agent, "run_RulePolicy1")
    memo = component(agent, "run_MemoizationPolicy0")
    rule_only = component(agent, "rule_only_data_provider").provide()
    steps = list(story_steps(domain))
    install_all()

    def predict_all() -> list[tuple[Any, ...]]:
        answers = []
        for tracker in steps:
            # As the rule policy asks (twice a prediction), and as memoization asks.
            asked = [domain.states_for_tracker_history(tracker),
                     domain.states_for_tracker_history(tracker, ignore_rule_only_turns=True,
                                                       rule_only_data=rule_only)]
            answer = (repr(asked), rules._get_possible_keys(rules.lookup["rules"], asked[0]))
            for state in asked[0] + asked[1]:  # a caller changing its states changes no
                for part in state.values():    # one else's
                    part.clear()
            answers.append((
                *answer,
                rules.predict_action_probabilities(tracker, domain, rule_only_data=rule_only),
                memo.predict_action_probabilities(tracker, domain, rule_only_data=rule_only),
                rules.predict_action_probabilities(tracker, domain, rule_only_data=rule_only),
            ))
        return answers

    ours = predict_all()
    with pytest.MonkeyPatch.context() as monkeypatch:
        originals(monkeypatch)
        rasas = predict_all()
    assert len(steps) > 300
    predicted = {answer[2].max_confidence_index for answer in rasas} | \
        {answer[3].max_confidence_index for answer in rasas}
    assert len(predicted) > 20  # many different actions, not one answer everywhere
    for tracker, mine, theirs in zip(steps, ours, rasas, strict=True):
        assert mine == theirs, [e.as_dict() for e in tracker.events][-3:]
