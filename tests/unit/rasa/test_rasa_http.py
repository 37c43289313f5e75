"""Rasa's requests to the action server: ujson bodies, one kept-alive connection."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from rasa.utils.endpoints import EndpointConfig

from bot.rasa import fast_json
from bot.rasa.patches import rasa_http
from tests.testkit.processes import free_port
from tests.unit.rasa.test_fast_json import TRACKER


def serve_twice(*replies: Any) -> tuple[list[Any], list[bytes], set[Any]]:
    """Rasa's endpoint calls a local webhook; what it answered, received and from where."""
    received: list[bytes] = []
    peers: set[Any] = set()

    async def webhook(request: web.Request) -> web.Response:
        received.append(await request.read())
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.json_response({"events": [], "responses": []})

    async def scenario() -> list[Any]:
        app = web.Application()
        app.router.add_post("/webhook", webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            rasa_http.install()
            rasa_http.install()  # twice is once
            endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook")
            return [await endpoint.request(json=reply, method="post") for reply in replies]
        finally:
            await rasa_http.close()
            await runner.cleanup()

    return asyncio.run(scenario()), received, peers


def test_rasas_action_requests_are_encoded_by_ujson() -> None:
    answers, received, _ = serve_twice(TRACKER)
    assert answers == [{"events": [], "responses": []}]
    assert received == [fast_json.dumps(TRACKER).encode()]
    assert json.loads(received[0]) == TRACKER


def test_requests_share_one_connection() -> None:
    answers, received, peers = serve_twice(TRACKER, TRACKER, TRACKER)
    assert len(answers) == len(received) == 3
    assert len(peers) == 1  # Rasa's own client opens a new connection for each
