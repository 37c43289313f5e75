"""The conversation lock store against a real Redis: tickets unique and in order under
contention from threads and processes, one holder at a time, dead holders expire.

The same race is run against Rasa's RedisLockStore to show that it catches a store
whose ticket issue is not atomic.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from rasa.core.lock_store import LockError, LockStore, RedisLockStore
from rasa.core.utils import AvailableEndpoints

from bot.rasa.lock_store import AtomicRedisLockStore
from bot.settings import ROOT
from tests.testkit.redis_server import RedisServer

pytestmark = pytest.mark.integration
PREFIX = "cardbot"


def ours(url: str) -> AtomicRedisLockStore:
    parts = redis.connection.parse_url(url)
    return AtomicRedisLockStore(host=parts["host"], port=parts["port"], db=parts.get("db", 0),
                                key_prefix=PREFIX)


def rasas(url: str) -> RedisLockStore:
    parts = redis.connection.parse_url(url)
    return RedisLockStore(host=parts["host"], port=parts["port"], db=parts.get("db", 0),
                          key_prefix=PREFIX)


STORES: dict[str, Callable[[str], LockStore]] = {"ours": ours, "rasa": rasas}


def conversation() -> str:
    return f"conv-{uuid.uuid4().hex[:10]}"


# Several Rasa processes: each takes the lock for the same conversations at the same moment.

ROUNDS = 30
PROCESSES = 3


def _contend(store_name: str, url: str, conversations: list[str], barrier: Any,
             results: Any) -> None:
    store = STORES[store_name](url)
    red = redis.Redis.from_url(url)

    async def turn(conversation_id: str) -> tuple[int, int]:
        try:
            async with store.lock(conversation_id):
                # Another holder inside at the same time is the failure a lock must prevent.
                inside = int(red.incr(f"inside:{conversation_id}"))
                await asyncio.sleep(0.02)
                red.decr(f"inside:{conversation_id}")
                return int(inside > 1), 0
        except LockError:
            return 0, 1

    overlaps = errors = 0
    for conversation_id in conversations:
        barrier.wait(30)
        overlap, error = asyncio.run(turn(conversation_id))
        overlaps, errors = overlaps + overlap, errors + error
    results.put((overlaps, errors))


def race(store_name: str, url: str) -> tuple[int, int]:
    """(turns that overlapped another, turns refused with a LockError) over ROUNDS
    conversations, each taken by PROCESSES processes at once."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    conversations = [conversation() for _ in range(ROUNDS)]
    workers = [context.Process(target=_contend, args=(store_name, url, conversations,
                                                      barrier, results))
               for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    try:
        totals = [results.get(timeout=240) for _ in workers]
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
    return sum(t[0] for t in totals), sum(t[1] for t in totals)


def test_rasas_lock_store_lets_several_processes_in_at_once(redis_url: str) -> None:
    overlaps, errors = race("rasa", redis_url)
    assert overlaps + errors > 0, "the race harness no longer catches Rasa's store"


def test_our_lock_store_lets_one_process_in_at_a_time(redis_url: str) -> None:
    overlaps, errors = race("ours", redis_url)
    assert (overlaps, errors) == (0, 0)


# Tickets ------------------------------------------------------------------------------


def test_tickets_from_many_threads_are_unique_and_ordered(redis_url: str) -> None:
    store, conversation_id = ours(redis_url), conversation()
    barrier = threading.Barrier(8)

    def issue(_: int) -> list[int]:
        barrier.wait(10)
        return [store.issue_ticket(conversation_id, 30) for _ in range(50)]

    with ThreadPoolExecutor(8) as pool:
        per_thread = list(pool.map(issue, range(8)))
    everything = sorted(n for numbers in per_thread for n in numbers)
    assert everything == list(range(1, 401))
    assert all(numbers == sorted(numbers) for numbers in per_thread)
    # First come, first served: each ticket has exactly the earlier ones ahead of it.
    assert [store.tickets_ahead(conversation_id, n) for n in (1, 2, 200, 400)] == [0, 1, 199, 399]
    for number in range(1, 400):
        store.finish_serving(conversation_id, number)
    assert store.tickets_ahead(conversation_id, 400) == 0


def test_turns_run_in_the_order_their_tickets_were_issued(redis_url: str) -> None:
    store, conversation_id = ours(redis_url), conversation()
    order: list[int] = []

    async def turn(n: int) -> None:
        async with store.lock(conversation_id):
            order.append(n)
            await asyncio.sleep(0.01)

    issued = redis.Redis.from_url(redis_url)
    counter = f"{PREFIX}:ticket_counter:{conversation_id}"

    async def scenario() -> None:
        tasks = []
        for n in range(10):
            tasks.append(asyncio.create_task(turn(n)))
            # Each takes its ticket (in a thread) before the next turn arrives.
            for _ in range(1000):
                if int(issued.get(counter) or 0) > n:
                    break
                await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert order == list(range(10))


def test_released_lock_leaves_no_tickets_and_every_key_expires(redis_url: str) -> None:
    store, conversation_id = ours(redis_url), conversation()

    async def scenario() -> None:
        async with store.lock(conversation_id, lock_lifetime=30):
            tickets_key = f"{PREFIX}:tickets:{conversation_id}"
            assert 0 < redis.Redis.from_url(redis_url).pttl(tickets_key) <= 30_000

    asyncio.run(scenario())
    red = redis.Redis.from_url(redis_url)
    keys = [key.decode() for key in red.keys(f"*{conversation_id}*")]
    assert keys == [f"{PREFIX}:ticket_counter:{conversation_id}"]
    assert 0 < red.ttl(keys[0]) <= 24 * 3600
    assert store.get_lock(conversation_id) is None
    assert not store.is_someone_waiting(conversation_id)


def test_a_ticket_whose_time_is_up_is_refused(redis_url: str) -> None:
    store, conversation_id = ours(redis_url), conversation()
    first = store.issue_ticket(conversation_id, 0.3)
    second = store.issue_ticket(conversation_id, 30)
    assert store.tickets_ahead(conversation_id, second) == 1
    time.sleep(0.5)
    assert store.tickets_ahead(conversation_id, first) == -1
    assert store.tickets_ahead(conversation_id, second) == 0


# Holders that die, and holders that work long -----------------------------------------


def _hold_until_killed(url: str, conversation_id: str, lifetime: float, held: Any) -> None:
    async def hold() -> None:
        async with ours(url).lock(conversation_id, lock_lifetime=lifetime):
            held.set()
            await asyncio.sleep(3600)

    asyncio.run(hold())


def test_a_lock_held_by_a_killed_process_expires(redis_url: str) -> None:
    conversation_id, lifetime = conversation(), 1.5
    context = multiprocessing.get_context("spawn")
    held = context.Event()
    holder = context.Process(target=_hold_until_killed,
                             args=(redis_url, conversation_id, lifetime, held))
    holder.start()
    try:
        assert held.wait(60), "the holder never got the lock"
        # Alive, the holder keeps its ticket beyond its lifetime.
        time.sleep(lifetime * 2)
        store = ours(redis_url)
        assert store.is_someone_waiting(conversation_id)
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
    finally:
        if holder.is_alive():
            holder.kill()

    async def next_turn() -> float:
        started = time.monotonic()
        async with store.lock(conversation_id, lock_lifetime=lifetime):
            return time.monotonic() - started

    waited = asyncio.run(next_turn())
    # Not at once (the dead holder's ticket was still live), but once its time was up.
    assert 0.3 < waited < lifetime + 2, waited


def test_a_long_turn_keeps_its_lock_past_the_lifetime(redis_url: str) -> None:
    store, conversation_id, lifetime = ours(redis_url), conversation(), 0.6
    events: list[str] = []

    async def long_turn() -> None:
        async with store.lock(conversation_id, lock_lifetime=lifetime):
            events.append("long starts")
            await asyncio.sleep(lifetime * 4)
            events.append("long ends")

    async def next_turn() -> None:
        await asyncio.sleep(0.1)
        async with store.lock(conversation_id, lock_lifetime=lifetime):
            events.append("next")

    async def scenario() -> None:
        await asyncio.gather(long_turn(), next_turn())

    asyncio.run(scenario())
    assert events == ["long starts", "long ends", "next"]


def test_a_release_missed_while_redis_was_down_happens_when_it_returns(
        redis_server_factory: Callable[[], RedisServer]) -> None:
    server = redis_server_factory()
    store, conversation_id = ours(server.url), conversation()

    async def scenario() -> float:
        async with store.lock(conversation_id, lock_lifetime=60):
            server.kill()  # the turn ends while Redis is away: the release fails
        server.start()  # same port, same append-only file: the ticket is back
        started = time.monotonic()
        async with store.lock(conversation_id, lock_lifetime=60):
            return time.monotonic() - started

    waited = asyncio.run(scenario())
    assert waited < 10, f"the next turn waited {waited:.1f} s for a stale ticket"


# Configuration --------------------------------------------------------------------------


def test_endpoints_yml_gives_rasa_our_store_with_the_redis_settings(
        redis_server_factory: Callable[[], RedisServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = redis_server_factory()
    server.client().config_set("requirepass", "lock-test-password")
    for name, value in {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(server.port),
                        "REDIS_DB": "3", "REDIS_USERNAME": "default",
                        "REDIS_PASSWORD": "lock-test-password",
                        "ACTIONS_URL": "http://127.0.0.1:1/webhook",
                        "TRACKER_EXPIRY_SECONDS": "60"}.items():
        monkeypatch.setenv(name, value)
    endpoints = AvailableEndpoints.read_endpoints(str(ROOT / "endpoints.yml"))
    store = LockStore.create(endpoints.lock_store)
    assert isinstance(store, AtomicRedisLockStore)
    number = store.issue_ticket("configured", 30)
    client = redis.Redis(port=server.port, db=3, password="lock-test-password")
    assert client.zcard(f"{PREFIX}:tickets:configured") == 1
    store.finish_serving("configured", number)
    assert not client.exists(f"{PREFIX}:tickets:configured")


def test_unknown_endpoint_keys_are_refused() -> None:
    from rasa.utils.endpoints import EndpointConfig

    config = EndpointConfig(url="localhost", type="bot.rasa.lock_store.AtomicRedisLockStore",
                            record_exp=60)
    with pytest.raises(ValueError, match="record_exp"):
        LockStore.create(config)
