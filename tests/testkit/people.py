"""Valid made-up resident ID numbers and phones for tests (the check character computed)."""

from __future__ import annotations

import datetime as dt

from stdnum.cn import ric

from bot.rasa.scrub import mask_name
from bot.rules.identity import masked_numbers

REGION_CODES = ("110105", "310101", "510104", "610102", "440106", "440305", "330102", "420102")


def id_number(born: dt.date, region: str = "110105", sequence: int = 1) -> str:
    """An 18-character resident ID number for someone born on `born`."""
    body = f"{region}{born:%Y%m%d}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")


def child_id(age: int = 8, sequence: int = 1, today: dt.date | None = None) -> str:
    today = today or dt.date.today()
    return id_number(dt.date(today.year - age, 1, 1), sequence=sequence)


def guardian_id(age: int = 40, sequence: int = 2, today: dt.date | None = None) -> str:
    today = today or dt.date.today()
    return id_number(dt.date(today.year - age - 1, 6, 15), sequence=sequence)


def report_body(conversation_id: str = "conv-1", city: str = "北京",
                child: str | None = None, guardian: str | None = None,
                phone: str = "+86 138 0013 8000") -> dict:
    return {
        "child": {"name": "王小明", "id_number": child or child_id()},
        "guardian": {"name": "王芳", "id_number": guardian or guardian_id(),
                     "relationship": "mother", "phone": phone},
        "city": city,
        "conversation_id": conversation_id,
    }


def with_check_character(first17: str) -> str:
    """Any 17 digits made into a number whose check character is right."""
    return first17 + ric.calc_check_digit(first17 + "0")


def as_kept(message: str, names: tuple[str, ...]) -> str:
    """A message as a filed conversation keeps it: a name the form held (one of `names`)
    masked, every whole ID and mobile number masked."""
    return mask_name(message) if message in names else masked_numbers(message)
