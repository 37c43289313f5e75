"""What issue 19's metrics and the live-handoff hook cost per turn: interleaved A/B rounds.

Three stacks, each started from the Procfile as `make run` starts it (tests/testkit/stack.py)
on a Redis of its own, all up at once and differing in one setting each:

    off      METRICS=off: no GET /metrics and no counting in Rasa, the action server or the
             card service (bot/metrics.py, bot/rasa/patches/metrics.py, rasa_sdk_plugins/,
             card_service/metrics.py); the handoff hook as shipped
    on       what `make run` serves: METRICS=on and the handoff hook
    no-hook  METRICS=on, Rasa given credentials.yml without the handoff channel: its
             listener never installs the desk, so the hook every channel calls on each
             message (bot.handoff.turn) is one `is None` test. HANDOFF_TOKEN cannot switch
             it off: the desk is installed whether or not the agents' API has a token.

`on` minus `off` is the metrics' cost, `on` minus `no-hook` the hook's on a turn nobody
handed off. The same load (N guardians at once, one whole conversation each) goes to each
stack in turn, channel by channel, and the order of the stacks turns round every round, so
the hour-to-hour speed of this virtual machine falls on every arm alike. Per level: the
server CPU per turn (tools/bench/load.py), and the Redis commands per turn from the arm's
INFO commandstats, read before and after the level (the hook's cost in calls, whatever the
CPU noise). After the rounds each arm is checked to be what its name says: its /metrics
pages answer or not, Rasa counted every turn sent, the handoff API is there or not.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import requests
import yaml

from bot import metrics
from bot.settings import ROOT, Settings
from tests.testkit.processes import Process
from tests.testkit.redis_server import RedisServer
from tests.testkit.stack import Stack
from tools.bench import machine, report
from tools.bench.clients import RestGuardian, SocketGuardian
from tools.bench.conversations import Script, loss_report
from tools.bench.load import Level, run_level

HANDOFF_CHANNEL = "bot.channels.handoff.HandoffInput"
CREDENTIALS = "credentials.yml"
# Guardian numbers of their own, so no ID number repeats one of the main levels'.
FIRST_INDEX = 5000
WARM_UP_N = 2

Calibrate = Callable[[str, Callable[[int], Script], list[int]], Awaitable[dict[str, list[int]]]]


@dataclass(frozen=True)
class Arm:
    name: str
    metrics: bool
    handoff_hook: bool


ARMS = (Arm(report.AB_OFF, metrics=False, handoff_hook=True),
        Arm(report.AB_ON, metrics=True, handoff_hook=True),
        Arm(report.AB_NO_HOOK, metrics=True, handoff_hook=False))


@dataclass
class Running:
    arm: Arm
    redis: RedisServer
    stack: Stack
    servers: dict[str, psutil.Process] = field(default_factory=dict)
    converse: dict[str, Callable[[Script], Awaitable[Any]]] = field(default_factory=dict)
    ledger: Any = None
    turns_sent: int = 0
    turns_counted_before: float | None = None


def rotated(names: list[str], round_number: int) -> list[str]:
    """The arms' order in a round: each arm goes first, second, ... in turn.

    >>> [rotated(["off", "on", "no-hook"], r) for r in range(4)]
    [['off', 'on', 'no-hook'], ['on', 'no-hook', 'off'], ['no-hook', 'off', 'on'], \
['off', 'on', 'no-hook']]
    """
    shift = round_number % len(names)
    return names[shift:] + names[:shift]


def without_handoff(source: Path, target: Path) -> Path:
    """credentials.yml less the handoff channel (every other channel as it is)."""
    channels = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    if HANDOFF_CHANNEL not in channels:
        raise RuntimeError(f"{source} names no {HANDOFF_CHANNEL}: nothing to switch off")
    del channels[HANDOFF_CHANNEL]
    target.write_text(yaml.safe_dump(channels, allow_unicode=True), encoding="utf-8")
    return target


def rasa_command(command: str, credentials: Path) -> str:
    """The Procfile's Rasa command with another credentials file."""
    flag = f"--credentials {CREDENTIALS}"
    if flag not in command:
        raise RuntimeError(f"the Procfile's Rasa line has no `{flag}`: {command}")
    return command.replace(flag, f"--credentials {shlex.quote(str(credentials))}")


def command_calls(redis_server: RedisServer) -> dict[str, int]:
    """Calls per Redis command since the server started (INFO commandstats)."""
    stats = redis_server.client().info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"])
            for name, value in stats.items() if isinstance(value, dict)}


def per_turn(before: dict[str, int], after: dict[str, int], turns: int) -> dict[str, float]:
    """Commands per turn between two readings; INFO itself (the reading) left out.

    >>> per_turn({"get": 10, "info": 1}, {"get": 30, "set": 5, "info": 2}, 10)
    {'get': 2.0, 'set': 0.5}
    """
    if not turns:
        return {}
    return {name: round((after[name] - before.get(name, 0)) / turns, 3)
            for name in sorted(after)
            if name != "info" and after[name] != before.get(name, 0)}


def status_of(url: str) -> int:
    try:
        return requests.get(url, timeout=10).status_code
    except requests.RequestException:
        return 0


def turns_counted(rasa_url: str) -> float | None:
    """Turns Rasa's own metrics counted so far; None without the page."""
    try:
        return metrics.total(metrics.scrape(rasa_url, timeout=10),
                             metrics.PREFIX + "turns_total")
    except requests.RequestException:
        return None


def start(work: Path, env: dict[str, str], arms: tuple[Arm, ...] = ARMS) -> list[Running]:
    """Every arm's Redis and stack, the models loaded side by side; all stopped again if
    one fails."""
    running: list[Running] = []
    try:
        for arm in arms:
            home = work / f"ab-{arm.name}"
            (home / "redis").mkdir(parents=True)
            redis_server = RedisServer(home / "redis", home).start()
            stack = Stack(redis_server.url, home,
                          {**env, "METRICS": "on" if arm.metrics else "off"})
            if not arm.handoff_hook:
                old = stack.processes["rasa"]
                credentials = without_handoff(ROOT / CREDENTIALS, home / CREDENTIALS)
                stack.processes["rasa"] = Process(
                    old.name, rasa_command(str(old.command), credentials), old.env, home)
            running.append(Running(arm, redis_server, stack))
            stack.launch()
        for one in running:
            one.stack.wait(timeout=600)
            named = {"redis": one.redis.process.popen,
                     **{name: p.popen for name, p in one.stack.processes.items()}}
            one.servers = {name: psutil.Process(popen.pid) for name, popen in named.items()
                           if popen}
    except BaseException:
        stop(running)
        raise
    return running


def stop(running: list[Running]) -> None:
    for one in running:
        one.stack.stop()
        one.redis.stop()


def checks(one: Running) -> dict[str, Any]:
    """What each arm serves, read after its rounds: proof the arms differ as named."""
    settings: Settings = one.stack.settings
    bases = {"rasa": settings.rasa_url, "actions": settings.actions_url,
             "card": settings.card_service_url}
    counted = turns_counted(settings.rasa_url)
    found: dict[str, Any] = {
        "metrics_status": {name: status_of(base + metrics.PATH) for name, base in bases.items()},
        "handoff_api_status": status_of(f"{settings.rasa_url}/webhooks/handoff/"),
        "turns_sent": one.turns_sent,
        "turns_counted": (None if counted is None or one.turns_counted_before is None
                          else counted - one.turns_counted_before),
    }
    # Off, no page: 404 (the action server says 500: rasa_sdk answers any unknown route so).
    served = [status == 200 for status in found["metrics_status"].values()]
    found["ok"] = (
        (all(served) if one.arm.metrics else not any(served))
        and found["handoff_api_status"] == (200 if one.arm.handoff_hook else 404)
        and (not one.arm.metrics or found["turns_counted"] == one.turns_sent))
    return found


async def bench(work: Path, results: dict[str, Any], *, n: int, rounds: int,
                channels: list[str], env: dict[str, str], transport: str,
                calibrate: Calibrate, ledger: Callable[[Settings], Any],
                say: Callable[[str], None]) -> None:
    """The rounds; `results["ab"]` gets every level and each arm's checks. `calibrate` and
    `ledger` are run.py's warm-up and one-report-per-conversation check."""
    running = start(work, env)
    say("ab: " + ", ".join(f"{one.arm.name} up" for one in running))
    levels: list[dict[str, Any]] = []
    index = FIRST_INDEX
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            for one in running:
                url = one.stack.rasa_url
                # Warm the model and learn the replies per turn; then both channels once,
                # unmeasured, so no arm pays a first connection inside a measured level.
                expected = await calibrate(url, loss_report, [index, index + 1])
                index += 2
                socket = SocketGuardian(url, expected, transport=transport)
                one.converse = {"rest": RestGuardian(session, url).converse,
                                "socketio": socket.converse}
                for channel in channels:
                    await run_level(channel, "ab-warm-up", WARM_UP_N, one.converse[channel],
                                    loss_report, index, one.servers)
                    index += WARM_UP_N
                one.ledger = ledger(one.stack.settings)
                one.turns_counted_before = turns_counted(url) if one.arm.metrics else None
            by_name = {one.arm.name: one for one in running}
            for round_number in range(rounds):
                order = rotated(list(by_name), round_number)
                for channel in channels:
                    for position, name in enumerate(order):
                        one = by_name[name]
                        before = command_calls(one.redis)
                        level: Level = await run_level(
                            channel, f"ab-{name}", n, one.converse[channel], loss_report,
                            index, one.servers)
                        calls = per_turn(before, command_calls(one.redis), level.turns)
                        index += n
                        one.ledger.check(level)
                        one.turns_sent += level.turns
                        levels.append({"round": round_number, "arm": name,
                                       "position": position, **level.as_dict(),
                                       "redis_calls_per_turn": calls})
                        say(f"ab round {round_number + 1}/{rounds} {channel} {name}: "
                            f"{level.server_cpu_ms_per_turn:.1f} ms CPU/turn (rasa "
                            f"{level.cpu_ms_per_turn_by_process.get('rasa', 0):.1f}), "
                            f"{sum(calls.values()):.1f} Redis calls/turn, p50 "
                            f"{level.p50_ms:.0f} ms, {level.errors} errors "
                            f"{level.reports_check}")
                        for sample in level.error_samples:
                            say(f"  error: {sample}")
        results["ab"] = {
            "n": n, "rounds": rounds, "channels": channels, "transport": transport,
            "arms": {one.arm.name: {"metrics": one.arm.metrics,
                                    "handoff_hook": one.arm.handoff_hook,
                                    "checks": checks(one),
                                    "memory_mib": machine.resident_mib(one.servers)}
                     for one in running},
            "levels": levels,
        }
    finally:
        stop(running)
