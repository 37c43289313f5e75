"""A guardian's message as the NLU model reads it, with a map back to what was typed.

Phones type the same words many ways: full-width digits and letters from Chinese keyboards,
traditional characters, ID and phone numbers broken into groups by spaces or dashes, a
lower-case check character `x`, a `+86` in front of a mobile number. Training and serving
both read the normalised text (the pipeline's first component), so the model learns one
spelling; every character of it remembers which typed character it came from, so entities
can point at the guardian's own characters again.

>>> text = normalised("孩子社保卡遺失了，身份證１１０１０１ ２０１５０３０７ ３３２x")
>>> text.text
'孩子社保卡遗失了,身份证11010120150307332X'
>>> start, end = text.original_span(*text.span_of("11010120150307332X"))
>>> text.typed[start:end]
'１１０１０１ ２０１５０３０７ ３３２x'
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import opencc

# 18-character ID numbers and 11-digit mobiles, typed in groups: separators between digits.
_GROUPED = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[ -]?)?\d(?:[ \-]?\d){9,16}(?:[ \-]?[0-9Xx])")
_SEPARATOR = re.compile(r"[ \-]")
_COUNTRY = re.compile(r"^\+?86[ -]?")


@functools.lru_cache(maxsize=1)
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _one_simplified(char: str) -> str:
    converted = _to_simplified().convert(char)
    return converted if len(converted) == 1 else char


@dataclass(frozen=True)
class Normalised:
    """The text the model reads, and for each of its characters the typed one's index."""

    text: str
    origin: tuple[int, ...]
    typed: str

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Where the characters `text[start:end]` stand in what the guardian typed.

        >>> normalised("ＳＣ－７Ｋ３Ｆ").original_span(0, 7)
        (0, 7)
        """
        if not self.origin or start >= end:
            return start, end
        start = min(max(start, 0), len(self.origin) - 1)
        end = min(max(end, start + 1), len(self.origin))
        return self.origin[start], self.origin[end - 1] + 1

    def span_of(self, part: str) -> tuple[int, int]:
        """The span of the first `part` in the normalised text (for tests and examples)."""
        start = self.text.index(part)
        return start, start + len(part)


# The pipeline and the form's answer check read the same message in one turn: computed once.
@functools.lru_cache(maxsize=512)
def normalised(typed: str) -> Normalised:
    """NFKC (full width to half width), traditional to simplified Chinese, separators and a
    `+86` taken out of grouped numbers, an ID number's `x` upper-cased.

    >>> [normalised(typed).text for typed in ("１３８-１２３４-５６７８", "+86 138 1234 5678",
    ...                                        "call me at 138 1234 5678 please", "怎麼補辦")]
    ['13812345678', '13812345678', 'call me at 13812345678 please', '怎么补办']
    >>> normalised("Hi there").text, normalised("11010120150307332x").text
    ('Hi there', '11010120150307332X')
    >>> normalised("2015 03 07").text  # a date, not a number we know: left alone
    '2015 03 07'
    """
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(typed):
        # One character at a time so each output character knows its source.
        for out in unicodedata.normalize("NFKC", char) if not char.isascii() else char:
            chars.append(out)
            origin.append(index)
    text = "".join(chars)
    if not text.isascii():
        simplified = _to_simplified().convert(text)
        if len(simplified) == len(text):
            text = simplified
        else:  # a phrase rule changed the length: convert character by character instead
            text = "".join(_one_simplified(char) for char in text)
    return _numbers_joined(text, origin, typed)


def _numbers_joined(text: str, origin: list[int], typed: str) -> Normalised:
    kept_text: list[str] = []
    kept_origin: list[int] = []
    position = 0
    for match in _GROUPED.finditer(text):
        number = _COUNTRY.sub("", match.group())
        digits = _SEPARATOR.sub("", number)
        if len(digits) not in (11, 18) or (len(digits) == 11 and not digits.startswith("1")):
            continue
        kept_text.append(text[position:match.start()])
        kept_origin.extend(origin[position:match.start()])
        skipped = len(match.group()) - len(number)
        for offset, char in enumerate(number, start=match.start() + skipped):
            if _SEPARATOR.fullmatch(char):
                continue
            kept_text.append(char.upper() if char == "x" and len(digits) == 18 else char)
            kept_origin.append(origin[offset])
        position = match.end()
    kept_text.append(text[position:])
    kept_origin.extend(origin[position:])
    return Normalised("".join(kept_text), tuple(kept_origin), typed)
