"""Failed logins on a clock the test sets: free tries, then waits that double up to a cap,
per account and per address; a success clears the account's tally only."""

from __future__ import annotations

from console.lockout import ACCOUNT, ADDRESS, MEMORY_SECONDS, Lockout, wait_after
from tests.testkit.set_clock import SetClock, on_redis


def run(redis_url: str, steps):  # type: ignore[no-untyped-def]
    return on_redis(redis_url, lambda client, clock: steps(Lockout(client, clock), clock))


def test_three_free_failures_then_waits_that_double() -> None:
    assert [wait_after(n, ACCOUNT) for n in range(1, 9)] == [0, 0, 0, 30, 60, 120, 240, 480]
    assert wait_after(100, ACCOUNT) == ACCOUNT.cap == 900
    assert wait_after(10, ADDRESS) == 0 and wait_after(11, ADDRESS) == 30


def test_the_wait_runs_on_the_clock_and_grows(redis_url: str) -> None:
    async def steps(lockout: Lockout, clock: SetClock):  # type: ignore[no-untyped-def]
        seen = []
        for _ in range(3):
            await lockout.failed("li.wei", "10.0.0.1")
        seen.append(await lockout.wait("li.wei", "10.0.0.1"))
        await lockout.failed("li.wei", "10.0.0.1")
        seen.append(await lockout.wait("li.wei", "10.0.0.1"))
        clock.now += 29
        seen.append(await lockout.wait("li.wei", "10.0.0.1"))
        clock.now += 1
        seen.append(await lockout.wait("li.wei", "10.0.0.1"))
        await lockout.failed("li.wei", "10.0.0.1")  # the fifth: 60 s
        seen.append(await lockout.wait("li.wei", "10.0.0.1"))
        # Another account from the same address is not held by this one's failures.
        seen.append(await lockout.wait("zhang.min", "10.0.0.1"))
        return seen

    assert run(redis_url, steps) == [0, 30, 1, 0, 60, 0]


def test_the_address_is_held_across_accounts(redis_url: str) -> None:
    async def steps(lockout: Lockout, clock: SetClock):  # type: ignore[no-untyped-def]
        for n in range(ADDRESS.free + 1):
            await lockout.failed(f"guess{n}", "10.0.0.9")
        return (await lockout.wait("someone.new", "10.0.0.9"),
                await lockout.wait("someone.new", "10.0.0.10"))

    from_there, elsewhere = run(redis_url, steps)
    assert from_there == 30 and elsewhere == 0


def test_a_success_clears_the_account_but_not_the_address(redis_url: str) -> None:
    async def steps(lockout: Lockout, clock: SetClock):  # type: ignore[no-untyped-def]
        for _ in range(ADDRESS.free + 1):
            await lockout.failed("li.wei", "10.0.0.1")
        await lockout.succeeded("li.wei", "10.0.0.1")
        return (await lockout.wait("li.wei", "10.0.0.2"),
                await lockout.wait("li.wei", "10.0.0.1"))

    account_only, with_address = run(redis_url, steps)
    assert account_only == 0 and with_address > 0


def test_failures_are_forgotten_a_day_after_the_last(redis_url: str) -> None:
    async def steps(lockout: Lockout, clock: SetClock):  # type: ignore[no-untyped-def]
        for _ in range(8):
            await lockout.failed("li.wei", "10.0.0.1")
        held = await lockout.wait("li.wei", "10.0.0.1")
        clock.now += MEMORY_SECONDS + 1
        forgotten = await lockout.wait("li.wei", "10.0.0.1")
        await lockout.failed("li.wei", "10.0.0.1")  # starts afresh: one failure is free
        return held, forgotten, await lockout.wait("li.wei", "10.0.0.1")

    assert run(redis_url, steps) == (480, 0, 0)
