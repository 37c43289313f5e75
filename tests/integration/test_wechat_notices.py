"""WeChat's notice paths through the real stack (Rasa with the trained model, action
server, card service, Redis): `/webhooks/wechat/notice` asked as the card service asks it,
against a local WeChat that holds every user to its rules by a clock the test moves: the
48-hour window of customer-service messages (45015) and their 20 per user message
(45047), one subscription notification per acceptance (43101), template messages to
followers only (43004), access tokens that expire (42001) or die (40001). Users write to
the bot through that server, in safe mode, so that it knows when each last wrote."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bot.channels.base import conversation_id
from bot.channels.wechat import WeChatApi, WeChatConfig, WeChatOutput
from bot.notices import token_for
from tests.testkit.processes import free_port
from tests.testkit.redis_server import RedisServer
from tests.testkit.stack import Stack
from tests.testkit.wechat_server import SafeModeAccount, WeChatServer, new_aes_key, new_openid

pytestmark = pytest.mark.integration
TOKEN = "wechat-notice-test-token"
AES_KEY = new_aes_key()
SUBSCRIPTION = "Card_Ready_Subscription-01"
TEMPLATE = "Card_Ready_Template-02"
KEYS = ("character_string1", "thing2", "thing3", "date4")
REFERENCE = "SC-7K2P-Q9XM"
READY_TEXT = f"您的新社保卡已可领取（{REFERENCE}），请带身份证原件到上海市社保中心领取。"


@pytest.fixture(scope="module")
def wechat() -> Iterator[WeChatServer]:
    server = WeChatServer(subscription_templates={SUBSCRIPTION: KEYS},
                          templates={TEMPLATE: KEYS}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, wechat: WeChatServer) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("wechat-notices")
    (log_dir / "redis").mkdir()
    redis_server = RedisServer(log_dir / "redis", log_dir).start()
    rasa_port = free_port()  # the page's public address is Rasa's own here
    stack = Stack(redis_server.url, log_dir, extra_env={
        "RASA_PORT": str(rasa_port),
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_APP_ID": wechat.app_id,
        "WECHAT_APP_SECRET": wechat.app_secret,
        "WECHAT_API_BASE": wechat.url,
        "WECHAT_ENCODING_AES_KEY": AES_KEY,
        "WECHAT_SUBSCRIBE_TEMPLATE_ID": SUBSCRIPTION,
        "WECHAT_TEMPLATE_ID": TEMPLATE,
        "WECHAT_PUBLIC_URL": f"http://127.0.0.1:{rasa_port}",
        "DATA_ENCRYPTION_KEY": "wechat-notice-data-encryption-key",
    })
    try:
        stack.start()
    except BaseException:
        stack.stop()
        redis_server.stop()
        raise
    wechat.relay_to(f"{stack.rasa_url}/webhooks/wechat/webhook",
                    SafeModeAccount(TOKEN, AES_KEY, wechat.app_id))
    yield stack
    stack.stop()
    redis_server.stop()


def user_turns(stack: Stack, openid: str) -> int:
    try:
        events = stack.tracker(conversation_id("wechat", openid))["events"]
    except requests.HTTPError:
        return 0
    return sum(event.get("event") == "user" for event in events)


def writes(stack: Stack, wechat: WeChatServer, text: str = "你好") -> str:
    """A new user writes once (through WeChat, which opens their window) and the bot's
    answer is sent; their openid."""
    openid = new_openid()
    answer = wechat.user_says(openid, text)
    assert (answer.status_code, answer.text) == (200, "success")
    deadline = time.monotonic() + 30
    while True:  # the turn is over when the conversation listens again
        try:
            events = stack.tracker(conversation_id("wechat", openid))["events"]
        except requests.HTTPError:
            events = []
        if events and events[-1].get("name") == "action_listen" and any(
                e.get("event") == "user" for e in events):
            break
        assert time.monotonic() < deadline, "the bot never answered"
        time.sleep(0.15)
    wechat.wait_for(openid)
    return openid


def notice(stack: Stack, openid: str, path: str, kind: str = "card_ready",
           messages: list[dict[str, Any]] | None = None, **variables: str) -> dict[str, Any]:
    """The card service's question for one path; WeChat's answer as the channel read it."""
    conversation = conversation_id("wechat", openid)
    body: dict[str, Any] = {
        "id": f"{REFERENCE}:{kind}", "conversation": conversation, "path": path, "kind": kind,
        "language": "zh", "last": False,
        "messages": messages if messages is not None else [{"text": READY_TEXT}],
        "variables": {"reference": REFERENCE, "city": "上海", "ready_on": "2025-03-21",
                      **variables}}
    token = token_for(conversation, stack.settings.rasa_jwt_secret)
    answer = requests.post(f"{stack.rasa_url}/webhooks/wechat/notice", json=body, timeout=30,
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def paths_to(wechat: WeChatServer, openid: str) -> list[str]:
    return [sent.path for sent in wechat.deliveries_to(openid)]


# Customer-service messages ---------------------------------------------------------------


def test_within_48_hours_a_customer_service_message(stack: Stack, wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    before = len(wechat.deliveries_to(openid))
    wechat.advance(hours=47)
    buttons = [{"title": "在哪里领取", "payload": "/ask_where"}]
    answer = notice(stack, openid, "customer_service",
                    messages=[{"text": READY_TEXT}, {"text": "还有问题吗？", "buttons": buttons}])
    assert answer == {"outcome": "seen", "code": "", "detail": "", "retry_after": None}
    assert [(s.path, s.content) for s in wechat.deliveries_to(openid)[before:]] == [
        ("customer_service", READY_TEXT), ("customer_service", "还有问题吗？\n\n1. 在哪里领取")]


def test_after_49_hours_the_window_is_closed(stack: Stack, wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    before = len(wechat.deliveries_to(openid))
    wechat.advance(hours=49)
    answer = notice(stack, openid, "customer_service")
    assert (answer["outcome"], answer["code"]) == ("fallback", "45015")
    assert len(wechat.deliveries_to(openid)) == before
    # Writing again opens it again.
    wechat.user_says(openid, "请问进度")
    wechat.wait_for(openid, count=before + 1)
    assert notice(stack, openid, "customer_service")["outcome"] == "seen"


def test_twenty_messages_per_message_of_theirs(stack: Stack, wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    answered = len(wechat.messages_to(openid))  # the bot's answer counts too
    outcomes = [notice(stack, openid, "customer_service") for _ in range(21 - answered)]
    assert [a["outcome"] for a in outcomes] == ["seen"] * (20 - answered) + ["fallback"]
    assert outcomes[-1]["code"] == "45047"
    assert len(wechat.messages_to(openid)) == 20


def test_an_expired_or_dead_token_is_replaced_within_the_call(stack: Stack,
                                                              wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    fetched, before = wechat.token_requests, len(wechat.messages_to(openid))
    wechat.advance(hours=3)  # past the token's 7200 s on WeChat's clock, not in Redis's
    assert notice(stack, openid, "customer_service")["outcome"] == "seen"
    assert wechat.token_requests == fetched + 1
    wechat.invalidate_token()  # 40001
    assert notice(stack, openid, "customer_service")["outcome"] == "seen"
    assert wechat.token_requests == fetched + 2
    assert len(wechat.messages_to(openid)) == before + 2


def test_wechat_busy_is_a_retry(stack: Stack, wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    wechat.fail_next_send(-1)
    answer = notice(stack, openid, "customer_service")
    assert (answer["outcome"], answer["code"]) == ("retry", "-1")
    assert notice(stack, openid, "customer_service")["outcome"] == "seen"


# The subscription notification ------------------------------------------------------------


def test_an_acceptance_allows_one_subscription_notice(stack: Stack,
                                                      wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    turns = user_turns(stack, openid)
    answer = wechat.accept_subscription(openid, SUBSCRIPTION)
    assert (answer.status_code, answer.text) == (200, "success")
    wechat.advance(hours=49)
    assert notice(stack, openid, "customer_service")["code"] == "45015"
    assert notice(stack, openid, "subscription") == {
        "outcome": "seen", "code": "", "detail": "", "retry_after": None}
    subscription = [s for s in wechat.deliveries_to(openid) if s.path == "subscription"]
    assert len(subscription) == 1 and subscription[0].template_id == SUBSCRIPTION
    assert subscription[0].data == {"character_string1": REFERENCE, "thing2": "新社保卡已可领取",
                                    "thing3": "上海", "date4": "2025年3月21日"}
    # Used up: the next falls back without asking WeChat.
    calls = wechat.attempts["subscription"]
    second = notice(stack, openid, "subscription")
    assert (second["outcome"], second["detail"]) == ("fallback", "no acceptance recorded")
    assert wechat.attempts["subscription"] == calls
    assert paths_to(wechat, openid).count("subscription") == 1
    # The event was never a message of theirs.
    assert user_turns(stack, openid) == turns


def test_no_acceptance_no_call(stack: Stack, wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    wechat.accept_subscription(openid, SUBSCRIPTION, status="reject")
    wechat.accept_subscription(openid, "someone-elses-template")
    calls = wechat.attempts["subscription"]
    assert notice(stack, openid, "subscription")["outcome"] == "fallback"
    assert wechat.attempts["subscription"] == calls


def test_wechat_knows_better_43101(stack: Stack, wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    wechat.accept_subscription(openid, SUBSCRIPTION)
    wechat.accept_subscription(openid, SUBSCRIPTION)
    # Turned off in WeChat's settings while our webhook was down: we still count two.
    wechat.withdraw_subscription(openid, SUBSCRIPTION, tell_the_bot=False)
    answer = notice(stack, openid, "subscription")
    assert (answer["outcome"], answer["code"]) == ("fallback", "43101")
    calls = wechat.attempts["subscription"]
    assert notice(stack, openid, "subscription")["detail"] == "no acceptance recorded"
    assert wechat.attempts["subscription"] == calls
    assert "subscription" not in paths_to(wechat, openid)


def test_turned_off_in_settings_no_call(stack: Stack, wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    wechat.accept_subscription(openid, SUBSCRIPTION)
    wechat.withdraw_subscription(openid, SUBSCRIPTION)
    calls = wechat.attempts["subscription"]
    assert notice(stack, openid, "subscription")["outcome"] == "fallback"
    assert wechat.attempts["subscription"] == calls


def test_an_acceptance_survives_a_busy_wechat(stack: Stack, wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    wechat.accept_subscription(openid, SUBSCRIPTION)
    wechat.fail_next_send(-1)
    assert notice(stack, openid, "subscription")["outcome"] == "retry"
    assert notice(stack, openid, "subscription")["outcome"] == "seen"
    assert paths_to(wechat, openid).count("subscription") == 1


def test_the_lapse_reminder_by_subscription(stack: Stack, wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    wechat.accept_subscription(openid, SUBSCRIPTION)
    assert notice(stack, openid, "subscription", kind="lapse_reminder",
                  lapses_on="2025-04-02")["outcome"] == "seen"
    sent = wechat.deliveries_to(openid)[-1]
    assert (sent.data["thing2"], sent.data["date4"]) == ("临时挂失即将失效", "2025年4月2日")


# Template messages -------------------------------------------------------------------------


def test_a_template_message_to_a_follower(stack: Stack, wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    wechat.advance(days=20)
    assert notice(stack, openid, "template")["outcome"] == "seen"
    sent = wechat.deliveries_to(openid)[-1]
    assert (sent.path, sent.template_id) == ("template", TEMPLATE)
    assert sent.data["character_string1"] == REFERENCE


def test_unfollowed_is_unreachable(stack: Stack, wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    turns = user_turns(stack, openid)
    before = len(wechat.deliveries_to(openid))
    answer = wechat.unfollow(openid)
    assert answer.status_code == 200
    for path in ("customer_service", "template"):
        outcome = notice(stack, openid, path)
        assert (outcome["outcome"], outcome["code"]) == ("unreachable", "43004"), path
    assert len(wechat.deliveries_to(openid)) == before
    assert user_turns(stack, openid) == turns


# The offer at filing and its page ------------------------------------------------------------


def test_the_offer_leads_to_a_signed_subscription_page(stack: Stack,
                                                       wechat: WeChatServer) -> None:
    openid = writes(stack, wechat)
    # The output the filing's answer goes through, with Rasa's configuration.
    config = WeChatConfig(token=TOKEN, app_id=wechat.app_id, app_secret=wechat.app_secret,
                          base_url=wechat.url, redis_url=stack.settings.redis_url,
                          subscribe_template_id=SUBSCRIPTION,
                          public_url=stack.env["WECHAT_PUBLIC_URL"])

    async def offer() -> None:
        api = WeChatApi(config)
        try:
            await WeChatOutput(api).send_custom_json(
                openid, {"notice_offer": {"reference": REFERENCE, "kind": "card_ready"}})
        finally:
            await api.close()

    asyncio.run(offer())
    text = wechat.messages_to(openid)[-1]
    found = re.search(r'<a href="([^"]+)">', text)
    assert found and openid not in text, text
    link = html.unescape(found.group(1))
    assert link.startswith(f"{stack.env['WECHAT_PUBLIC_URL']}/webhooks/wechat/subscribe?t=")

    page = requests.get(link, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert f'<wx-open-subscribe template="{SUBSCRIPTION}"' in page.text
    assert openid not in page.text
    config_found = re.search(r"var page = (\{.*?\});\n", page.text)
    assert config_found
    wx = json.loads(config_found.group(1))
    assert wx["appId"] == wechat.app_id
    # WeChat's JS-SDK would accept it: signed with a live jsapi_ticket for this address.
    assert wechat.js_signature_valid(link, wx["nonceStr"], str(wx["timestamp"]), wx["signature"])
    assert not wechat.js_signature_valid(link + "&x=1", wx["nonceStr"], str(wx["timestamp"]),
                                         wx["signature"])
    tickets = wechat.ticket_requests
    assert requests.get(link, timeout=10).status_code == 200
    assert wechat.ticket_requests == tickets  # the ticket is kept, as WeChat asks

    forged = requests.get(link[:-3] + "abc", timeout=10)
    assert forged.status_code == 403 and "wx.config" not in forged.text
