"""Faults, for real: hostile input through REST, the web chat's socket.io and WeChat; two
Rasa processes taking one conversation's messages at the same moment; Rasa SIGKILLed in
the middle of a loss report; Redis SIGKILLed while guardians file reports.

One stack for the module (Redis, action server, card service, Rasa, and a second Rasa on
the same Redis), in this order: the tests that kill something come last.
"""

from __future__ import annotations

import asyncio
import queue
import re
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import socketio

from bot.rasa.patches.message_limit import MAX_CHARACTERS
from bot.settings import Settings
from bot.stack.health import rasa_ready
from tests.testkit.people import as_kept, child_id, guardian_id
from tests.testkit.processes import Process, free_port, wait_for
from tests.testkit.redis_server import RedisServer
from tests.testkit.stack import Stack, has_cjk, texts
from tests.testkit.wechat_server import WeChatServer, new_openid, signed_query, text_xml

# Starting the stack and restarting Rasa take minutes when other runs share the machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

# Other test runs share the machine's two cores: a turn or a start can be slow.
TURN_SECONDS = 120.0
START_SECONDS = 600.0
WECHAT_TOKEN = "faults-wechat-token"
REFERENCE = re.compile(r"SC-[0-9A-Z]{4}-[0-9A-Z]{4}")

MARKUP = ('<script>alert(1)</script><img src=x onerror=alert(2)> [12333](https://evil.example)'
          ' <a href="https://evil.example">help</a> **bold** `code`')
# What must never come back in a reply: some channel would read any of it as markup.
MARKUP_PIECES = ("<script", "<img", "<a ", "](", "://", "href=", "onerror=", "`")

# Text a user could send through any channel: (text, language of the expected reply).
HOSTILE: dict[str, tuple[str, str | None]] = {
    "10,000 characters, English": (
        ("My son lost his social security card at school, what should I do now? " * 150)[:10_000],
        "en"),
    "10,000 characters, Chinese": (("我儿子的社保卡在学校丢了，现在该怎么办？" * 600)[:10_000], "zh"),
    "emoji flood": ("😀🎉🔥👶💳" * 2000, None),
    "control and invisible characters": ("hi\x00\x07\x1b[2J\x08 \u202e\u200b\ufeff\x7f there", "en"),
    "markup": (MARKUP, "en"),
}
# XML 1.0 cannot carry these at all: WeChat never sends them, a forged body is refused.
XML_ILLEGAL = "\x00\x07\x08\x1b"


class Faults:
    def __init__(self, redis: RedisServer, stack: Stack, second: Process, second_url: str,
                 wechat: WeChatServer):
        self.redis = redis
        self.stack = stack
        self.second = second
        self.second_url = second_url
        self.wechat = wechat

    @property
    def rasa_urls(self) -> tuple[str, str]:
        return self.stack.rasa_url, self.second_url

    def tracker(self, sender: str) -> dict:
        response = requests.get(f"{self.stack.rasa_url}/conversations/{sender}/tracker",
                                params={"token": self.stack.settings.rasa_token},
                                timeout=TURN_SECONDS)
        response.raise_for_status()
        return dict(response.json())

    def user_events(self, sender: str) -> list[dict]:
        return [e for e in self.tracker(sender)["events"] if e.get("event") == "user"]

    def wait_turn(self, sender: str, users: int) -> None:
        """Until the conversation has `users` user messages and the bot is listening again."""
        def done() -> bool:
            events = self.tracker(sender)["events"]
            last = events[-1] if events else {}
            return (sum(e.get("event") == "user" for e in events) >= users
                    and last.get("event") == "action" and last.get("name") == "action_listen")

        wait_for(done, TURN_SECONDS, f"turn {users} of {sender}", interval=0.2)

    def staff(self, path: str) -> requests.Response:
        return requests.get(f"{self.stack.settings.card_service_url}{path}", timeout=30,
                            headers={"Authorization": f"Bearer {self.stack.settings.staff_token}"})


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    log_dir = tmp_path_factory.mktemp("faults")
    (log_dir / "redis").mkdir()
    wechat = WeChatServer().start()
    redis = RedisServer(log_dir / "redis", log_dir).start()
    stack = Stack(redis.url, log_dir, {
        "WECHAT_TOKEN": WECHAT_TOKEN,
        "WECHAT_APP_ID": wechat.app_id,
        "WECHAT_APP_SECRET": wechat.app_secret,
        "WECHAT_API_BASE": wechat.url,
        "DATA_ENCRYPTION_KEY": "faults-test-data-encryption-key-0123",
    })
    # Rasa #2: the Procfile's own command and environment, on another port.
    second_env = {**stack.env, "RASA_PORT": str(free_port())}
    second = Process("rasa-2", stack.processes["rasa"].command, second_env, log_dir)
    second_settings = Settings.from_env(second_env)

    def second_ready() -> bool:
        if not second.running:
            raise RuntimeError(f"rasa #2 exited:\n{second.log_tail()}")
        return rasa_ready(second_settings)

    try:
        second.start()  # loads its model while the stack starts
        stack.start(timeout=START_SECONDS)
        wait_for(second_ready, START_SECONDS, "rasa #2")
        yield Faults(redis, stack, second, second_settings.rasa_url, wechat)
    finally:
        second.stop()
        stack.stop()
        redis.stop()
        wechat.stop()


def new_sender(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def say(url: str, sender: str, message: str) -> list[dict]:
    response = requests.post(f"{url}/webhooks/rest/webhook",
                             json={"sender": sender, "message": message}, timeout=TURN_SECONDS)
    assert response.status_code == 200, response.text
    return list(response.json())


def assert_clear_answer(reply: str, language: str | None) -> None:
    assert reply.strip(), "an empty answer"
    if language == "zh":
        assert has_cjk(reply), reply
    elif language == "en":
        assert not has_cjk(reply), reply
    assert not any(piece in reply for piece in MARKUP_PIECES), reply


def assert_greeting(reply: str, language: str = "en") -> None:
    if language == "zh":
        assert has_cjk(reply) and "社保卡" in reply, reply
    else:
        assert "assistant" in reply and not has_cjk(reply), reply


def assert_read_capped(faults: Faults, sender: str, typed: str) -> None:
    """Rasa read at most MAX_CHARACTERS of it, without control characters."""
    read = faults.user_events(sender)[-1]["text"]
    assert len(read) <= MAX_CHARACTERS
    if len(typed) > MAX_CHARACTERS:
        assert len(read) >= MAX_CHARACTERS - 5  # cut, not dropped (Rasa strips the ends)
    assert not any(ch in read for ch in XML_ILLEGAL + "\x7f")


# Hostile input: REST -------------------------------------------------------------------


@pytest.mark.parametrize("case", list(HOSTILE))
def test_rest_hostile_text_gets_a_clear_answer_and_the_next_hi_a_greeting(
        faults: Faults, case: str) -> None:
    text, language = HOSTILE[case]
    sender, url = new_sender("rest"), faults.stack.rasa_url
    assert_clear_answer(texts(say(url, sender, text)), language)
    assert_read_capped(faults, sender, text)
    assert_greeting(texts(say(url, sender, "hi")))


RAW_BODIES: dict[str, bytes] = {
    "invalid UTF-8": b'{"sender": "raw-1", "message": "\xff\xfe hi"}',
    "malformed JSON": b'{"sender": "raw-2", "message": ',
    "nested 10,000 deep": b"[" * 10_000 + b"]" * 10_000,
    "an array": b'["raw-3", "hi"]',
    "a string": b'"hi"',
    "no sender": b'{"message": "hi"}',
    "a sender that is an object": b'{"sender": {"id": 1}, "message": "hi"}',
    "a lone surrogate as sender": b'{"sender": "raw-\\ud800", "message": "hi"}',
    "a 10,000-character sender": b'{"sender": "' + b"s" * 10_000 + b'", "message": "hi"}',
    "no message": b'{"sender": "raw-4"}',
    "a message that is an object": b'{"sender": "raw-5", "message": {"text": "hi"}}',
    "metadata that is a string": b'{"sender": "raw-6", "message": "hi", "metadata": "x"}',
}


@pytest.mark.parametrize("case", list(RAW_BODIES))
def test_rest_body_that_is_no_message_is_a_400(faults: Faults, case: str) -> None:
    url = f"{faults.stack.rasa_url}/webhooks/rest/webhook"
    response = requests.post(url, data=RAW_BODIES[case], timeout=TURN_SECONDS,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert_greeting(texts(say(faults.stack.rasa_url, new_sender("rest"), "hi")))


def test_rest_client_cannot_pass_for_another_channel(faults: Faults) -> None:
    sender = new_sender("rest")
    response = requests.post(f"{faults.stack.rasa_url}/webhooks/rest/webhook", timeout=TURN_SECONDS,
                             json={"sender": sender, "message": "hi", "input_channel": "wechat"})
    assert response.status_code == 200 and response.json()
    assert faults.user_events(sender)[-1]["input_channel"] == "rest"


def test_markup_typed_as_the_city_is_not_quoted_back(faults: Faults) -> None:
    sender, url = new_sender("rest"), faults.stack.rasa_url
    child, guardian = child_id(age=7, sequence=451), guardian_id(sequence=452)
    say(url, sender, f"my son lost his card, his ID is {child}, my phone is 13800138000")
    for answer in ("yes", "Li Ming", "Li Qiang", guardian):
        say(url, sender, answer)
    assert "city" in texts(say(url, sender, "father")).lower()
    unknown = texts(say(url, sender, MARKUP))
    assert "I don't have rules for" in unknown  # the answer that quotes the city
    assert_clear_answer(unknown, "en")


# Hostile input: the web chat's socket.io -------------------------------------------------


class WebChatPage:
    """What rasa-webchat does over socket.io (long polling), driven from test code: its
    own event loop in a thread, so tests stay synchronous."""

    def __init__(self, url: str):
        self.url = url
        self.session = uuid.uuid4().hex
        self.conversation = f"webchat:{self.session}"  # Rasa's name for it
        self.uttered: queue.Queue[dict] = queue.Queue()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = socketio.AsyncClient(reconnection=False)
        self.run(self._connect())

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TURN_SECONDS)

    async def _connect(self) -> None:
        confirmed = asyncio.Event()

        async def on_confirm(session: str) -> None:
            confirmed.set()

        async def on_uttered(message: dict) -> None:
            self.uttered.put(message)

        self.client.on("session_confirm", on_confirm)
        self.client.on("bot_uttered", on_uttered)
        # Long polling: python-engineio's websocket client needs a newer aiohttp than Rasa's.
        await self.client.connect(self.url, socketio_path="/socket.io", transports=["polling"])
        await self.client.emit("session_request", {"session_id": self.session})
        await asyncio.wait_for(confirmed.wait(), TURN_SECONDS)

    @property
    def connected(self) -> bool:
        return bool(self.client.connected)

    def emit(self, event: str, data: Any) -> None:
        self.run(self.client.emit(event, data))

    def says(self, faults: Faults, text: str) -> str:
        """Sends one message and returns every bot message of its turn."""
        users = len(faults.user_events(self.conversation))
        self.emit("user_uttered", {"message": text, "session_id": self.session,
                                   "customData": {"language": "en"}})
        faults.wait_turn(self.conversation, users + 1)
        got = [self.uttered.get(timeout=30)]
        time.sleep(0.5)  # the rest of the turn's messages, sent together
        while not self.uttered.empty():
            got.append(self.uttered.get_nowait())
        return "\n".join(str(message.get("text", "")) for message in got)

    def close(self) -> None:
        if self.client.connected:
            self.run(self.client.disconnect())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def page(faults: Faults) -> Iterator[WebChatPage]:
    opened = WebChatPage(faults.stack.rasa_url)
    yield opened
    opened.close()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_webchat_hostile_text_gets_a_clear_answer_and_the_next_hi_a_greeting(
        faults: Faults, page: WebChatPage, case: str) -> None:
    text, language = HOSTILE[case]
    assert_clear_answer(page.says(faults, text), language)
    assert_read_capped(faults, page.conversation, text)
    assert_greeting(page.says(faults, "hi"))


# Events the channel must shrug off: no dict, no or a forged session, a message not text.
MALFORMED_EVENTS: list[tuple[str, Any]] = [
    ("user_uttered", "hi"),
    ("user_uttered", ["hi", 1]),
    ("user_uttered", 42),
    ("user_uttered", {"message": "hi"}),
    ("user_uttered", {"message": "hi", "session_id": "short"}),
    ("user_uttered", {"message": "hi", "session_id": "s" * 10_000}),
    ("session_request", "not a dict"),
    ("session_request", {"session_id": {"nested": True}}),
    ("no_such_event", {"x": 1}),
]


def test_webchat_malformed_events_leave_the_socket_and_the_server_up(
        faults: Faults, page: WebChatPage) -> None:
    log = faults.stack.processes["rasa"].log_path
    logged = log.stat().st_size
    for event, data in MALFORMED_EVENTS:
        page.emit(event, data)
    page.emit("user_uttered", {"message": {"not": "text"}, "session_id": page.session,
                               "customData": "not json"})
    time.sleep(2)
    assert page.connected
    assert_greeting(page.says(faults, "hi"))
    with log.open("rb") as lines:
        lines.seek(logged)
        assert b"Traceback" not in lines.read(), "a malformed event raised in the channel"


def test_webchat_malformed_packets_are_refused_and_the_server_stays_up(faults: Faults) -> None:
    endpoint = f"{faults.stack.rasa_url}/socket.io/"
    handshake = requests.get(endpoint, params={"EIO": "4", "transport": "polling"},
                             timeout=TURN_SECONDS)
    assert handshake.status_code == 200, handshake.text
    sid = re.search(r'"sid":"([^"]+)"', handshake.text).group(1)  # type: ignore[union-attr]
    session = {"EIO": "4", "transport": "polling", "sid": sid}
    assert requests.post(endpoint, params=session, data=b"40", timeout=TURN_SECONDS).ok
    for packet in (b'42["user_uttered",{"message":', b'42["user_uttered","\xff\xfe"]',
                   b"\xff\xfe\xfd", b"42" + b"[" * 10_000, b"9nonsense"):
        response = requests.post(endpoint, params=session, data=packet, timeout=TURN_SECONDS)
        assert response.status_code < 500, (packet[:20], response.status_code, response.text)
    fresh = WebChatPage(faults.stack.rasa_url)
    try:
        assert_greeting(fresh.says(faults, "hi"))
    finally:
        fresh.close()


# Hostile input: WeChat ---------------------------------------------------------------------


class Follower:
    """A WeChat user, as WeChat's servers relay them to the webhook (signed XML)."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self.openid = new_openid()
        self.conversation = f"wechat:{self.openid}"
        self.url = f"{faults.stack.rasa_url}/webhooks/wechat/webhook"

    def post(self, body: bytes) -> requests.Response:
        return requests.post(self.url, params=signed_query(WECHAT_TOKEN), data=body,
                             headers={"Content-Type": "text/xml"}, timeout=TURN_SECONDS)

    def says(self, text: str) -> str:
        wechat = self.faults.wechat
        before = len(wechat.messages_to(self.openid))
        users = len(self.faults.user_events(self.conversation))
        answer = self.post(text_xml(self.openid, text))
        assert (answer.status_code, answer.text) == (200, "success")
        self.faults.wait_turn(self.conversation, users + 1)
        wechat.wait_for(self.openid, count=before + 1, timeout=30)
        return "\n".join(wechat.messages_to(self.openid)[before:])


# WeChat's XML carries no control characters but tab and line breaks.
WECHAT_HOSTILE = {
    **HOSTILE,
    "control and invisible characters": ("hi\t \u202e\u200b\ufeff\x7f there", "en"),
}


@pytest.mark.parametrize("case", list(WECHAT_HOSTILE))
def test_wechat_hostile_text_gets_a_clear_answer_and_the_next_hello_a_greeting(
        faults: Faults, case: str) -> None:
    text, language = WECHAT_HOSTILE[case]
    user = Follower(faults)
    assert_clear_answer(user.says(text), language)
    assert_read_capped(faults, user.conversation, text)
    assert_greeting(user.says("你好"), "zh")


def test_wechat_bodies_that_are_no_message_are_refused(faults: Faults) -> None:
    user = Follower(faults)
    bodies = {
        "XML-illegal control characters": text_xml(user.openid, f"hi{XML_ILLEGAL}there"),
        "invalid UTF-8": text_xml(user.openid, "MARK").replace(b"MARK", b"\xff\xfe"),
        "malformed XML": b"<xml><Content><![CDATA[hi]]></Content>",
        "JSON instead of XML": b'{"FromUserName": "x", "MsgType": "text"}',
        "an entity bomb": (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
                           b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><Content>&b;</Content>'
                           b"</xml>"),
        "no sender": b"<xml><MsgType>text</MsgType><Content>hi</Content></xml>",
    }
    for name, body in bodies.items():
        response = user.post(body)
        assert response.status_code == 400, (name, response.status_code, response.text)
    assert user.post(b"<xml>" + b"x" * 70_000 + b"</xml>").status_code == 413
    time.sleep(1)
    assert user.faults.wechat.messages_to(user.openid) == []
    assert_greeting(user.says("你好"), "zh")


# Two Rasa processes, one conversation, two messages at the same moment -------------------


EXPECTED = {"hi": "assistant", "are you a bot?": "automated"}


def test_two_messages_at_once_on_two_rasas_are_both_handled_in_order(faults: Faults) -> None:
    first, second = faults.rasa_urls
    for _ in range(10):
        sender = new_sender("pair")
        barrier = threading.Barrier(2)

        def send(url: str, message: str, sender: str = sender,
                 barrier: threading.Barrier = barrier) -> str:
            barrier.wait(30)
            return texts(say(url, sender, message))

        with ThreadPoolExecutor(2) as pool:
            greeting = pool.submit(send, first, "hi")
            challenge = pool.submit(send, second, "are you a bot?")
            replies = {"hi": greeting.result(), "are you a bot?": challenge.result()}
        for message, reply in replies.items():
            assert EXPECTED[message] in reply, (message, reply)

        events = faults.tracker(sender)["events"]
        # One session, both messages, each turn whole before the next began.
        assert sum(e["event"] == "session_started" for e in events) == 1
        starts = [n for n, e in enumerate(events) if e["event"] == "user"]
        assert sorted(events[n]["text"] for n in starts) == sorted(EXPECTED)
        for begin, end in zip(starts, [*starts[1:], len(events)], strict=True):
            turn = events[begin:end]
            said = " ".join(e.get("text") or "" for e in turn if e["event"] == "bot")
            assert EXPECTED[turn[0]["text"]] in said, turn
            assert turn[-1]["event"] == "action" and turn[-1]["name"] == "action_listen", turn


# Rasa SIGKILLed in the middle of a loss report -----------------------------------------


def masked(number: str) -> str:
    return f"{number[:4]}**********{number[-4:]}"


def test_rasa_killed_mid_report_goes_on_where_it_was(faults: Faults) -> None:
    child, guardian = child_id(age=7, sequence=401), guardian_id(sequence=402)
    sender, url = new_sender("killed"), faults.stack.rasa_url

    def says(message: str) -> str:
        return texts(say(url, sender, message))

    assert "block" in says("my son lost his social security card").lower()
    assert "name" in says("yes").lower()
    assert "ID number" in says("Li Ming")
    assert "your full name" in says(child).lower()

    rasa = faults.stack.processes["rasa"]
    rasa.kill()
    assert not rasa.running
    faults.stack.start("rasa", timeout=START_SECONDS)

    assert "your own ID" in says("Li Qiang")  # the next question, not the form from the start
    slots = faults.tracker(sender)["slots"]
    assert (slots["child_name"], slots["child_id_number"]) == ("Li Ming", child)
    assert "relationship" in says(guardian).lower()
    assert "mobile" in says("I'm his father").lower()
    assert "city" in says("13800138000").lower()
    summary = says("Beijing")
    assert "Li Ming" in summary and masked(child) in summary
    filed = REFERENCE.search(says("yes"))
    assert filed, "no reference"
    report = faults.staff(f"/v1/loss-reports/{filed.group()}")
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["child"]["id_number_masked"] == masked(child)
    assert body["guardian"]["id_number_masked"] == masked(guardian)
    assert body["guardian"]["relationship"] == "father" and body["region"]["key"] == "beijing"


# Redis SIGKILLed and restarted while guardians file reports ------------------------------


class Filer:
    """A guardian filing a report through REST who keeps at it whatever the servers do:
    what to say next is read from the conversation itself, so a turn that failed (or
    whose answer was lost) is neither skipped nor given twice."""

    def __init__(self, faults: Faults, n: int):
        self.faults = faults
        self.url = faults.rasa_urls[n % 2]
        self.sender = new_sender(f"filer{n}")
        self.child = child_id(age=5 + n, sequence=500 + n)
        self.answers = {
            "child_name": "Zhang Wei", "child_id_number": self.child,
            "guardian_name": "Zhang Min", "guardian_id_number": guardian_id(sequence=600 + n),
            "relationship": "mother", "phone_number": "13800138000", "city": "Shanghai",
        }
        self.references: set[str] = set()  # every reference a reply showed the guardian
        self.answered: list[str] = []  # the messages that got an answer, in order
        self.failed = 0  # turns refused (503) or not reached
        self.empty = 0  # turns that got a 200 without a word

    def next_message(self) -> str | None:
        tracker = self.faults.tracker(self.sender)
        slots = tracker["slots"]
        if slots.get("reference_number"):
            return None
        if (tracker.get("active_loop") or {}).get("name") == "loss_report_form":
            return self.answers.get(slots.get("requested_slot") or "", "yes")
        if slots.get("filing_failed"):
            return "yes"  # try again
        bots = [e for e in tracker["events"] if e["event"] == "bot"]
        if bots and bots[-1].get("metadata", {}).get("utter_action") == "utter_offer_report":
            return "yes"
        return "my daughter lost her social security card"

    def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                message = self.next_message()
                if message is None:
                    return
                response = requests.post(f"{self.url}/webhooks/rest/webhook",
                                         json={"sender": self.sender, "message": message},
                                         timeout=TURN_SECONDS)
            except requests.RequestException:
                response = None
            if response is not None and response.status_code == 200:
                reply = texts(response.json())
                if reply:
                    self.answered.append(message)
                self.empty += not reply
                self.references.update(REFERENCE.findall(reply))
            else:
                assert response is None or response.status_code == 503, response.text
                self.failed += 1
                time.sleep(0.5)
        raise AssertionError(f"{self.sender} never got a reference")


def test_redis_killed_under_load_loses_no_confirmed_report(faults: Faults) -> None:
    filers = [Filer(faults, n) for n in range(6)]
    deadline = time.monotonic() + 480
    confirmed_before: set[str] = set()
    still_filing: list[Filer] = []

    def crash_after_the_first_report() -> None:
        wait_for(lambda: any(f.references for f in filers), 300, "a first report", interval=0.05)
        confirmed_before.update(r for f in filers for r in f.references)
        still_filing.extend(f for f in filers if not f.references)
        faults.redis.kill()
        time.sleep(3)
        faults.redis.start()

    with ThreadPoolExecutor(len(filers) + 1) as pool:
        running = [pool.submit(crash_after_the_first_report)]
        for filer in filers:
            running.append(pool.submit(filer.run, deadline))
            time.sleep(2)  # staggered: some file before the crash, some during, some after
        for future in running:
            future.result()

    assert confirmed_before and still_filing
    assert sum(f.failed for f in filers) > 0, "the crash never reached a guardian"
    # A turn Rasa could not finish is a 503 to send again, never a silent or partial answer.
    assert sum(f.empty for f in filers) == 0
    reports = faults.staff("/v1/loss-reports?limit=500").json()["reports"]
    by_child: dict[str, list[str]] = {}
    for report in reports:
        by_child.setdefault(report["child"]["id_number_masked"], []).append(report["reference"])
    for filer in filers:
        assert filer.references, filer.sender
        # Everything the guardian was told is there, and the retries filed nothing twice.
        assert len(filer.references) == 1, filer.references
        assert by_child.get(masked(filer.child)) == list(filer.references), filer.sender
        # Every turn that got an answer is in the conversation kept in Redis, in order (as it
        # is kept: ID and mobile numbers masked).
        kept = iter(e["text"] for e in faults.user_events(filer.sender))
        assert all(as_kept(message, ("Zhang Wei", "Zhang Min")) in kept
                   for message in filer.answered), filer.sender
    # Both Rasa processes took the crash and serve on.
    for url in faults.rasa_urls:
        assert_greeting(texts(say(url, new_sender("after"), "hi")))

