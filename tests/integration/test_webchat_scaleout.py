"""Two Rasa processes behind one Redis: a push sent to one reaches a page on the other, a
page's turns run on the other, and a turn whose Rasa is killed is answered by the next.

Rasa's own socket.io channel would lose it (the room lives in the process holding the
socket); the web chat channel shares rooms through Redis. Trackers, locks and socket.io
rooms all live in the one Redis.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests
import socketio

from bot.channels.webchat import CLAIMED_PREFIX
from bot.settings import Settings
from tests.testkit.processes import Process, free_port, wait_for
from tests.testkit.redis_server import RedisServer
from tests.testkit.stack import Stack

pytestmark = pytest.mark.integration

REFERENCE = "SC-7K3F-9Q2M"
TIMEOUT = 30.0


class TwoRasas:
    def __init__(self, stack: Stack, second: Process, second_url: str, redis_url: str):
        self.stack = stack
        self.second = second
        self.first_url = stack.rasa_url
        self.second_url = second_url
        self.redis_url = redis_url


@pytest.fixture(scope="module")
def rasas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRasas]:
    log_dir = tmp_path_factory.mktemp("scaleout")
    (log_dir / "redis").mkdir()
    redis = RedisServer(log_dir / "redis", log_dir).start()
    # Rasa #1 holds the pages' sockets but runs none of their turns: each is shared through
    # Redis and run by Rasa #2, whose replies reach the page through Redis too.
    # A killed Rasa's conversation lock lapses after 20 s instead of 60, to keep the test short.
    stack = Stack(redis.url, log_dir, {"DATA_ENCRYPTION_KEY": "scaleout-test-data-key-012345678",
                                       "WEBCHAT_TURNS_AT_ONCE": "0",
                                       "TICKET_LOCK_LIFETIME": "20"})
    # Rasa #2: the Procfile's own command and environment, on another port.
    port = free_port()
    second_env = {**stack.env, "RASA_PORT": str(port), "WEBCHAT_TURNS_AT_ONCE": "2"}
    second = Process("rasa-2", stack.processes["rasa"].command, second_env, log_dir)
    second_settings = Settings.from_env(second_env)
    two = TwoRasas(stack, second, second_settings.rasa_url, redis.url)
    try:
        second.start()  # loads its model while the stack starts
        stack.start()
        wait_for(lambda: _rasa_ready(second_settings), 180, "rasa #2")
        yield two
    finally:
        two.second.stop()  # the one started in its place, if a test killed it
        stack.stop()
        redis.stop()


def _rasa_ready(settings: Settings) -> bool:
    from bot.stack.health import rasa_ready

    return rasa_ready(settings)


async def _next(queue: asyncio.Queue[Any], what: str) -> Any:
    try:
        return await asyncio.wait_for(queue.get(), TIMEOUT)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} within {TIMEOUT:.0f} s") from None


async def _greeted_page(rasas: TwoRasas,
                        uttered: asyncio.Queue[dict]) -> tuple[socketio.AsyncClient, str]:
    """What rasa-webchat does, on the first Rasa: connect, ask for its session, greet in it.

    The greeting makes this socket the conversation's latest channel, where pushes go.
    """
    session = uuid.uuid4().hex
    confirmed: asyncio.Queue[Any] = asyncio.Queue()
    client = socketio.AsyncClient(reconnection=False)
    client.on("session_confirm", confirmed.put_nowait)
    client.on("bot_uttered", uttered.put_nowait)
    # Long polling: python-engineio's websocket client needs a newer aiohttp than Rasa's.
    await client.connect(rasas.first_url, socketio_path="/socket.io", transports=["polling"])
    try:
        await client.emit("session_request", {"session_id": session})
        assert await _next(confirmed, "session_confirm") == session
        await client.emit("user_uttered", {"message": '/greet{"language": "en"}',
                                           "session_id": session,
                                           "customData": {"language": "en"}})
        greeting = await _next(uttered, "greeting")
        assert "assistant" in greeting["text"]
        await asyncio.sleep(0.3)
        _drain(uttered)
    except BaseException:
        await client.disconnect()
        raise
    return client, session


def _drain(queue: asyncio.Queue[dict]) -> list[dict]:
    got = []
    while not queue.empty():
        got.append(queue.get_nowait())
    return got


async def _push(url: str, session: str, token: str, reference: str) -> None:
    response = await asyncio.to_thread(
        requests.post, f"{url}/conversations/webchat:{session}/trigger_intent",
        params={"token": token, "output_channel": "latest"},
        json={"name": "EXTERNAL_card_ready", "entities": {"reference_number": reference}},
        timeout=TIMEOUT)
    assert response.ok, response.text


async def _page_on_first_rasa_gets_push_from_second(rasas: TwoRasas) -> list[dict]:
    uttered: asyncio.Queue[dict] = asyncio.Queue()
    client, session = await _greeted_page(rasas, uttered)
    try:
        await _push(rasas.second_url, session, rasas.stack.settings.rasa_token, REFERENCE)
        pushed = [await _next(uttered, "pushed message on the first Rasa")]
        await asyncio.sleep(0.3)
        return pushed + _drain(uttered)
    finally:
        await client.disconnect()


def test_trigger_intent_on_one_rasa_reaches_the_socket_held_by_the_other(rasas: TwoRasas) -> None:
    # In a thread of its own: another test's Playwright may hold this thread's event loop.
    with ThreadPoolExecutor(1) as thread:
        pushed = thread.submit(asyncio.run,
                               _page_on_first_rasa_gets_push_from_second(rasas)).result()
    assert any(REFERENCE in message.get("text", "") for message in pushed), pushed


def test_both_rasas_serve_the_same_conversation_from_redis(rasas: TwoRasas) -> None:
    sender = f"scaleout-{uuid.uuid4().hex[:8]}"
    first = requests.post(f"{rasas.first_url}/webhooks/rest/webhook",
                          json={"sender": sender, "message": "你好"}, timeout=TIMEOUT)
    assert first.ok and first.json()
    tracker = requests.get(f"{rasas.second_url}/conversations/{sender}/tracker",
                           params={"token": rasas.stack.settings.rasa_token}, timeout=TIMEOUT)
    assert tracker.json()["slots"]["language"] == "zh"


async def _pushes_from_both_rasas(rasas: TwoRasas) -> list[str]:
    """A page on the first Rasa; a push sent through each Rasa in turn: what the page got."""
    uttered: asyncio.Queue[dict] = asyncio.Queue()
    client, session = await _greeted_page(rasas, uttered)
    texts: list[str] = []
    try:
        for url, reference in ((rasas.first_url, "SC-AAAA-1111"),
                               (rasas.second_url, "SC-BBBB-2222")):
            await _push(url, session, rasas.stack.settings.rasa_token, reference)
            while not any(reference in text for text in texts):
                texts.append(str((await _next(uttered, reference)).get("text", "")))
            await asyncio.sleep(0.5)  # the rest of this push's messages
            texts += [str(message.get("text", "")) for message in _drain(uttered)]
        await asyncio.sleep(1.0)  # room for a copy that should not come
        return texts + [str(message.get("text", "")) for message in _drain(uttered)]
    finally:
        await client.disconnect()


def test_each_push_reaches_the_page_once_from_either_rasa(rasas: TwoRasas) -> None:
    """The page's own Rasa delivers straight away, the other through Redis: once each."""
    with ThreadPoolExecutor(1) as thread:
        texts = thread.submit(asyncio.run, _pushes_from_both_rasas(rasas)).result()
    half = len(texts) // 2
    assert half and len(texts) == 2 * half, texts
    # The same messages for each push, in the same order, none twice.
    assert any("SC-AAAA-1111" in text for text in texts[:half]), texts
    assert [text.replace("SC-AAAA-1111", "ref") for text in texts[:half]] == \
        [text.replace("SC-BBBB-2222", "ref") for text in texts[half:]], texts


def _claimed_turns(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(client.llen(key) for key in client.scan_iter(CLAIMED_PREFIX + "*"))
    finally:
        client.close()


async def _turn_of_killed_rasa(rasas: TwoRasas, log_dir: Any) -> tuple[list[str], str]:
    """A page on Rasa #1; Rasa #2, running its turn, is killed; a new Rasa takes over."""
    uttered: asyncio.Queue[dict] = asyncio.Queue()
    client, session = await _greeted_page(rasas, uttered)
    actions = rasas.stack.processes["actions"]
    try:
        await client.emit("user_uttered", {"message": "my son lost his social security card",
                                           "session_id": session})
        await _next(uttered, "the offer to file a report")
        await asyncio.sleep(0.5)
        _drain(uttered)
        # The action server stops answering, so Rasa #2 is still in the turn when it dies.
        actions.signal(signal.SIGSTOP)
        try:
            await client.emit("user_uttered", {"message": "yes", "session_id": session})
            for _ in range(int(TIMEOUT / 0.1)):
                if await asyncio.to_thread(_claimed_turns, rasas.redis_url):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("Rasa #2 never claimed the turn")
            rasas.second.kill()
        finally:
            actions.signal(signal.SIGCONT)
        assert _drain(uttered) == []
        port = free_port()
        third = Process("rasa-3", rasas.second.command,
                        {**rasas.second.env, "RASA_PORT": str(port)}, log_dir)
        rasas.second = third.start()
        third_settings = Settings.from_env(third.env)
        rasas.second_url = third_settings.rasa_url
        await asyncio.to_thread(wait_for, lambda: _rasa_ready(third_settings), 180, "rasa #3")
        # Taken over once #2 has been gone 10 s as seen by #3, run once #2's lock lapses.
        texts = [str((await asyncio.wait_for(uttered.get(), 90)).get("text", ""))]
        await asyncio.sleep(2.0)  # room for a second answer that should not come
        texts += [str(message.get("text", "")) for message in _drain(uttered)]
        return texts, session
    finally:
        await client.disconnect()


def test_a_turn_whose_rasa_is_killed_is_answered_once_by_the_next(
        rasas: TwoRasas, tmp_path: Any) -> None:
    with ThreadPoolExecutor(1) as thread:
        texts, session = thread.submit(asyncio.run,
                                       _turn_of_killed_rasa(rasas, tmp_path)).result()
    assert texts == ["What is your child's full name?"], texts
    tracker = requests.get(f"{rasas.first_url}/conversations/webchat:{session}/tracker",
                           params={"token": rasas.stack.settings.rasa_token},
                           timeout=TIMEOUT).json()
    said = [event.get("text") for event in tracker["events"] if event["event"] == "user"]
    assert said.count("yes") == 1, said
    assert _claimed_turns(rasas.redis_url) == 0
