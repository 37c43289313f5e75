"""Every log line of a process masks ID and mobile numbers, messaging-app user ids and, in
Rasa's debug events, what people typed or were told, whichever logger writes it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

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
def kept() -> Iterator[Kept]:
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


def test_messaging_app_user_ids_are_masked_to_their_first_four_characters(kept: Kept) -> None:
    openid = "oA1b2C3d4E5f6G7h8I9j0K1l2M3n"
    log = logging.getLogger("some.library")
    log.debug("never made: the logger is at INFO")
    log.info("Acquired lock for conversation 'wechat:%s'; from %s", openid, openid)
    log.info("Starting a new session for conversation ID 'telegram:7561618097'.")
    log.info("message from whatsapp:+8613912345678 and whatsapp:+4930123456")
    assert kept.lines[0] == "Acquired lock for conversation 'wechat:oA1b***'; from oA1b***"
    assert kept.lines[1].endswith("'telegram:7561***'.")
    assert "13912345678" not in kept.lines[2] and "4930123456" not in kept.lines[2]
    assert kept.lines[2].startswith("message from whatsapp:+86") and "+49" in kept.lines[2]


def test_the_bot_api_librarys_requests_keep_neither_chat_id_text_nor_secret(kept: Kept) -> None:
    log = logging.getLogger("some.library")
    log.info('Make request: "sendMessage" with data: "%s"',
             {"chat_id": "7561618097", "text": "请核对：\n孩子：何欣怡，身份证 " + child_id()})
    log.info('Response: "%s"', json.dumps({"ok": True, "result": {
        "chat": {"id": 7561618097, "type": "private"}, "text": "Child: He Xinyi"}}))
    log.info("setWebhook with %s", {"url": "https://bot.example.com/hook",
                                      "secret_token": "telegram-secret-0123"})
    request, answer, webhook = kept.lines
    assert "'chat_id': '7561***'" in request and "何欣怡" not in request
    assert "<" in request and "characters>" in request
    assert '"id": 7561***' in answer and "He Xinyi" not in answer
    assert "telegram-secret-0123" not in webhook and "https://bot.example.com/hook" in webhook


def rasa_debug_event(**fields: object) -> str:
    """How Rasa writes its structured debug events: one JSON object a line."""
    return json.dumps({**fields, "level": "debug"})


def test_rasa_debug_events_hide_what_was_typed_and_mask_the_personal_slots(kept: Kept) -> None:
    child = child_id(age=9)
    log = logging.getLogger("some.library")
    log.info(rasa_debug_event(
        parse_data_text="Guo Zixuan", event="processor.message.parse",
        parse_data_intent={"name": "inform", "confidence": 0.98981234567825},
        parse_data_entities=[{"entity": "city", "value": "北京", "start": 0, "end": 2},
                             {"entity": "id_number", "value": child}]))
    log.info(rasa_debug_event(event="processor.slots.log", slot_values=(
        f"\tlanguage: zh\n\tchild_name: 郭子轩\n\tchild_id_number: {child}\n"
        "\trequested_slot: guardian_name")))
    log.info(rasa_debug_event(event="processor.actions.log", action_name="loss_report_form",
                              rasa_events=["SlotSet(key: guardian_name, value: Guo Wenbo)",
                                           "SlotSet(key: requested_slot, value: relationship)",
                                           "BotUttered('Please check:\nChild: Guo Zixuan', "
                                           "{}, {}, 1796410480.1)"]))
    log.info(rasa_debug_event(event="rule_policy.actions.find", current_states=(
        "\n[state 1] user text: 郭子轩 | previous action name: action_listen")))
    log.info(rasa_debug_event(event="forms.slots.validate",
                              slot_candidates={"child_name": "Guo Zixuan", "city": "北京"}))
    parsed = [json.loads(line) for line in kept.lines]  # still one JSON object a line
    text = "\n".join(json.dumps(event, ensure_ascii=False) for event in parsed)
    for whole in ("Guo Zixuan", "Zixuan", "郭子轩", "Guo Wenbo", child):
        assert whole not in text, whole
    parse, slots, actions, states, candidates = parsed
    assert parse["parse_data_text"] == "<10 characters>"
    assert parse["parse_data_intent"] == {"name": "inform", "confidence": 0.98981234567825}
    assert parse["parse_data_entities"][0]["value"] == "北京"
    assert parse["parse_data_entities"][1]["value"] == f"{child[:4]}{'*' * 10}{child[-4:]}"
    assert "\tchild_name: 郭**\n" in slots["slot_values"]
    assert "\trequested_slot: guardian_name" in slots["slot_values"]
    assert actions["rasa_events"] == ["SlotSet(key: guardian_name, value: G** W****)",
                                      "SlotSet(key: requested_slot, value: relationship)",
                                      "BotUttered(<hidden>)"]
    assert actions["action_name"] == "loss_report_form"
    assert "user text: <hidden> | previous action name: action_listen" in states["current_states"]
    assert candidates["slot_candidates"] == {"child_name": "G** Z*****", "city": "北京"}
