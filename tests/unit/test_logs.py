"""Every log line of a process masks ID and mobile numbers, whichever logger writes it."""

from __future__ import annotations

import logging

import pytest

from bot import logs
from tests.testkit.people import child_id


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def kept() -> Kept:
    logs.install()
    handler = Kept()
    logger = logging.getLogger("some.library")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


def test_numbers_in_arguments_and_in_the_message_are_masked(kept: Kept) -> None:
    child = child_id(age=6)
    log = logging.getLogger("some.library")
    log.info("filing for %s, phone %s", child, "+86 139 1234 5678")
    log.warning(f"lookup failed for {child[:6]} {child[6:]}")
    assert kept.lines[0].startswith(f"filing for {child[:4]}{'*' * 10}{child[-4:]}, phone +")
    assert "13912345678" not in kept.lines[0].replace(" ", "") and "*******" in kept.lines[0]
    assert child not in kept.lines[1].replace(" ", "") and child[-4:] in kept.lines[1]


def test_a_line_without_numbers_and_a_broken_format_pass_unchanged(kept: Kept) -> None:
    log = logging.getLogger("some.library")
    log.info("report %s moved to %s", "SC-7K3F-9Q2M", "ready_for_collection")
    assert kept.lines == ["report SC-7K3F-9Q2M moved to ready_for_collection"]
    record = logging.getLogRecordFactory()("x", logging.INFO, __file__, 1, "%d", ("a",), None)
    assert record.msg == "%d"  # left for logging's own error handling
