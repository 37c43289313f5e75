"""NLU pipeline component: a lost card the assistant does not file for is out of scope, and
a plain request to delete what the guardian told us is that request.

The classifier learns "lost" + "my son" as a loss report, whatever was lost; an adult's own
card, a bank card or an ID card then got the child's filing offer. When the model says
`report_lost_card` but the words say the card is not a child's social security card
(`outside_scope` in bot/rules/free_text.py), the intent becomes `out_of_scope` with the
model's confidence, and the two swap places in the ranking: the reply is the honest one
(the adult's steps, or "outside what I do" with the choices). It sits after DIETClassifier
and before FallbackClassifier in config.yml, so a low confidence still falls back.

A message that says a child's card is lost and carries details with it is split by the
classifier between `report_lost_card` and `inform` (the more details, the more `inform`),
often below the fallback threshold: when those two lead the ranking, it is a report with
their confidences together (the details are read from it by `action_read_report_details`).

"Delete my data" is recognised by its words alone (`asks_erasure`), with full confidence,
whatever the model said: a request with legal weight is not left to a classifier's guess,
and the classifier is not trained on it (one more class lowered its confidence on
everything else).
"""

from __future__ import annotations

from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from bot.rasa.normaliser import _Stateless
from bot.rules.free_text import asks_erasure, loss_with_details, outside_scope

REPORT, OUTSIDE, DETAILS = "report_lost_card", "out_of_scope", "inform"
ERASE = "delete_my_data"


def _swapped(ranking: list[dict[str, Any]]) -> list[dict[str, Any]]:
    present = {entry[INTENT_NAME_KEY] for entry in ranking}
    # Beyond the ranking's length, out_of_scope simply takes the report's place.
    names = {REPORT: OUTSIDE, OUTSIDE: REPORT} if OUTSIDE in present else {REPORT: OUTSIDE}
    swapped = [{**entry, INTENT_NAME_KEY: names.get(entry[INTENT_NAME_KEY],
                                                     entry[INTENT_NAME_KEY])}
               for entry in ranking]
    return sorted(swapped, key=lambda entry: -entry[PREDICTED_CONFIDENCE_KEY])


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class ScopeCheck(_Stateless):
    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            intent = message.get(INTENT) or {}
            if asks_erasure(message.get(TEXT)):
                # The words decided: the model's guesses stay out of the ranking, or one it
                # was sure of would sit within FallbackClassifier's ambiguity threshold of
                # 1.0 and turn the request into a fallback.
                message.set(INTENT, {INTENT_NAME_KEY: ERASE, PREDICTED_CONFIDENCE_KEY: 1.0},
                            add_to_output=True)
                message.set(INTENT_RANKING_KEY,
                            [{INTENT_NAME_KEY: ERASE, PREDICTED_CONFIDENCE_KEY: 1.0}],
                            add_to_output=True)
                continue
            ranking = list(message.get(INTENT_RANKING_KEY) or [])
            leading = {entry[INTENT_NAME_KEY] for entry in ranking[:2]}
            if leading == {REPORT, DETAILS} and loss_with_details(message.get(TEXT)):
                together = sum(entry[PREDICTED_CONFIDENCE_KEY] for entry in ranking[:2])
                message.set(INTENT, {INTENT_NAME_KEY: REPORT,
                                     PREDICTED_CONFIDENCE_KEY: together}, add_to_output=True)
                message.set(INTENT_RANKING_KEY, [
                    {INTENT_NAME_KEY: REPORT, PREDICTED_CONFIDENCE_KEY: together},
                    *ranking[2:]], add_to_output=True)
                continue
            if intent.get(INTENT_NAME_KEY) != REPORT or not outside_scope(message.get(TEXT)):
                continue
            message.set(INTENT, {INTENT_NAME_KEY: OUTSIDE,
                                 PREDICTED_CONFIDENCE_KEY: intent.get(PREDICTED_CONFIDENCE_KEY)},
                        add_to_output=True)
            ranking = message.get(INTENT_RANKING_KEY)
            if ranking:
                message.set(INTENT_RANKING_KEY, _swapped(list(ranking)), add_to_output=True)
        return messages
