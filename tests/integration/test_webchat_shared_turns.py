"""Web chat turns shared between Rasa processes through a real Redis: a process runs what
it has room for, the rest waits on Redis for whichever process has room first, each turn
runs once, and a Redis that cannot take a turn never costs one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.channels.webchat import SharedTurns
from tests.conftest import RedisServer

pytestmark = pytest.mark.integration
WAIT = 10.0


class Process:
    """One Rasa process's share of the web chat: what ran here, and a gate to hold turns."""

    def __init__(self, name: str, redis_url: str, limit: int) -> None:
        self.name = name
        self.ran: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.turns = SharedTurns(redis_url, limit, self._run_turn)
        self.turns.start()

    async def _run_turn(self, turn: dict[str, Any]) -> None:
        self.ran.append(turn["text"])
        await self.gate.wait()

    async def stop(self) -> None:
        await self.turns.stop()


def turn(text: str) -> dict[str, Any]:
    return {"text": text, "sender_id": "s1", "metadata": {"language": "en"}}


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {WAIT:.0f} s: {what}")


def test_a_turn_beyond_a_busy_process_runs_on_the_other(redis_url: str) -> None:
    async def scenario() -> None:
        first, second = Process("first", redis_url, 1), Process("second", redis_url, 1)
        try:
            first.gate.clear()
            held = asyncio.create_task(first.turns.submit(turn("one")))
            await until(lambda: first.ran == ["one"], "the first turn started on its process")
            await first.turns.submit(turn("two"))
            await until(lambda: second.ran == ["two"], "the second turn ran on the other")
            assert first.ran == ["one"] and not held.done()
            first.gate.set()
            await held
        finally:
            await first.stop()
            await second.stop()

    asyncio.run(scenario())


def test_turns_wait_on_redis_until_a_process_has_room_and_each_runs_once(
        redis_url: str) -> None:
    async def scenario() -> None:
        first, second = Process("first", redis_url, 2), Process("second", redis_url, 1)
        try:
            first.gate.clear()
            second.gate.clear()
            sent = [f"m{i}" for i in range(12)]
            held = [asyncio.create_task(first.turns.submit(turn(text))) for text in sent]
            await until(lambda: len(first.ran) + len(second.ran) == 3,
                        "three turns running, one per free place")
            await asyncio.sleep(0.3)
            assert len(first.ran) == 2 and len(second.ran) == 1  # the rest wait on Redis
            first.gate.set()
            second.gate.set()
            await until(lambda: len(first.ran) + len(second.ran) == len(sent), "all turns run")
            await asyncio.gather(*held)
            await asyncio.sleep(1.2)  # a blocked read would have returned by now
            assert sorted(first.ran + second.ran) == sorted(sent)
            assert second.ran, "the idle process took none of the waiting turns"
        finally:
            await first.stop()
            await second.stop()

    asyncio.run(scenario())


def test_a_turn_redis_cannot_take_runs_here(redis_server_factory: Callable[[], RedisServer]
                                            ) -> None:
    server = redis_server_factory()

    async def scenario() -> None:
        alone = Process("alone", server.url, 1)
        try:
            alone.gate.clear()
            held = asyncio.create_task(alone.turns.submit(turn("one")))
            await until(lambda: alone.ran == ["one"], "the first turn started")
            server.stop()
            alone.gate.set()
            await held
            await alone.turns.submit(turn("two"))
            alone.gate.clear()
            busy = asyncio.create_task(alone.turns.submit(turn("three")))
            await until(lambda: alone.ran[-1:] == ["three"], "the third turn started")
            # Beyond the limit, and Redis is down: run here rather than lost.
            over = asyncio.create_task(alone.turns.submit(turn("four")))
            await until(lambda: alone.ran[-1:] == ["four"], "the fourth turn started here")
            assert alone.ran == ["one", "two", "three", "four"]
            alone.gate.set()
            await asyncio.gather(busy, over)
        finally:
            await alone.stop()

    asyncio.run(scenario())
