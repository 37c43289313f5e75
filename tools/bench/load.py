"""One load level: N guardians at once, each one conversation; latency and throughput."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from tools.bench.clients import Outcome
from tools.bench.conversations import Script


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of the values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU time of the processes and their children."""
    total = 0.0
    for process in processes:
        try:
            family = [process, *process.children(recursive=True)]
        except psutil.Error:
            continue
        for member in family:
            try:
                times = member.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


def machine_busy() -> float:
    """CPU seconds every core spent on anything but idle and I/O wait, since boot."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass
class Level:
    channel: str
    target: str
    concurrency: int
    conversations: int
    finished: int = 0
    turns: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    turns_per_s: float = 0.0
    server_cpu_ms_per_turn: float = 0.0
    cpu_ms_per_turn_by_process: dict[str, float] = field(default_factory=dict)
    # Share of all cores used by anything else than the stack and the load generator.
    other_load_pct: float = 0.0
    load_generator_cpu_ms_per_turn: float = 0.0
    # p95 over the guardians of each turn of the conversation, first turn first.
    p95_ms_by_turn: list[float] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    reports_check: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("references")
        return data


async def run_level(channel: str, target: str, concurrency: int,
                    converse: Callable[[Script], Awaitable[Outcome]],
                    script_for: Callable[[int], Script], first_index: int,
                    server: dict[str, psutil.Process]) -> Level:
    """`concurrency` guardians start together, one conversation each; bounded by count."""
    level = Level(channel, target, concurrency, concurrency)
    scripts = [script_for(first_index + i) for i in range(concurrency)]
    cpu_before = {name: cpu_seconds([process]) for name, process in server.items()}
    me = psutil.Process()
    mine_before = sum(me.cpu_times()[:2])
    machine_before = machine_busy()
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(converse(script) for script in scripts))
    level.seconds = time.perf_counter() - started
    cpu_used = {name: cpu_seconds([process]) - cpu_before[name]
                for name, process in server.items()}
    mine = sum(me.cpu_times()[:2]) - mine_before
    others = machine_busy() - machine_before - mine - sum(cpu_used.values())
    level.other_load_pct = max(0.0, 100 * others / (level.seconds * (psutil.cpu_count() or 1)))
    latencies = [latency for outcome in outcomes for latency in outcome.latencies]
    level.turns = len(latencies)
    level.finished = sum(outcome.finished for outcome in outcomes)
    level.errors = sum(len(outcome.errors) for outcome in outcomes)
    level.error_samples = [e for outcome in outcomes for e in outcome.errors][:5]
    level.references = [o.reference for o in outcomes if o.reference]
    level.p50_ms = percentile(latencies, 50) * 1000
    level.p95_ms = percentile(latencies, 95) * 1000
    level.p99_ms = percentile(latencies, 99) * 1000
    level.mean_ms = statistics.fmean(latencies) * 1000 if latencies else 0.0
    longest = max((len(outcome.latencies) for outcome in outcomes), default=0)
    level.p95_ms_by_turn = [
        percentile([o.latencies[turn] for o in outcomes if len(o.latencies) > turn], 95) * 1000
        for turn in range(longest)]
    level.turns_per_s = level.turns / level.seconds if level.seconds else 0.0
    if level.turns:
        level.cpu_ms_per_turn_by_process = {name: used * 1000 / level.turns
                                            for name, used in cpu_used.items()}
        level.server_cpu_ms_per_turn = sum(level.cpu_ms_per_turn_by_process.values())
        level.load_generator_cpu_ms_per_turn = mine * 1000 / level.turns
    return level
