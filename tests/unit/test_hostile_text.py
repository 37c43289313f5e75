"""Hostile text at both ends: cleaned and cut before Rasa reads it, refused by the REST
channel when it is no message at all, never quoted back as markup."""

from __future__ import annotations

import doctest
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.channels import rest
from bot.rasa.patches import message_limit
from bot.rules import free_text


@pytest.mark.parametrize("module", [message_limit, rest, free_text])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


@given(st.text(max_size=3000))
def test_rasa_reads_no_control_character_and_no_more_than_the_limit(text: str) -> None:
    cleaned = message_limit.cleaned(text) or ""
    assert len(cleaned) <= message_limit.MAX_CHARACTERS
    assert all(ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs") for ch in cleaned)
    cleaned.encode("utf-8")  # storable


def test_an_ordinary_message_is_left_alone() -> None:
    text = "我女儿的社保卡丢了，身份证号110105201501010013，手机13912345678\n谢谢"
    assert message_limit.cleaned(text) == text


@given(st.text(max_size=200))
def test_a_quoted_answer_carries_no_markup(text: str) -> None:
    quoted = free_text.quotable(text)
    assert len(quoted) <= 40
    assert not set(quoted) & set("<>[]()`*_{}|#\"\\/:=&;!")
    assert all(unicodedata.category(ch)[0] in "LNZ" or ch in "'·-" for ch in quoted)


@pytest.mark.parametrize("body", [
    [1, 2], "hi", None,
    {"message": "hi"},
    {"sender": "", "message": "hi"},
    {"sender": {"id": 1}, "message": "hi"},
    {"sender": "x" * 129, "message": "hi"},
    {"sender": "lone \ud800", "message": "hi"},
    {"sender": "me"},
    {"sender": "me", "message": None},
    {"sender": "me", "message": 12},
    {"sender": "me", "message": ["hi"]},
    {"sender": "me", "message": "hi", "metadata": "oops"},
])
def test_rest_bodies_that_are_no_message_are_named(body: object) -> None:
    assert rest.body_problem(body)


def test_a_rest_message_with_metadata_passes() -> None:
    assert rest.body_problem({"sender": "me", "message": "", "metadata": {"language": "zh"}}) \
        is None
