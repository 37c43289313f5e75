"""Request bodies checked field by field: every bad field named, with a reason code."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bot.rules import identity, regions

TYPE = "type"
TOO_LONG = "too_long"
UNKNOWN_STATUS = "unknown_status"
NAME_MAX = 100
TEXT_MAX = 200


@dataclass(frozen=True)
class LossReportInput:
    child_name: str
    child_id_number: str
    guardian_name: str
    guardian_id_number: str
    relationship: str
    phone: str
    city: str
    region: regions.Region
    conversation_id: str


def _text(value: Any, limit: int) -> tuple[str | None, str | None]:
    if value is None:
        return None, identity.MISSING
    if not isinstance(value, str):
        return None, TYPE
    value = value.strip()
    if not value:
        return None, identity.MISSING
    if len(value) > limit:
        return None, TOO_LONG
    return value, None


def _object(body: dict[str, Any], name: str, fields: dict[str, str]) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        fields[name] = identity.MISSING
        return {}
    if not isinstance(value, dict):
        fields[name] = TYPE
        return {}
    return value


def loss_report(body: dict[str, Any], today: dt.date) -> tuple[LossReportInput | None,
                                                                 dict[str, str]]:
    """The report to file, or the reason for every bad field (`child.id_number` style paths).

    An unknown city is accepted: the report is filed under the national default rules.
    """
    fields: dict[str, str] = {}
    clean: dict[str, str] = {}

    def text(path: str, value: Any, limit: int) -> None:
        got, reason = _text(value, limit)
        if reason:
            fields[path] = reason
        elif got is not None:
            clean[path] = got

    def checked(path: str, value: Any, check: Any) -> None:
        if value is not None and not isinstance(value, str):
            fields[path] = TYPE
            return
        result = check(value or "")
        if result.ok:
            clean[path] = result.value
        else:
            fields[path] = result.reason

    child = _object(body, "child", fields)
    guardian = _object(body, "guardian", fields)
    if "child" not in fields:
        text("child.name", child.get("name"), NAME_MAX)
        checked("child.id_number", child.get("id_number"),
                lambda v: identity.check_child_id_number(v, today))
    if "guardian" not in fields:
        text("guardian.name", guardian.get("name"), NAME_MAX)
        checked("guardian.id_number", guardian.get("id_number"),
                lambda v: identity.check_guardian_id_number(v, today))
        text("guardian.relationship", guardian.get("relationship"), NAME_MAX)
        checked("guardian.phone", guardian.get("phone"), identity.check_mobile)
    text("city", body.get("city"), NAME_MAX)
    text("conversation_id", body.get("conversation_id"), TEXT_MAX)
    if fields:
        return None, fields
    return LossReportInput(
        child_name=clean["child.name"],
        child_id_number=clean["child.id_number"],
        guardian_name=clean["guardian.name"],
        guardian_id_number=clean["guardian.id_number"],
        relationship=clean["guardian.relationship"],
        phone=clean["guardian.phone"],
        city=clean["city"],
        region=regions.resolve(clean["city"]),
        conversation_id=clean["conversation_id"],
    ), {}


def _id_number(body: dict[str, Any], name: str) -> tuple[str | None, dict[str, str]]:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        return None, {name: TYPE}
    result = identity.check_id_number(value or "")
    if not result.ok:
        return None, {name: result.reason or identity.FORMAT}
    return result.value, {}


def guardian_id_number(body: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
    """A lookup's body: the guardian's ID number."""
    return _id_number(body, "guardian_id_number")


def cancel_check(body: dict[str, Any]) -> tuple[str | None, str | None, dict[str, str]]:
    """A cancel's body: the guardian's and the child's ID numbers, both named when bad. Only
    the format is checked for the child (no age), so a child who has turned 18 since the
    filing is still recognised."""
    guardian, guardian_fields = _id_number(body, "guardian_id_number")
    child, child_fields = _id_number(body, "child_id_number")
    return guardian, child, {**guardian_fields, **child_fields}


def conversation_id(body: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
    """An erasure's body: the id of the conversation asking, as the filing named it."""
    value, reason = _text(body.get("conversation_id"), TEXT_MAX)
    return (None, {"conversation_id": reason}) if reason else (value, {})
