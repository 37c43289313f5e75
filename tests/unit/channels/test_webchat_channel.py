"""The web chat channel's own rules: session ids, metadata, and the jwt check on connect."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from bot.channels.webchat import WebChatInput


async def ignore(_: Any) -> None:
    return None


def connect_handler(channel: WebChatInput, sessions: dict[str, dict] | None = None
                    ) -> Callable[..., Awaitable[bool]]:
    """The socket's connect handler; what it keeps in the socket's session goes to
    `sessions` (no engine.io socket stands behind these calls)."""
    channel.blueprint(ignore)
    assert channel.sio is not None
    kept = sessions if sessions is not None else {}

    async def save_session(sid: str, session: dict, namespace: str | None = None) -> None:
        kept[sid] = session

    channel.sio.save_session = save_session  # type: ignore[method-assign]
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


def test_a_jwt_binds_the_socket_to_its_subject() -> None:
    key = "site-secret-0123456789-0123456789"
    sessions: dict[str, dict] = {}
    connect = connect_handler(WebChatInput(session_persistence=True, jwt_key=key), sessions)
    assert asyncio.run(connect("a", {}, {"token": jwt.encode({"sub": "guardian-1"}, key)}))
    assert sessions["a"]["subject"] == "guardian-1"
    # A subject that could name another channel's conversation is no subject of ours.
    for subject in ("wechat:oA1b2C3d4E5f6G7h8", "", 42):
        token = jwt.encode({"sub": subject}, key)
        assert asyncio.run(connect("b", {}, {"token": token})) is False, subject
