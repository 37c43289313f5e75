"""Which language a guardian wrote in: Chinese when any CJK ideograph is present."""

from __future__ import annotations

import re

CHINESE = "zh"
ENGLISH = "en"

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def detect(text: str | None) -> str | None:
    """The reply language for `text`, or None when it says nothing (digits, emoji, a payload).

    >>> detect("我孩子的社保卡丢了")
    'zh'
    >>> detect("my son lost his card, 北京")
    'zh'
    >>> detect("hi")
    'en'
    >>> detect("11010519491231002X") is None
    True
    """
    if not text or text.startswith("/"):
        return None
    if _CJK.search(text):
        return CHINESE
    if _LATIN_WORD.search(text):
        return ENGLISH
    return None
