"""The chat page: its few files served with a strict content security policy, gzipped."""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
from pathlib import Path

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.settings import ROOT

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
    # No inline script: even markup that slipped into the page could not run.
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: https:; "
        "style-src 'self' 'unsafe-inline'; font-src 'self' data:; script-src 'self'; "
        "object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# rasa-webchat's styles import a web font from Google: taken out so the page fetches
# nothing from elsewhere (the CSP would block it anyway, and it is slow or blocked in China).
REMOTE_FONT_IMPORT = re.compile(rb"@import url\(https://fonts\.googleapis\.com/[^)]*\);")


@functools.lru_cache(maxsize=8)
def served_file(path: Path, mtime_ns: int) -> tuple[bytes, bytes, str]:
    """The file as served, gzipped, and its ETag (cached per version of the file).

    Imports from other sites are taken out; gzip matters on a phone (the widget is 700 KB).
    """
    body = REMOTE_FONT_IMPORT.sub(b"", path.read_bytes())
    return body, gzip.compress(body), f'"{hashlib.sha256(body).hexdigest()[:32]}"'


async def chat_page(request: Request, asset: str = "") -> HTTPResponse:
    """`/webhooks/webchat/chat/` and the files it fetches."""
    if not asset and not request.path.endswith("/"):
        # The page's assets are relative to the folder.
        return response.redirect(request.path + "/")
    if asset not in ASSETS:
        return response.text("not found", status=404)
    path, content_type = ASSETS[asset]
    if not path.is_file():
        return response.text("the chat page is not installed: run `make run`", status=503)
    body, zipped, etag = served_file(path, path.stat().st_mtime_ns)
    headers = {**SECURITY_HEADERS, "ETag": etag, "Vary": "Accept-Encoding"}
    if request.headers.get("If-None-Match") == etag:
        return response.empty(status=304, headers=headers)
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        return response.raw(zipped, content_type=content_type,
                            headers={**headers, "Content-Encoding": "gzip"})
    return response.raw(body, content_type=content_type, headers=headers)
