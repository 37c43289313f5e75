"""Where one turn's time goes: action-server calls, Redis commands, NLU parse time.

A second Rasa process of the same stack is pointed at a counting pass-through proxy in
front of the action server (so the measured runs carry no extra hop), Redis is watched
with MONITOR, and every message is also parsed alone through the HTTP API.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis
from aiohttp import web

from bot import redis as bot_redis
from tools.bench.conversations import REFERENCE, Script


@dataclass
class ActionCall:
    action: str
    seconds: float


class CountingProxy:
    """POST /webhook forwarded to the action server; each call's action and duration kept."""

    def __init__(self, target: str):
        self.target = target
        self.calls: list[ActionCall] = []
        self.runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None

    async def start(self, port: int) -> None:
        self.session = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/webhook", self.forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()

    async def forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            action = str((await request.json()).get("next_action"))
        except ValueError:
            action = "?"
        started = time.perf_counter()
        assert self.session is not None
        async with self.session.post(self.target, data=body,
                                     headers={"Content-Type": "application/json"}) as answer:
            payload = await answer.read()
            status = answer.status
        self.calls.append(ActionCall(action, time.perf_counter() - started))
        return web.Response(body=payload, status=status, content_type="application/json")

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()
        if self.session:
            await self.session.close()


class RedisWatch:
    """MONITOR in a thread; commands counted by which part of the stack sent them."""

    def __init__(self, url: str):
        self.client = bot_redis.client(url, "tool")
        self.commands: list[tuple[float, str, str]] = []
        self.monitor: Any = None
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.ready = threading.Event()

    def start(self) -> RedisWatch:
        self.thread.start()
        self.ready.wait(5)
        return self

    def _listen(self) -> None:
        try:
            with self.client.monitor() as monitor:
                self.monitor = monitor
                self.ready.set()
                for entry in monitor.listen():
                    words = str(entry.get("command", "")).split()
                    if words:
                        key = words[1] if len(words) > 1 else ""
                        self.commands.append((time.time(), words[0].upper(), key))
        except (redis.RedisError, OSError, ValueError, AttributeError):
            return

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.connection.disconnect()
        self.thread.join(5)

    @staticmethod
    def owner(key: str) -> str:
        # bot/rasa/lock_store.py: cardbot:tickets:<id> and cardbot:ticket_counter:<id>.
        if ":lock:" in key or key.startswith(("cardbot:lock", "cardbot:ticket")):
            return "lock store"
        if key.startswith("cardbot:tracker") or key.startswith("cardbot:"):
            return "tracker store"
        if key.startswith("cardsvc:"):
            return "card service"
        if "socketio" in key:
            return "socket.io rooms"
        return "other"

    def between(self, start: float, end: float) -> Counter[str]:
        return Counter(self.owner(key) for at, _, key in self.commands if start <= at <= end)


@dataclass
class TurnProfile:
    message: str
    latency_ms: float
    nlu_parse_ms: float
    action_calls: list[str] = field(default_factory=list)
    action_ms: float = 0.0
    redis: dict[str, int] = field(default_factory=dict)


async def profile_conversation(rasa_url: str, token: str, script: Script,
                               proxy: CountingProxy, watch: RedisWatch | None) -> list[TurnProfile]:
    """One conversation through the profiled Rasa, turn by turn."""
    profiles = []
    reference = ""
    sender = f"bench-profile-{int(time.time() * 1000)}"
    async with aiohttp.ClientSession() as session:
        for turn in script.turns:
            message = turn.message.format(reference=reference)
            parse_started = time.perf_counter()
            async with session.post(f"{rasa_url}/model/parse", params={"token": token},
                                    json={"text": message}) as parsed:
                await parsed.read()
            nlu_ms = (time.perf_counter() - parse_started) * 1000
            calls_before = len(proxy.calls)
            wall_start = time.time()
            started = time.perf_counter()
            async with session.post(f"{rasa_url}/webhooks/rest/webhook",
                                    json={"sender": sender, "message": message}) as response:
                replies = await response.json()
            latency_ms = (time.perf_counter() - started) * 1000
            await asyncio.sleep(0.05)  # let MONITOR catch up with the last commands of the turn
            calls = proxy.calls[calls_before:]
            text = "\n".join(reply.get("text", "") for reply in replies or [])
            found = REFERENCE.search(text)
            if turn.expect == "files" and found:
                reference = found.group()
            profiles.append(TurnProfile(
                message=message if not message[:6].isdigit() else "<ID number>",
                latency_ms=latency_ms, nlu_parse_ms=nlu_ms,
                action_calls=[call.action for call in calls],
                action_ms=sum(call.seconds for call in calls) * 1000,
                redis=dict(watch.between(wall_start, time.time())) if watch else {},
            ))
    return profiles


# Which part of Rasa a sampled stack belongs to: the innermost frame that matches, walking
# from the leaf up (generic modules such as trackers.py or json match nothing, so their time
# goes to whoever called them: the tracker store, a policy, the processor).
CATEGORIES = (
    ("jsonschema/", "checking action-server replies (jsonschema)"),
    ("rasa/nlu/", "NLU (jieba, featurizers, DIET)"),
    ("rasa/core/policies/", "dialogue policies (TED, rules, memoization)"),
    ("rasa/core/featurizers/", "dialogue policies (TED, rules, memoization)"),
    ("tracker_store.py", "tracker store (Redis, tracker (de)serialisation)"),
    ("lock_store.py", "lock store"),
    ("rasa/core/actions/", "actions and forms (calls to the action server)"),
    ("rasa/core/processor.py", "processor (events, slots, domain)"),
    ("rasa/engine/", "graph runner"),
    ("rasa/core/channels/", "channels and HTTP server"),
    ("bot/channels/", "channels and HTTP server"),
    ("sanic/", "channels and HTTP server"),
)


def py_spy() -> str | None:
    """py-spy from PY_SPY, the virtual environment or PATH; None when not installed."""
    import os
    import shutil
    import sys
    from pathlib import Path

    for candidate in (os.environ.get("PY_SPY"), str(Path(sys.executable).parent / "py-spy"),
                      shutil.which("py-spy")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


# The event loop waiting in epoll, and idle executor threads (aiohttp's DNS lookups) waiting
# for work, show as these leaf frames (py-spy's idle detection does not see them in
# non-blocking mode): not busy time.
IDLE_LEAVES = ("serve (sanic/server/runners.py", "run_forever (asyncio/", "_run_once (asyncio/",
               "select (selectors.py", "_worker (concurrent/futures/thread.py")


def busy_samples(collapsed: str) -> list[tuple[list[str], int]]:
    """(frames root first, count) for every sampled stack that was not the idle loop."""
    samples = []
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        frames = stack.split(";")
        if frames[-1].startswith(IDLE_LEAVES):
            continue
        samples.append((frames, int(count)))
    return samples


def categorise(collapsed: str) -> dict[str, int]:
    """Busy samples per category from py-spy's raw (collapsed) output: `f1;f2;... count`."""
    totals: Counter[str] = Counter()
    for frames, count in busy_samples(collapsed):
        category = "other (event loop, asyncio, logging)"
        for frame in reversed(frames):
            match = next((name for pattern, name in CATEGORIES if pattern in frame), None)
            if match:
                category = match
                break
        totals[category] += count
    return dict(totals.most_common())


FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def inclusive(collapsed: str, top: int = 15) -> list[tuple[str, float]]:
    """The functions of Rasa and ours found on the most busy samples (inclusive share).

    A function counts once per sample however often it recurs on that stack.
    """
    seen: Counter[str] = Counter()
    total = 0
    for frames, count in busy_samples(collapsed):
        total += count
        names = set()
        for frame in frames:
            match = FRAME.match(frame.strip())
            if not match:
                continue
            path = match["file"]
            marker = next((m for m in ("rasa/core/", "rasa/shared/", "rasa/nlu/",
                                        "rasa/engine/", "rasa/utils/", "bot/", "jsonschema/")
                           if m in path), None)
            if marker and not path.endswith("rasa/core/run.py"):
                short = path[path.index(marker):]
                names.add(f"{match['function']} ({short})")
        for name in names:
            seen[name] += count
    return [(name, count / total) for name, count in seen.most_common(top)] if total else []
