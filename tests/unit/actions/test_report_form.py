"""The loss report form's validation: shared validators, reasons said, one item changed."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from actions.report_form import (
    ActionAskCity,
    ActionAskReportConfirmed,
    ActionStopReport,
    ValidateLossReportForm,
)
from tests.testkit.people import child_id, guardian_id, id_number
from tests.testkit.trackers import DOMAIN, responses, run, slot_values, tracker

FORM = "loss_report_form"


def validate(slot: str, value: str, **slots: object) -> tuple[dict, list[str]]:
    state = tracker(text=value, slots={slot: value, "requested_slot": slot, **slots},
                    active_loop=FORM)
    # rasa_sdk validates the slots set since the last bot turn: mark this one as just set.
    state.events.append({"event": "slot", "name": slot, "value": value})
    events, messages = run(ValidateLossReportForm(), state)
    return slot_values(events), responses(messages)


def test_a_valid_child_id_is_kept_normalised() -> None:
    number = child_id(age=9)
    values, said = validate("child_id_number", f"她的身份证是 {number[:6]} {number[6:].lower()}")
    assert values["child_id_number"] == number.upper()
    assert said == []


@pytest.mark.parametrize(
    ("typed", "response"),
    [
        ("1101052015", "utter_invalid_id_length"),
        ("110105201501010014", "utter_invalid_id_checksum"),
        ("110105201513010014", "utter_invalid_id_birth_date"),
    ],
)
def test_a_wrong_id_number_says_why(typed: str, response: str) -> None:
    values, said = validate("child_id_number", typed)
    assert values["child_id_number"] is None
    assert said == [response]


def test_an_adult_as_the_child_is_refused() -> None:
    values, said = validate("child_id_number", guardian_id(age=30))
    assert values["child_id_number"] is None and said == ["utter_invalid_id_not_minor"]


def test_a_minor_as_the_guardian_is_refused() -> None:
    values, said = validate("guardian_id_number", child_id(age=16))
    assert values["guardian_id_number"] is None and said == ["utter_invalid_id_not_adult"]


def test_the_third_failure_on_one_slot_offers_12333() -> None:
    counts = None
    for attempt in range(1, 4):
        values, said = validate("phone_number", "12345", failed_attempts=counts)
        counts = values["failed_attempts"]
        assert counts == {"phone_number": attempt}
        assert ("utter_too_many_failures" in said) == (attempt >= 3)


def test_a_success_resets_that_slots_count() -> None:
    values, _ = validate("phone_number", "+86 139 1234 5678",
                         failed_attempts={"phone_number": 2, "city": 1})
    assert values["phone_number"] == "13912345678"
    assert values["failed_attempts"] == {"city": 1}


@pytest.mark.parametrize("typed", ["010 12345678", "23800138000", "1380013800"])
def test_not_a_mainland_mobile(typed: str) -> None:
    values, said = validate("phone_number", typed)
    assert values["phone_number"] is None and said == ["utter_invalid_phone"]


@pytest.mark.parametrize(("typed", "city"), [("Beijing", "北京"), ("xi'an", "西安"),
                                             ("上海市", "上海"), ("other", "全国")])
def test_city_names_in_both_languages(typed: str, city: str) -> None:
    values, _ = validate("city", typed)
    assert values["city"] == city


def test_an_unknown_city_lists_the_known_ones() -> None:
    values, said = validate("city", "Atlantis")
    assert values["city"] is None and said == ["utter_unknown_city"]


@pytest.mark.parametrize(("typed", "relationship"),
                         [("I'm his mum", "mother"), ("爸爸", "father"), ("外婆", "grandparent")])
def test_relationships(typed: str, relationship: str) -> None:
    values, _ = validate("relationship", typed)
    assert values["relationship"] == relationship


def test_a_name_with_digits_is_refused() -> None:
    values, said = validate("child_name", "13800138000")
    assert values["child_name"] is None and said == ["utter_invalid_name"]


def test_no_to_the_summary_asks_which_item_then_clears_only_that_one() -> None:
    filled = {"child_name": "李娜", "child_id_number": child_id(), "guardian_name": "李强",
              "guardian_id_number": guardian_id(), "relationship": "father",
              "phone_number": "13800138000", "city": "北京"}
    values, _ = validate("report_confirmed", False, **filled)  # type: ignore[arg-type]
    assert values["report_confirmed"] is False
    # The domain's order then puts item_to_change first among the empty slots.
    state = tracker(slots={**filled, "report_confirmed": False})
    required = asyncio.run(ValidateLossReportForm().required_slots(
        DOMAIN["forms"][FORM]["required_slots"], None, state, DOMAIN))  # type: ignore[arg-type]
    assert [s for s in required if state.get_slot(s) is None] == ["item_to_change"]

    values, _ = validate("item_to_change", "手机号", **filled, report_confirmed=False)
    assert values["phone_number"] is None
    assert values["report_confirmed"] is None
    assert "child_name" not in values  # everything else untouched
    assert values["requested_slot"] == "phone_number"


@pytest.mark.parametrize(("language", "first"), [("zh", "上海"), ("en", "Shanghai")])
def test_the_city_the_childs_id_was_registered_in_is_offered_first(language: str,
                                                                    first: str) -> None:
    shanghai_child = id_number(dt.date(2016, 3, 7), region="310101")
    state = tracker(slots={"child_id_number": shanghai_child, "language": language},
                    active_loop=FORM)
    _, messages = run(ActionAskCity(), state)
    assert responses(messages) == ["utter_ask_city_registered"]
    buttons = messages[0]["buttons"]
    assert messages[0]["city"] == first and buttons[0] == {"title": first, "payload": first}
    titles = [button["title"] for button in buttons]
    assert len(titles) == len(set(titles)) >= 2  # the others still one tap away


@pytest.mark.parametrize("region", [None, "320102"])  # no ID yet; registered in a city we lack
def test_without_a_known_registration_city_the_plain_question_is_asked(
        region: str | None) -> None:
    slots = {"child_id_number": id_number(dt.date(2016, 3, 7), region=region)} if region else {}
    _, messages = run(ActionAskCity(), tracker(slots=slots, active_loop=FORM))
    assert responses(messages) == ["utter_ask_city"]
    assert not messages[0].get("buttons")  # the response's own five cities


def test_the_summary_masks_id_and_phone_numbers() -> None:
    child, guardian = child_id(), guardian_id()
    state = tracker(slots={"child_name": "Li Na", "child_id_number": child,
                           "guardian_name": "Li Qiang", "guardian_id_number": guardian,
                           "relationship": "father", "phone_number": "13800138000",
                           "city": "北京", "language": "en"})
    _, messages = run(ActionAskReportConfirmed(), state)
    summary = messages[0]
    assert summary["response"] == "utter_report_summary"
    assert summary["child_id"] == f"{child[:4]}{'*' * 10}{child[-4:]}"
    assert child not in str(messages) and guardian not in str(messages)
    assert "13800138000" not in str(messages)
    assert summary["city"] == "Beijing" and summary["relationship"] == "Father"


def test_stop_clears_every_personal_slot_and_ends_the_form() -> None:
    state = tracker(intent="stop", slots={"child_id_number": child_id(), "city": "北京",
                                          "reference_number": "SC-7K3F-9Q2M"},
                    active_loop=FORM)
    events, messages = run(ActionStopReport(), state)
    values = slot_values(events)
    assert values["child_id_number"] is None and values["phone_number"] is None
    assert "reference_number" not in values  # an earlier report stays reachable
    assert {"event": "active_loop", "timestamp": None, "name": None} in events
    assert responses(messages) == ["utter_report_stopped"]


def test_today_is_chinas_date() -> None:
    from actions.report_form import today

    assert abs((today() - dt.date.today()).days) <= 1
