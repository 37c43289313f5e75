"""A web chat socket as the widget opens it (session request first), from any address, that
then sends what it likes: for tests of clients that do not play by the page's rules."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import engineio.payload
import socketio

from tests.testkit.stack import Stack

TIMEOUT = 120.0
# A poll's answer holds everything the server queued for the socket since the last one: the
# page's own engine.io client reads it all, Python's refuses more than 16 packets, which a
# flooded conversation's "slow down" answers exceed.
engineio.payload.Payload.max_decode_packets = 10_000


class Page:
    """`address` goes as X-Real-IP, for a stack told to trust it."""

    def __init__(self, stack: Stack, address: str | None = None):
        self.url = stack.rasa_url
        self.headers = {"X-Real-IP": address} if address else {}
        self.session = uuid.uuid4().hex
        self.uttered: asyncio.Queue[dict] = asyncio.Queue()
        self.client = socketio.AsyncClient(reconnection=False)
        self.client.on("bot_uttered", self.uttered.put_nowait)

    async def open(self) -> Page:
        confirmed: asyncio.Queue[Any] = asyncio.Queue()
        self.client.on("session_confirm", confirmed.put_nowait)
        await self.client.connect(self.url, socketio_path="/socket.io", transports=["polling"],
                                  headers=self.headers)
        await self.client.emit("session_request", {"session_id": self.session})
        assert await asyncio.wait_for(confirmed.get(), TIMEOUT) == self.session
        return self

    async def send(self, message: str, **extra: Any) -> None:
        await self.client.emit("user_uttered", {"message": message,
                                                "session_id": self.session, **extra})

    async def flush(self) -> None:
        """Waits until what was sent so far (messages, and acknowledgements of what the
        page was shown) has reached the server. The client batches whatever it has queued
        into one POST, and the server refuses a POST of more than 16 packets; a disconnect
        drops whatever is still queued, as a closing browser tab would not."""
        if self.client.connected:
            await asyncio.wait_for(self.client.eio.queue.join(), TIMEOUT)

    async def close(self) -> None:
        await self.flush()
        await self.client.disconnect()

    async def reply(self) -> dict:
        return await asyncio.wait_for(self.uttered.get(), TIMEOUT)

    async def replies_until(self, wanted: str) -> list[str]:
        """Every text until one holding `wanted`."""
        texts: list[str] = []
        while not any(wanted in text for text in texts):
            texts.append((await self.reply()).get("text", ""))
        return texts
