"""Web chat turns shared between Rasa processes through a real Redis: a process runs what
it has room for, the rest waits on Redis for whichever process has room first, each turn
runs once, a killed process's turn runs on another, and a Redis that cannot take a turn
never costs one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
import redis

from bot.channels.webchat import CLAIMED_PREFIX, PROCESSES_KEY, SharedTurns
from bot.settings import ROOT
from tests.testkit.redis_server import RedisServer

pytestmark = pytest.mark.integration
WAIT = 10.0


class Process:
    """One Rasa process's share of the web chat: what ran here, and a gate to hold turns."""

    def __init__(self, name: str, redis_url: str, limit: int, **timing: float) -> None:
        self.name = name
        self.ran: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.turns = SharedTurns(redis_url, limit, self._run_turn, **timing)
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


# A process of its own that starts a turn which never ends, says so, and waits to be killed.
STUCK_PROCESS = textwrap.dedent("""
    import asyncio, sys
    from bot.channels.webchat import SharedTurns

    async def main():
        async def run_turn(turn):
            print(turn["text"], flush=True)
            await asyncio.Event().wait()
        turns = SharedTurns(sys.argv[1], 1, run_turn, alive_s=1.0, beat_s=0.2)
        turns.start()
        print(turns.name, flush=True)
        await turns.submit({"text": "stuck", "sender_id": "s1", "metadata": {}})

    asyncio.run(main())
""")


def test_the_turn_of_a_killed_process_runs_once_on_another(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    child = subprocess.Popen([sys.executable, "-c", STUCK_PROCESS, redis_url], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        name = child.stdout.readline().strip()
        assert child.stdout.readline().strip() == "stuck"
        assert client.llen(CLAIMED_PREFIX + name) == 1
        child.kill()
        child.wait(5)
    finally:
        if child.poll() is None:
            child.kill()

    async def scenario() -> None:
        survivor = Process("survivor", redis_url, 1, alive_s=1.0, beat_s=0.2)
        try:
            await until(lambda: survivor.ran == ["stuck"], "the killed process's turn ran here")
            await asyncio.sleep(1.5)  # another take-over would have run it again by now
            assert survivor.ran == ["stuck"]
        finally:
            await survivor.stop()

    asyncio.run(scenario())
    assert client.llen(CLAIMED_PREFIX + name) == 0
    assert name.encode() not in client.smembers(PROCESSES_KEY)


def test_a_live_process_keeps_its_turn_and_drops_the_claim_when_done(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)

    async def scenario() -> None:
        timing = {"alive_s": 0.5, "beat_s": 0.1}
        busy, idle = Process("busy", redis_url, 1, **timing), Process("idle", redis_url, 1, **timing)
        try:
            busy.gate.clear()
            held = asyncio.create_task(busy.turns.submit(turn("long")))
            await until(lambda: busy.ran == ["long"], "the turn started")
            claimed = CLAIMED_PREFIX + busy.turns.name
            assert client.llen(claimed) == 1
            await asyncio.sleep(2.0)  # four times as long as a stopped process is given
            assert idle.ran == [] and client.llen(claimed) == 1
            busy.gate.set()
            await held
            assert client.llen(claimed) == 0
            await idle.turns.submit(turn("short"))
            assert idle.ran == ["short"] and client.llen(CLAIMED_PREFIX + idle.turns.name) == 0
        finally:
            await busy.stop()
            await idle.stop()

    asyncio.run(scenario())
