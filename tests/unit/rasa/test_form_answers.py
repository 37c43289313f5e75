"""A plain answer to the form's question is read as one, whatever the NLU guessed."""

from __future__ import annotations

import pytest

from bot.rasa.patches.form_answers import FORM, read_as_answer
from bot.rules.free_text import NOT_GUARDIANS, RELATIONSHIPS

WORDS = [word for words in RELATIONSHIPS.values() for word in words] + list(NOT_GUARDIANS)


def parse(text: str, intent: str) -> dict[str, object]:
    return {"text": text, "intent": {"name": intent, "confidence": 0.9}}


@pytest.mark.parametrize("word", WORDS)
@pytest.mark.parametrize("guess", ["stop", "affirm", "ask_fee", "nlu_fallback", "greet"])
def test_every_relationship_word_is_an_answer(word: str, guess: str) -> None:
    assert read_as_answer(parse(word, guess), FORM, "relationship")


@pytest.mark.parametrize(("slot", "text"), [
    ("child_id_number", "１１０１０１ ２０１５０３０７ ３３２９"),
    ("guardian_id_number", "my ID is 110101198005064321"),
    ("phone_number", "+86 138-1234-5678"),
    ("city", "上海"),
    ("city", "Chengdu"),
    ("child_name", "Li Na"),
])
def test_numbers_cities_and_unplaced_names_are_answers(slot: str, text: str) -> None:
    assert read_as_answer(parse(text, "nlu_fallback"), FORM, slot)


@pytest.mark.parametrize("text", ["stop", "算了不办了", "取消", "I changed my mind, cancel"])
def test_stop_in_words_still_stops(text: str) -> None:
    assert not read_as_answer(parse(text, "stop"), FORM, "relationship")


@pytest.mark.parametrize(("text", "intent"), [
    ("how much does it cost", "ask_fee"),
    ("要带什么材料", "ask_required_documents"),
    ("转人工", "request_human"),
    ("好的", "affirm"),  # not a name the model could not place: the form asks again
])
def test_questions_and_other_intents_leave_the_slot(text: str, intent: str) -> None:
    assert not read_as_answer(parse(text, intent), FORM, "child_name")


@pytest.mark.parametrize(("text", "intent"), [("Sun Hao", "affirm"), ("Zhao Min", "card_found")])
def test_a_name_written_as_names_are_is_an_answer_whatever_the_model_said(
        text: str, intent: str) -> None:
    assert read_as_answer(parse(text, intent), FORM, "child_name")
    assert not read_as_answer(parse(text, intent), FORM, "relationship")


def test_only_while_the_form_asks() -> None:
    assert not read_as_answer(parse("uncle", "stop"), None, None)
    assert not read_as_answer(parse("uncle", "stop"), FORM, None)
    assert not read_as_answer(parse("uncle", "stop"), "other_form", "relationship")
