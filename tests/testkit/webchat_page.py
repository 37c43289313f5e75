"""A web chat socket as the widget opens it (session request first), from any address, that
then sends what it likes: for tests of clients that do not play by the page's rules."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import socketio

from tests.testkit.stack import Stack

TIMEOUT = 120.0


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

    async def reply(self) -> dict:
        return await asyncio.wait_for(self.uttered.get(), TIMEOUT)

    async def replies_until(self, wanted: str) -> list[str]:
        """Every text until one holding `wanted`."""
        texts: list[str] = []
        while not any(wanted in text for text in texts):
            texts.append((await self.reply()).get("text", ""))
        return texts
