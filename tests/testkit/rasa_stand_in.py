"""A tiny HTTP server standing in for Rasa's trigger_intent endpoint and our channels' notice
route, recording what it gets.

trigger_intent: it checks the caller's token as Rasa's API does with `--jwt-secret`: a
bearer token signed with the secret, unexpired, whose `user` either is an admin or has the
conversation in the path as its username (401 without a valid token, 403 for another
conversation). Without `output_channel` it answers as Rasa's collecting output does: the
messages said and the tracker.

/webhooks/<channel>/notice: the token must be bot.notices' for the conversation
in the body; the answer is the next outcome scripted for the path (`outcomes`), else seen.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt

JWT_SECRET = "rasa-test-jwt-secret-0123456789-x"


def allowed(authorization: str | None, path: str, secret: str) -> int:
    """200, 401 or 403 for a request to Rasa's API, as Rasa would answer: an admin may call
    anything, a user only /conversations/<their own id>/..."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme != "Bearer" or not token:
        return 401
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"])
    except jwt.PyJWTError:
        return 401
    user = claims.get("user") or {}
    parts = urlsplit(path).path.split("/")
    conversation = unquote(parts[2]) if parts[1:2] == ["conversations"] else None
    if user.get("role") == "admin" or (user.get("role") == "user" and conversation
                                        and user.get("username") == conversation):
        return 200
    return 403


class RasaStandIn:
    def __init__(self, port: int, failures_first: int = 0, jwt_secret: str = JWT_SECRET):
        self.port = port
        self.jwt_secret = jwt_secret
        self.refused: list[int] = []
        self.url = f"http://127.0.0.1:{port}"
        self.failures_left = failures_first
        self.received: list[dict[str, Any]] = []
        self.notices: list[dict[str, Any]] = []
        # path -> the outcomes to answer, first first; "seen" once a path's list is empty.
        self.outcomes: dict[str, list[str]] = {}
        self.language = "zh"
        self.latest_input_channel: str | None = None  # what the tracker says
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> RasaStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                if self.path.startswith("/webhooks/"):
                    self.notice(body)
                    return
                status = allowed(self.headers.get("Authorization"), self.path,
                                 stand_in.jwt_secret)
                if status != 200:
                    with stand_in.lock:
                        stand_in.refused.append(status)
                    self.send_response(status)
                    self.end_headers()
                    return
                with stand_in.lock:
                    fail = stand_in.failures_left > 0
                    if fail:
                        stand_in.failures_left -= 1
                    else:
                        stand_in.received.append({"path": self.path, "body": body})
                self.send_response(503 if fail else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                if fail or "output_channel=" in self.path:
                    self.wfile.write(b"{}")
                    return
                reference = (body.get("entities") or {}).get("reference_number", "")
                self.wfile.write(json.dumps({
                    "messages": [{"recipient_id": "x", "text": f"{body['name']} {reference}"}],
                    "tracker": {"slots": {"language": stand_in.language},
                                "latest_input_channel": stand_in.latest_input_channel},
                }).encode())

            def notice(self, body: dict[str, Any]) -> None:
                from bot import notices

                if not notices.authorised(self.headers.get("Authorization"),
                                          body.get("conversation", ""), stand_in.jwt_secret):
                    with stand_in.lock:
                        stand_in.refused.append(401)
                    self.send_response(401)
                    self.end_headers()
                    return
                with stand_in.lock:
                    scripted = stand_in.outcomes.get(body["path"]) or []
                    outcome = scripted.pop(0) if scripted else notices.SEEN
                    stand_in.notices.append({"path": self.path, "body": body,
                                             "outcome": outcome})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(notices.Outcome(outcome).as_json()).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
