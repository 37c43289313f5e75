"""The web chat's notice path on a real Redis: unread notices kept sealed with an expiry, a
repeat kept once, taken once however many pages take at once, and what each request for a
notice answers (open page, closed page, asked again, last path)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio

from bot import notices
from bot import redis as bot_redis
from bot.channels.webchat.delivery import NoticeDelivery
from bot.channels.webchat.presence import Presence, presence_key
from bot.channels.webchat.unread import (
    BODY_PREFIX,
    DAY_S,
    GONE,
    KEPT,
    QUEUE_PREFIX,
    SHOWING,
    SHOWING_S,
    SHOWN,
    SHOWN_PREFIX,
    WAITING,
    WITHDRAWN,
    Taken,
    UnreadNotices,
)
from bot.crypto import Vault
from tests.testkit.redis_server import RedisServer

T = TypeVar("T")
VAULT = Vault("unit-test-data-key-0123456789")
CONVERSATION = "webchat:3f2a9c0d1e8b4f6a9d7c5b3a1e0f2d4c"
TEXT = "Your new card (SC-7K3F-9Q2M) is ready for collection at the Xuhui service hall."
MESSAGES = [{"text": TEXT, "buttons": [{"title": "What to bring", "payload": "/bring"}]}]


def run(redis_url: str, scenario: Callable[[redis.asyncio.Redis], Awaitable[T]]) -> T:
    """`scenario` with an asyncio client of its own loop, closed afterwards."""
    async def main() -> T:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return await scenario(client)
        finally:
            await client.close()

    return asyncio.run(main())


def notice(notice_id: str = "SC-7K3F-9Q2M:ready_for_collection", last: bool = False
           ) -> notices.Notice:
    return notices.Notice(id=notice_id, conversation=CONVERSATION, path="page", last=last,
                          messages=tuple(MESSAGES))


class Pages:
    """What `show` did, standing for the channel's sockets: which sockets were shown which
    notices, and whether they acknowledged (`answering`: the sockets that do)."""

    def __init__(self, answering: set[str] | None = None) -> None:
        self.answering = answering
        self.shown: list[tuple[list[str], list[str], bool]] = []

    async def show(self, sids: list[str], taken: list[Taken], unread: bool) -> bool:
        self.shown.append((sids, [each.id for each in taken], unread))
        return self.answering is None or bool(self.answering & set(sids))


def delivery(client: redis.asyncio.Redis, pages: Pages, days: int = 30) -> NoticeDelivery:
    return NoticeDelivery(Presence(client), UnreadNotices(client, VAULT, days), pages.show)


# ---- the queue --------------------------------------------------------------------------


def test_a_kept_notice_is_sealed_at_rest_and_expires_after_the_configured_days(
        redis_url: str) -> None:
    async def scenario(client: redis.asyncio.Redis) -> str:
        return await UnreadNotices(client, VAULT, days=7).keep(
            CONVERSATION, notice().id, MESSAGES)

    assert run(redis_url, scenario) == KEPT
    plain = redis.Redis.from_url(redis_url)
    body_key = f"{BODY_PREFIX}{CONVERSATION}:{notice().id}"
    stored = plain.get(body_key)
    assert stored is not None and stored.startswith(b"v2:" + VAULT.key_id.encode())
    everything = b" ".join(plain.dump(key) or b"" for key in plain.keys("*"))
    assert b"SC-7K3F-9Q2M is" not in everything and b"Xuhui" not in everything
    assert b"ready for collection" not in everything
    for key in (body_key, QUEUE_PREFIX + CONVERSATION):
        assert 7 * DAY_S - 60 < plain.ttl(key) <= 7 * DAY_S, key
    # Sealed for this conversation and notice: moved to another, it does not open.
    with pytest.raises(ValueError):
        VAULT.decrypt(stored.decode(), f"webchat-notice:webchat:other:{notice().id}")


def test_a_repeat_is_kept_once_and_a_shown_notice_is_not_kept_again(redis_url: str) -> None:
    async def scenario(client: redis.asyncio.Redis) -> tuple[list[str], list[str], list[str]]:
        unread = UnreadNotices(client, VAULT, days=30)
        answers = [await unread.keep(CONVERSATION, notice().id, MESSAGES) for _ in range(3)]
        waiting = await unread.waiting(CONVERSATION)
        taken = await unread.take(CONVERSATION)
        answers.append(await unread.keep(CONVERSATION, notice().id, MESSAGES))
        await unread.confirm(CONVERSATION, taken)
        answers.append(await unread.keep(CONVERSATION, notice().id, MESSAGES))
        return answers, waiting, await unread.waiting(CONVERSATION)

    answers, waiting, after = run(redis_url, scenario)
    assert answers == [KEPT, WAITING, WAITING, SHOWING, SHOWN]
    assert waiting == [notice().id] and after == []
    plain = redis.Redis.from_url(redis_url)
    assert plain.keys(f"{BODY_PREFIX}*") == []
    assert 29 * DAY_S < plain.ttl(SHOWN_PREFIX + notice().id) <= 30 * DAY_S


def test_many_takers_at_once_get_each_notice_exactly_once_and_in_order(redis_url: str) -> None:
    """Two Rasa processes (clients of their own) with pages of the conversation opening at
    once: every notice goes to exactly one of them."""
    ids = [f"SC-{n:04d}-TEST:ready_for_collection" for n in range(5)]

    async def scenario(client: redis.asyncio.Redis) -> list[list[list[str]]]:
        other = redis.asyncio.Redis.from_url(redis_url)
        try:
            here, there = UnreadNotices(client, VAULT, 30), UnreadNotices(other, VAULT, 30)
            for notice_id in ids:
                await here.keep(CONVERSATION, notice_id, MESSAGES)
            rounds = []
            for _ in range(20):
                takes = await asyncio.gather(*(
                    (here if i % 2 else there).take(CONVERSATION) for i in range(8)))
                rounds.append([[each.id for each in taken] for taken in takes])
                for taken in takes:
                    await here.release(taken)  # nobody acknowledged: the next round's
            return rounds
        finally:
            await other.close()

    for takes in run(redis_url, scenario):
        assert sorted(sum(takes, [])) == ids, takes
        assert [taken for taken in takes if taken] == [ids], takes  # one taker, in order


def test_what_no_page_acknowledged_stays_in_its_place_and_a_dead_takers_share_lapses(
        redis_url: str) -> None:
    async def scenario(client: redis.asyncio.Redis) -> list[Any]:
        unread = UnreadNotices(client, VAULT, 30)
        for notice_id in ("first", "second"):
            await unread.keep(CONVERSATION, notice_id, MESSAGES)
        taken = await unread.take(CONVERSATION)
        assert [each.messages for each in taken] == [MESSAGES, MESSAGES]
        seen: list[Any] = [await unread.state("first"), await unread.take(CONVERSATION)]
        await unread.release(taken)
        await unread.keep(CONVERSATION, "third", MESSAGES)
        seen += [await unread.waiting(CONVERSATION), await unread.state("first")]
        # A process takes them and dies before it confirms or releases: its marks run out
        # (SHOWING_S; deleted here rather than waited for) and they are shown again.
        await unread.take(CONVERSATION)
        seen.append(await client.ttl(SHOWN_PREFIX + "first"))
        await client.delete(*(SHOWN_PREFIX + name for name in ("first", "second", "third")))
        seen.append([each.id for each in await unread.take(CONVERSATION)])
        return seen

    showing, second_take, waiting, state, ttl, again = run(redis_url, scenario)
    assert showing == SHOWING and second_take == []
    assert waiting == ["first", "second", "third"] and state is None
    assert 0 < ttl <= SHOWING_S
    assert again == ["first", "second", "third"]


def test_a_withdrawn_notice_is_gone_unless_a_page_shows_it_first(redis_url: str) -> None:
    async def scenario(client: redis.asyncio.Redis) -> list[str]:
        unread = UnreadNotices(client, VAULT, 30)
        await unread.keep(CONVERSATION, "one", MESSAGES)
        answers = [await unread.withdraw(CONVERSATION, "one"),
                   await unread.withdraw(CONVERSATION, "one")]
        await unread.keep(CONVERSATION, "two", MESSAGES)
        taken = await unread.take(CONVERSATION)
        answers.append(await unread.withdraw(CONVERSATION, "two"))
        await unread.confirm(CONVERSATION, taken)
        answers.append(await unread.withdraw(CONVERSATION, "two"))
        answers.append(str(await unread.waiting(CONVERSATION)))
        return answers

    assert run(redis_url, scenario) == [WITHDRAWN, GONE, SHOWING, SHOWN, "[]"]


# ---- which pages are open -------------------------------------------------------------


def test_a_page_counts_from_its_session_to_its_goodbye_and_a_silent_one_lapses(
        redis_url: str) -> None:
    async def scenario(client: redis.asyncio.Redis) -> list[list[str]]:
        presence, elsewhere = Presence(client, ttl_s=30), Presence(client, ttl_s=30)
        seen = [await presence.sockets(CONVERSATION)]
        await presence.arrive("sid-a", CONVERSATION)
        await elsewhere.arrive("sid-b", CONVERSATION)  # a page on another process
        seen.append(sorted(await presence.sockets(CONVERSATION)))
        await presence.leave("sid-a")
        seen.append(await elsewhere.sockets(CONVERSATION))
        # The other process dies: its socket's time runs out (moved to the past here,
        # rather than waited for) and nobody refreshes it.
        await client.zadd(presence_key(CONVERSATION), {"sid-b": 1})
        seen.append(await presence.sockets(CONVERSATION))
        await elsewhere.refresh()  # alive after all: its beat brings the socket back
        seen.append(await presence.sockets(CONVERSATION))
        # A socket moved to another conversation no longer counts in the first.
        await elsewhere.arrive("sid-b", "webchat:another-conversation-0001")
        seen.append(await presence.sockets(CONVERSATION))
        return seen

    assert run(redis_url, scenario) == [[], ["sid-a", "sid-b"], ["sid-b"], [], ["sid-b"], []]
    ttl = redis.Redis.from_url(redis_url).ttl(presence_key("webchat:another-conversation-0001"))
    assert 0 < ttl <= 30


# ---- what the card service is answered --------------------------------------------------


def test_no_page_open_queued_then_fallback_when_asked_again_and_gone(redis_url: str) -> None:
    async def scenario(client: redis.asyncio.Redis) -> tuple[list[str], list[str]]:
        path = delivery(client, Pages())
        first = await path.deliver(CONVERSATION, notice())
        again = await path.deliver(CONVERSATION, notice())
        return [first.outcome, again.outcome], await path.unread.waiting(CONVERSATION)

    outcomes, waiting = run(redis_url, scenario)
    assert outcomes == [notices.QUEUED, notices.FALLBACK] and waiting == []


def test_the_last_path_keeps_the_notice_when_asked_again(redis_url: str) -> None:
    async def scenario(client: redis.asyncio.Redis) -> tuple[list[str], list[str]]:
        path = delivery(client, Pages())
        outcomes = [(await path.deliver(CONVERSATION, notice(last=True))).outcome
                    for _ in range(2)]
        return outcomes, await path.unread.waiting(CONVERSATION)

    outcomes, waiting = run(redis_url, scenario)
    assert outcomes == [notices.QUEUED, notices.QUEUED] and waiting == [notice().id]


def test_an_open_page_is_shown_the_notice_once(redis_url: str) -> None:
    async def scenario(client: redis.asyncio.Redis) -> tuple[list[str], Pages]:
        pages = Pages()
        path = delivery(client, pages)
        await path.presence.arrive("sid-a", CONVERSATION)
        outcomes = [(await path.deliver(CONVERSATION, notice())).outcome for _ in range(2)]
        await path.page_arrived("sid-b", CONVERSATION)  # another page: nothing waits
        return outcomes, pages

    outcomes, pages = run(redis_url, scenario)
    assert outcomes == [notices.SEEN, notices.SEEN]
    assert pages.shown == [(["sid-a"], [notice().id], False)]


def test_a_page_that_does_not_acknowledge_leaves_the_notice_kept(redis_url: str) -> None:
    """A socket counted as open whose process died: offered, unacknowledged, kept."""
    async def scenario(client: redis.asyncio.Redis
                       ) -> tuple[str, list[str], str | None, Pages]:
        pages = Pages(answering=set())
        path = delivery(client, pages)
        await path.presence.arrive("sid-dead", CONVERSATION)
        outcome = await path.deliver(CONVERSATION, notice())
        return (outcome.outcome, await path.unread.waiting(CONVERSATION),
                await path.unread.state(notice().id), pages)

    outcome, waiting, state, pages = run(redis_url, scenario)
    assert outcome == notices.QUEUED and waiting == [notice().id] and state is None
    assert pages.shown == [(["sid-dead"], [notice().id], False)]


def test_a_returning_page_is_shown_what_waited_once_as_unread(redis_url: str) -> None:
    async def scenario(client: redis.asyncio.Redis) -> tuple[list[str], Pages]:
        pages = Pages()
        path = delivery(client, pages)
        outcomes = [(await path.deliver(CONVERSATION, notice("a"))).outcome,
                    (await path.deliver(CONVERSATION, notice("b"))).outcome]
        await path.page_arrived("sid-1", CONVERSATION)
        await path.page_left("sid-1")
        await path.page_arrived("sid-2", CONVERSATION)  # a reload: nothing again
        outcomes.append((await path.deliver(CONVERSATION, notice("a"))).outcome)
        return outcomes, pages

    outcomes, pages = run(redis_url, scenario)
    assert outcomes == [notices.QUEUED, notices.QUEUED, notices.SEEN]
    assert pages.shown == [(["sid-1"], ["a", "b"], True)]


def test_while_a_page_opening_now_is_shown_it_the_notice_is_queued_then_seen(
        redis_url: str) -> None:
    async def scenario(client: redis.asyncio.Redis) -> list[str]:
        path = delivery(client, Pages())
        outcomes = [(await path.deliver(CONVERSATION, notice())).outcome]
        taken = await path.unread.take(CONVERSATION)  # a page opening on another process
        outcomes.append((await path.deliver(CONVERSATION, notice())).outcome)
        await path.unread.confirm(CONVERSATION, taken)  # it acknowledged
        outcomes.append((await path.deliver(CONVERSATION, notice())).outcome)
        return outcomes

    assert run(redis_url, scenario) == [notices.QUEUED, notices.QUEUED, notices.SEEN]


def test_with_no_days_to_wait_a_closed_page_falls_back_at_once(redis_url: str) -> None:
    async def scenario(client: redis.asyncio.Redis) -> tuple[str, list[str]]:
        path = delivery(client, Pages(), days=0)
        outcome = await path.deliver(CONVERSATION, notice(last=True))
        return outcome.outcome, await path.unread.waiting(CONVERSATION)

    assert run(redis_url, scenario) == (notices.FALLBACK, [])


# ---- as the Rasa Redis user -------------------------------------------------------------


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis-acl"
    directory.mkdir()
    server = RedisServer(directory, tmp_path, users={bot_redis.RASA_USER: "rasa-pass"}).start()
    yield server
    server.stop()


def test_everything_works_as_the_rasa_redis_user(acl_server: RedisServer) -> None:
    """Rasa's Redis user has strings, sets and sorted sets under cardbot:*, no hashes."""
    async def scenario(client: redis.asyncio.Redis) -> tuple[str, str, str, Pages]:
        pages = Pages()
        path = delivery(client, pages)
        queued = await path.deliver(CONVERSATION, notice("a"))
        await path.page_arrived("sid-1", CONVERSATION)
        seen = await path.deliver(CONVERSATION, notice("b"))
        await path.page_left("sid-1")
        await path.deliver(CONVERSATION, notice("c"))
        fallback = await path.deliver(CONVERSATION, notice("c"))
        return queued.outcome, seen.outcome, fallback.outcome, pages

    queued, seen, fallback, pages = run(acl_server.url_for(bot_redis.RASA_USER), scenario)
    assert (queued, seen, fallback) == (notices.QUEUED, notices.SEEN, notices.FALLBACK)
    assert pages.shown == [(["sid-1"], ["a"], True), (["sid-1"], ["b"], False)]
