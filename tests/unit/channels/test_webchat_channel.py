"""The web chat channel's own rules: session ids, metadata, and the jwt check on connect."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from bot.channels.webchat import WebChatInput


async def ignore(_: Any) -> None:
    return None


def connect_handler(channel: WebChatInput) -> Callable[..., Awaitable[bool]]:
    channel.blueprint(ignore)
    assert channel.sio is not None
    return channel.sio.handlers["/"]["connect"]  # type: ignore[no-any-return]


def test_without_a_jwt_key_every_socket_connects() -> None:
    connect = connect_handler(WebChatInput(session_persistence=True))
    assert asyncio.run(connect("sid", {}, None)) is True


def test_with_a_jwt_key_only_a_token_signed_with_it_connects() -> None:
    connect = connect_handler(WebChatInput(session_persistence=True, jwt_key="site-secret-0123456789-0123456789"))
    signed = jwt.encode({"sub": "guardian-1"}, "site-secret-0123456789-0123456789", algorithm="HS256")
    forged = jwt.encode({"sub": "guardian-1"}, "not-the-secret-0123456789-0123456789", algorithm="HS256")
    assert asyncio.run(connect("sid", {}, {"token": signed})) is True
    assert asyncio.run(connect("sid", {}, {"token": forged})) is False
    assert asyncio.run(connect("sid", {}, None)) is False
