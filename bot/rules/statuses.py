"""The card's life as one table: each status, where it may go next, its words and next step.

The card service enforces `TRANSITIONS`, the bot and the staff tool read the labels
and next-step keys (the bot maps a key to its `utter_next_step_<key>` response).

>>> can_move("reported_temporary", "cancelled")
True
>>> can_move("reported_written", "cancelled")
False
>>> next_on_main_line("in_production")
'ready_for_collection'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Status:
    name: str
    next: tuple[str, ...]  # statuses it may move to; empty means terminal
    label_en: str
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

TABLE: dict[str, Status] = {s.name: s for s in (
    Status(REPORTED_TEMPORARY, (REPORTED_WRITTEN, CANCELLED, EXPIRED),
           "Loss reported (temporary block)", "已临时挂失", "file_written_report"),
    Status(REPORTED_WRITTEN, (REPLACEMENT_APPLIED,),
           "Written loss report filed", "已书面挂失", "apply_at_bank"),
    Status(REPLACEMENT_APPLIED, (IN_PRODUCTION,),
           "Replacement applied for at the bank", "已申请补卡", "wait_for_production"),
    Status(IN_PRODUCTION, (READY_FOR_COLLECTION,),
           "New card being made", "新卡制作中", "wait_for_notice"),
    Status(READY_FOR_COLLECTION, (COLLECTED,),
           "New card ready to collect", "新卡可领取", "collect_card"),
    Status(COLLECTED, (),
           "New card collected", "新卡已领取", "activate_card"),
    Status(CANCELLED, (),
           "Loss report lifted (card found)", "已解除挂失", "none"),
    Status(EXPIRED, (),
           "Temporary report lapsed", "临时挂失已失效", "report_again"),
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
