"""Which domain.yml response an action says, and the words it slots into the {placeholders}.

The one place in Python that names a response by a value (an intent, a status's next step, an
ID check's reason): `BUILT` lists every name it can build, and tests/unit/test_wording.py
checks that each has a Chinese and an English variation. Whole sentences stay in domain.yml;
the few words picked or joined by a value come from replies.yml, beside this module.

>>> next_step("collect_card")
'utter_next_step_collect_card'
>>> relationship("grandparent", "zh"), relationship("nephew", "en")
('祖父母', 'Guardian')
>>> refused_items(["child_id_number", "city"], "en")
"child's ID number, city"
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from bot.card_client import HistoryEntry
from bot.rules import identity, regions, statuses
from bot.rules.china_time import minute
from bot.rules.regions import Region

DATA = Path(__file__).with_name("replies.yml")

# intent -> its answer; every answer may use the city's words (region_words).
ANSWERS = {
    "ask_reissue_steps": "utter_reissue_steps",
    "ask_loss_channels": "utter_loss_channels",
    "ask_required_documents": "utter_required_documents",
    "ask_where_to_go": "utter_where_to_go",
    "ask_processing_time": "utter_processing_time",
    "ask_fee": "utter_fee",
    "ask_card_info": "utter_card_info",
    "ask_activation": "utter_activation",
    # "No" to filing now: the steps, so the guardian knows what to do instead.
    "deny": "utter_reissue_steps",
}
# Answers with the city's own figures: without a known city, a hint to name one follows.
CITY_DEPENDENT = frozenset({"utter_reissue_steps", "utter_loss_channels", "utter_where_to_go",
                            "utter_processing_time", "utter_fee"})
# Every reason identity's ID-number checks give.
ID_REASONS = (identity.MISSING, identity.LENGTH, identity.FORMAT, identity.CHECKSUM,
              identity.BIRTH_DATE, identity.REGION, identity.NOT_MINOR, identity.NOT_ADULT)


def next_step(key: str) -> str:
    """What to do next at a status, by its key in statuses.TABLE."""
    return f"utter_next_step_{key}"


def invalid_id(reason: str | None) -> str:
    """Why an ID number was refused, by a failed check's reason (one of ID_REASONS)."""
    return f"utter_invalid_id_{reason}"


BUILT: frozenset[str] = frozenset({
    *ANSWERS.values(),
    *(next_step(status.next_step) for status in statuses.TABLE.values()),
    *(invalid_id(reason) for reason in ID_REASONS),
})


@functools.lru_cache(maxsize=1)
def words() -> dict[str, Any]:
    """replies.yml: an entry is {"en": ..., "zh": ...}, or a group of such entries."""
    return dict(yaml.safe_load(DATA.read_text(encoding="utf-8")))


def _in(language: str, entry: dict[str, str]) -> str:
    return entry["zh"] if language == "zh" else entry["en"]


def status_label(status: str, language: str) -> str:
    entry = statuses.TABLE[status]
    return entry.label_zh if language == "zh" else entry.label_en


def history(entries: Iterable[HistoryEntry], language: str) -> str:
    """{history} of utter_status: one line per step, its date and label."""
    return "\n".join(f"· {entry.at[:10]} {status_label(entry.status, language)}"
                     for entry in entries)


def relationship(key: str, language: str) -> str:
    """{relationship} of the summary; a key it does not know reads as "guardian"."""
    labels = words()["relationship"]
    return _in(language, labels.get(key, labels["guardian"]))


def city_name(city: str, language: str) -> str:
    """{city} of the summary: the city's name, or the national rules it is filed under."""
    region = regions.resolve(city)
    if not region.known:
        return _in(language, words()["national_city"])
    return region.name_zh if language == "zh" else region.name_en


def known_cities(language: str) -> str:
    """{known_cities} of utter_unknown_city."""
    return _in(language, words()["separator"]).join(
        region.name_zh if language == "zh" else region.name_en
        for region in regions.known_cities())


def refused_items(slots: Iterable[str], language: str) -> str:
    """{fields} of utter_filing_rejected: the form's items the card service refused."""
    items = words()["item"]
    named = [_in(language, items[slot]) for slot in slots]
    return (_in(language, words()["separator"]).join(named)
            or _in(language, words()["unnamed_items"]))


def region_words(region: Region, language: str) -> dict[str, str]:
    """The placeholders of the answers that depend on the city."""
    zh = language == "zh"
    low, high = region.processing_days_min, region.processing_days_max
    processing = words()["processing_same_day" if low == 0 else "processing"]
    return {
        "region_name": (region.name_zh if zh else region.name_en) if region.known
        else _in(language, words()["no_region"]),
        "validity_days": str(region.temporary_report_days),
        "fee": str(region.fee_yuan),
        "processing": _in(language, processing).format(low=low, high=high),
        "hotline": region.hotline,
        "written_report_place": region.written_report_zh if zh else region.written_report_en,
        "bank_place": region.bank_zh if zh else region.bank_en,
    }


def intent_title(intent: str, language: str) -> str:
    """A button's words for an intent the guardian may have meant (utter_clarify)."""
    return _in(language, words()["intent_title"][intent])


def notice_path(path: str, language: str) -> str:
    """{notice_path} of utter_notice_already_sent."""
    paths = words()["notice_paths"]
    return _in(language, paths.get(path) or paths["other"])


def china_date(moment: str) -> str:
    """The day in China of an ISO time the card service gives (in UTC).

    >>> china_date("2026-12-04T17:30:00Z")
    '2026-12-05'
    """
    return minute(moment)[:10]
