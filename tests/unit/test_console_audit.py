"""The audit log: one entry per view, reveal or move, newest first, filtered by person and
report, holding field names and never their values."""

from __future__ import annotations

import asyncio
import datetime as dt

import redis.asyncio as aioredis

from console.audit import REPORT_FIELDS, REVEALED_PHONE, AuditLog

CHINA = dt.timezone(dt.timedelta(hours=8))


def run(redis_url: str, steps):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await steps(AuditLog(client), client)
        finally:
            await client.close()
    return asyncio.run(main())


def test_entries_say_who_when_which_report_and_which_fields(redis_url: str) -> None:
    async def steps(log: AuditLog, client: aioredis.Redis):  # type: ignore[no-untyped-def]
        at = dt.datetime(2026, 12, 4, 17, 30, tzinfo=CHINA)
        await log.record(at, "li.wei", "bank", "view", "SC-7K3F-9Q2M", REPORT_FIELDS)
        await log.record(at, "li.wei", "bank", "reveal", "SC-7K3F-9Q2M", [REVEALED_PHONE])
        await log.record(at, "zhang.min", "agency", "view", "SC-AAAA-BBBB", REPORT_FIELDS[:1])
        return (await log.latest(), await log.latest(user="li.wei"),
                await log.latest(reference="SC-AAAA-BBBB"), await client.lrange("cardstaff:audit",
                                                                                 0, -1))

    every, li_wei, one_report, raw = run(redis_url, steps)
    assert [e.action for e in every] == ["view", "reveal", "view"]  # newest first
    assert every[1].at == "2026-12-04T09:30:00+00:00"  # kept in UTC
    assert every[1].fields == ["guardian.phone"] and every[1].reference == "SC-7K3F-9Q2M"
    assert [e.user for e in li_wei] == ["li.wei", "li.wei"]
    assert [e.user for e in one_report] == ["zhang.min"]
    assert len(raw) == 3


def test_a_long_detail_is_cut(redis_url: str) -> None:
    async def steps(log: AuditLog, _client: aioredis.Redis):  # type: ignore[no-untyped-def]
        return await log.record(dt.datetime.now(dt.timezone.utc), "a", "admin", "search",
                                detail="x" * 500)

    assert len(run(redis_url, steps).detail) == 200
