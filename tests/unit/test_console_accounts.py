"""Staff accounts: argon2id hashes, the same answer for an unknown name and a wrong password,
disabled accounts, and the role table."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
import redis.asyncio as aioredis

from console import accounts
from console.accounts import ADMIN, AGENCY, AGENT, BANK, Accounts, may

NOW = dt.datetime(2026, 12, 4, 9, 0, tzinfo=dt.timezone.utc)
PASSWORD = "a long enough secret"


def run(redis_url: str, steps):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await steps(Accounts(client), client)
        finally:
            await client.close()
    return asyncio.run(main())


def test_a_password_is_kept_only_as_an_argon2id_hash(redis_url: str) -> None:
    async def steps(store: Accounts, client: aioredis.Redis):  # type: ignore[no-untyped-def]
        await store.add("li.wei", AGENCY, PASSWORD, NOW)
        return await client.hgetall("cardstaff:user:li.wei")

    stored = run(redis_url, steps)
    assert stored[b"hash"].startswith(b"$argon2id$")
    assert PASSWORD.encode() not in b"".join(stored.values())
    assert stored[b"role"] == b"agency"


def test_verify_accepts_the_right_password_only(redis_url: str) -> None:
    async def steps(store: Accounts, _client: aioredis.Redis):  # type: ignore[no-untyped-def]
        await store.add("li.wei", BANK, PASSWORD, NOW)
        return (await store.verify("li.wei", PASSWORD), await store.verify("li.wei", "nope"),
                await store.verify("nobody", PASSWORD), await store.verify("BAD NAME", "x"))

    right, wrong, unknown, malformed = run(redis_url, steps)
    assert right is not None and right.role == BANK
    assert wrong is None and unknown is None and malformed is None


def test_an_unknown_name_costs_as_much_as_a_wrong_password(redis_url: str) -> None:
    async def steps(store: Accounts, _client: aioredis.Redis):  # type: ignore[no-untyped-def]
        await store.add("li.wei", BANK, PASSWORD, NOW)
        timings = {}
        for name in ("li.wei", "nobody"):
            started = time.perf_counter()
            for _ in range(3):
                await store.verify(name, "wrong password")
            timings[name] = time.perf_counter() - started
        return timings

    timings = run(redis_url, steps)
    # Both run one argon2 verification each time (tens of milliseconds): same order.
    assert 0.5 < timings["nobody"] / timings["li.wei"] < 2.0


def test_a_disabled_account_cannot_log_in_until_enabled(redis_url: str) -> None:
    async def steps(store: Accounts, _client: aioredis.Redis):  # type: ignore[no-untyped-def]
        await store.add("li.wei", AGENT, PASSWORD, NOW)
        disabled = await store.set_disabled("li.wei", True, NOW)
        refused = await store.verify("li.wei", PASSWORD)
        await store.set_disabled("li.wei", False, NOW)
        return disabled, refused, await store.verify("li.wei", PASSWORD)

    disabled, refused, back = run(redis_url, steps)
    assert disabled.disabled and disabled.disabled_at.startswith("2026-12-04")
    assert refused is None and back is not None


@pytest.mark.parametrize(("name", "role", "password", "reason"), [
    ("Li Wei", AGENCY, PASSWORD, "lower-case"),
    ("li.wei", "boss", PASSWORD, "role must be one of"),
    ("li.wei", AGENCY, "short", "at least 12"),
    ("li.wei", AGENCY, "x" * 300, "at most 256"),
])
def test_bad_accounts_are_refused_with_a_reason(redis_url: str, name: str, role: str,
                                                password: str, reason: str) -> None:
    async def steps(store: Accounts, _client: aioredis.Redis):  # type: ignore[no-untyped-def]
        with pytest.raises(ValueError, match=reason):
            await store.add(name, role, password, NOW)
        return await store.all()

    assert run(redis_url, steps) == []


def test_a_name_is_taken_once(redis_url: str) -> None:
    async def steps(store: Accounts, _client: aioredis.Redis):  # type: ignore[no-untyped-def]
        await store.add("li.wei", AGENCY, PASSWORD, NOW)
        with pytest.raises(ValueError, match="exists"):
            await store.add("li.wei", ADMIN, "another long secret", NOW)
        return await store.all()

    found = run(redis_url, steps)
    assert [(a.name, a.role) for a in found] == [("li.wei", AGENCY)]


def test_the_role_table() -> None:
    assert {role for role in accounts.ROLES if may(role, "audit")} == {ADMIN}
    assert {role for role in accounts.ROLES if may(role, "accounts")} == {ADMIN}
    assert {role for role in accounts.ROLES if may(role, "move")} == {AGENCY, BANK, ADMIN}
    assert {role for role in accounts.ROLES if may(role, "handoff")} == {AGENT, ADMIN}
    assert all(may(role, "reports") for role in accounts.ROLES)
    assert not may(ADMIN, "no such action") and not may("guest", "reports")
