"""Clients that flood, or name conversations that are not theirs, against the real stack:
each is refused or slowed, and a guardian talking at the same time is answered as usual.

The stack trusts X-Real-IP here (as it does behind nginx), so that clients on this one
machine can stand for different places, and the per-address limit is on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.testkit.stack import Stack, running_stack
from tests.testkit.webchat_page import Page

pytestmark = pytest.mark.integration
TIMEOUT = 120.0
FLOOD = 500
PER_ADDRESS_BURST = 20
SLOW_DOWN_EN = "faster than I can answer"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"SANIC_REAL_IP_HEADER": "x-real-ip", "RATE_PER_ADDRESS": "60",
           "RATE_ADDRESS_BURST": str(PER_ADDRESS_BURST)}
    with running_stack(tmp_path_factory.mktemp("hostile"), env) as running:
        yield running


def user_texts(stack: Stack, conversation: str) -> list[str]:
    events = stack.tracker(conversation)["events"]
    return [event["text"] for event in events if event["event"] == "user"]


def settled_user_texts(stack: Stack, conversation: str) -> list[str]:
    """The conversation's user messages once no more turns are being saved."""
    seen, deadline = user_texts(stack, conversation), time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        time.sleep(2)
        now = user_texts(stack, conversation)
        if now == seen:
            return now
        seen = now
    return seen


def in_thread(coroutine: Any) -> Any:
    # Another test's Playwright may hold this thread's event loop.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def test_a_socket_flooding_its_conversation_is_slowed_and_a_guardian_is_not(stack: Stack) -> None:
    async def run() -> tuple[list[str], list[str], Page]:
        flooder = await Page(stack, "203.0.113.7").open()
        guardian = await Page(stack, "198.51.100.20").open()
        try:
            # As fast as the server takes them, 8 a request (engine.io refuses a request of
            # more than 16 packets, and the client puts all it has queued in one).
            for number in range(FLOOD):
                await flooder.send(f"flood {number}")
                if number % 8 == 7:
                    await flooder.flush()
            await guardian.send("hello")
            answered = await guardian.replies_until("assistant")
            slowed = await flooder.replies_until(SLOW_DOWN_EN)
            return answered, slowed, flooder
        finally:
            await flooder.close()
            await guardian.close()

    answered, slowed, flooder = in_thread(run())
    assert not any(SLOW_DOWN_EN in text for text in answered), answered
    assert any(SLOW_DOWN_EN in text for text in slowed)
    stored = settled_user_texts(stack, f"webchat:{flooder.session}")
    # One turn running and two waiting at most, then a burst's worth as turns end.
    assert 1 <= len(stored) <= 30, len(stored)


def test_many_conversations_from_one_address_are_slowed(stack: Stack) -> None:
    async def run() -> tuple[int, list[str]]:
        pages = [await Page(stack, "203.0.113.50").open() for _ in range(PER_ADDRESS_BURST + 10)]
        guardian = await Page(stack, "198.51.100.21").open()
        try:
            for page in pages:
                await page.send("hello")
            slowed = 0
            for page in pages:
                first = (await asyncio.wait_for(page.uttered.get(), TIMEOUT)).get("text", "")
                slowed += SLOW_DOWN_EN in first
            await guardian.send("hello")
            return slowed, await guardian.replies_until("assistant")
        finally:
            for page in [*pages, guardian]:
                await page.close()

    slowed, answered = in_thread(run())
    assert slowed >= 5, slowed  # the burst, and a little refill while the pages opened
    assert not any(SLOW_DOWN_EN in text for text in answered), answered


def test_a_rest_flood_gets_429_and_another_conversation_is_answered(stack: Stack) -> None:
    url = f"{stack.rasa_url}/webhooks/rest/webhook"
    sender = f"flood-{uuid.uuid4().hex[:8]}"

    def post(number: int) -> requests.Response:
        return requests.post(url, json={"sender": sender, "message": f"flood {number}"},
                             headers={"X-Real-IP": f"192.0.2.{number % 200}"}, timeout=TIMEOUT)

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(post, range(FLOOD)))
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) >= FLOOD - 60, [a.status_code for a in answers][:40]
    assert all(a.status_code in (200, 429) for a in answers)
    assert refused[0].json()["error"]["code"] == "slow_down"
    assert SLOW_DOWN_EN in refused[0].json()["error"]["message"]
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert len(settled_user_texts(stack, sender)) == len(answers) - len(refused)

    other = requests.post(url, json={"sender": f"guardian-{uuid.uuid4().hex[:8]}",
                                     "message": "hello"}, timeout=TIMEOUT)
    assert other.status_code == 200 and "assistant" in " ".join(
        m.get("text", "") for m in other.json())


def test_a_rest_sender_cannot_name_another_channels_conversation(stack: Stack) -> None:
    victim = "wechat:oA1b2C3d4E5f6G7h8I9j0K1l2M3n"
    answer = requests.post(f"{stack.rasa_url}/webhooks/rest/webhook",
                           json={"sender": victim, "message": "cancel my report"},
                           timeout=TIMEOUT)
    assert answer.status_code == 400
    assert '"sender" may not contain ":"' in answer.json()["error"]["message"]
    assert user_texts(stack, victim) == []
