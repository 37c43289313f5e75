"""NLU pipeline components: the model reads normalised text, entities point at what was typed.

`TextNormaliser` goes first in config.yml's pipeline, so training and serving see the same
spelling (bot/rules/normalise.py); `TypedText` goes last and gives the message back its
typed text, with every entity's `start`/`end` moved onto the typed characters (the entity's
`value` stays normalised: `138 1234 5678` is read as `13812345678`).
"""

from __future__ import annotations

import bisect
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.constants import ENTITIES, ENTITY_ATTRIBUTE_END, ENTITY_ATTRIBUTE_START, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.rules.normalise import Normalised, normalised

# Kept on the message between the two components; not an output property, so it is never
# stored with the conversation.
ORIGIN = "normalised_origin"


def _normalise(message: Message) -> Normalised | None:
    typed = message.get(TEXT)
    if not isinstance(typed, str) or not typed:
        return None
    result = normalised(typed)
    if result.text == typed:
        return None
    message.set(TEXT, result.text)
    message.set(ORIGIN, result)
    return result


class _Stateless(GraphComponent):
    """Nothing to train or keep: a component made from nothing."""

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> _Stateless:
        return cls()


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class TextNormaliser(_Stateless):
    """Normalises each message's text before it is tokenised (training data included)."""

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            _normalise(message)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for example in training_data.training_examples:
            result = _normalise(example)
            if result is None or not example.get(ENTITIES):
                continue
            # Annotations were written against the typed text: move them onto the normalised.
            for entity in example.get(ENTITIES):
                start = bisect.bisect_left(result.origin, entity[ENTITY_ATTRIBUTE_START])
                end = bisect.bisect_left(result.origin, entity[ENTITY_ATTRIBUTE_END])
                entity[ENTITY_ATTRIBUTE_START], entity[ENTITY_ATTRIBUTE_END] = start, end
        return training_data


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class TypedText(_Stateless):
    """Puts back the typed text and moves entity and token offsets onto it (last in the
    pipeline)."""

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            result = message.get(ORIGIN)
            if not isinstance(result, Normalised):
                continue
            for entity in message.get(ENTITIES) or []:
                start, end = result.original_span(entity[ENTITY_ATTRIBUTE_START],
                                                  entity[ENTITY_ATTRIBUTE_END])
                entity[ENTITY_ATTRIBUTE_START], entity[ENTITY_ATTRIBUTE_END] = start, end
            # Tokens too, so an evaluation lines predicted and annotated entities up.
            for token in message.get(TOKENS_NAMES[TEXT]) or []:
                token.start, token.end = result.original_span(token.start, token.end)
            message.set(TEXT, result.typed)
            message.data.pop(ORIGIN, None)
        return messages
