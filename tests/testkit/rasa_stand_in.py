"""A tiny HTTP server standing in for Rasa's trigger_intent endpoint, recording what it gets."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RasaStandIn:
    def __init__(self, port: int, failures_first: int = 0):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.failures_left = failures_first
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> RasaStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                with stand_in.lock:
                    fail = stand_in.failures_left > 0
                    if fail:
                        stand_in.failures_left -= 1
                    else:
                        stand_in.received.append({"path": self.path, "body": body})
                self.send_response(503 if fail else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
