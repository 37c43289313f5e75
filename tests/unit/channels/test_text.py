"""What every text channel shares: buttons shown as numbers and read back from a number."""

from __future__ import annotations

import pytest

from bot.channels.text import chosen_payload, render_buttons

BUTTONS = [
    {"title": "孩子的社保卡丢了", "payload": "/report_lost_card"},
    {"title": "补办流程", "payload": "/ask_reissue_steps"},
    {"title": "Check progress", "payload": "/check_status"},
]


def test_buttons_render_as_a_numbered_list() -> None:
    text, payloads = render_buttons("请问需要办理什么？", BUTTONS)
    assert text == "请问需要办理什么？\n\n1. 孩子的社保卡丢了\n2. 补办流程\n3. Check progress"
    assert payloads == ["/report_lost_card", "/ask_reissue_steps", "/check_status"]
    assert render_buttons("", BUTTONS[:1])[0] == "1. 孩子的社保卡丢了"


@pytest.mark.parametrize(("answer", "payload"), [
    ("1", "/report_lost_card"),
    (" 2 ", "/ask_reissue_steps"),
    ("３", "/check_status"),  # full-width, as Chinese keyboards type it
    ("1.", "/report_lost_card"),
    ("2、", "/ask_reissue_steps"),
    ("补办流程", "/ask_reissue_steps"),
    ("check progress", "/check_status"),
    ("4", None),
    ("0", None),
    ("12345", None),
    ("1 and 2", None),
    ("我孩子的卡丢了", None),
])
def test_number_picks_the_payload(answer: str, payload: str | None) -> None:
    payloads = [b["payload"] for b in BUTTONS]
    titles = [b["title"] for b in BUTTONS]
    assert chosen_payload(answer, payloads, titles) == payload


def test_no_buttons_no_choice() -> None:
    assert chosen_payload("1", []) is None
