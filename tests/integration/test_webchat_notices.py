"""The web chat's notice path over HTTP and socket.io, against two real Rasa processes on one
Redis: a notice posted to one Rasa reaches a page held by the other (seen); a closed page's
notice is kept (queued) and shown once when the page comes back, on either Rasa; asked
again while unread it falls back to the next path, unless it is the last."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import redis
import requests

from bot import notices
from bot.channels.webchat.presence import presence_key
from bot.channels.webchat.unread import BODY_PREFIX, QUEUE_PREFIX, SHOWN_PREFIX
from bot.settings import Settings
from bot.stack.health import rasa_ready
from tests.testkit.processes import Process, free_port, wait_for
from tests.testkit.redis_server import RedisServer
from tests.testkit.stack import Stack
from tests.testkit.webchat_page import Page

pytestmark = pytest.mark.integration

T = TypeVar("T")
TIMEOUT = 30.0
READY = "Your new social security card (SC-7K3F-9Q2M) is ready for collection."
BRING = "Bring the receipt and your ID card."
MESSAGES: list[dict[str, Any]] = [
    {"recipient_id": "", "text": READY},
    {"recipient_id": "", "text": BRING,
     "buttons": [{"title": "Opening hours", "payload": "/ask_opening_hours"}]}]


class Rasas:
    """The stack's Rasa (#1) and a second one (#2) on the same Redis."""

    def __init__(self, stack: Stack, second_url: str, redis_url: str) -> None:
        self.stack = stack
        self.first = stack.rasa_url
        self.second = second_url
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)

    def page(self, url: str, session: str | None = None) -> Page:
        """A page on the Rasa at `url`, in `session` (a new one when None)."""
        page = Page(self.stack)
        page.url = url
        if session:
            page.session = session
        return page

    def notice(self, url: str, session: str, notice_id: str, last: bool = False,
               token_for: str | None = None) -> requests.Response:
        conversation = f"webchat:{session}"
        token = notices.token_for(token_for or conversation, self.stack.settings.rasa_jwt_secret)
        return requests.post(
            f"{url}/webhooks/webchat/notice", headers={"Authorization": f"Bearer {token}"},
            json={"id": notice_id, "conversation": conversation, "path": "page",
                  "kind": "card_ready", "language": "en", "last": last,
                  "messages": [{**m, "recipient_id": conversation} for m in MESSAGES],
                  "variables": {"reference": "SC-7K3F-9Q2M"}},
            timeout=TIMEOUT)

    def outcome(self, url: str, session: str, notice_id: str, last: bool = False) -> str:
        answer = self.notice(url, session, notice_id, last)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["outcome"])

    def closed(self, session: str) -> None:
        """Waits until no page of the conversation counts as open (the disconnect is
        handled after the client is gone)."""
        wait_for(lambda: not self.redis.zcard(presence_key(f"webchat:{session}")),
                 TIMEOUT, "the page's goodbye")

    def waiting(self, session: str) -> list[str]:
        return list(self.redis.zrange(QUEUE_PREFIX + f"webchat:{session}", 0, -1))


@pytest.fixture(scope="module")
def rasas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rasas]:
    log_dir = tmp_path_factory.mktemp("webchat-notices")
    (log_dir / "redis").mkdir()
    server = RedisServer(log_dir / "redis", log_dir).start()
    stack = Stack(server.url, log_dir)
    env = {**stack.env, "RASA_PORT": str(free_port())}
    second = Process("rasa-2", stack.processes["rasa"].command, env, log_dir)
    second_settings = Settings.from_env(env)
    try:
        second.start()  # loads its model while the stack starts
        stack.start()
        wait_for(lambda: rasa_ready(second_settings), 180, "rasa #2")
        yield Rasas(stack, second_settings.rasa_url, server.url)
    finally:
        second.stop()
        stack.stop()
        server.stop()


def in_thread(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    # A loop of its own: a browser test's Playwright may hold this thread's.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, scenario()).result()


def notice_messages(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in received if (m.get("metadata") or {}).get("notice")]


async def drained(page: Page) -> list[dict[str, Any]]:
    got = []
    while not page.uttered.empty():
        got.append(page.uttered.get_nowait())
    return got


async def received_before_a_reply(page: Page, notices_due: int = 0) -> list[dict[str, Any]]:
    """What the page got from its session request up to the reply to a message it sends
    then, and until `notices_due` notice messages are in. A notice waiting for the page is
    sent when its session is confirmed; a message typed at that moment runs at the same
    time, so its reply may come between two of the notice's messages."""
    await page.send("are you a bot?")
    got: list[dict[str, Any]] = []
    while (not any("automated" in str(m.get("text", "")) for m in got)
           or len(notice_messages(got)) < notices_due):
        try:
            got.append(await asyncio.wait_for(page.uttered.get(), TIMEOUT))
        except asyncio.TimeoutError:
            raise AssertionError(f"no reply and {notices_due} notice messages after "
                                 f"{TIMEOUT:.0f} s (connected: {page.client.connected}); "
                                 f"got {got}") from None
    return got


def test_a_notice_for_an_open_page_held_by_the_other_rasa_is_seen_there(rasas: Rasas) -> None:
    notice_id = f"SC-{uuid.uuid4().hex[:8]}:ready_for_collection"

    async def scenario() -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
        page = await rasas.page(rasas.first).open()
        try:
            await received_before_a_reply(page)  # its session request fully handled
            # Off the loop: the page acknowledges what it is shown while the POST waits.
            outcomes = [await asyncio.to_thread(rasas.outcome, rasas.second, page.session,
                                                notice_id)]
            shown = [await page.reply(), await page.reply()]
            outcomes.append(await asyncio.to_thread(rasas.outcome, rasas.first, page.session,
                                                    notice_id))  # a repeat
            return outcomes, shown, await received_before_a_reply(page)
        finally:
            await page.close()

    outcomes, shown, after = in_thread(scenario)
    assert outcomes == [notices.SEEN, notices.SEEN]
    # As the bot's replies are: same event, texts, buttons as quick replies.
    assert [m["text"] for m in shown] == [READY, BRING]
    assert shown[1]["quick_replies"] == [{"content_type": "text", "title": "Opening hours",
                                          "payload": "/ask_opening_hours"}]
    tags = {m["metadata"]["notice"] for m in shown}
    assert len(tags) == 1 and all(m["metadata"]["unread"] is False for m in shown)
    assert "SC-" not in next(iter(tags))  # the page is told which notice, not what it says
    assert notice_messages(after) == []  # the repeat showed nothing


def test_a_closed_page_gets_the_notice_once_when_it_comes_back(rasas: Rasas) -> None:
    notice_id = f"SC-{uuid.uuid4().hex[:8]}:ready_for_collection"

    async def scenario() -> tuple[str, list[str], list[dict[str, Any]], list[dict[str, Any]],
                                  str]:
        page = await rasas.page(rasas.first).open()
        await page.close()
        await asyncio.to_thread(rasas.closed, page.session)
        queued = await asyncio.to_thread(rasas.outcome, rasas.second, page.session, notice_id)
        waiting = rasas.waiting(page.session)
        # The guardian opens the page again (same session), this time through Rasa #2.
        back = await rasas.page(rasas.second, page.session).open()
        try:
            first = await received_before_a_reply(back, notices_due=2)
        finally:
            await back.close()
        again = await rasas.page(rasas.first, page.session).open()  # a reload
        try:
            second = await received_before_a_reply(again)
        finally:
            await again.close()
        asked_again = await asyncio.to_thread(rasas.outcome, rasas.first, page.session,
                                              notice_id)
        return queued, waiting, first, second, asked_again

    queued, waiting, first, second, asked_again = in_thread(scenario)
    assert queued == notices.QUEUED and waiting == [notice_id]
    shown = notice_messages(first)
    assert [m["text"] for m in shown] == [READY, BRING]
    assert all(m["metadata"]["unread"] is True for m in shown)
    assert notice_messages(second) == []
    assert asked_again == notices.SEEN
    assert rasas.redis.exists(SHOWN_PREFIX + notice_id)
    assert not rasas.redis.keys(f"{BODY_PREFIX}*{notice_id}")


def test_a_kept_notice_is_sealed_in_redis(rasas: Rasas) -> None:
    session = uuid.uuid4().hex
    notice_id = f"SC-{uuid.uuid4().hex[:8]}:ready_for_collection"
    assert rasas.outcome(rasas.first, session, notice_id) == notices.QUEUED
    stored = rasas.redis.get(f"{BODY_PREFIX}webchat:{session}:{notice_id}")
    assert stored and stored.startswith("v2:")
    assert "ready for collection" not in stored and "SC-7K3F-9Q2M" not in stored
    assert 29 * 24 * 3600 < rasas.redis.ttl(f"{BODY_PREFIX}webchat:{session}:{notice_id}")


def test_asked_again_while_unread_it_falls_back_and_is_gone(rasas: Rasas) -> None:
    session = uuid.uuid4().hex
    notice_id = f"SC-{uuid.uuid4().hex[:8]}:ready_for_collection"
    outcomes = [rasas.outcome(rasas.first, session, notice_id),
                rasas.outcome(rasas.second, session, notice_id)]
    assert outcomes == [notices.QUEUED, notices.FALLBACK]
    assert rasas.waiting(session) == []
    assert not rasas.redis.exists(f"{BODY_PREFIX}webchat:{session}:{notice_id}")

    async def come_back() -> list[dict[str, Any]]:
        page = await rasas.page(rasas.first, session).open()
        try:
            return await received_before_a_reply(page)
        finally:
            await page.close()

    assert notice_messages(in_thread(come_back)) == []  # the SMS told them instead


def test_as_the_last_path_it_stays_kept_when_asked_again(rasas: Rasas) -> None:
    session = uuid.uuid4().hex
    notice_id = f"SC-{uuid.uuid4().hex[:8]}:ready_for_collection"
    outcomes = [rasas.outcome(rasas.first, session, notice_id, last=True) for _ in range(2)]
    assert outcomes == [notices.QUEUED, notices.QUEUED]
    assert rasas.waiting(session) == [notice_id]


def test_two_pages_coming_back_at_once_on_both_rasas_show_it_once(rasas: Rasas) -> None:
    session = uuid.uuid4().hex
    notice_id = f"SC-{uuid.uuid4().hex[:8]}:ready_for_collection"
    assert rasas.outcome(rasas.first, session, notice_id) == notices.QUEUED

    async def both() -> list[list[dict[str, Any]]]:
        pages = [rasas.page(rasas.first, session), rasas.page(rasas.second, session)]
        await asyncio.gather(*(page.open() for page in pages))
        try:
            # Each sends a message; both are in the conversation's room, so each gets both
            # replies, after anything that waited for them.
            await pages[0].send("are you a bot?")
            got: list[list[dict[str, Any]]] = [[], []]
            for page, received in zip(pages, got, strict=True):
                while sum("automated" in str(m.get("text", "")) for m in received) < 1:
                    received.append(await page.reply())
            await asyncio.sleep(0.5)  # the other page's share of the room's messages
            return [received + await drained(page) for page, received in zip(pages, got,
                                                                              strict=True)]
        finally:
            await asyncio.gather(*(page.close() for page in pages))

    got = in_thread(both)
    shown = [notice_messages(received) for received in got]
    assert sorted(len(each) for each in shown) == [0, 2], shown
    assert rasas.waiting(session) == []


def test_a_notice_needs_a_token_for_its_conversation_and_a_well_formed_body(
        rasas: Rasas) -> None:
    session = uuid.uuid4().hex
    other = rasas.notice(rasas.first, session, "SC-1:x", token_for=f"webchat:{uuid.uuid4().hex}")
    assert other.status_code == 401
    malformed = requests.post(f"{rasas.first}/webhooks/webchat/notice", json={"id": "SC-1:x"},
                              timeout=TIMEOUT)
    assert malformed.status_code == 422 and "conversation" in malformed.json()["message"]
    assert rasas.waiting(session) == []
