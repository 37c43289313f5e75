"""The shared validators: examples, doctests and properties (hypothesis)."""

from __future__ import annotations

import datetime as dt
import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rules import identity
from tests.testkit import people

TODAY = dt.date(2026, 6, 1)
valid_ids = st.builds(people.id_number,
                      st.dates(dt.date(1900, 1, 1), TODAY),
                      st.sampled_from(people.REGION_CODES),
                      st.integers(0, 999))


def test_doctests() -> None:
    assert doctest.testmod(identity).failed == 0


@given(valid_ids)
def test_any_valid_generated_id_passes(number: str) -> None:
    checked = identity.check_id_number(number, TODAY)
    assert checked.ok and checked.value == number


@given(valid_ids, st.integers(0, 17), st.sampled_from("0123456789X"))
def test_any_single_character_change_fails(number: str, position: int, char: str) -> None:
    changed = number[:position] + char + number[position + 1:]
    if changed != number:
        assert not identity.check_id_number(changed).ok


@given(valid_ids)
def test_spaces_and_lower_case_are_normalised(number: str) -> None:
    typed = f" {number[:6]} {number[6:14]} {number[14:].lower()} "
    assert identity.check_id_number(typed).value == number


@pytest.mark.parametrize("number, reason", [
    ("", "missing"), ("1101051949123100", "length"), ("11010519491231002XX", "length"),
    ("1101051949A231002X", "format"), ("110105194912310021", "checksum"),
    (people.with_check_character("11010519490231002"), "birth_date"),
    (people.with_check_character("99010519491231002"), "region"),
])
def test_reasons(number: str, reason: str) -> None:
    assert identity.check_id_number(number).reason == reason


def test_domain_examples_are_valid() -> None:
    for number in ("11010519491231002X", "440524188001010014"):
        assert identity.check_id_number(number).ok


def test_a_birth_date_in_the_future_is_refused() -> None:
    number = people.id_number(TODAY + dt.timedelta(days=1))
    assert identity.check_id_number(number, TODAY).reason == "birth_date"
    assert identity.check_id_number(number).ok  # without a day, only the format is checked


def test_minor_and_adult_turn_on_the_18th_birthday() -> None:
    number = people.id_number(dt.date(2008, 6, 1))
    assert identity.check_child_id_number(number, dt.date(2026, 5, 31)).ok
    assert identity.check_child_id_number(number, TODAY).reason == "not_minor"
    assert identity.check_guardian_id_number(number, dt.date(2026, 5, 31)).reason == "not_adult"
    assert identity.check_guardian_id_number(number, TODAY).ok
    assert identity.birth_date(number) == dt.date(2008, 6, 1)


@given(st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)), st.integers(0, 120))
def test_age_on_a_birthday_is_the_years_passed(born: dt.date, years: int) -> None:
    if born.month == 2 and born.day == 29:
        return
    try:
        birthday = born.replace(year=born.year + years)
    except ValueError:
        return
    assert identity.age_on(born, birthday) == years
    assert identity.age_on(born, birthday - dt.timedelta(days=1)) == years - 1


@pytest.mark.parametrize("typed", ["13800138000", "+86 138 0013 8000", "0086-138-0013-8000",
                                   "+8613800138000", " 138-0013-8000 ", "(+86) 13800138000"])
def test_mobile_forms(typed: str) -> None:
    assert identity.check_mobile(typed) == identity.Checked(True, "13800138000", None)


@pytest.mark.parametrize("typed, reason", [
    ("", "missing"), ("12345678901", "not_mobile"), ("010 12345678", "not_mobile"),
    ("1380013800", "not_mobile"), ("+1 415 555 0100", "not_mobile"), ("phone", "not_mobile"),
    ("138001380001", "not_mobile")])
def test_not_mobiles(typed: str, reason: str) -> None:
    assert identity.check_mobile(typed).reason == reason


@given(st.text(alphabet=st.characters(blacklist_characters="*"), max_size=64))
def test_masking_never_reveals_more_than_8_characters(value: str) -> None:
    masked = identity.mask(value)
    shown = len(masked) - masked.count("*")
    assert len(masked) == len(value)
    assert shown <= 8 and shown <= len(value) // 2


def test_mask_example() -> None:
    assert identity.mask("110105194912313329") == "1101**********3329"


@given(st.builds(lambda _: identity.new_reference(), st.integers()))
def test_generated_references_parse_back_in_every_typed_form(reference: str) -> None:
    assert identity.parse_reference(reference).value == reference
    assert identity.parse_reference(reference.lower().replace("-", "")).value == reference
    assert identity.parse_reference(reference[3:]).value == reference


def test_confusables_and_bad_references() -> None:
    assert identity.parse_reference("sc-ilo0-abcd").value == "SC-1100-ABCD"
    assert identity.parse_reference("SC-7K3F-9Q2").reason == "length"
    assert identity.parse_reference("SC-7K3F-9Q2U").reason == "format"
    assert identity.parse_reference("").reason == "missing"
