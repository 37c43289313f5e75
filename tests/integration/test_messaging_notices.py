"""Notices through WhatsApp (Twilio), Messenger and Telegram on the real stack, as the card
service's outbox sends them: rendered by Rasa (trigger_intent, no output channel), then
each path tried by `POST /webhooks/<channel>/notice` with a one-conversation token. The
local provider servers keep WhatsApp's and Messenger's 24-hour windows, measured from the
user's last message through them, on a clock the test moves."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.notices import token_for
from tests.testkit.messaging_servers import (
    GraphServer,
    TelegramServer,
    TwilioServer,
    telegram_update,
)
from tests.testkit.redis_server import RedisServer
from tests.testkit.stack import Stack, has_cjk

pytestmark = pytest.mark.integration

TELEGRAM_SECRET = "telegram-notice-secret_" + "x" * 16
TELEGRAM_PUBLIC_URL = "https://bot.example.com/webhooks/telegram/webhook"
WHATSAPP_PUBLIC_URL = "https://bot.example.com/webhooks/whatsapp/webhook"
WHATSAPP_NUMBER = "whatsapp:+14155238886"
FACEBOOK_SECRET = "facebook-notice-app-secret"
CARD_READY_ZH, CARD_READY_EN = "HX" + "0f" * 16, "HX" + "1e" * 16
UTILITY_TEMPLATE = "card_ready_notice"
REFERENCE = "SC-7K3F-9Q2M"
PLACE = "工商银行各网点"
VARIABLES = {"reference": REFERENCE, "city": "北京", "place": PLACE,
             "lapses_on": "2026-12-24", "written_report_place": "社保经办机构",
             "ready_on": "2026-12-04"}
TIMEOUT = 60
STARTUP_TIMEOUT = 400


@pytest.fixture(scope="module")
def telegram() -> Iterator[TelegramServer]:
    server = TelegramServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def twilio() -> Iterator[TwilioServer]:
    server = TwilioServer(windows=True).start()
    server.register_content(CARD_READY_ZH, 2)
    server.register_content(CARD_READY_EN, 2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphServer]:
    server = GraphServer(windows=True).start()
    server.register_utility_template(UTILITY_TEMPLATE, "zh_CN", 2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, telegram: TelegramServer,
          twilio: TwilioServer, graph: GraphServer) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("notices")
    (log_dir / "redis").mkdir()
    redis_server = RedisServer(log_dir / "redis", log_dir).start()
    running = Stack(redis_server.url, log_dir, extra_env={
        **telegram.env(TELEGRAM_SECRET, TELEGRAM_PUBLIC_URL),
        **twilio.env(WHATSAPP_NUMBER, WHATSAPP_PUBLIC_URL),
        "TWILIO_CONTENT_SID_CARD_READY": f"zh:{CARD_READY_ZH},en:{CARD_READY_EN}",
        "FACEBOOK_VERIFY": "facebook-notice-verify",
        "FACEBOOK_SECRET": FACEBOOK_SECRET,
        "FACEBOOK_PAGE_ACCESS_TOKEN": graph.page_access_token,
        "FACEBOOK_API_BASE": graph.url,
        "FACEBOOK_UTILITY_TEMPLATE_CARD_READY": UTILITY_TEMPLATE,
        "RASA_JWT_SECRET": "notice-test-rasa-jwt-secret-" + "0" * 16,
    })
    try:
        running.start(timeout=STARTUP_TIMEOUT)
        yield running
    finally:
        running.stop()
        redis_server.stop()


def rendered(stack: Stack, conversation: str) -> list[dict[str, Any]]:
    """What the outbox does first: the notice in the conversation's language, collected."""
    answer = requests.post(
        f"{stack.rasa_url}/conversations/{conversation}/trigger_intent",
        params={"token": stack.settings.rasa_token}, timeout=TIMEOUT,
        json={"name": "EXTERNAL_card_ready", "entities": {"reference_number": REFERENCE}})
    answer.raise_for_status()
    messages = list(answer.json()["messages"])
    assert any(REFERENCE in (m.get("text") or "") for m in messages), messages
    return messages


def send_notice(stack: Stack, conversation: str, path: str, messages: list[dict[str, Any]],
                kind: str = "card_ready", language: str = "zh",
                token: str | None = None) -> requests.Response:
    channel = conversation.partition(":")[0]
    token = token or token_for(conversation, stack.settings.rasa_jwt_secret)
    return requests.post(f"{stack.rasa_url}/webhooks/{channel}/notice", timeout=TIMEOUT,
                         headers={"Authorization": f"Bearer {token}"},
                         json={"id": f"{REFERENCE}:{kind}", "conversation": conversation,
                               "path": path, "kind": kind, "language": language,
                               "last": False, "messages": messages,
                               "variables": VARIABLES})


def outcome(answer: requests.Response) -> tuple[str, str]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body["outcome"], body["code"]


# WhatsApp through Twilio -------------------------------------------------------------------


def whatsapp_user(stack: Stack, twilio: TwilioServer) -> tuple[str, str]:
    """A new user who wrote through Twilio: (number, conversation)."""
    number = f"whatsapp:+86139{secrets.randbelow(10**8):08d}"
    said = twilio.user_says(number, "补办社保卡需要带什么材料？", WHATSAPP_NUMBER,
                            f"{stack.rasa_url}/webhooks/whatsapp/webhook", WHATSAPP_PUBLIC_URL)
    assert said.status_code == 200, said.text
    assert has_cjk("\n".join(twilio.messages_to(number)))  # the reply, in the user's language
    return number, f"whatsapp:u{stack.settings.vault().keyed_hash(number)[:32]}"


def test_whatsapp_free_form_inside_the_window_then_a_template_outside_it(
        stack: Stack, twilio: TwilioServer) -> None:
    number, conversation = whatsapp_user(stack, twilio)
    messages = rendered(stack, conversation)
    replies = len(twilio.accepted(number))

    assert outcome(send_notice(stack, conversation, "session", messages)) == ("seen", "")
    [free_form] = twilio.accepted(number)[replies:]
    assert free_form.how == "body" and REFERENCE in free_form.fields["Body"]
    assert "领取" in free_form.fields["Body"]  # the conversation's language

    twilio.advance(hours=25)
    assert outcome(send_notice(stack, conversation, "session", messages)) == (
        "fallback", "63016")
    assert outcome(send_notice(stack, conversation, "template", messages)) == ("seen", "")
    [template] = twilio.accepted(number)[replies + 1:]
    assert template.how == "template" and template.fields["ContentSid"] == CARD_READY_ZH
    assert json.loads(template.fields["ContentVariables"]) == {"1": REFERENCE, "2": PLACE}


def test_whatsapp_without_a_template_for_the_notice_falls_back(
        stack: Stack, twilio: TwilioServer) -> None:
    number, conversation = whatsapp_user(stack, twilio)
    calls = len(twilio.calls)
    answer = send_notice(stack, conversation, "template", [], kind="lapse_reminder")
    assert outcome(answer) == ("fallback", "")
    assert "no WhatsApp template configured" in answer.json()["detail"]
    assert len(twilio.calls) == calls  # nothing sent, nothing refused


# Facebook Messenger -------------------------------------------------------------------------


def test_messenger_standard_inside_the_window_then_a_utility_message_outside_it(
        stack: Stack, graph: GraphServer) -> None:
    psid = str(secrets.randbelow(10**15))
    said = graph.user_says(psid, "补办社保卡需要带什么材料？",
                           f"{stack.rasa_url}/webhooks/facebook/webhook", FACEBOOK_SECRET)
    assert (said.status_code, said.text) == (200, "success")
    conversation = f"facebook:{psid}"
    messages = rendered(stack, conversation)
    replies = len(graph.accepted(psid))

    assert outcome(send_notice(stack, conversation, "standard", messages)) == ("seen", "")
    [update] = graph.accepted(psid)[replies:]
    assert update.how == "UPDATE" and REFERENCE in update.fields["message"]["text"]

    graph.advance(hours=25)
    assert outcome(send_notice(stack, conversation, "standard", messages)) == (
        "fallback", "10/2018278")
    assert outcome(send_notice(stack, conversation, "utility", messages)) == ("seen", "")
    [utility] = graph.accepted(psid)[replies + 1:]
    assert utility.how == "UTILITY"
    assert utility.fields["message"]["template"]["name"] == UTILITY_TEMPLATE
    unconfigured = send_notice(stack, conversation, "utility", messages, kind="lapse_reminder")
    assert outcome(unconfigured) == ("fallback", "")
    assert len(graph.accepted(psid)) == replies + 2


# Telegram ---------------------------------------------------------------------------------


def test_telegram_notice_then_blocked_then_flood_control(stack: Stack,
                                                         telegram: TelegramServer) -> None:
    chat_id = secrets.randbelow(10**9) + 10**9
    said = requests.post(f"{stack.rasa_url}/webhooks/telegram/webhook", timeout=TIMEOUT,
                         data=json.dumps(telegram_update(chat_id, "hello")).encode(),
                         headers={"Content-Type": "application/json",
                                  "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    assert (said.status_code, said.text) == (200, "success")
    conversation = f"telegram:{chat_id}"
    messages = rendered(stack, conversation)
    replies = len(telegram.messages_to(chat_id))

    assert outcome(send_notice(stack, conversation, "message", messages,
                               language="en")) == ("seen", "")
    [text] = telegram.messages_to(chat_id)[replies:]
    assert REFERENCE in text and "ready to collect" in text

    telegram.flood(retry_after=11)
    busy = send_notice(stack, conversation, "message", messages, language="en")
    assert outcome(busy) == ("retry", "429") and busy.json()["retry_after"] == 11

    telegram.block(chat_id)
    blocked = send_notice(stack, conversation, "message", messages, language="en")
    assert outcome(blocked) == ("unreachable", "403")
    assert "blocked" in blocked.json()["detail"]
    assert len(telegram.messages_to(chat_id)) == replies + 1


# The route ---------------------------------------------------------------------------------


def test_a_notice_needs_the_token_for_its_conversation(stack: Stack,
                                                       telegram: TelegramServer) -> None:
    conversation = f"telegram:{secrets.randbelow(10**9) + 10**9}"
    other = token_for("telegram:1", stack.settings.rasa_jwt_secret)
    assert send_notice(stack, conversation, "message", [], token=other).status_code == 401
    forged = token_for(conversation, "not-the-stacks-secret-" + "x" * 16)
    assert send_notice(stack, conversation, "message", [], token=forged).status_code == 401
    missing = requests.post(f"{stack.rasa_url}/webhooks/telegram/notice", timeout=TIMEOUT,
                            json={"conversation": conversation})
    assert missing.status_code == 422 and "id" in missing.json()["message"]
    assert telegram.messages_to(conversation.partition(":")[2]) == []


def test_no_whole_phone_number_in_the_logs(stack: Stack) -> None:
    logs = "\n".join(Path(process.log_path).read_text(errors="replace")
                     for process in stack.processes.values() if process.log_path.exists())
    leaks = [line for line in logs.splitlines() if "+86139" in line or "%2B86139" in line]
    assert not leaks, leaks[:5]
