"""Web chat turns shared by the Rasa processes through Redis, with claims that outlive a
killed process (see `SharedTurns`)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from bot import redis as bot_redis
from bot.crypto import Vault

log = logging.getLogger(__name__)

SHARED_TURNS_KEY = bot_redis.WEBCHAT + "turns"
PROCESSES_KEY = bot_redis.WEBCHAT + "processes"
CLAIMED_PREFIX = bot_redis.WEBCHAT + "claimed:"  # + process name: its turns in progress
ALIVE_PREFIX = bot_redis.WEBCHAT + "alive:"  # + process name, kept fresh while it runs
# How long a read of the shared turns blocks (the "turns" Redis role waits 5 s beyond it).
BLOCK_S = 1
ALIVE_S = 10.0  # a process whose alive key is gone this long has its turns taken over
BEAT_S = 2.0
TURN_CONTEXT = "webchat-turn"
# Turns waiting on the shared list at most (each under 12 kB: the text is cut before it
# is queued). Past it a message is refused with "busy" rather than filling Redis.
MAX_WAITING = 1000
STOP_WAIT_S = 5.0
# KEYS: alive key, claim list, shared turns, processes. ARGV: process name. Puts a stopped
# process's claimed turns back at the head of the shared list, oldest first, and returns
# how many (-1 if the process is alive again). One script, so two processes taking over
# the same one cannot both get its turns.
RETURN_CLAIMED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local moved = 0
while redis.call('RPOPLPUSH', KEYS[2], KEYS[3]) do moved = moved + 1 end
redis.call('SREM', KEYS[4], ARGV[1])
return moved
"""
# KEYS: shared turns. ARGV: the turn, the cap. 1 when queued, 0 when the list is full.
PUSH_CAPPED = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
"""


class SharedTurns:
    """Web chat turns share the Rasa processes like REST turns do behind nginx's least_conn.

    A page's socket lives on one process (the balancer is sticky by client address), and
    that process used to run every turn of the page itself, however busy it was, while
    another stood idle: two queues, one per process, instead of one for both. Here a
    process runs up to `limit` web chat turns at once; a message arriving beyond that goes
    on a Redis list, which every process (this one included) reads while it has room.
    The replies reach the page through the socket.io Redis manager, from any process.
    If Redis cannot take the message, this process runs the turn itself.

    A turn in progress stays on this process's claim list in Redis until it is done (the
    move off the shared list onto it is one Redis command), and every process keeps an
    alive key fresh. When a process is killed, another puts its claimed turns back on the
    shared list once the key has been gone for `alive_s` seconds as seen by it (twice, so
    a Redis restart that dropped every key does not make live processes look dead): a
    message the page sent is answered, even by another process, after the one running it
    died. At least once: a process stalled past that, or killed between saving the
    tracker and dropping the claim, has its turn run again.
    """

    def __init__(self, redis_url: str, limit: int,
                 run_turn: Callable[[dict[str, Any]], Awaitable[Any]],
                 alive_s: float = ALIVE_S, beat_s: float = BEAT_S,
                 max_waiting: int = MAX_WAITING, vault: Vault | None = None) -> None:
        self.limit = limit
        # A waiting turn holds what the guardian typed: sealed, as conversations are.
        self._vault = vault
        self.max_waiting = max_waiting
        self.running = 0
        self.name = uuid.uuid4().hex
        self._claimed = CLAIMED_PREFIX + self.name
        self._alive_s = alive_s
        self._beat_s = beat_s
        self._run_turn = run_turn
        self._room = asyncio.Event()
        self._room.set()
        self._stop_event = asyncio.Event()
        # A blocked read must not be cut short by the socket timeout, and a Redis that
        # stops answering must not hang a guardian's message for ever.
        self._redis = bot_redis.async_client(redis_url, "turns")
        self._return_claimed = self._redis.register_script(RETURN_CLAIMED)
        self._push_capped = self._redis.register_script(PUSH_CAPPED)
        self._tasks: set[asyncio.Task[None]] = set()
        self._unreleased: set[bytes] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def submit(self, turn: dict[str, Any]) -> bool:
        """Runs the turn here or queues it for any process; False when it was refused
        because MAX_WAITING turns are already waiting."""
        text = json.dumps({**turn, "id": uuid.uuid4().hex})
        raw = (self._vault.encrypt(text, TURN_CONTEXT) if self._vault else text).encode()
        if self.running < self.limit:
            self._enter()  # before any await: the place is this turn's
            await self._run(raw, claimed=await self._pushed(self._claimed, raw))
            return True
        try:
            if not await self._push_capped(keys=[SHARED_TURNS_KEY], args=[raw, self.max_waiting]):
                log.warning("webchat: %d turns waiting; a message refused", self.max_waiting)
                return False
        except redis.RedisError as error:
            log.warning("webchat: turn not shared (%s), run here", type(error).__name__)
            self._enter()
            await self._run(raw, claimed=False)
        return True

    async def _pushed(self, key: str, raw: bytes) -> bool:
        try:
            await self._redis.rpush(key, raw)
            return True
        except redis.RedisError as error:
            log.warning("webchat: turn not put on %s (%s), run here", key, type(error).__name__)
            return False

    def _enter(self) -> None:
        self.running += 1
        if self.running >= self.limit:
            self._room.clear()

    def _leave(self) -> None:
        self.running -= 1
        if self.running < self.limit:
            self._room.set()

    async def _run(self, raw: bytes, claimed: bool) -> None:
        """Run a turn whose place `_enter` took."""
        try:
            text = raw.decode()
            await self._run_turn(json.loads(
                self._vault.decrypt(text, TURN_CONTEXT) if self._vault and not
                text.startswith("{") else text))
        except Exception:
            log.exception("webchat: turn failed")
        finally:
            self._leave()
            if claimed:
                await self._release(raw)

    async def _release(self, raw: bytes) -> None:
        try:
            await self._redis.lrem(self._claimed, 1, raw)
        except redis.RedisError:
            self._unreleased.add(raw)  # dropped at the next beat, so it is not run again

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._take_shared_turns()),
                         asyncio.create_task(self._beat())]

    async def stop(self) -> None:
        """Take no more shared turns, let the running ones finish for a few seconds, then
        hand back what is still claimed (a blocked read is left to time out: redis-py's
        asyncio client does not always give up a blocked read when cancelled)."""
        self._stopping = True
        self._room.set()
        self._stop_event.set()
        if self._workers:
            await asyncio.wait(self._workers, timeout=BLOCK_S + 2)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_WAIT_S
        while self.running and loop.time() < deadline:
            await asyncio.sleep(0.05)
        try:
            await self._flush_unreleased()
            await self._redis.delete(ALIVE_PREFIX + self.name)
            handed = await self._give_back_claims(self.name)
            if handed:
                log.warning("webchat: %d unfinished turn(s) handed to the other processes",
                            handed)
        except redis.RedisError:
            pass  # the other processes take them over once this one's alive key is gone
        await self._redis.close()

    async def _take_shared_turns(self) -> None:
        while not self._stopping:
            await self._room.wait()
            if self._stopping:
                return
            try:
                raw = await self._redis.blmove(SHARED_TURNS_KEY, self._claimed, BLOCK_S,
                                               "LEFT", "RIGHT")
            except redis.RedisError as error:
                log.warning("webchat: shared turns unreadable (%s)", type(error).__name__)
                await asyncio.sleep(1)
                continue
            if raw is None:
                continue
            if self._stopping or self.running >= self.limit:
                # Filled by this process's own pages while it waited, or stopping: back to
                # the head of the list, for a process with room.
                await self._give_back(raw)
                continue
            self._start(raw)

    def _start(self, raw: bytes) -> None:
        self._enter()
        task = asyncio.create_task(self._run(raw, claimed=True))
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def _give_back(self, raw: bytes) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lrem(self._claimed, 1, raw)
                pipe.lpush(SHARED_TURNS_KEY, raw)
                await pipe.execute()
        except redis.RedisError:
            self._start(raw)  # never dropped: run here, over the limit

    async def _give_back_claims(self, name: str) -> int:
        keys = [ALIVE_PREFIX + name, CLAIMED_PREFIX + name, SHARED_TURNS_KEY, PROCESSES_KEY]
        return int(await self._return_claimed(keys=keys, args=[name]))

    async def _flush_unreleased(self) -> None:
        if self._unreleased:
            unreleased = list(self._unreleased)
            async with self._redis.pipeline(transaction=False) as pipe:
                for raw in unreleased:
                    pipe.lrem(self._claimed, 1, raw)
                await pipe.execute()
            self._unreleased.difference_update(unreleased)

    async def _beat(self) -> None:
        gone_since: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.set(ALIVE_PREFIX + self.name, 1, px=int(self._alive_s * 1000))
                    pipe.sadd(PROCESSES_KEY, self.name)
                    await pipe.execute()
                await self._flush_unreleased()
                await self._take_over(gone_since, loop.time())
            except redis.RedisError as error:
                log.warning("webchat: claims unchecked (%s)", type(error).__name__)
            try:
                await asyncio.wait_for(self._stop_event.wait(), self._beat_s)
            except asyncio.TimeoutError:
                pass

    async def _take_over(self, gone_since: dict[str, float], now: float) -> None:
        """Put the claimed turns of processes gone for `alive_s` back on the shared list."""
        names = {name.decode() for name in await self._redis.smembers(PROCESSES_KEY)}
        others = list(names - {self.name})
        alive = await self._redis.mget([ALIVE_PREFIX + name for name in others]) if others else []
        for name in set(gone_since) - names:
            del gone_since[name]
        for name, key in zip(others, alive, strict=True):
            if key is not None:
                gone_since.pop(name, None)
            elif now - gone_since.setdefault(name, now) >= self._alive_s:
                del gone_since[name]
                returned = await self._give_back_claims(name)
                if returned > 0:
                    log.warning("webchat: %d turn(s) of a stopped process shared again",
                                returned)
