"""The WeChat channel against a local WeChat-protocol server, in safe mode as production
runs it: encrypted, signed XML into the real stack (Rasa with the trained model, action
server, card service, Redis), WeChat's reading of each webhook answer, and the bot's
replies and proactive messages out through the customer-service message API. (Plain-text
mode runs through the real stack in test_faults.py.)"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from bot.channels.base import conversation_id
from bot.channels.wechat import WeChatApi, WeChatConfig
from tests.testkit.people import child_id, guardian_id
from tests.testkit.redis_server import RedisServer
from tests.testkit.stack import Stack, has_cjk
from tests.testkit.wechat_server import (
    SafeModeAccount,
    WeChatServer,
    event_xml,
    new_aes_key,
    new_openid,
    sha1_of_sorted,
    signed_query,
    text_xml,
)

pytestmark = pytest.mark.integration
REFERENCE = re.compile(r"SC-[0-9A-Z]{4}-[0-9A-Z]{4}")
TOKEN = "wechat-test-token"
AES_KEY = new_aes_key()


@pytest.fixture(scope="module")
def wechat() -> Iterator[WeChatServer]:
    server = WeChatServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, wechat: WeChatServer) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("wechat")
    (log_dir / "redis").mkdir()
    redis_server = RedisServer(log_dir / "redis", log_dir).start()
    stack = Stack(redis_server.url, log_dir, extra_env={
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_APP_ID": wechat.app_id,
        "WECHAT_APP_SECRET": wechat.app_secret,
        "WECHAT_API_BASE": wechat.url,
        "WECHAT_ENCODING_AES_KEY": AES_KEY,
        # Stack's default key is shorter than the 16 characters the card service wants.
        "DATA_ENCRYPTION_KEY": "wechat-test-data-encryption-key",
    })
    try:
        stack.start()
    except BaseException:  # a part that never came up must not outlive the test run
        stack.stop()
        redis_server.stop()
        raise
    yield stack
    stack.stop()
    redis_server.stop()


class Follower:
    """A WeChat user of the account, as WeChat's servers relay them to our webhook."""

    def __init__(self, stack: Stack, wechat: WeChatServer):
        self.stack = stack
        self.wechat = wechat
        self.account = SafeModeAccount(TOKEN, AES_KEY, wechat.app_id)
        self.openid = new_openid()
        self.conversation = conversation_id("wechat", self.openid)
        self.url = f"{stack.rasa_url}/webhooks/wechat/webhook"

    def post(self, query: dict[str, str], body: bytes) -> requests.Response:
        return requests.post(self.url, params=query, data=body,
                             headers={"Content-Type": "text/xml"}, timeout=10)

    def push(self, message: bytes) -> requests.Response:
        """The message as WeChat's servers post it in safe mode; the answer must be one
        they take."""
        answer = self.post(*self.account.push(message))
        if answer.status_code == 200:
            assert self.account.read_answer(answer.text) is None  # replies go by the API
        return answer

    def user_turns(self) -> int:
        try:
            events = self.stack.tracker(self.conversation)["events"]
        except requests.HTTPError:
            return 0
        return sum(event.get("event") == "user" for event in events)

    def turn_done(self, turns: int) -> bool:
        events = self.stack.tracker(self.conversation)["events"]
        users = sum(event.get("event") == "user" for event in events)
        last = events[-1] if events else {}
        return users >= turns and last.get("event") == "action" \
            and last.get("name") == "action_listen"

    def wait_turn(self, turns: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.turn_done(turns):
            if time.monotonic() > deadline:
                raise AssertionError(f"turn {turns} of {self.openid} never finished")
            time.sleep(0.15)

    def send(self, body: bytes) -> str:
        """Posts one message and waits for the bot's whole answer; returns its texts."""
        before = len(self.wechat.messages_to(self.openid))
        turns = self.user_turns()
        started = time.monotonic()
        answer = self.push(body)
        assert answer.status_code == 200 and answer.text == "success", answer.text
        assert time.monotonic() - started < 2, "WeChat needs an answer within 5 s"
        self.wait_turn(turns + 1)
        return "\n".join(self.wechat.messages_to(self.openid)[before:])

    def says(self, text: str) -> str:
        return self.send(text_xml(self.openid, text))

    def latest(self) -> dict:
        return dict(self.stack.tracker(self.conversation)["latest_message"])


def staff(stack: Stack, path: str, body: dict) -> requests.Response:
    return requests.post(f"{stack.settings.card_service_url}{path}", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {stack.settings.staff_token}"})


# Without Rasa: the API client and its shared state in Redis ---------------------------


def test_access_token_shared_cached_and_refreshed(wechat: WeChatServer, redis_url: str) -> None:
    config = WeChatConfig(token=TOKEN, app_id=wechat.app_id, app_secret=wechat.app_secret,
                          base_url=wechat.url, redis_url=redis_url)
    openid = new_openid()
    before = wechat.token_requests

    async def scenario() -> None:
        first, second = WeChatApi(config), WeChatApi(config)  # two processes, one Redis
        try:
            await asyncio.gather(*(api.send_text(openid, f"hello {n}")
                                   for n, api in enumerate([first, second, first, second])))
            assert wechat.token_requests == before + 1  # fetched once, under the lock
            wechat.fail_next_send(40001)
            await second.send_text(openid, "after refresh")
            assert wechat.token_requests == before + 2
            await first.send_text(openid, "shared new token")
            assert wechat.token_requests == before + 2
            buttons = [{"title": "是", "payload": "/affirm"}, {"title": "否", "payload": "/deny"}]
            await first.buttons.remember(openid, buttons)
            assert await second.buttons.take(openid) == buttons
            assert await first.buttons.take(openid) == []  # they answer one message only
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())
    assert wechat.messages_to(openid)[-2:] == ["after refresh", "shared new token"]
    ttl = redis.Redis.from_url(redis_url).ttl(f"wechat:{wechat.app_id}:access_token")
    assert 7200 - 300 - 60 < ttl <= 7200 - 300  # refreshed 5 minutes before expiry


# The webhook ----------------------------------------------------------------------------


def test_forged_or_foreign_messages_refused(stack: Stack, wechat: WeChatServer) -> None:
    user = Follower(stack, wechat)
    message = text_xml(user.openid, "你好")
    query, body = user.account.push(message)
    _, another_body = user.account.push(text_xml(user.openid, "我孩子的社保卡丢了"))
    refused = {
        # The plain `signature` is right here: in safe mode only msg_signature counts.
        "forged msg_signature": user.post({**query, "msg_signature": "0" * 40}, body),
        "signed with a guessed token": user.post(
            *SafeModeAccount("guess", AES_KEY, wechat.app_id).push(message)),
        "the signature of another ciphertext": user.post(query, another_body),
        "sealed for another account": user.post(
            *user.account.push(message, app_id="wx-another-account")),
        "sealed under another key": user.post(
            *user.account.push(message, aes_key=new_aes_key())),
        "plain text, rightly signed": user.post(signed_query(TOKEN), message),
        # Captured an hour ago and sent again: rightly signed and sealed, but stale.
        "an hour old": user.post(
            *user.account.push(message, timestamp=int(time.time()) - 3600)),
    }
    assert {name: answer.status_code for name, answer in refused.items()} == dict.fromkeys(
        refused, 403)
    assert all(answer.text == "forbidden" for answer in refused.values())
    assert user.post(query, b"<xml><oops").status_code == 400
    time.sleep(1)
    assert user.user_turns() == 0 and wechat.messages_to(user.openid) == []


def test_url_check_echoes(stack: Stack) -> None:
    url = f"{stack.rasa_url}/webhooks/wechat/webhook"
    echo = secrets.token_hex(8)
    query = signed_query(TOKEN, echostr=echo)
    reply = requests.get(url, params=query, timeout=10)
    assert reply.status_code == 200 and reply.text == echo
    assert reply.headers["Content-Type"].startswith("text/plain")
    signed = {**query, "msg_signature": sha1_of_sorted(TOKEN, query["timestamp"],
                                                       query["nonce"], echo)}
    assert requests.get(url, params=signed, timeout=10).text == echo
    for forged in ({**query, "signature": "0" * 40}, {**signed, "msg_signature": "0" * 40},
                   signed_query("guess", echostr=echo)):
        refused = requests.get(url, params=forged, timeout=10)
        assert refused.status_code == 403 and echo not in refused.text
    log = stack.processes["rasa"].log_path.read_text(errors="replace")
    assert "wechat: safe mode (AES)" in log and "plain-text mode" not in log


def test_hello_gets_a_chinese_greeting_with_numbered_choices(stack: Stack,
                                                             wechat: WeChatServer) -> None:
    user = Follower(stack, wechat)
    greeting = user.says("你好")
    assert has_cjk(greeting) and "\n1. " in greeting and "\n2. " in greeting, greeting
    user_event = [e for e in stack.tracker(user.conversation)["events"] if e["event"] == "user"][-1]
    assert user_event["input_channel"] == "wechat"
    assert user_event["metadata"]["channel"] == "wechat"

    # "1" stands for the first button's payload (the loss report in the greeting).
    user.says("1")
    assert user.latest()["text"] == "/report_lost_card"
    assert user.latest()["intent"]["name"] == "report_lost_card"


def test_subscribing_greets_in_chinese(stack: Stack, wechat: WeChatServer) -> None:
    user = Follower(stack, wechat)
    greeting = user.send(event_xml(user.openid))
    assert has_cjk(greeting) and "1. " in greeting


def test_a_question_gets_its_answer(stack: Stack, wechat: WeChatServer) -> None:
    user = Follower(stack, wechat)
    answer = user.says("补办社保卡需要带什么材料？")
    assert has_cjk(answer), answer
    assert user.latest()["intent"]["name"] == "ask_required_documents"


def test_retries_and_replays_processed_once(stack: Stack, wechat: WeChatServer) -> None:
    user = Follower(stack, wechat)
    message = text_xml(user.openid, "你好", msg_id=secrets.randbits(62))
    # WeChat's three retries, each signed and sealed anew, arriving together.
    pushed = [user.account.push(message) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda sent: user.post(*sent), pushed))
    assert [(a.status_code, a.text) for a in answers] == [(200, "success")] * 4
    user.wait_turn(1)
    first_query, first_body = pushed[0]
    # The first call captured and sent again within the five minutes: its signature counts
    # once. With another body the signature no longer matches (safe mode signs the body).
    replay = user.post(first_query, first_body)
    assert (replay.status_code, replay.text) == (200, "success")
    _, other_body = user.account.push(text_xml(user.openid, "我孩子的社保卡丢了"))
    assert user.post(first_query, other_body).status_code == 403
    time.sleep(2)
    assert user.user_turns() == 1
    assert len(wechat.messages_to(user.openid)) == 1


def test_full_report_then_card_ready_unasked(stack: Stack, wechat: WeChatServer) -> None:
    child, guardian = child_id(age=6, sequence=211), guardian_id(sequence=212)
    user = Follower(stack, wechat)
    offer = user.says(f"我女儿的社保卡在成都丢了，身份证号{child}，我的手机13912345678")
    assert "挂失" in offer, offer
    assert "姓名" in user.says("好的")
    user.says("王小红")
    user.says("王建国")
    user.says(guardian)
    summary = user.says("我是孩子爸爸")
    assert "成都" in summary and child not in summary and "13912345678" not in summary
    filed = user.says("对，提交")
    found = REFERENCE.search(filed)
    assert found, filed
    reference = found.group()

    for status in ("reported_written", "replacement_applied", "in_production"):
        reply = staff(stack, f"/v1/loss-reports/{reference}/events", {"status": status})
        assert reply.status_code == 200, reply.text
    # WeChat is busy once: Rasa's trigger_intent fails, and the card service tries again.
    wechat.fail_next_send(-1)
    reply = staff(stack, f"/v1/loss-reports/{reference}/events",
                  {"status": "ready_for_collection"})
    assert reply.status_code == 200, reply.text
    # The card service tells Rasa, Rasa sends through the latest channel: WeChat.
    ready = wechat.wait_for(user.openid, containing=reference, count=2, timeout=30)
    assert reference in ready[-1] and ready[-1] != filed
    time.sleep(1)
    assert sum(reference in text for text in wechat.messages_to(user.openid)) == 2
