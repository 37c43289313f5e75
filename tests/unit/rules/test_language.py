"""Which language a message is in."""

from __future__ import annotations

import doctest

import pytest

import bot.rules.language
from bot.rules.language import detect


def test_docstring_examples() -> None:
    assert doctest.testmod(bot.rules.language).failed == 0


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("孩子社保卡丢了怎么办", "zh"),
        ("my daughter lost her card", "en"),
        ("lost card 社保卡", "zh"),  # any Chinese: the user reads Chinese
        ("ok", "en"),
        ("13800138000", None),
        ("/greet", None),
        ("👍", None),
        ("", None),
        (None, None),
    ],
)
def test_detect(text: str | None, language: str | None) -> None:
    assert detect(text) == language
