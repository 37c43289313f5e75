"""Live handoff on the real stack: a REST, a Telegram (local Bot API server) and a web chat
guardian (socket.io) ask for a person; agents use the handoff API. Staffed hours are set
for the stack; "outside them" restarts the action server with hours that exclude now."""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from bot.handoff import CHINA
from tests.testkit.messaging_servers import TelegramServer, telegram_update
from tests.testkit.processes import Process, wait_for
from tests.testkit.redis_server import RedisServer
from tests.testkit.stack import Stack, texts
from tests.testkit.webchat_page import Page

pytestmark = pytest.mark.integration

TOKEN = "handoff-test-token-" + "h" * 16
TELEGRAM_SECRET = "telegram-handoff-secret_" + "x" * 16
TELEGRAM_PUBLIC_URL = "https://bot.example.com/webhooks/telegram/webhook"
TIMEOUT = 60
ROUND_TRIPS = 20
CHILD_ID = "110105201501010013"
JOINED_EN, BACK_EN = "A staff member has joined", "I'm the assistant again"
# Every hour of every day: the stack is staffed, whenever the test runs.
ALWAYS = "Mon-Sun 00:00-24:00"


@pytest.fixture(scope="module")
def telegram() -> Iterator[TelegramServer]:
    server = TelegramServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, telegram: TelegramServer
          ) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("handoff")
    (log_dir / "redis").mkdir()
    redis_server = RedisServer(log_dir / "redis", log_dir).start()
    running = Stack(redis_server.url, log_dir, extra_env={
        **telegram.env(TELEGRAM_SECRET, TELEGRAM_PUBLIC_URL),
        "HANDOFF_TOKEN": TOKEN, "STAFFED_HOURS": ALWAYS})
    try:
        running.start(timeout=400)
        yield running
    finally:
        running.stop()
        redis_server.stop()


class Agent:
    def __init__(self, stack: Stack, name: str, token: str = TOKEN) -> None:
        self.base = f"{stack.rasa_url}/webhooks/handoff"
        self.headers = {"Authorization": f"Bearer {token}", "X-Agent": name}

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.base + path, headers=self.headers, params=params,
                            timeout=TIMEOUT)

    def post(self, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        return requests.post(self.base + path, headers=self.headers, json=body or {},
                             timeout=TIMEOUT)

    def queue(self) -> dict[str, Any]:
        answer = self.get("/queue")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def waiting(self) -> list[str]:
        return [c["conversation"] for c in self.queue()["waiting"]]

    def take(self, conversation: str) -> dict[str, Any]:
        answer = self.post(f"/conversations/{conversation}/take")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def reply(self, conversation: str, text: str) -> dict[str, Any]:
        answer = self.post(f"/conversations/{conversation}/replies", {"text": text})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def guardian_said(self, conversation: str, after: int = 0) -> list[dict[str, Any]]:
        answer = self.get(f"/conversations/{conversation}/messages", after=after, wait=10)
        assert answer.status_code == 200, answer.text
        return [m for m in answer.json()["messages"] if m["from"] == "guardian"]


def rest_says(stack: Stack, sender: str, text: str) -> str:
    return texts(stack.say(sender, text))


def test_the_api_wants_the_token_and_an_agent(stack: Stack) -> None:
    assert Agent(stack, "alice", token="wrong-token").get("/queue").status_code == 401
    nameless = requests.get(f"{stack.rasa_url}/webhooks/handoff/queue", timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert nameless.status_code == 400
    assert "X-Agent" in nameless.json()["error"]["fields"]
    health = requests.get(f"{stack.rasa_url}/webhooks/handoff/", timeout=TIMEOUT)
    assert health.json() == {"status": "ok", "configured": True}


def test_a_rest_guardian_is_queued_taken_answered_and_handed_back(stack: Stack) -> None:
    alice, bob = Agent(stack, "alice"), Agent(stack, "bob")
    guardian = "rest-" + uuid.uuid4().hex[:12]
    rest_says(stack, guardian, "hello")
    rest_says(stack, guardian, f"my child's ID number is {CHILD_ID}")
    promised = rest_says(stack, guardian, "/request_human")
    assert "staff member" in promised

    assert guardian in alice.waiting()
    case = alice.get(f"/conversations/{guardian}").json()
    assert (case["channel"], case["language"], case["reason"], case["state"]) == (
        "rest", "en", "asked", "waiting")
    lines = json.dumps(case["transcript"], ensure_ascii=False)
    assert "1101**********0013" in lines and CHILD_ID not in lines
    assert case["queued_at"] <= time.time() and case["waiting_seconds"] >= 0

    taken = alice.take(guardian)
    assert (taken["agent"], taken["told"]["outcome"]) == ("alice", "queued")
    refused = bob.post(f"/conversations/{guardian}/take")
    assert refused.status_code == 409 and "alice" in refused.json()["error"]["message"]
    assert bob.post(f"/conversations/{guardian}/replies", {"text": "hi"}).status_code == 409

    # Held: the assistant says nothing of its own; the guardian's words go to Alice.
    first = rest_says(stack, guardian, "hello? is anyone there")
    assert JOINED_EN in first and "What do you need" not in first
    assert [m["text"] for m in alice.guardian_said(guardian)] == ["hello? is anyone there"]
    reply = alice.reply(guardian, "Hello, this is Alice. How can I help?")
    assert reply["outcome"] == "queued"
    assert "this is Alice" in rest_says(stack, guardian, "my card is lost")
    said = [m["text"] for m in alice.guardian_said(guardian)]
    assert said == ["hello? is anyone there", "my card is lost"]

    back = alice.post(f"/conversations/{guardian}/hand-back")
    assert back.status_code == 200 and back.json()["state"] == "handed_back"
    after = rest_says(stack, guardian, "what documents do I need?")
    assert BACK_EN in after
    assert len(after.split("\n")) > 1  # and the assistant's own answer after it
    assert guardian not in alice.waiting()
    assert alice.get(f"/conversations/{guardian}").status_code == 404


class TelegramGuardian:
    def __init__(self, stack: Stack, server: TelegramServer) -> None:
        self.server = server
        self.chat_id = secrets.randbelow(10**9) + 10**9
        self.conversation = f"telegram:{self.chat_id}"
        self.url = f"{stack.rasa_url}/webhooks/telegram/webhook"

    def says(self, text: str) -> list[str]:
        before = len(self.server.messages_to(self.chat_id))
        answer = requests.post(self.url, timeout=TIMEOUT,
                               data=json.dumps(telegram_update(self.chat_id, text)).encode(),
                               headers={"Content-Type": "application/json",
                                        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
        assert (answer.status_code, answer.text) == (200, "success"), answer.text
        return self.server.messages_to(self.chat_id)[before:]


def round_trip(send: Any, arrived: Any) -> float:
    """Seconds from the agent's post until the guardian's client has the message."""
    with ThreadPoolExecutor(1) as pool:
        start = time.perf_counter()
        posted = pool.submit(send)
        while not arrived():
            if time.perf_counter() - start > TIMEOUT:
                raise TimeoutError("the reply never arrived")
            time.sleep(0.001)
        elapsed = time.perf_counter() - start
        posted.result()
    return elapsed


def test_a_telegram_guardian_hears_the_agent_in_order_and_the_assistant_afterwards(
        stack: Stack, telegram: TelegramServer, record_testsuite_property: Any) -> None:
    alice = Agent(stack, "alice")
    guardian = TelegramGuardian(stack, telegram)
    # Telegram takes a typed "/..." as text: the guardian asks in words.
    assert any("staff member" in t for t in guardian.says("I want to talk to a human"))
    assert guardian.conversation in alice.waiting()
    taken = alice.take(guardian.conversation)
    assert taken["told"]["outcome"] == "seen"
    assert JOINED_EN in telegram.messages_to(guardian.chat_id)[-1]

    assert guardian.says("I lost my son's card") == []  # the assistant is silent
    assert [m["text"] for m in alice.guardian_said(guardian.conversation)] == [
        "I lost my son's card"]

    times = []
    for n in range(ROUND_TRIPS):
        text = f"Reply {n} from Alice"
        times.append(round_trip(
            lambda text=text: alice.reply(guardian.conversation, text),
            lambda text=text: text in telegram.messages_to(guardian.chat_id)))
    sent = [t for t in telegram.messages_to(guardian.chat_id) if t.startswith("Reply ")]
    assert sent == [f"Reply {n} from Alice" for n in range(ROUND_TRIPS)]  # in order
    median_ms = statistics.median(times) * 1000
    record_testsuite_property("telegram_round_trip_median_ms", round(median_ms, 1))
    print(f"\nhandoff round trip over Telegram: median {median_ms:.1f} ms of {ROUND_TRIPS}")

    closed = alice.post(f"/conversations/{guardian.conversation}/close")
    assert closed.status_code == 200 and closed.json()["told"]["outcome"] == "seen"
    assert "has left" in telegram.messages_to(guardian.chat_id)[-1]
    answered = guardian.says("hello")
    assert answered and not any(t.startswith("Reply ") for t in answered)


def test_a_web_chat_guardian_hears_the_agent_on_the_page(
        stack: Stack, record_testsuite_property: Any) -> None:
    alice = Agent(stack, "alice")

    async def scenario() -> list[float]:
        page = await Page(stack).open()
        conversation = f"webchat:{page.session}"
        try:
            await page.send("hello")  # in English: the language the agent's words go in
            await page.replies_until("What do you need")
            await page.send("/request_human")
            await page.replies_until("staff member")
            # Queued once the turn is saved, a moment after the page showed its reply.
            await asyncio.to_thread(wait_for, lambda: conversation in alice.waiting(),
                                    TIMEOUT, "the conversation in the queue")
            taken = await asyncio.to_thread(alice.take, conversation)
            assert taken["told"]["outcome"] == "seen"
            assert JOINED_EN in (await page.reply())["text"]
            await page.send("are you a person?")
            said = await asyncio.to_thread(alice.guardian_said, conversation)
            assert [m["text"] for m in said] == ["are you a person?"]
            assert page.uttered.empty()  # no answer of the assistant's
            times = []
            for n in range(ROUND_TRIPS):
                start = time.perf_counter()
                posting = asyncio.create_task(asyncio.to_thread(
                    alice.reply, conversation, f"Page reply {n}"))
                got = await page.reply()
                times.append(time.perf_counter() - start)
                assert got["text"] == f"Page reply {n}"
                assert (await posting)["outcome"] == "seen"
            back = await asyncio.to_thread(
                alice.post, f"/conversations/{conversation}/hand-back")
            assert back.status_code == 200
            assert BACK_EN in (await page.reply())["text"]
            await page.send("are you a bot?")
            assert any("automated" in t for t in await page.replies_until("automated"))
            return times
        finally:
            await page.close()

    with ThreadPoolExecutor(1) as thread:
        times = thread.submit(asyncio.run, scenario()).result()
    median_ms = statistics.median(times) * 1000
    record_testsuite_property("webchat_round_trip_median_ms", round(median_ms, 1))
    print(f"\nhandoff round trip over web chat: median {median_ms:.1f} ms of {ROUND_TRIPS}")


def test_three_failed_tries_on_one_question_queue_the_conversation(stack: Stack) -> None:
    alice = Agent(stack, "alice")
    guardian = "rest-" + uuid.uuid4().hex[:12]
    answers = [rest_says(stack, guardian, "xqzv blorf wug") for _ in range(3)]
    assert "staff member" not in answers[0] + answers[1]
    assert "staff member" in answers[2]
    case = alice.get(f"/conversations/{guardian}").json()
    assert case["reason"] == "failed_tries"


def test_outside_staffed_hours_the_guardian_is_told_and_offered_12333(stack: Stack) -> None:
    # Two hours from now (China time) to three: now is outside, whenever the test runs.
    later = datetime.now(CHINA) + timedelta(hours=2)
    day = later.strftime("%a")
    hours = f"{day} {later.hour:02d}:00-{later.hour + 1:02d}:00" if later.hour < 23 \
        else f"{day} 23:00-24:00"
    actions = stack.processes["actions"]
    actions.stop()
    closed = Process("actions-closed", actions.command,
                     {**actions.env, "STAFFED_HOURS": hours}, actions.log_path.parent)
    try:
        closed.start()
        stack.processes["actions"] = closed
        stack.wait("actions")
        guardian = "rest-" + uuid.uuid4().hex[:12]
        told = rest_says(stack, guardian, "/request_human")
        assert "No staff member is on duty" in told and "12333" in told
        case = Agent(stack, "alice").get(f"/conversations/{guardian}").json()
        assert (case["state"], case["after_hours"]) == ("waiting", True)
    finally:
        closed.stop()
        stack.processes["actions"] = actions
        actions.start()
        stack.wait("actions")
