"""Rules about people and numbers, as pure functions shared by the card service and the bot.

Every check returns a `Checked`: the normalised value when it passes, else a
machine-readable `reason` the bot turns into words (domain.yml) and the API
puts in a 422's `fields`.

>>> check_id_number("11010519491231002x")
Checked(ok=True, value='11010519491231002X', reason=None)
>>> check_id_number("110105194912310021").reason
'checksum'
>>> check_mobile("+86 138-0013-8000").value
'13800138000'
>>> mask("11010519491231002X")
'1101**********002X'
>>> parse_reference("sc-7k3f-9q2m").value
'SC-7K3F-9Q2M'
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import unicodedata
from dataclasses import dataclass

import phonenumbers
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric

ADULT_AGE = 18  # Civil Code Art. 17: under 18 is a minor.
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFUSABLES = str.maketrans({"I": "1", "L": "1", "O": "0"})
REFERENCE_PREFIX = "SC"

# Reason codes (stable: the bot and the API's `fields` use them).
MISSING = "missing"
LENGTH = "length"
FORMAT = "format"
CHECKSUM = "checksum"
BIRTH_DATE = "birth_date"
REGION = "region"
NOT_MINOR = "not_minor"
NOT_ADULT = "not_adult"
NOT_MOBILE = "not_mobile"

# How python-stdnum's administrative codes name places: a municipality's districts sit
# under 市辖区 or 县, and only a name ending in 市 is a city.
_CITY_CODES: dict[str, tuple[str, ...]] = {"no_city": ("市辖区", "县"), "city_suffix": ("市",)}


@dataclass(frozen=True)
class Checked:
    ok: bool
    value: str | None = None
    reason: str | None = None

    @classmethod
    def passed(cls, value: str) -> Checked:
        return cls(True, value, None)

    @classmethod
    def failed(cls, reason: str) -> Checked:
        return cls(False, None, reason)


def normalise_id_number(value: str) -> str:
    """Spaces and dashes out, a lower-case check character up.

    >>> normalise_id_number(" 110105 19491231 002x ")
    '11010519491231002X'
    """
    return "".join(value.split()).replace("-", "").upper()


def check_id_number(value: str, today: dt.date | None = None) -> Checked:
    """A resident ID number (GB 11643-1999) by python-stdnum, born no later than `today`.

    >>> check_id_number("440524188001010014").ok
    True
    >>> check_id_number("4405241880010100").reason
    'length'
    >>> check_id_number("4405241880A1010014").reason
    'format'
    >>> check_id_number("110105194913310021").reason
    'birth_date'
    >>> check_id_number("990105194912310023").reason
    'region'
    >>> check_id_number("110105209912310010", dt.date(2026, 1, 1)).reason
    'birth_date'
    """
    number = normalise_id_number(value or "")
    if not number:
        return Checked.failed(MISSING)
    try:
        ric.validate(number)
    except stdnum_errors.InvalidLength:
        return Checked.failed(LENGTH)
    except stdnum_errors.InvalidFormat:
        return Checked.failed(FORMAT)
    except stdnum_errors.InvalidChecksum:
        return Checked.failed(CHECKSUM)
    except stdnum_errors.InvalidComponent:
        # Either the date is impossible or the region code unknown; say which.
        try:
            ric.get_birth_date(number)
        except stdnum_errors.ValidationError:
            return Checked.failed(BIRTH_DATE)
        # stdnum also ties a county code to the years it existed, which rejects real
        # numbers (docs/domain.md's 440524188001010014); a known province is enough.
        if not _known_province(number):
            return Checked.failed(REGION)
    except stdnum_errors.ValidationError:
        return Checked.failed(FORMAT)
    if today is not None and ric.get_birth_date(number) > today:
        return Checked.failed(BIRTH_DATE)
    return Checked.passed(number)


def _known_province(number: str) -> bool:
    from stdnum import numdb

    found = numdb.get("cn/loc").info(number[:6])
    return any("province" in props for _part, props in found)


def registered_city(id_number: str) -> str | None:
    """The city (prefecture or municipality) where a valid ID number was first issued,
    from the administrative codes python-stdnum ships; None when the code has no city.

    >>> registered_city("110105201603070248")
    '北京市'
    >>> registered_city("440305201001010011")
    '深圳市'
    """
    from stdnum import numdb

    number = normalise_id_number(id_number)
    # The first four digits name the city; a municipality's districts sit under 市辖区.
    levels = numdb.get("cn/loc").info(number[:4] + "00")
    names = {key: value for _part, props in levels for key, value in props.items()}
    city = names.get("county", "").split(",")[-1].split("]")[-1]
    if city in ("", *_CITY_CODES["no_city"]):
        city = names.get("province", "")
    return city if city.endswith(_CITY_CODES["city_suffix"]) else None


def birth_date(id_number: str) -> dt.date:
    """The birth date written in a (valid) ID number.

    >>> birth_date("11010519491231002X")
    datetime.date(1949, 12, 31)
    """
    return ric.get_birth_date(normalise_id_number(id_number))


def age_on(born: dt.date, day: dt.date) -> int:
    """Whole years completed on `day` (a 29 February birthday counts on 1 March).

    >>> age_on(dt.date(2008, 2, 29), dt.date(2026, 2, 28))
    17
    >>> age_on(dt.date(2008, 2, 29), dt.date(2026, 3, 1))
    18
    """
    before_birthday = (day.month, day.day) < (born.month, born.day)
    return day.year - born.year - int(before_birthday)


def is_minor(id_number: str, day: dt.date) -> bool:
    return age_on(birth_date(id_number), day) < ADULT_AGE


def is_adult(id_number: str, day: dt.date) -> bool:
    return not is_minor(id_number, day)


def check_child_id_number(value: str, day: dt.date) -> Checked:
    """A valid ID number of someone under 18 on `day`.

    >>> check_child_id_number("11010519491231002X", dt.date(2026, 1, 1)).reason
    'not_minor'
    """
    checked = check_id_number(value, day)
    if checked.ok and checked.value and not is_minor(checked.value, day):
        return Checked.failed(NOT_MINOR)
    return checked


def check_guardian_id_number(value: str, day: dt.date) -> Checked:
    """A valid ID number of someone 18 or over on `day`.

    >>> check_guardian_id_number("11010519491231002X", dt.date(2026, 1, 1)).ok
    True
    """
    checked = check_id_number(value, day)
    if checked.ok and checked.value and not is_adult(checked.value, day):
        return Checked.failed(NOT_ADULT)
    return checked


def check_mobile(value: str) -> Checked:
    """A mainland China mobile number, normalised to its 11 digits.

    >>> check_mobile("0086 139 1234 5678").value
    '13912345678'
    >>> check_mobile("010 12345678").reason
    'not_mobile'
    """
    raw = (value or "").strip()
    if not raw:
        return Checked.failed(MISSING)
    try:
        parsed = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return Checked.failed(NOT_MOBILE)
    national = str(parsed.national_number)
    mobile_types = (phonenumbers.PhoneNumberType.MOBILE,
                    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    if (parsed.country_code != 86 or len(national) != 11 or national[0] != "1"
            or national[1] not in "3456789" or not phonenumbers.is_valid_number(parsed)
            or phonenumbers.number_type(parsed) not in mobile_types):
        return Checked.failed(NOT_MOBILE)
    return Checked.passed(national)


def mask(value: str) -> str:
    """Enough to recognise, never the whole: at most 4 characters each end, at most half.

    >>> mask("11010519491231002X")
    '1101**********002X'
    >>> mask("13800138000")
    '13*******00'
    >>> mask("abc")
    '***'
    """
    keep = min(4, len(value) // 4)
    if keep == 0:
        return "*" * len(value)
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


# 11 to 18 digits, possibly grouped by spaces or dashes, possibly full width, an ID's X last.
_NUMBER_IN_TEXT = re.compile(r"(?<![\d])\d(?:[ \-]?\d){9,16}(?:[ \-]?[\dXx])(?![\d])")


def _masked_match(found: re.Match[str]) -> str:
    typed = found.group()
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", typed) if ch not in " -")
    return mask(digits) if len(digits) >= 11 else typed


def masked_numbers(text: str) -> str:
    """Whole ID and mobile numbers in free text masked, the rest untouched.

    >>> masked_numbers("孩子身份证 110105 20150101 0013，手机１３８００１３８０００")
    '孩子身份证 1101**********0013，手机13*******00'
    """
    return _NUMBER_IN_TEXT.sub(_masked_match, text) if text else text


def new_reference() -> str:
    """A fresh random reference, `SC-` and two groups of four Crockford base32 characters."""
    body = "".join(secrets.choice(CROCKFORD) for _ in range(8))
    return f"{REFERENCE_PREFIX}-{body[:4]}-{body[4:]}"


def parse_reference(value: str) -> Checked:
    """The canonical form of a reference as a person may type it.

    Lower case, no dashes or spaces, no `SC` prefix, and Crockford's confusables
    (I and L for 1, O for 0) are all accepted.

    >>> parse_reference("sc7k3f9q2m").value
    'SC-7K3F-9Q2M'
    >>> parse_reference("7K3F 9Q2M").value
    'SC-7K3F-9Q2M'
    >>> parse_reference("SC-7K3F-9QOI").value
    'SC-7K3F-9Q01'
    >>> parse_reference("SC-7K3F").reason
    'length'
    >>> parse_reference("SC-7K3F-9Q2U").reason
    'format'
    """
    compact = "".join((value or "").split()).replace("-", "").upper()
    if not compact:
        return Checked.failed(MISSING)
    if len(compact) == 10 and compact.startswith(REFERENCE_PREFIX):
        compact = compact[2:]
    if len(compact) != 8:
        return Checked.failed(LENGTH)
    compact = compact.translate(_CONFUSABLES)
    if any(char not in CROCKFORD for char in compact):
        return Checked.failed(FORMAT)
    return Checked.passed(f"{REFERENCE_PREFIX}-{compact[:4]}-{compact[4:]}")
