""""Delete my data" in words that do not say it plainly is asked about before anything goes."""

from __future__ import annotations

import pytest

from actions.erasure import ActionDeleteMyData
from tests.testkit.trackers import responses, run, tracker


@pytest.mark.parametrize("text", ["can you get rid of all that", "不要了"])
def test_a_vague_request_is_asked_about_and_nothing_is_deleted(text: str) -> None:
    events, messages = run(ActionDeleteMyData(), tracker(text=text, intent="delete_my_data",
                                                         active_loop="loss_report_form"))
    assert responses(messages) == ["utter_confirm_erasure"]
    assert [event["event"] for event in events] == ["active_loop"]  # no restart: kept


def test_a_plain_request_without_a_report_deletes_the_conversation() -> None:
    events, messages = run(ActionDeleteMyData(), tracker(text="please delete my data",
                                                         intent="delete_my_data"))
    assert responses(messages) == ["utter_conversation_erased"]
    assert [event["event"] for event in events] == ["active_loop", "restart"]
