"""The web chat channel: Rasa's socket.io channel, plus the chat page on the same origin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.socketio import SocketIOInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.config import ROOT

WEB_DIR = ROOT / "web"
# The files the page may fetch, and nothing else: the widget bundle comes from npm.
ASSETS: dict[str, tuple[Path, str]] = {
    "": (WEB_DIR / "index.html", "text/html; charset=utf-8"),
    "chat.js": (WEB_DIR / "chat.js", "application/javascript; charset=utf-8"),
    "chat.css": (WEB_DIR / "chat.css", "text/css; charset=utf-8"),
    "webchat.js": (
        WEB_DIR / "node_modules" / "rasa-webchat" / "lib" / "index.js",
        "application/javascript; charset=utf-8",
    ),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: https:; "
        "style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class WebChatInput(SocketIOInput):
    @classmethod
    def name(cls) -> str:
        return "webchat"

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        blueprint = super().blueprint(on_new_message)

        async def page(request: Request, asset: str = "") -> HTTPResponse:
            if not asset and not request.path.endswith("/"):
                # The page's assets are relative to the folder.
                return response.redirect(request.path + "/")
            if asset not in ASSETS:
                return response.text("not found", status=404)
            path, content_type = ASSETS[asset]
            if not path.is_file():
                return response.text(
                    "the chat page is not installed: run `make run`", status=503
                )
            return await response.file(
                str(path), mime_type=content_type, headers=SECURITY_HEADERS
            )

        blueprint.add_route(page, "/chat", methods=["GET"], name="chat_page")
        blueprint.add_route(page, "/chat/<asset:str>", methods=["GET"], name="chat_asset")
        return blueprint
