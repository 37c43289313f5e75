"""The card's life table: one consistent table, the transitions docs/domain.md describes."""

from __future__ import annotations

import doctest

from bot.rules import statuses

CONTRACT = ["reported_temporary", "reported_written", "replacement_applied", "in_production",
            "ready_for_collection", "collected", "cancelled", "expired"]


def test_doctests() -> None:
    assert doctest.testmod(statuses).failed == 0


def test_exactly_the_statuses_of_the_contract() -> None:
    assert list(statuses.STATUSES) == CONTRACT


def test_every_target_is_a_status_and_labels_exist() -> None:
    for status in statuses.TABLE.values():
        assert set(status.next) <= set(statuses.STATUSES)
        assert status.label_en and status.label_zh and status.next_step


def test_main_line_moves_one_step_at_a_time() -> None:
    line = statuses.MAIN_LINE
    for current, following in zip(line, line[1:], strict=False):
        assert statuses.can_move(current, following)
        assert statuses.next_on_main_line(current) == following
        for skipped in line[line.index(following) + 1:]:
            assert not statuses.can_move(current, skipped)
    assert statuses.next_on_main_line("collected") is None
    assert statuses.next_on_main_line("cancelled") is None


def test_side_exits_only_from_the_temporary_report() -> None:
    assert statuses.sources_of("cancelled") == ("reported_temporary",)
    assert statuses.sources_of("expired") == ("reported_temporary",)


def test_terminal_states_go_nowhere() -> None:
    assert statuses.TERMINAL == {"collected", "cancelled", "expired"}
    for status in statuses.TERMINAL:
        assert all(not statuses.can_move(status, target) for target in statuses.STATUSES)
    assert not statuses.can_move("nonsense", "collected")


def test_staff_cannot_set_the_initial_or_expired_status() -> None:
    assert "expired" not in statuses.STAFF_SETTABLE
    assert "reported_temporary" not in statuses.STAFF_SETTABLE
    assert statuses.NOTIFY_ON == {"ready_for_collection"}
