"""Web chat against a client that does not play by the page's rules: a socket cannot speak in
another conversation, client metadata is cut to the language, an oversized frame is refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import socketio

from tests.testkit.stack import Stack, running_stack
from tests.testkit.webchat_page import Page

pytestmark = pytest.mark.integration
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("webchat-hostile")) as running:
        yield running


def user_texts(stack: Stack, session: str) -> list[str]:
    events = stack.tracker(f"webchat:{session}")["events"]
    return [event["text"] for event in events if event["event"] == "user"]


def saved_user_events(stack: Stack, session: str, count: int) -> list[dict]:
    """The conversation's user events once `count` are saved (the reply is sent before the
    turn's save)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        events = [e for e in stack.tracker(f"webchat:{session}")["events"] if e["event"] == "user"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def test_a_socket_cannot_speak_in_another_conversation(stack: Stack) -> None:
    async def run() -> None:
        victim, intruder = await Page(stack).open(), await Page(stack).open()
        try:
            await victim.send("hello")
            await victim.reply()
            # The intruder names the victim's conversation, then says something in its own.
            await intruder.client.emit("user_uttered", {"message": "stop",
                                                        "session_id": victim.session})
            await intruder.send("are you a bot?")
            await intruder.reply()
            saved = saved_user_events(stack, intruder.session, 1)
            assert [event["text"] for event in saved] == ["are you a bot?"]
            assert [e["text"] for e in saved_user_events(stack, victim.session, 1)] == ["hello"]
        finally:
            await victim.close()
            await intruder.close()

    asyncio.run(run())


def test_client_metadata_keeps_only_the_language(stack: Stack) -> None:
    async def run() -> str:
        page = await Page(stack).open()
        try:
            await page.send("hello", customData={"language": "zh", "tracking": "x" * 2000,
                                                 "nested": {"a": [1, 2, 3]}})
            await page.reply()
            return page.session
        finally:
            await page.close()

    session = asyncio.run(run())
    user = saved_user_events(stack, session, 1)[-1]
    # Rasa adds its own model ids; of what the client sent, only the language is kept.
    sent = {key: value for key, value in user["metadata"].items()
            if key not in ("assistant_id", "model_id")}
    assert sent == {"language": "zh"}


def test_an_oversized_frame_is_refused_and_nothing_of_it_is_stored(stack: Stack) -> None:
    async def run() -> tuple[str, bool]:
        page = await Page(stack).open()
        try:
            await page.send("hello " + "x" * 300_000)
            await asyncio.sleep(2.0)
            return page.session, page.client.connected
        finally:
            if page.client.connected:
                await page.close()

    session, still_connected = asyncio.run(run())
    assert not still_connected  # the server closed the connection
    assert not any("x" * 1000 in (text or "") for text in user_texts(stack, session))


def test_a_page_from_another_site_cannot_open_a_socket(stack: Stack) -> None:
    async def connects(origin: str) -> bool:
        client = socketio.AsyncClient(reconnection=False)
        try:
            await client.connect(stack.rasa_url, socketio_path="/socket.io",
                                 transports=["polling"], headers={"Origin": origin})
        except socketio.exceptions.ConnectionError:
            return False
        await client.disconnect()
        return True

    assert asyncio.run(connects(stack.rasa_url))  # the chat page's own origin
    assert not asyncio.run(connects("https://evil.example"))
