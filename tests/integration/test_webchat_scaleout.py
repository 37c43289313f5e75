"""Two Rasa processes behind one Redis: a push sent to one reaches a page on the other.

Rasa's own socket.io channel would lose it (the room lives in the process holding the
socket); the web chat channel shares rooms through Redis. Trackers, locks and socket.io
rooms all live in the one Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import socketio

from bot.config import Settings
from tests.conftest import RedisServer
from tests.support.processes import Process, free_port, wait_for
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

REFERENCE = "SC-7K3F-9Q2M"
TIMEOUT = 30.0


class TwoRasas:
    def __init__(self, stack: Stack, second: Process, second_url: str):
        self.stack = stack
        self.second = second
        self.first_url = stack.rasa_url
        self.second_url = second_url


@pytest.fixture(scope="module")
def rasas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRasas]:
    log_dir = tmp_path_factory.mktemp("scaleout")
    (log_dir / "redis").mkdir()
    redis = RedisServer(log_dir / "redis", log_dir).start()
    stack = Stack(redis.url, log_dir, {"DATA_ENCRYPTION_KEY": "scaleout-test-data-key-012345678"})
    # Rasa #2: the Procfile's own command and environment, on another port.
    port = free_port()
    second_env = {**stack.env, "RASA_PORT": str(port)}
    second = Process("rasa-2", stack.processes["rasa"].command, second_env, log_dir)
    second_settings = Settings.from_env(second_env)
    try:
        second.start()  # loads its model while the stack starts
        stack.start()
        wait_for(lambda: _rasa_ready(second_settings), 180, "rasa #2")
        yield TwoRasas(stack, second, second_settings.rasa_url)
    finally:
        second.stop()
        stack.stop()
        redis.stop()


def _rasa_ready(settings: Settings) -> bool:
    from bot.health import rasa_ready

    return rasa_ready(settings)


async def _next(queue: asyncio.Queue[Any], what: str) -> Any:
    try:
        return await asyncio.wait_for(queue.get(), TIMEOUT)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} within {TIMEOUT:.0f} s") from None


async def _page_on_first_rasa_gets_push_from_second(rasas: TwoRasas) -> list[dict]:
    session = uuid.uuid4().hex
    confirmed: asyncio.Queue[Any] = asyncio.Queue()
    uttered: asyncio.Queue[dict] = asyncio.Queue()
    client = socketio.AsyncClient(reconnection=False)
    client.on("session_confirm", confirmed.put_nowait)
    client.on("bot_uttered", uttered.put_nowait)
    # What rasa-webchat does: connect, ask for its session, then talk in it.
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
        while not uttered.empty():
            uttered.get_nowait()

        response = await asyncio.to_thread(
            requests.post,
            f"{rasas.second_url}/conversations/{session}/trigger_intent",
            params={"token": rasas.stack.settings.rasa_token, "output_channel": "latest"},
            json={"name": "EXTERNAL_card_ready", "entities": {"reference_number": REFERENCE}},
            timeout=TIMEOUT,
        )
        assert response.ok, response.text
        pushed = [await _next(uttered, "pushed message on the first Rasa")]
        await asyncio.sleep(0.3)
        while not uttered.empty():
            pushed.append(uttered.get_nowait())
        return pushed
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
