"""Measure the card service: N filings then N look-ups over loopback, req/s and latency.

    .venv/bin/python tools/bench_card_service.py --requests 2000 --concurrency 50

URL and service token come from the environment / `.env` (CARD_SERVICE_PORT,
CARD_SERVICE_TOKEN) unless given. Each filing is a new report in that service's Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp
from stdnum.cn import ric

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import settings as bot_settings  # noqa: E402


def id_number(born: dt.date, sequence: int) -> str:
    body = f"110105{born:%Y%m%d}{sequence % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def body_for(i: int) -> dict:
    today = dt.date.today()
    return {
        "child": {"name": "王小明", "id_number": id_number(dt.date(today.year - 8, 1, 1), i)},
        "guardian": {"name": "王芳", "id_number": id_number(dt.date(1985, 5, 5), i),
                     "relationship": "mother", "phone": "13800138000"},
        "city": "北京",
        "conversation_id": f"bench-{i}",
    }


async def phase(name: str, count: int, concurrency: int, call) -> list:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    results: list = [None] * count
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        nonlocal errors
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            ok, result = await call(i)
            latencies.append(time.perf_counter() - started)
            results[i] = result
            errors += 0 if ok else 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    print(f"{name:<8} {count} requests, concurrency {concurrency}: "
          f"{count / elapsed:7.0f} req/s   p50 {statistics.median(ordered) * 1000:6.1f} ms   "
          f"p95 {p95 * 1000:6.1f} ms   errors {errors}")
    return results


async def main() -> None:
    settings = bot_settings.settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=settings.card_service_url)
    parser.add_argument("--token", default=settings.card_service_token)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token}"}
    run = uuid.uuid4().hex[:8]

    async with aiohttp.ClientSession(headers=headers) as session:
        async def file(i: int) -> tuple[bool, str | None]:
            async with session.post(f"{args.url}/v1/loss-reports", json=body_for(i),
                                    headers={"Idempotency-Key": f"bench-{run}-{i}"}) as response:
                data = await response.json()
                return response.status == 201, data.get("reference")

        references = await phase("filing", args.requests, args.concurrency, file)

        async def lookup(i: int) -> tuple[bool, None]:
            guardian = body_for(i)["guardian"]["id_number"]
            async with session.post(f"{args.url}/v1/loss-reports/{references[i]}/lookup",
                                    json={"guardian_id_number": guardian},
                                    headers={"X-Caller-Id": f"bench-{i}"}) as response:
                await response.read()
                return response.status == 200, None

        await phase("lookup", args.requests, args.concurrency, lookup)


if __name__ == "__main__":
    asyncio.run(main())
