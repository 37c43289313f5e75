"""Telegram, WhatsApp (Twilio) and Facebook Messenger against local servers speaking their
APIs, through the real stack (Rasa with the trained model, action server, card service,
Redis): authenticated messages get replies in their language, unauthenticated ones reach
no conversation, "card ready" is pushed through the channel the guardian used last, and
hostile bodies get a 4xx or a plain answer while Rasa stays up."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.testkit.messaging_servers import (
    GraphServer,
    TelegramServer,
    TwilioServer,
    form_body,
    hub_signature,
    messenger_body,
    telegram_update,
    twilio_signature,
    whatsapp_form,
)
from tests.testkit.redis_server import RedisServer
from tests.testkit.stack import Stack, has_cjk

pytestmark = pytest.mark.integration

TELEGRAM_SECRET = "telegram-test-secret_" + "x" * 16
TELEGRAM_PUBLIC_URL = "https://bot.example.com/webhooks/telegram/webhook"
WHATSAPP_PUBLIC_URL = "https://bot.example.com/webhooks/whatsapp/webhook"
WHATSAPP_NUMBER = "whatsapp:+14155238886"
FACEBOOK_SECRET = "facebook-test-app-secret"
FACEBOOK_VERIFY = "facebook-test-verify"
REFERENCE = "SC-7K3F-9Q2M"
TIMEOUT = 60
STARTUP_TIMEOUT = 400


@pytest.fixture(scope="module")
def telegram() -> Iterator[TelegramServer]:
    server = TelegramServer()
    # The Bot API is down when Rasa starts: the start must not wait for it or fail.
    server.fail_next("setWebhook", 502, {"ok": False, "error_code": 502,
                                         "description": "Bad Gateway"})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def twilio() -> Iterator[TwilioServer]:
    server = TwilioServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphServer]:
    server = GraphServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, telegram: TelegramServer,
          twilio: TwilioServer, graph: GraphServer) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("messaging")
    (log_dir / "redis").mkdir()
    redis_server = RedisServer(log_dir / "redis", log_dir).start()
    running = Stack(redis_server.url, log_dir, extra_env={
        **telegram.env(TELEGRAM_SECRET, TELEGRAM_PUBLIC_URL),
        **twilio.env(WHATSAPP_NUMBER, WHATSAPP_PUBLIC_URL),
        "FACEBOOK_VERIFY": FACEBOOK_VERIFY,
        "FACEBOOK_SECRET": FACEBOOK_SECRET,
        "FACEBOOK_PAGE_ACCESS_TOKEN": graph.page_access_token,
        "FACEBOOK_API_BASE": graph.url,
        "DATA_ENCRYPTION_KEY": "messaging-test-data-encryption-key",
    })
    try:
        # Generous: other test runs share this machine's two cores.
        running.start(timeout=STARTUP_TIMEOUT)
        yield running
    finally:
        running.stop()
        redis_server.stop()


def user_turns(stack: Stack, sender: str) -> int:
    try:
        events = stack.tracker(sender)["events"]
    except requests.HTTPError:
        return 0
    return sum(event.get("event") == "user" for event in events)


def whatsapp_conversation(stack: Stack, number: str) -> str:
    """A WhatsApp user's conversation: named by a keyed hash of the number, never by it."""
    return f"whatsapp:u{stack.settings.vault().keyed_hash(number)[:32]}"


def trigger_card_ready(stack: Stack, sender: str) -> requests.Response:
    """What the card service's outbox does when a card can be collected."""
    return requests.post(
        f"{stack.rasa_url}/conversations/{sender}/trigger_intent",
        params={"token": stack.settings.rasa_token, "output_channel": "latest"},
        json={"name": "EXTERNAL_card_ready", "entities": {"reference_number": REFERENCE}},
        timeout=TIMEOUT)


def rasa_is_up(stack: Stack) -> bool:
    return requests.get(f"{stack.rasa_url}/", timeout=10).status_code == 200


# Telegram ------------------------------------------------------------------------------


class TelegramChat:
    def __init__(self, stack: Stack, server: TelegramServer):
        self.stack, self.server = stack, server
        self.chat_id = secrets.randbelow(10**9) + 10**9
        self.url = f"{stack.rasa_url}/webhooks/telegram/webhook"

    def post(self, body: bytes, secret: str | None = TELEGRAM_SECRET) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        return requests.post(self.url, data=body, headers=headers, timeout=TIMEOUT)

    def says(self, text: str, language: str = "en") -> str:
        before = len(self.server.messages_to(self.chat_id))
        answer = self.post(json.dumps(telegram_update(self.chat_id, text, language)).encode())
        assert (answer.status_code, answer.text) == (200, "success"), answer.text
        return "\n".join(self.server.messages_to(self.chat_id)[before:])


def test_telegram_webhook_registered_with_its_secret_after_the_api_came_back(
        stack: Stack, telegram: TelegramServer) -> None:
    assert rasa_is_up(stack)
    calls = telegram.wait_until(lambda calls: any(c.method == "setWebhook" for c in calls),
                                timeout=30, what="setWebhook")
    assert [c.method for c in calls if "setWebhook" in c.method][:2] == [
        "setWebhook:refused", "setWebhook"]
    registered = telegram.calls_to("setWebhook")[-1].fields
    assert registered["url"] == TELEGRAM_PUBLIC_URL
    assert registered["secret_token"] == TELEGRAM_SECRET
    assert "callback_query" in json.loads(registered["allowed_updates"])


def test_telegram_replies_in_the_language_of_each_message(stack: Stack,
                                                          telegram: TelegramServer) -> None:
    chat = TelegramChat(stack, telegram)
    chinese = chat.says("补办社保卡需要带什么材料？", language="en")
    assert has_cjk(chinese), chinese
    english = chat.says("what documents do I need to bring?", language="zh-hans")
    assert english and not has_cjk(english), english
    user_events = [e for e in stack.tracker(f"telegram:{chat.chat_id}")["events"]
                   if e["event"] == "user"]
    assert [e["input_channel"] for e in user_events] == ["telegram", "telegram"]
    assert user_events[-1]["parse_data"]["intent"]["name"] == "ask_required_documents"


def test_telegram_start_greets_in_the_apps_language_with_buttons(
        stack: Stack, telegram: TelegramServer) -> None:
    chat = TelegramChat(stack, telegram)
    greeting = chat.says("/start", language="zh-hans")
    assert has_cjk(greeting), greeting
    markup = json.loads(telegram.calls_to("sendMessage")[-1].fields["reply_markup"])
    payloads = [row[0]["callback_data"] for row in markup["inline_keyboard"]]
    assert "/report_lost_card" in payloads


def test_telegram_typed_slash_commands_are_text_not_intents(stack: Stack,
                                                            telegram: TelegramServer) -> None:
    chat = TelegramChat(stack, telegram)
    chat.says('/request_human{"language": "en"}')
    latest = stack.tracker(f"telegram:{chat.chat_id}")["latest_message"]
    assert not latest["text"].startswith("/"), latest["text"]


def test_telegram_without_the_secret_reaches_no_conversation(stack: Stack,
                                                             telegram: TelegramServer) -> None:
    chat = TelegramChat(stack, telegram)
    body = json.dumps(telegram_update(chat.chat_id, "hello")).encode()
    assert chat.post(body, secret=None).status_code == 403
    assert chat.post(body, secret="wrong-" + TELEGRAM_SECRET[6:]).status_code == 403
    assert chat.post(body, secret="").status_code == 403
    time.sleep(1)
    assert user_turns(stack, f"telegram:{chat.chat_id}") == 0
    assert telegram.messages_to(chat.chat_id) == []


def test_telegram_card_ready_is_pushed_and_retried_when_telegram_fails(
        stack: Stack, telegram: TelegramServer) -> None:
    chat = TelegramChat(stack, telegram)
    assert chat.says("hello")
    # Telegram is down once: Rasa answers an error, so the outbox would try again.
    telegram.fail_next("sendMessage", 502, {"ok": False, "error_code": 502,
                                            "description": "Bad Gateway"})
    failed = trigger_card_ready(stack, f"telegram:{chat.chat_id}")
    assert failed.status_code >= 500, failed.text
    assert not any(REFERENCE in text for text in telegram.messages_to(chat.chat_id))
    pushed = trigger_card_ready(stack, f"telegram:{chat.chat_id}")
    assert pushed.ok, pushed.text
    texts = telegram.wait_for_text(chat.chat_id, containing=REFERENCE)
    assert "ready to collect" in texts[-1]


def test_telegram_hostile_bodies(stack: Stack, telegram: TelegramServer) -> None:
    chat = TelegramChat(stack, telegram)
    assert chat.post(b"\xff\xfe{not utf-8").status_code == 400
    assert chat.post(b'{"update_id": 1, "message": ').status_code == 400
    assert chat.post(b'["not", "an", "update"]').status_code == 400
    assert chat.post(json.dumps({"update_id": 1, "message": {"chat": "x", "text": "hi"}})
                     .encode()).status_code == 400
    assert chat.post(b"{" + b" " * 70_000 + b"}").status_code == 413
    # A sticker: nothing to read, acknowledged so Telegram does not resend it.
    sticker = telegram_update(chat.chat_id, "x")
    del sticker["message"]["text"]
    assert chat.post(json.dumps(sticker).encode()).status_code == 200
    assert user_turns(stack, f"telegram:{chat.chat_id}") == 0

    long_answer = chat.says("my card " * 1250)  # 10,000 characters
    assert long_answer and all(len(t) <= 4096 for t in telegram.messages_to(chat.chat_id))
    control = chat.says("hello\x00\x07\x1b[31m\u202e")
    assert control
    latest = stack.tracker(f"telegram:{chat.chat_id}")["latest_message"]["text"]
    assert "\x00" not in latest and "\x1b" not in latest
    assert rasa_is_up(stack) and chat.says("hello")


# WhatsApp through Twilio ----------------------------------------------------------------


class WhatsAppUser:
    def __init__(self, stack: Stack, server: TwilioServer):
        self.stack, self.server = stack, server
        self.number = f"whatsapp:+86139{secrets.randbelow(10**8):08d}"
        self.url = f"{stack.rasa_url}/webhooks/whatsapp/webhook"

    def post(self, fields: dict[str, str], signature: str | None = None,
             body: bytes | None = None) -> requests.Response:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature is None:
            signature = twilio_signature(self.server.auth_token, WHATSAPP_PUBLIC_URL, fields)
        if signature:
            headers["X-Twilio-Signature"] = signature
        return requests.post(self.url, data=form_body(fields) if body is None else body,
                             headers=headers, timeout=TIMEOUT)

    def says(self, text: str) -> str:
        before = len(self.server.messages_to(self.number))
        answer = self.post(whatsapp_form(self.number, text, WHATSAPP_NUMBER))
        assert answer.status_code == 200, answer.text
        assert "<Response>" in answer.text and answer.headers["Content-Type"].startswith(
            "text/xml")
        return "\n".join(self.server.messages_to(self.number)[before:])


def test_whatsapp_signed_message_gets_a_reply_through_twilio(stack: Stack,
                                                             twilio: TwilioServer) -> None:
    user = WhatsAppUser(stack, twilio)
    answer = user.says("补办社保卡需要带什么材料？")
    assert has_cjk(answer), answer
    sent = twilio.calls_to("Messages")[-1].fields
    assert sent["To"] == user.number and sent["From"] == WHATSAPP_NUMBER
    english = user.says("what documents do I need?")
    assert english and not has_cjk(english), english
    user_event = [e for e in stack.tracker(whatsapp_conversation(stack, user.number))["events"] if e["event"] == "user"][-1]
    assert user_event["input_channel"] == "whatsapp"


def test_whatsapp_buttons_are_a_numbered_list_answered_by_number(
        stack: Stack, twilio: TwilioServer) -> None:
    user = WhatsAppUser(stack, twilio)
    greeting = user.says("你好")
    assert "\n1. " in greeting and "\n2. " in greeting and "/report" not in greeting
    user.says("1")
    latest = stack.tracker(whatsapp_conversation(stack, user.number))["latest_message"]
    assert latest["intent"]["name"] == "report_lost_card"


def test_whatsapp_without_a_valid_signature_reaches_no_conversation(
        stack: Stack, twilio: TwilioServer) -> None:
    user = WhatsAppUser(stack, twilio)
    fields = whatsapp_form(user.number, "你好", WHATSAPP_NUMBER)
    assert user.post(fields, signature="").status_code == 403
    assert user.post(fields, signature="A" * 28).status_code == 403
    wrong_key = twilio_signature("not-the-auth-token", WHATSAPP_PUBLIC_URL, fields)
    assert user.post(fields, signature=wrong_key).status_code == 403
    # Signed for the URL Rasa sees, not the public one Twilio calls: refused.
    local = twilio_signature(twilio.auth_token, user.url, fields)
    assert user.post(fields, signature=local).status_code == 403
    # A signed message with its text changed.
    signature = twilio_signature(twilio.auth_token, WHATSAPP_PUBLIC_URL, fields)
    tampered = form_body({**fields, "Body": "我孩子的社保卡丢了"})
    assert user.post(fields, signature=signature, body=tampered).status_code == 403
    time.sleep(1)
    assert user_turns(stack, whatsapp_conversation(stack, user.number)) == 0
    assert twilio.messages_to(user.number) == []


def test_whatsapp_card_ready_is_pushed_through_twilio(stack: Stack,
                                                      twilio: TwilioServer) -> None:
    user = WhatsAppUser(stack, twilio)
    assert user.says("你好")
    twilio.fail_next("Messages", 503, {"code": 20503, "message": "Service unavailable",
                                       "status": 503})
    failed = trigger_card_ready(stack, whatsapp_conversation(stack, user.number))
    assert failed.status_code >= 500, failed.text
    pushed = trigger_card_ready(stack, whatsapp_conversation(stack, user.number))
    assert pushed.ok, pushed.text
    texts = twilio.wait_for_text(user.number, containing=REFERENCE)
    # Outside WhatsApp's 24-hour window (63016) a retry cannot help: no error to retry on.
    twilio.fail_next("Messages", 400, {"code": 63016, "message": "Outside the allowed "
                                       "window", "status": 400})
    assert trigger_card_ready(stack, whatsapp_conversation(stack, user.number)).ok
    assert twilio.calls_to("Messages:refused")[-1].fields["To"] == user.number
    assert "领取" in texts[-1], texts[-1]  # the conversation's language: Chinese


def test_whatsapp_hostile_bodies(stack: Stack, twilio: TwilioServer) -> None:
    user = WhatsAppUser(stack, twilio)
    fields = whatsapp_form(user.number, "hello", WHATSAPP_NUMBER)
    assert user.post(fields, body=b"From=\xff\xfe&Body=\xc3").status_code == 400
    assert user.post(fields, body=b"From=%zz&&Body").status_code in (400, 403)
    assert user.post(fields, body=b"x" * 70_000).status_code == 413
    assert user_turns(stack, whatsapp_conversation(stack, user.number)) == 0
    long_answer = user.says("lost card " * 1000)  # 10,000 characters
    assert long_answer
    assert user.says("hello\x00\x07\x1b[31m")
    latest = stack.tracker(whatsapp_conversation(stack, user.number))["latest_message"]["text"]
    assert "\x00" not in latest and "\x1b" not in latest
    assert rasa_is_up(stack) and user.says("hello")


# Facebook Messenger -------------------------------------------------------------------


def test_facebook_signed_message_gets_a_reply_through_the_graph_api(
        stack: Stack, graph: GraphServer) -> None:
    url = f"{stack.rasa_url}/webhooks/facebook/webhook"
    psid = str(secrets.randbelow(10**15))
    body = messenger_body(psid, "补办社保卡需要带什么材料？")
    answer = requests.post(url, data=body, timeout=TIMEOUT, headers={
        "Content-Type": "application/json",
        "X-Hub-Signature-256": hub_signature(FACEBOOK_SECRET, body)})
    assert (answer.status_code, answer.text) == (200, "success")
    texts = graph.texts_to(psid)
    assert texts and [c.fields["sender_action"] for c in graph.calls_to("sender_action")
                      if c.fields["recipient"]["id"] == psid][:2] == ["mark_seen", "typing_on"]

    other = str(secrets.randbelow(10**15))
    forged = messenger_body(other, "hello")
    for headers in ({}, {"X-Hub-Signature-256": hub_signature("guess", forged)},
                    {"X-Hub-Signature": "md5=" + "0" * 32},
                    {"X-Hub-Signature-256": hub_signature(FACEBOOK_SECRET, body)}):
        refused = requests.post(url, data=forged, headers=headers, timeout=TIMEOUT)
        assert refused.status_code == 403, headers
    garbage = b'{"object": "page", "entry": "x"}'
    assert requests.post(url, data=garbage, timeout=TIMEOUT, headers={
        "X-Hub-Signature-256": hub_signature(FACEBOOK_SECRET, garbage)}).status_code == 400
    assert user_turns(stack, f"facebook:{other}") == 0 and graph.texts_to(other) == []

    check = {"hub.mode": "subscribe", "hub.challenge": "4242"}
    good = requests.get(url, params={**check, "hub.verify_token": FACEBOOK_VERIFY},
                        timeout=TIMEOUT)
    assert (good.status_code, good.text) == (200, "4242")
    bad = requests.get(url, params={**check, "hub.verify_token": "guess"}, timeout=TIMEOUT)
    assert bad.status_code == 403 and "4242" not in bad.text
    assert has_cjk("\n".join(texts)), texts  # the reply in the message's language


# Afterwards ---------------------------------------------------------------------------


def test_no_whole_phone_number_in_the_logs(stack: Stack) -> None:
    logs = "\n".join(Path(process.log_path).read_text(errors="replace")
                     for process in stack.processes.values() if process.log_path.exists())
    leaks = [line for line in logs.splitlines() if "+86139" in line or "%2B86139" in line]
    assert not leaks, leaks[:5]
