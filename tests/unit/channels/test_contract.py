"""Every channel in credentials.yml meets the contract in bot/channels/base.py: it is a
`ChannelInput` with a `ChannelConfig`; until configured its webhook answers 503, its health
route says so and trigger_intent gets no output; once configured a body over the limit is
413 and the proactive output raises what it could not deliver."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
from typing import Any

import pytest
import yaml
from sanic import Sanic

import bot.settings
from bot.channels.base import ChannelConfig, ChannelInput, ChannelOutput
from bot.settings import ROOT, Settings

# Sanic's note that an after_server_stop listener runs late under ASGI: no server stops here.
pytestmark = pytest.mark.filterwarnings("ignore:You have set a listener:UserWarning")
CREDENTIALS: dict[str, dict[str, Any] | None] = yaml.safe_load(
    (ROOT / "credentials.yml").read_text(encoding="utf-8"))
NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens there; nothing here reaches Redis
# Values of the shape each required setting must have.
SAMPLES = {"access_token": "123456789:TEST-telegram-token_0123456789", "secret_token": "s" * 32}


@pytest.fixture(autouse=True)
def nothing_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment and .env of this machine play no part; a data key, as every Rasa has
    (the handoff channel seals what it keeps)."""
    monkeypatch.setattr(bot.settings, "settings", lambda: Settings.from_env(
        {"REDIS_URL": NOWHERE, "DATA_ENCRYPTION_KEY": "contract-test-key-0123456789"}))
    # Sanic rewrites some of its own methods when an app starts, once per process unless
    # in test mode.
    monkeypatch.setattr(Sanic, "test_mode", True)


def channel_from_credentials(path: str) -> ChannelInput:
    module, _, name = path.rpartition(".")
    channel_class = getattr(importlib.import_module(module), name)
    assert issubclass(channel_class, ChannelInput), f"{path} is not a ChannelInput"
    channel = channel_class.from_credentials(CREDENTIALS[path])
    assert isinstance(channel.config, ChannelConfig)
    return channel  # type: ignore[no-any-return]


async def start(app: Sanic) -> asyncio.Task[None]:
    """Sanic's ASGI start-up (routes finalised, listeners run); cancel the task to drop it."""
    started: list[dict[str, Any]] = []

    async def events() -> dict[str, Any]:
        if not started:
            return {"type": "lifespan.startup"}
        await asyncio.Event().wait()  # no shutdown: the app is dropped
        return {}

    async def record(message: dict[str, Any]) -> None:
        started.append(message)

    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                       events, record))

    async def startup_answered() -> None:
        while not started:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(startup_answered(), 5)
    assert started == [{"type": "lifespan.startup.complete"}], started
    return lifespan


async def asgi(app: Sanic, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request through Sanic's ASGI interface."""
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [(b"host", b"bot.test")],
             "server": ("bot.test", 80), "client": ("127.0.0.1", 40000)}
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def answers(channel: ChannelInput, requests: list[tuple[str, str, bytes]]
            ) -> list[tuple[int, bytes]]:
    async def no_turns(message: Any) -> None:
        raise AssertionError(f"no message should reach Rasa: {message}")

    async def scenario() -> list[tuple[int, bytes]]:
        app = Sanic(f"contract_{channel.name()}")
        app.blueprint(channel.blueprint(no_turns), url_prefix=f"/webhooks/{channel.name()}")
        lifespan = await start(app)
        try:
            return [await asgi(app, method, path, body) for method, path, body in requests]
        finally:
            lifespan.cancel()

    return asyncio.run(scenario())


@pytest.mark.parametrize("path", list(CREDENTIALS))
def test_until_configured_503_and_no_output(path: str) -> None:
    channel = channel_from_credentials(path)
    if not channel.config.REQUIRED:  # REST and web chat: nothing to configure
        assert channel.config.configured and channel.config.missing == ()
        return
    assert not channel.config.configured and channel.config.missing
    assert channel.get_output_channel() is None
    root = f"/webhooks/{channel.name()}/"
    (health, said), (posted, refusal) = answers(channel, [
        ("GET", root, b""), ("POST", root + "webhook", b"{}")])
    assert (health, said) == (200, b'{"status":"ok","configured":false}')
    assert (posted, refusal) == (503, f"{channel.TITLE} channel not configured".encode())


@pytest.mark.parametrize("path", list(CREDENTIALS))
def test_once_configured_body_limit_and_a_proactive_output_that_raises(path: str) -> None:
    channel = channel_from_credentials(path)
    if not channel.config.REQUIRED:  # always configured: the test above
        return
    config = dataclasses.replace(channel.config, **{
        name: SAMPLES.get(name, "set") for name in channel.config.REQUIRED})
    assert config.configured
    configured = type(channel)(config)  # type: ignore[call-arg]

    async def proactive() -> object:
        return configured.get_output_channel()

    output = asyncio.run(proactive())
    assert output is not None
    if isinstance(output, ChannelOutput):
        assert output.raise_errors
    ((status, _),) = answers(configured, [
        ("POST", f"/webhooks/{channel.name()}/webhook", b"x" * (channel.MAX_BODY_BYTES + 1))])
    assert status == 413
