"""The scripts simulated guardians follow: a whole loss report, then a status check."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from tests.testkit.people import id_number

REFERENCE = re.compile(r"SC-[0-9A-Z]{4}-[0-9A-Z]{4}")
# Region codes of cities the card service knows, so every number is a plausible one.
REGIONS = ("110105", "310101", "510104", "440106")


@dataclass(frozen=True)
class Turn:
    message: str
    # "files" expects a reference in the reply; "status" expects that reference back.
    expect: str = "reply"


@dataclass
class Script:
    language: str
    turns: list[Turn] = field(default_factory=list)


def people(index: int, today: dt.date | None = None) -> tuple[str, str]:
    """A unique, valid (child, guardian) pair of ID numbers for guardian number `index`.

    Sequence numbers have three digits; the birth day moves on every thousand guardians.
    """
    today = today or dt.date.today()
    day = index // 1000
    region = REGIONS[index % len(REGIONS)]
    child = id_number(dt.date(today.year - 9, 1, 1) + dt.timedelta(days=day), region,
                      index % 1000)
    guardian = id_number(dt.date(today.year - 40, 6, 15) + dt.timedelta(days=day), region,
                         index % 1000)
    return child, guardian


def loss_report(index: int) -> Script:
    """Greeting, every slot of the form one per turn, confirmation, status check.

    Even guardians write English, odd ones Chinese: the model serves both. The status check
    asks for "my report" (the conversation keeps its reference), then gives the guardian's
    ID number; the reply must name the reference that was filed.
    """
    child, guardian = people(index)
    if index % 2 == 0:
        return Script("en", [
            Turn("hi"),
            Turn("my son lost his social security card"),
            Turn("yes"),
            Turn("Li Ming"),
            Turn(child),
            Turn("Li Qiang"),
            Turn(guardian),
            Turn("I'm his father"),
            Turn("13800138000"),
            Turn("Beijing"),
            Turn("yes", "files"),
            Turn("check the progress of my report"),
            Turn(guardian, "status"),
        ])
    return Script("zh", [
        Turn("你好"),
        Turn("我孩子的社保卡丢了"),
        Turn("好的"),
        Turn("王小明"),
        Turn(child),
        Turn("王建国"),
        Turn(guardian),
        Turn("我是孩子爸爸"),
        Turn("13912345678"),
        Turn("上海"),
        Turn("对，提交", "files"),
        Turn("查询办理进度"),
        Turn(guardian, "status"),
    ])


def filing_one_at_a_time(index: int) -> Script:
    """The loss report as `loss_report` types it, from the loss to the filed reference."""
    turns = loss_report(index).turns
    end = next(i for i, turn in enumerate(turns) if turn.expect == "files")
    return Script(loss_report(index).language, turns[1:end + 1])


def filing_in_one_message(index: int) -> Script:
    """All seven details in the first message, then yes to the offer and to the summary."""
    child, guardian = people(index)
    if index % 2 == 0:
        return Script("en", [
            Turn(f"My son Li Ming lost his social security card. His ID number is {child}. "
                 f"I'm his father Li Qiang, my ID is {guardian}, phone 13800138000, "
                 "we are in Beijing."),
            Turn("yes"),
            Turn("yes", "files"),
        ])
    return Script("zh", [
        Turn(f"孩子王小明的社保卡丢了，要挂失。孩子身份证{child}，我是他爸爸王建国，"
             f"身份证{guardian}，手机13912345678，在上海。"),
        Turn("好的"),
        Turn("对，提交", "files"),
    ])


def _greetings(second: str) -> Script:
    return Script("en", [Turn("hello"), Turn(second), Turn("are you a bot?"), Turn("bye")])


def moodbot(index: int) -> Script:
    """Greeting-level turns for the bare `rasa init` bot (it has no form)."""
    return _greetings("I am feeling great")


def greeting_only(index: int) -> Script:
    """The same greeting-level turns against our stack, for a like-for-like ratio."""
    return _greetings("thank you")
