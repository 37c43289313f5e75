"""The pipeline's normaliser: the model reads one spelling, entities point at typed characters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.rasa.normaliser import ORIGIN, TextNormaliser, TypedText
from bot.rules.normalise import normalised

TYPED = "孩子的社保卡遺失了，手機１３８ １２３４ ５６７８"


def entity(start: int, end: int, value: str) -> dict[str, object]:
    return {"entity": "phone_number", "start": start, "end": end, "value": value}


def test_serving_reads_normalised_text_and_answers_with_the_typed_one() -> None:
    message = Message(data={"text": TYPED})
    TextNormaliser().process([message])
    assert message.get("text") == "孩子的社保卡遗失了,手机13812345678"
    # An extractor finds the number in the normalised text...
    start = message.get("text").index("138")
    message.set("entities", [entity(start, start + 11, "13812345678")])
    TypedText().process([message])
    # ...and the guardian's own characters are what it points at.
    found = message.get("entities")[0]
    assert message.get("text") == TYPED
    assert TYPED[found["start"]:found["end"]] == "１３８ １２３４ ５６７８"
    assert found["value"] == "13812345678"
    assert ORIGIN not in message.data


def test_tokens_are_moved_back_with_the_text() -> None:
    message = Message(data={"text": TYPED})
    TextNormaliser().process([message])
    JiebaTokenizer.create({**JiebaTokenizer.get_default_config()}, None, None, None).process(
        [message])  # type: ignore[arg-type]
    TypedText().process([message])
    tokens = message.get("text_tokens")
    assert any(TYPED[t.start:t.end] == "１３８ １２３４ ５６７８" for t in tokens)


def test_training_annotations_follow_the_normalised_text() -> None:
    typed = "电话 138-1234-5678 谢谢"
    example = Message(data={"text": typed, "intent": "inform",
                            "entities": [entity(3, 16, "138-1234-5678")]})
    TextNormaliser().process_training_data(TrainingData([example]))
    found = example.get("entities")[0]
    assert example.get("text")[found["start"]:found["end"]] == "13812345678"


def test_plain_text_is_left_as_typed() -> None:
    message = Message(data={"text": "my kid lost her card"})
    TextNormaliser().process([message])
    TypedText().process([message])
    assert message.get("text") == "my kid lost her card" and ORIGIN not in message.data


@given(st.text(max_size=60))
def test_every_normalised_character_knows_its_typed_one(typed: str) -> None:
    result = normalised(typed)
    assert len(result.origin) == len(result.text)
    assert list(result.origin) == sorted(result.origin)
    assert all(0 <= index < len(typed) for index in result.origin)
    if result.text:
        start, end = result.original_span(0, len(result.text))
        assert 0 <= start < end <= len(typed)
