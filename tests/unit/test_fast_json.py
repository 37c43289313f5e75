"""Rasa's requests to the action server carry the same JSON, written by ujson."""

from __future__ import annotations

import asyncio
import doctest
import json
from typing import Any

from aiohttp import web
from rasa.utils.endpoints import EndpointConfig

from bot import fast_json
from tests.support.processes import free_port

TRACKER: dict[str, Any] = {
    "sender_id": "web-1",
    "slots": {"city": "上海", "language": "zh", "child_name": None},
    "latest_message": {"text": "我孩子的社保卡丢了 </script>", "intent": {"name": "report_lost_card",
                       "confidence": 0.9873}, "entities": []},
    "events": [{"event": "user", "timestamp": 1764690000.123456, "text": "hi / 你好",
                "parse_data": {"intent_ranking": [{"confidence": 1e-05}]}}],
}


def test_doctests() -> None:
    assert doctest.testmod(fast_json).failed == 0


def test_same_value_as_the_standard_library() -> None:
    assert json.loads(fast_json.dumps(TRACKER)) == json.loads(json.dumps(TRACKER)) == TRACKER


def test_rasas_action_requests_are_encoded_by_it() -> None:
    received: list[bytes] = []

    async def webhook(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({"events": [], "responses": []})

    async def scenario() -> Any:
        app = web.Application()
        app.router.add_post("/webhook", webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            fast_json.install()
            fast_json.install()  # twice is once
            endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook")
            return await endpoint.request(json=TRACKER, method="post")
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()) == {"events": [], "responses": []}
    assert received == [fast_json.dumps(TRACKER).encode()]
    assert json.loads(received[0]) == TRACKER
