"""Every detail of a loss report that one message carries, each in its own slot.

Guardians often say everything at once: "孩子李娜的社保卡丢了，身份证…，我是她妈妈王芳，身份证…，
手机…，在上海". Two ID numbers are told apart by age (a minor's is the child's, an adult's the
guardian's); names by the words in front of them; then relationship, mobile and city. What is
not clearly there is left out, and the form asks for it.

>>> today = dt.date(2026, 12, 4)
>>> found = details_in("孩子李娜的社保卡丢了，要挂失。孩子身份证110101201503073323，"
...                    "我是她妈妈王芳，身份证110101198805064321，手机13812345678，在上海。", today)
>>> [found[slot] for slot in SLOTS]  # doctest: +NORMALIZE_WHITESPACE
['李娜', '110101201503073323', '王芳', '110101198805064321', 'mother', '13812345678', '上海']
"""

from __future__ import annotations

import datetime as dt
import re

from bot.rules import identity, regions
from bot.rules.free_text import RELATIONSHIPS, relationship_in
from bot.rules.normalise import normalised

SLOTS = ("child_name", "child_id_number", "guardian_name", "guardian_id_number",
         "relationship", "phone_number", "city")

_ID = re.compile(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9A-Z])")
_MOBILE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
_HAN_NAME = r"([\u4e00-\u9fff]{2,3}?)"
_LATIN_NAME = r"([A-Z][a-z]+(?: [A-Z][a-z]+){0,2})"
_KIN_WORDS_ZH = tuple(sorted((w for words in RELATIONSHIPS.values() for w in words
                              if not w.isascii()), key=len, reverse=True))
_KIN_ZH = "|".join(_KIN_WORDS_ZH)
_KIN_EN = "|".join(sorted((w for words in RELATIONSHIPS.values() for w in words
                           if w.isascii()), key=len, reverse=True))
# A child's name: after 孩子/女儿/儿子 (and 叫/名叫), before 的 or a break.
_CHILD_ZH = re.compile(r"(?:孩子|女儿|儿子|小孩|孙子|孙女|外孙|外孙女)(?:的名字)?(?:叫|名叫|是)?"
                       + _HAN_NAME + r"(?=的|，|,|。|\s|$|社保卡|身份证)")
_CHILD_EN = re.compile(r"\b(?:[Mm]y|[Oo]ur) (?:son|daughter|child|kid|boy|girl|grandson|"
                       r"granddaughter)(?:'s name is|,| named| called| is|)\s+"
                       + _LATIN_NAME + r"\b")
# The guardian's: 我是(她妈妈)王芳 / 我叫王芳; I'm (her mother,) Wang Fang / my name is Wang Fang.
_GUARDIAN_ZH = re.compile(r"我(?:是|叫)(?:(?:她|他|孩子)(?:的)?)?(?:" + _KIN_ZH + r")?[，,\s]?"
                          + _HAN_NAME + r"(?=，|,|。|\s|$|身份证|手机|电话)")
_GUARDIAN_EN = re.compile(r"\b(?:I am|I'm|my name is|this is)\s+(?:(?:his|her|the child's|their) "
                          r"(?:" + _KIN_EN + r"),?\s+)?" + _LATIN_NAME + r"\b")
_NOT_NAMES = {"社保卡", "身份证", "手机", "监护人", "孩子", "挂失", "补办"}


def details_in(text: str, today: dt.date) -> dict[str, str]:
    """The slots one message fills; a slot it does not clearly fill is absent."""
    found: dict[str, str] = {}
    plain = normalised(text or "").text
    for number in dict.fromkeys(_ID.findall(plain.upper())):
        if identity.check_child_id_number(number, today).ok:
            found.setdefault("child_id_number", number)
        elif identity.check_guardian_id_number(number, today).ok:
            found.setdefault("guardian_id_number", number)
    mobile = _MOBILE.search(_ID.sub(" ", plain.upper()))
    if mobile:
        found["phone_number"] = mobile.group()
    for slot, patterns in (("child_name", (_CHILD_ZH, _CHILD_EN)),
                           ("guardian_name", (_GUARDIAN_ZH, _GUARDIAN_EN))):
        names = [match.group(1) for pattern in patterns for match in pattern.finditer(plain)]
        name = next((name for name in names if _could_be_name(name)
                     and name != found.get("child_name")), None)
        if name:
            found[slot] = name
    relationship = _relationship(plain)
    if relationship:
        found["relationship"] = relationship
    city = regions.mentioned_in(plain)
    if city:
        found["city"] = city.name_zh
    return found


def _could_be_name(word: str) -> bool:
    return word not in _NOT_NAMES and relationship_in(word) is None \
        and not word.startswith(_KIN_WORDS_ZH)


def _relationship(text: str) -> str | None:
    """Only from words the guardian says of themselves: "我是她妈妈", "I'm his father".

    >>> _relationship("我是她妈妈王芳"), _relationship("I'm his dad"), _relationship("妈妈说丢了")
    ('mother', 'father', None)
    """
    for clause in re.split(r"[，,。.;；!！?？]", text):
        said = re.search(r"(?:我是|我系|I am|I'm)(.*)", clause, re.IGNORECASE)
        if said:
            relationship = relationship_in(said.group(1))
            if relationship:
                return relationship
    return None
