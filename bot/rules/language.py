"""Which language a guardian wrote in: Chinese when any CJK ideograph is present."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

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


SUPPORTED = (ENGLISH, CHINESE)


def language_of(text: str | None, entities: Iterable[Mapping[str, Any]] = (),
                metadata: Mapping[str, Any] | None = None) -> str | None:
    """The language a message asks for: an explicit `language` entity (a button or the
    page's first payload carries one), else the script of the text, else the page's locale.

    >>> language_of("/greet", [{"entity": "language", "value": "zh"}])
    'zh'
    >>> language_of("hello", metadata={"language": "zh-CN"})
    'en'
    >>> language_of("EXTERNAL: EXTERNAL_card_ready") is None
    True
    """
    text = str(text or "")
    if text.startswith("EXTERNAL: "):
        # An event from the card service, not the guardian: the language stays.
        return None
    for entity in entities:
        if entity.get("entity") == "language" and entity.get("value") in SUPPORTED:
            return str(entity["value"])
    text_language = detect(text)
    if text_language:
        return text_language
    locale = str((metadata or {}).get("language") or "")[:2].lower()
    return locale if locale in SUPPORTED else None
