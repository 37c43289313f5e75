""""Delete my data" is asked about once before anything goes, then done."""

from __future__ import annotations

import pytest

from actions.erasure import ActionDeleteMyData, ActionForgetConversation
from tests.testkit.trackers import responses, run, tracker


@pytest.mark.parametrize("text", ["please delete my data", "删除我的个人信息"])
def test_a_typed_request_is_asked_about_and_nothing_is_deleted(text: str) -> None:
    events, messages = run(ActionDeleteMyData(), tracker(text=text, intent="delete_my_data",
                                                         active_loop="loss_report_form"))
    assert responses(messages) == ["utter_confirm_erasure"]
    assert [event["event"] for event in events] == ["active_loop"]  # no restart: kept


def test_the_confirm_button_without_a_report_deletes_the_conversation() -> None:
    events, messages = run(ActionDeleteMyData(), tracker(text="/delete_my_data",
                                                         intent="delete_my_data"))
    assert responses(messages) == ["utter_conversation_erased"]
    assert [event["event"] for event in events] == ["active_loop", "restart"]


def test_forgetting_waits_while_a_form_is_in_progress() -> None:
    events, messages = run(ActionForgetConversation(),
                           tracker(intent="EXTERNAL_forget", active_loop="loss_report_form"))
    assert events == [] and messages == []
    events, _ = run(ActionForgetConversation(), tracker(intent="EXTERNAL_forget"))
    assert [event["event"] for event in events] == ["restart"]
