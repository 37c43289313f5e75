"""With the trained model, the speed patches (bot/rasa/patches/) give Rasa's own answers.

Two processes load the model, one with RASA_PATCHES_OFF=all (Rasa's own code; behaviour
patches on) and one with every patch on, and each writes down its answers: every NLU example
of data/nlu and tests/nlu parsed, and at every step of every training and test story the
states the policies read, the rules still possible, each policy's prediction and the whole
model's. The answers must be equal, to the last digit. Installing a patch cannot be undone,
so each way gets a process of its own.

    RASA_PATCHES_OFF=all python -m tests.integration.test_trained_model_answers out.json
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.settings import ROOT

MODEL = ROOT / "models" / "bot.tar.gz"
MODULE = "tests.integration.test_trained_model_answers"
WAYS = {"rasa": "all", "patched": ""}  # RASA_PATCHES_OFF for each process


def story_steps(domain: Any) -> Iterator[Any]:
    """Each training story, rule and test story up to every action it predicts."""
    from rasa.core.training import load_data
    from rasa.shared.core.events import ActionExecuted
    from rasa.shared.core.trackers import DialogueStateTracker

    trackers = [tracker for source in (ROOT / "data", ROOT / "tests" / "stories")
                for tracker in load_data(str(source), domain, augmentation_factor=0)]
    assert len(trackers) > 80
    for story in trackers:
        events = list(story.events)
        for end, event in enumerate(events):
            if isinstance(event, ActionExecuted) and end > 0:
                yield DialogueStateTracker.from_events(story.sender_id, events[:end],
                                                       slots=domain.slots)


def plain(value: Any) -> Any:
    """JSON for what Rasa answers: numpy numbers as floats, events without their time."""
    from rasa.shared.core.events import Event

    if isinstance(value, Event):
        return {key: item for key, item in value.as_dict().items() if key != "timestamp"}
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value)}")


def prediction(domain: Any, found: Any) -> dict[str, Any]:
    """A `PolicyPrediction` as Rasa compares two (all but its diagnostic data)."""
    return {"action": domain.action_names_or_texts[found.max_confidence_index],
            "probabilities": found.probabilities, "policy": found.policy_name,
            "priority": found.policy_priority, "events": found.events,
            "optional_events": found.optional_events,
            "end_to_end": found.is_end_to_end_prediction,
            "no_user": found.is_no_user_prediction, "hide_rule_turn": found.hide_rule_turn,
            "action_metadata": found.action_metadata}


def answers() -> dict[str, Any]:
    """This process's answers, with the patches RASA_PATCHES_OFF leaves on."""
    from bot.rasa import patches

    installed = [patch.name for patch in patches.install()]
    from rasa.core.agent import Agent
    from rasa.shared.nlu.training_data.loading import load_data as load_nlu

    agent = Agent.load(str(MODEL))
    files = [*(ROOT / "data" / "nlu").rglob("*.yml"), *(ROOT / "tests" / "nlu").rglob("*.yml")]
    texts = sorted({example.get("text") for path in files
                    for example in load_nlu(str(path)).intent_examples})

    async def parse_all() -> list[dict[str, Any]]:
        return [await agent.parse_message(text) for text in texts]

    domain = agent.domain
    nodes = agent.processor.graph_runner._instantiated_nodes
    rules = nodes["run_RulePolicy1"]._component
    memo = nodes["run_MemoizationPolicy0"]._component
    rule_only = nodes["rule_only_data_provider"]._component.provide()
    steps = []
    for tracker in story_steps(domain):
        # As the rule policy asks (twice a prediction), and as memoization asks.
        asked = [domain.states_for_tracker_history(tracker),
                 domain.states_for_tracker_history(tracker, ignore_rule_only_turns=True,
                                                   rule_only_data=rule_only)]
        step = {"events": [plain(event) for event in list(tracker.events)[-3:]],
                "states": repr(asked),
                "rules_possible": sorted(rules._get_possible_keys(rules.lookup["rules"],
                                                                  asked[0]))}
        for state in asked[0] + asked[1]:  # a caller changing its states changes no one
            for part in state.values():    # else's
                part.clear()
        step.update({
            "rules": prediction(domain, rules.predict_action_probabilities(
                tracker, domain, rule_only_data=rule_only)),
            "memoization": prediction(domain, memo.predict_action_probabilities(
                tracker, domain, rule_only_data=rule_only)),
            "rules_again": prediction(domain, rules.predict_action_probabilities(
                tracker, domain, rule_only_data=rule_only)),
            "model": prediction(domain, agent.processor._predict_next_with_tracker(tracker)),
        })
        steps.append(step)
    return {"installed": installed, "texts": texts, "parses": asyncio.run(parse_all()),
            "steps": steps}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    if not MODEL.exists():
        pytest.fail(f"{MODEL} missing: `make train` first (make test does)")
    found = {}
    for way, off in WAYS.items():
        out = tmp_path_factory.mktemp(way) / "answers.json"
        # One hash seed for both: no set's order may differ between the two processes.
        env = {**os.environ, "RASA_PATCHES_OFF": off, "PYTHONHASHSEED": "0"}
        subprocess.run([sys.executable, "-m", MODULE, str(out)], cwd=ROOT, env=env,
                       check=True, timeout=1800)
        found[way] = json.loads(out.read_text(encoding="utf-8"))
    return found


def test_each_process_ran_with_the_patches_asked_for(both: dict[str, dict[str, Any]]) -> None:
    from bot.rasa.patches import PATCHES

    assert both["patched"]["installed"] == [patch.name for patch in PATCHES]
    assert both["rasa"]["installed"] == \
        [patch.name for patch in PATCHES if patch.kind == "behaviour"]


def test_every_nlu_example_parses_as_with_rasas_code(both: dict[str, dict[str, Any]]) -> None:
    ours, rasas = both["patched"], both["rasa"]
    assert ours["texts"] == rasas["texts"] and len(ours["texts"]) > 500
    for text, mine, theirs in zip(ours["texts"], ours["parses"], rasas["parses"], strict=True):
        assert mine == theirs, text  # intents, confidences, rankings, entities: all equal


def test_every_prediction_of_every_story_as_with_rasas_code(
        both: dict[str, dict[str, Any]]) -> None:
    ours, rasas = both["patched"]["steps"], both["rasa"]["steps"]
    assert len(ours) == len(rasas) > 300
    predicted = {step[policy]["action"] for step in rasas
                 for policy in ("rules", "memoization", "model")}
    assert len(predicted) > 20  # many different actions, not one answer everywhere
    for mine, theirs in zip(ours, rasas, strict=True):
        assert mine == theirs, theirs["events"]


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(answers(), ensure_ascii=False, default=plain),
                                 encoding="utf-8")
