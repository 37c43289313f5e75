"""The web chat's socket.io over a websocket, as the widget speaks it once it has upgraded.

rasa-webchat opens with long polling and moves to a websocket as soon as the server offers
one; a conversation then runs on the websocket. python-engineio's own websocket client
needs a newer aiohttp than Rasa's pin, so this speaks Engine.IO 4 / Socket.IO 5 itself over
the `websockets` library (already installed with Rasa), the few packet types a guardian uses:
open, connect, event, acknowledgement, ping.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
from collections.abc import Callable
from typing import Any

from websockets.legacy.client import WebSocketClientProtocol, connect

OPEN, CLOSE, PING, PONG, MESSAGE = "0", "1", "2", "3", "4"
CONNECT, EVENT, ACK = "0", "2", "3"


class WebsocketSocketIO:
    """The part of `socketio.AsyncClient` the bench uses: on, connect, emit, call."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[Any], None]] = {}
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.socket: WebSocketClientProtocol | None = None
        self.reader: asyncio.Task[None] | None = None
        self.joined: asyncio.Future[None] | None = None

    @property
    def connected(self) -> bool:
        return self.socket is not None and self.socket.open

    def on(self, event: str, handler: Callable[[Any], None]) -> None:
        self.handlers[event] = handler

    async def connect(self, url: str, ssl_context: ssl.SSLContext | None = None,
                      local_addr: tuple[str, int] | None = None) -> None:
        ws_url = url.replace("https://", "wss://").replace("http://", "ws://")
        self.socket = await connect(f"{ws_url}/socket.io/?EIO=4&transport=websocket",
                                    ssl=ssl_context if ws_url.startswith("wss") else None,
                                    local_addr=local_addr, max_size=2**20)
        opened = await self.socket.recv()
        if not str(opened).startswith(OPEN):
            raise ConnectionError(f"no Engine.IO open packet: {str(opened)[:80]!r}")
        self.joined = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())
        await self.socket.send(MESSAGE + CONNECT)
        await self.joined

    async def emit(self, event: str, data: Any) -> None:
        await self._send(MESSAGE + EVENT, [event, data])

    async def call(self, event: str, data: Any, timeout: float) -> Any:
        number = next(self.ids)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[number] = answer
        await self._send(f"{MESSAGE}{EVENT}{number}", [event, data])
        return await asyncio.wait_for(answer, timeout)

    async def disconnect(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        if self.socket is not None:
            await self.socket.close()

    async def _send(self, head: str, payload: list[Any]) -> None:
        assert self.socket is not None
        await self.socket.send(head + json.dumps(payload, ensure_ascii=False))

    async def _read(self) -> None:
        assert self.socket is not None and self.joined is not None
        try:
            async for packet in self.socket:
                text = str(packet)
                if text == PING:
                    await self.socket.send(PONG)
                elif text.startswith(MESSAGE + CONNECT):
                    self.joined.set_result(None)
                elif text.startswith(MESSAGE + EVENT):
                    event, *args = json.loads(text[2:])
                    handler = self.handlers.get(event)
                    if handler is not None:
                        handler(args[0] if args else None)
                elif text.startswith(MESSAGE + ACK):
                    body = text[2:]
                    digits = len(body) - len(body.lstrip("0123456789"))
                    answer = self.acks.pop(int(body[:digits]), None)
                    if answer is not None and not answer.done():
                        args = json.loads(body[digits:] or "[]")
                        answer.set_result(args[0] if args else None)
        finally:
            error = ConnectionError("the web chat socket closed")
            for waiting in [self.joined, *self.acks.values()]:
                if not waiting.done():
                    waiting.set_exception(error)
