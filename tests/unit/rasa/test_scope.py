"""ScopeCheck: a lost card that is not a child's social security card is out of scope."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.rasa.scope import ScopeCheck


def classified(text: str, ranking: list[tuple[str, float]]) -> Message:
    message = Message(data={"text": text})
    message.set("intent", {"name": ranking[0][0], "confidence": ranking[0][1]})
    message.set("intent_ranking", [{"name": n, "confidence": c} for n, c in ranking])
    return ScopeCheck().process([message])[0]


@pytest.mark.parametrize("text", ["my daughter lost her bank card", "儿子的身份证丢了",
                                  "我自己的社保卡丢了", "my husband lost his social security card"])
def test_other_cards_and_adults_cards_become_out_of_scope(text: str) -> None:
    message = classified(text, [("report_lost_card", 0.9), ("out_of_scope", 0.06),
                                ("ask_fee", 0.04)])
    assert message.get("intent") == {"name": "out_of_scope", "confidence": 0.9}
    assert [(r["name"], r["confidence"]) for r in message.get("intent_ranking")] == [
        ("out_of_scope", 0.9), ("report_lost_card", 0.06), ("ask_fee", 0.04)]


def test_out_of_scope_beyond_the_ranking_takes_the_reports_place() -> None:
    message = classified("my son lost his passport", [("report_lost_card", 0.8),
                                                      ("ask_fee", 0.2)])
    assert [r["name"] for r in message.get("intent_ranking")] == ["out_of_scope", "ask_fee"]


@pytest.mark.parametrize(("text", "intent"), [
    ("my son lost his social security card", "report_lost_card"),
    ("孩子的社保卡和银行卡一起丢了", "report_lost_card"),
    ("my son lost his bank card, how much is a new one", "ask_fee"),  # not a report: untouched
])
def test_a_childs_card_and_other_intents_are_left_alone(text: str, intent: str) -> None:
    message = classified(text, [(intent, 0.9), ("out_of_scope", 0.1)])
    assert message.get("intent")["name"] == intent


@pytest.mark.parametrize("text", ["please delete my data", "删除我的个人信息",
                                  "我的聊天记录请帮我清除"])
def test_a_plain_request_to_delete_is_that_request_whatever_the_model_said(text: str) -> None:
    message = classified(text, [("out_of_scope", 0.96), ("stop", 0.04)])
    assert message.get("intent") == {"name": "delete_my_data", "confidence": 1.0}
    # Alone in the ranking: a model sure of something else (0.96) is no near second that
    # FallbackClassifier's ambiguity check (0.1) would read as a tie.
    assert message.get("intent_ranking") == [{"name": "delete_my_data", "confidence": 1.0}]


@pytest.mark.parametrize("text", ["wait, delete the number I typed", "把刚才的号码删掉"])
def test_correcting_a_detail_is_no_request_to_delete(text: str) -> None:
    assert classified(text, [("stop", 0.7)]).get("intent")["name"] == "stop"


def test_a_loss_told_with_its_details_is_a_report_whatever_the_split() -> None:
    text = ("My son Huang haoran lost his social security card, please report it. His ID is "
            "11010520170101205X. I'm his mum, phone 137 0013 5566")
    message = classified(text, [("report_lost_card", 0.53), ("inform", 0.46), ("greet", 0.01)])
    assert message.get("intent") == {"name": "report_lost_card", "confidence": 0.99}
    # Details alone stay details.
    alone = classified("his ID is 11010520170101205X", [("inform", 0.53),
                                                         ("report_lost_card", 0.46)])
    assert alone.get("intent")["name"] == "inform"
