"""The agents' handoff API through Sanic's ASGI interface on a real Redis, without Rasa:
who may call it, the answers it gives, and a long poll that ends when the guardian writes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from sanic import Sanic

import bot.settings
from bot import handoff
from bot.channels.handoff import HandoffInput
from bot.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore:You have set a listener:UserWarning")
T = TypeVar("T")
TOKEN = "unit-handoff-token-0123456789"
ALICE = {"Authorization": f"Bearer {TOKEN}", "X-Agent": "alice"}
BOB = {"Authorization": f"Bearer {TOKEN}", "X-Agent": "bob"}


async def asgi(app: Sanic, method: str, path: str, headers: dict[str, str] | None = None,
               body: Any = None) -> tuple[int, Any]:
    raw = json.dumps(body).encode() if body is not None else b""
    incoming = [{"type": "http.request", "body": raw, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # the client stays until answered
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(),
             "headers": [(b"host", b"bot.test"), (b"content-type", b"application/json"),
                         *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())],
             "server": ("bot.test", 80), "client": ("127.0.0.1", 40000)}
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    text = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode()


def with_app(redis_url: str, token: str, scenario: Any) -> Any:
    async def run() -> Any:
        Sanic.test_mode = True
        app = Sanic(f"handoff_{abs(hash(scenario))}")
        channel = HandoffInput.from_credentials({"token": token})

        async def no_turns(message: Any) -> None:
            raise AssertionError("the handoff API runs no turns")

        app.blueprint(channel.blueprint(no_turns), url_prefix="/webhooks/handoff")
        started: list[dict[str, Any]] = []

        async def events() -> dict[str, Any]:
            if not started:
                return {"type": "lifespan.startup"}
            await asyncio.Event().wait()
            return {}

        async def record(message: dict[str, Any]) -> None:
            started.append(message)

        lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                           events, record))
        while not started:
            await asyncio.sleep(0.01)
        try:
            return await scenario(app)
        finally:
            lifespan.cancel()
            handoff.install(None)

    return asyncio.run(run())


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setattr(bot.settings, "settings", lambda: Settings.from_env(
        {"REDIS_URL": redis_url, "STAFFED_HOURS": "Mon-Sun 00:00-24:00",
         "DATA_ENCRYPTION_KEY": "unit-handoff-api-data-key-0123456789"}))


def test_503_until_a_token_is_set(redis_url: str) -> None:
    async def scenario(app: Sanic) -> list[int]:
        return [(await asgi(app, "GET", "/webhooks/handoff/queue", ALICE))[0],
                (await asgi(app, "GET", "/webhooks/handoff/"))[0]]

    assert with_app(redis_url, "", scenario) == [503, 200]


def test_the_token_and_the_agent_are_checked(redis_url: str) -> None:
    async def scenario(app: Sanic) -> list[tuple[int, Any]]:
        return [await asgi(app, "GET", "/webhooks/handoff/queue",
                           {"Authorization": "Bearer nope", "X-Agent": "alice"}),
                await asgi(app, "GET", "/webhooks/handoff/queue", {"X-Agent": "alice"}),
                await asgi(app, "GET", "/webhooks/handoff/queue",
                           {"Authorization": f"Bearer {TOKEN}", "X-Agent": "a b/c"}),
                await asgi(app, "GET", "/webhooks/handoff/queue", ALICE)]

    (wrong, _), (none, _), (bad_agent, problem), (fine, body) = with_app(
        redis_url, TOKEN, scenario)
    assert (wrong, none, bad_agent, fine) == (401, 401, 400, 200)
    assert problem["error"]["code"] == "invalid" and "X-Agent" in problem["error"]["fields"]
    assert body == {"waiting": [], "taken": [], "staffed_now": True}


def test_take_reply_and_release_answer_as_the_contract_says(redis_url: str) -> None:
    async def scenario(app: Sanic) -> dict[str, Any]:
        desk = handoff.desk()
        assert desk is not None
        await desk.queue.add(handoff.Case("guardian-1", "rest", "en", 100.0))
        await desk.queue.add(handoff.Case("telegram:5", "telegram", "zh", 50.0))
        one = "/webhooks/handoff/conversations/guardian-1"
        got: dict[str, Any] = {}
        got["queue"] = await asgi(app, "GET", "/webhooks/handoff/queue", ALICE)
        got["unknown"] = await asgi(app, "POST", "/webhooks/handoff/conversations/x/take",
                                    ALICE)
        got["reply_first"] = await asgi(app, "POST", one + "/replies", ALICE, {"text": "hi"})
        got["take"] = await asgi(app, "POST", one + "/take", ALICE)
        got["again"] = await asgi(app, "POST", one + "/take", ALICE)
        got["bob"] = await asgi(app, "POST", one + "/take", BOB)
        got["empty"] = await asgi(app, "POST", one + "/replies", ALICE, {"text": "  "})
        got["bad_wait"] = await asgi(app, "GET", one + "/messages?wait=99", ALICE)
        got["reply"] = await asgi(app, "POST", one + "/replies", ALICE, {"text": "Hello"})
        # A long poll, answered when the guardian writes.
        polling = asyncio.create_task(asgi(app, "GET", one + "/messages?after=1&wait=10",
                                           BOB))
        await asyncio.sleep(0.3)
        assert not polling.done()
        output = CollectingOutputChannel()

        async def rasa(message: UserMessage) -> None:
            raise AssertionError("held")

        await handoff.turn(rasa, UserMessage("thank you", output, "guardian-1",
                                             input_channel="rest"))
        got["poll"] = await asyncio.wait_for(polling, 5)
        got["rest_answer"] = [m["text"] for m in output.messages]
        got["bob_back"] = await asgi(app, "POST", one + "/hand-back", BOB)
        got["back"] = await asgi(app, "POST", one + "/hand-back", ALICE)
        got["gone"] = await asgi(app, "GET", one, ALICE)
        got["telegram"] = await asgi(app, "POST",
                                     "/webhooks/handoff/conversations/telegram:5/take", BOB)
        return got

    got = with_app(redis_url, TOKEN, scenario)
    status, queue = got["queue"]
    assert status == 200
    assert [c["conversation"] for c in queue["waiting"]] == ["telegram:5", "guardian-1"]
    assert got["unknown"][0] == 404 and got["unknown"][1]["error"]["code"] == "not_found"
    assert (got["reply_first"][0], got["reply_first"][1]["error"]["code"]) == (409,
                                                                               "not_taken")
    status, taken = got["take"]
    assert (status, taken["agent"], taken["state"]) == (200, "alice", "taken")
    assert taken["told"]["outcome"] == "queued"  # REST: given with the next answer
    assert got["again"][0] == 200 and got["again"][1]["told"] is None
    assert got["bob"][0] == 409 and "alice" in got["bob"][1]["error"]["message"]
    assert got["empty"][0] == 422 and "text" in got["empty"][1]["error"]["fields"]
    assert got["bad_wait"][0] == 422
    assert got["reply"] == (200, {"seq": 1, "outcome": "queued", "code": "",
                                  "detail": "given with the guardian's next REST answer",
                                  "retry_after": None})
    status, poll = got["poll"]
    assert [(m["seq"], m["from"], m["text"]) for m in poll["messages"]] == [
        (2, "guardian", "thank you")]
    assert poll["next"] == 2 and poll["agent"] == "alice"
    assert got["rest_answer"] == ["A staff member has joined and will answer you from now on.",
                                  "Hello"]
    assert got["bob_back"][0] == 409
    assert got["back"][0] == 200 and got["back"][1]["state"] == "handed_back"
    assert got["gone"][0] == 404
    # No Telegram channel in this app: the agent is told it cannot reach the guardian.
    assert got["telegram"][0] == 200, got["telegram"]
    assert got["telegram"][1]["told"]["outcome"] == "unreachable"


def test_what_the_guardian_is_told_is_in_their_language() -> None:
    from bot.channels.handoff import BACK, JOINED, said

    assert said(JOINED, "zh")["text"].startswith("工作人员已接入")
    back = said(BACK, "en")
    assert "assistant again" in back["text"]
    assert "/request_human" in [b["payload"] for b in back["buttons"]]


def run(scenario: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(scenario)
