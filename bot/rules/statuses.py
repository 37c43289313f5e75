"""The card's life as one table: each status, where it may go next, its words and next step.

The card service enforces the transitions; the API and the bot read the labels (words kept
in statuses.yml) and the next-step keys (actions/replies.py maps a key to its
`utter_next_step_<key>` response in domain.yml).

>>> can_move("reported_temporary", "cancelled")
True
>>> can_move("reported_written", "cancelled")
False
>>> next_on_main_line("in_production")
'ready_for_collection'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Status:
    name: str
    next: tuple[str, ...]  # statuses it may move to; empty means terminal
    label_en: str  # from statuses.yml
    label_zh: str
    next_step: str  # a key, not words: the words live in domain.yml


REPORTED_TEMPORARY = "reported_temporary"
REPORTED_WRITTEN = "reported_written"
REPLACEMENT_APPLIED = "replacement_applied"
IN_PRODUCTION = "in_production"
READY_FOR_COLLECTION = "ready_for_collection"
COLLECTED = "collected"
CANCELLED = "cancelled"
EXPIRED = "expired"

# status -> {"en": ..., "zh": ...}; a status without its words fails here, at import.
_LABELS: dict[str, dict[str, str]] = yaml.safe_load(
    Path(__file__).with_name("statuses.yml").read_text(encoding="utf-8"))


def _status(name: str, moves_to: tuple[str, ...], next_step: str) -> Status:
    words = _LABELS[name]
    return Status(name, moves_to, words["en"], words["zh"], next_step)


TABLE: dict[str, Status] = {s.name: s for s in (
    _status(REPORTED_TEMPORARY, (REPORTED_WRITTEN, CANCELLED, EXPIRED), "file_written_report"),
    _status(REPORTED_WRITTEN, (REPLACEMENT_APPLIED,), "apply_at_bank"),
    _status(REPLACEMENT_APPLIED, (IN_PRODUCTION,), "wait_for_production"),
    _status(IN_PRODUCTION, (READY_FOR_COLLECTION,), "wait_for_notice"),
    _status(READY_FOR_COLLECTION, (COLLECTED,), "collect_card"),
    _status(COLLECTED, (), "activate_card"),
    _status(CANCELLED, (), "none"),
    _status(EXPIRED, (), "report_again"),
)}

STATUSES: tuple[str, ...] = tuple(TABLE)
INITIAL = REPORTED_TEMPORARY
# The path a report normally travels; side exits are cancelled and expired.
MAIN_LINE: tuple[str, ...] = (REPORTED_TEMPORARY, REPORTED_WRITTEN, REPLACEMENT_APPLIED,
                              IN_PRODUCTION, READY_FOR_COLLECTION, COLLECTED)
TERMINAL: frozenset[str] = frozenset(name for name, s in TABLE.items() if not s.next)
# Expiry is read from the calendar (valid_until), never set by staff.
STAFF_SETTABLE: frozenset[str] = frozenset(STATUSES) - {INITIAL, EXPIRED}
NOTIFY_ON: frozenset[str] = frozenset({READY_FOR_COLLECTION})


def can_move(current: str, target: str) -> bool:
    return current in TABLE and target in TABLE[current].next


def sources_of(target: str) -> tuple[str, ...]:
    """Every status from which `target` may be reached."""
    return tuple(name for name, s in TABLE.items() if target in s.next)


def next_on_main_line(current: str) -> str | None:
    if current not in MAIN_LINE or current == MAIN_LINE[-1]:
        return None
    return MAIN_LINE[MAIN_LINE.index(current) + 1]


def is_terminal(status: str) -> bool:
    return status in TERMINAL
