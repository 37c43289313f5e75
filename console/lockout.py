"""Failed logins: after a few free tries each further failure makes the next try wait
longer (per account and per client address), on a clock the tests set.

Keys: fail:user:<name> and fail:addr:<sha256 of address>, hashes {failures, last}; both
forgotten MEMORY_SECONDS after the last failure. A success clears the account's tally only:
one good account must not wash out an address that is guessing others.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from bot.redis import CONSOLE as PREFIX

Clock = Callable[[], float]  # seconds since the epoch


@dataclass(frozen=True)
class Rule:
    free: int  # failures before any wait
    first: float  # seconds of the first wait, doubled by each failure after it
    cap: float


# A person mistypes twice or three times; an office shares one address.
ACCOUNT = Rule(free=3, first=30, cap=15 * 60)
ADDRESS = Rule(free=10, first=30, cap=15 * 60)
MEMORY_SECONDS = 24 * 3600


def wait_after(failures: int, rule: Rule) -> float:
    """Seconds to wait after `failures` failures in a row.

    >>> [wait_after(n, ACCOUNT) for n in (1, 3, 4, 5, 6, 9, 40)]
    [0, 0, 30, 60, 120, 900, 900]
    """
    over = failures - rule.free
    if over <= 0:
        return 0
    return min(rule.first * 2 ** min(over - 1, 30), rule.cap)


class Lockout:
    def __init__(self, client: aioredis.Redis, clock: Clock = time.time,
                 account: Rule = ACCOUNT, address: Rule = ADDRESS):
        self.redis, self.clock = client, clock
        self.rules = {"user": account, "addr": address}

    @staticmethod
    def keys(name: str, address: str) -> dict[str, str]:
        digest = hashlib.sha256(address.encode()).hexdigest()
        return {"user": f"{PREFIX}fail:user:{name[:64]}", "addr": f"{PREFIX}fail:addr:{digest}"}

    async def wait(self, name: str, address: str) -> float:
        """Seconds before this name from this address may try again (0: now)."""
        now, longest = self.clock(), 0.0
        for kind, key in self.keys(name, address).items():
            raw = await self.redis.hgetall(key)
            if not raw:
                continue
            failures, last = int(raw[b"failures"]), float(raw[b"last"])
            if now - last > MEMORY_SECONDS:
                continue
            longest = max(longest, last + wait_after(failures, self.rules[kind]) - now)
        return max(0.0, longest)

    async def failed(self, name: str, address: str) -> None:
        now = self.clock()
        for key in self.keys(name, address).values():
            last = await self.redis.hget(key, "last")
            async with self.redis.pipeline(transaction=True) as pipe:
                if last is not None and now - float(last) > MEMORY_SECONDS:
                    pipe.delete(key)  # an old tally starts afresh
                pipe.hincrby(key, "failures", 1)
                pipe.hset(key, "last", repr(now))
                pipe.expire(key, MEMORY_SECONDS)
                await pipe.execute()

    async def succeeded(self, name: str, address: str) -> None:
        await self.redis.delete(self.keys(name, address)["user"])
