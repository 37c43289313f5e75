"""Simulated guardians over the REST channel (aiohttp) and the web chat (socket.io).

A guardian holds one conversation: it sends a turn, waits for the whole answer, checks
it, and sends the next: at once, or after a pause for reading and typing (`think_s` on
average). Latency is from sending a message to the last reply of the turn.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio
from socketio.exceptions import SocketIOError
from websockets.exceptions import WebSocketException

from tools.bench.conversations import REFERENCE, Script
from tools.bench.websocket_client import WebsocketSocketIO

TURN_TIMEOUT = 60.0
# socket.io: how long to wait for replies still missing after the server acknowledged
# (they travel through Redis and the next long poll, which lag under saturation).
LATE_REPLIES = 30.0


@dataclass
class Outcome:
    """What one guardian saw: per-turn latencies (s), errors, the filed reference."""

    language: str
    latencies: list[float] = field(default_factory=list)
    replies: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reference: str | None = None
    finished: bool = False


def new_session_id() -> str:
    # The web chat accepts 16-128 characters of [A-Za-z0-9_-] as a session id.
    return f"bench-{uuid.uuid4().hex}"


def check(turn_expect: str, text: str, outcome: Outcome) -> str | None:
    """The error in a reply, or None; keeps the reference when one was filed."""
    if not text.strip():
        return "empty reply"
    if turn_expect == "files":
        found = REFERENCE.search(text)
        if not found:
            return f"no reference in the filing reply: {text[:120]!r}"
        outcome.reference = found.group()
    if turn_expect == "status" and (outcome.reference or "?") not in text:
        return f"status reply without the reference: {text[:120]!r}"
    return None


class Pauses:
    """Reading and typing time: the first message within one mean pause of the start, then
    pauses of 0.5 to 1.5 times the mean. People neither arrive nor type in step; with one
    fixed pause for all, 32 guardians send 32 messages in the same millisecond, turn after
    turn, and the level measures a queue of its own making. Seeded: the same run, the same
    pauses."""

    def __init__(self, mean_s: float):
        self.mean_s = mean_s
        self._seeds = itertools.count()

    def for_one_guardian(self) -> Iterator[float]:
        rng = random.Random(next(self._seeds))
        yield rng.uniform(0.0, self.mean_s)
        while True:
            yield rng.uniform(0.5 * self.mean_s, 1.5 * self.mean_s)


class RestGuardian:
    def __init__(self, session: aiohttp.ClientSession, rasa_url: str, think_s: float = 0.0):
        self.session = session
        self.url = f"{rasa_url}/webhooks/rest/webhook"
        self.pauses = Pauses(think_s) if think_s else None

    async def converse(self, script: Script) -> Outcome:
        outcome = Outcome(script.language)
        sender = new_session_id()
        pauses = self.pauses.for_one_guardian() if self.pauses else None
        for turn in script.turns:
            if pauses:
                await asyncio.sleep(next(pauses))
            message = turn.message.format(reference=outcome.reference or "")
            started = time.perf_counter()
            try:
                async with self.session.post(
                    self.url, json={"sender": sender, "message": message},
                    timeout=aiohttp.ClientTimeout(total=TURN_TIMEOUT),
                ) as response:
                    body = await response.json() if response.status == 200 else None
                    if response.status != 200:
                        outcome.errors.append(f"HTTP {response.status}")
                        return outcome
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                outcome.errors.append(f"{type(error).__name__}: {error}")
                return outcome
            outcome.latencies.append(time.perf_counter() - started)
            outcome.replies.append(len(body or []))
            text = "\n".join(reply.get("text", "") for reply in body or [])
            problem = check(turn.expect, text, outcome)
            if problem:
                outcome.errors.append(f"{script.language} turn {len(outcome.latencies)}: {problem}")
                return outcome
        outcome.finished = True
        return outcome


class SocketGuardian:
    """What rasa-webchat does: connect (long polling), ask for a session, then talk in it.

    The server acknowledges `user_uttered` once Rasa has handled the message; replies go
    through the Redis-shared rooms and may arrive just after the acknowledgement, so a turn
    ends when both the acknowledgement and the expected number of replies are in.
    """

    def __init__(self, rasa_url: str, expected_replies: dict[str, list[int]] | None = None,
                 think_s: float = 0.0, ssl_context: ssl.SSLContext | None = None,
                 spread_sources: bool = False, transport: str = "websocket"):
        self.rasa_url = rasa_url
        self.transport = transport
        self.expected = expected_replies or {}
        self.pauses = Pauses(think_s) if think_s else None
        self.ssl_context = ssl_context
        # Behind a balancer that is sticky by client address (deploy/nginx.conf: ip_hash,
        # which reads an IPv4 address's first three bytes), guardians on one machine look
        # like one user: each gets a loopback address of its own, as separate phones would.
        self.sources = itertools.count() if spread_sources else None

    def _source(self) -> tuple[str, int] | None:
        if self.sources is None:
            return None
        number = next(self.sources)
        return (f"127.{number // 250 % 250 + 1}.{number % 250 + 1}.1", 0)

    async def _connect(self) -> tuple[Any, aiohttp.ClientSession | None]:
        """A connected client: the widget's websocket, or python-socketio's long polling."""
        if self.transport == "websocket":
            client = WebsocketSocketIO()
            await client.connect(self.rasa_url, self.ssl_context, self._source())
            return client, None
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=self.ssl_context if self.ssl_context else True, local_addr=self._source()))
        polling = socketio.AsyncClient(reconnection=False, http_session=http)
        try:
            await polling.connect(
                self.rasa_url, socketio_path="/socket.io", transports=["polling"],
                # The client's default gives the namespace 1 s to connect: too little for a
                # saturated server, and not what a browser would give up after.
                wait_timeout=TURN_TIMEOUT)
        except BaseException:
            await http.close()
            raise
        return polling, http

    async def converse(self, script: Script) -> Outcome:
        outcome = Outcome(script.language)
        session = new_session_id()
        arrivals: list[tuple[float, str]] = []
        got_reply = asyncio.Event()
        confirmed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pauses = self.pauses.for_one_guardian() if self.pauses else None
        client: Any = None
        http: aiohttp.ClientSession | None = None

        def on_reply(data: dict) -> None:
            arrivals.append((time.perf_counter(), str((data or {}).get("text", ""))))
            got_reply.set()

        def on_confirm(data: Any) -> None:
            if not confirmed.done():
                confirmed.set_result(data)

        try:
            client, http = await asyncio.wait_for(self._connect(), TURN_TIMEOUT)
            client.on("bot_uttered", on_reply)
            client.on("session_confirm", on_confirm)
            await client.emit("session_request", {"session_id": session})
            await asyncio.wait_for(confirmed, TURN_TIMEOUT)
            expected = self.expected.get(script.language, [])
            for index, turn in enumerate(script.turns):
                if pauses:
                    await asyncio.sleep(next(pauses))
                message = turn.message.format(reference=outcome.reference or "")
                arrivals.clear()
                got_reply.clear()
                started = time.perf_counter()
                await client.call("user_uttered", {
                    "message": message, "session_id": session,
                    "customData": {"language": script.language},
                }, timeout=TURN_TIMEOUT)
                acked = time.perf_counter()
                want = expected[index] if index < len(expected) else 1
                deadline = acked + LATE_REPLIES
                while len(arrivals) < max(want, 1) and time.perf_counter() < deadline:
                    got_reply.clear()
                    try:
                        await asyncio.wait_for(got_reply.wait(), deadline - time.perf_counter())
                    except asyncio.TimeoutError:
                        break
                if len(arrivals) < want:
                    outcome.errors.append(f"turn {index}: {len(arrivals)} of {want} replies")
                    return outcome
                outcome.latencies.append(max([acked, *(t for t, _ in arrivals)]) - started)
                outcome.replies.append(len(arrivals))
                problem = check(turn.expect, "\n".join(text for _, text in arrivals), outcome)
                if problem:
                    outcome.errors.append(f"{script.language} turn {index + 1}: {problem}")
                    return outcome
            outcome.finished = True
        except (SocketIOError, WebSocketException, asyncio.TimeoutError, OSError) as error:
            outcome.errors.append(f"{type(error).__name__}: {error}")
        finally:
            if client is not None and client.connected:
                await client.disconnect()
            if http is not None:
                await http.close()
        return outcome
