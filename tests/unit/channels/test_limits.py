"""The limits on how fast a client talks, against a real Redis, and a messaging channel's
messages going to their own conversation or being answered "slow down"."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from bot import settings as bot_settings
from bot.channels import base
from bot.channels.limits import TurnLimiter
from bot.channels.telegram import SecretTelegramInput
from bot.settings import Limits


def test_a_burst_is_admitted_then_the_client_waits(redis_url: str) -> None:
    async def run() -> list[float]:
        limiter = TurnLimiter(redis_url, Limits(in_flight=100, per_conversation=60, burst=5))
        waits = []
        for _ in range(7):
            waits.append(await limiter.admit("rest-1"))
        return waits

    waits = asyncio.run(run())
    assert waits[:5] == [0.0] * 5
    # One message a second refills: the sixth waits about a second.
    assert 0.8 <= waits[5] <= 1.0 and 0.8 <= waits[6] <= 1.0


def test_turns_in_flight_are_counted_out(redis_url: str) -> None:
    async def run() -> tuple[float, float, float]:
        limiter = TurnLimiter(redis_url, Limits(in_flight=2, per_conversation=0))
        await limiter.admit("c")
        await limiter.admit("c")
        third = await limiter.admit("c")
        other = await limiter.admit("d")
        await limiter.done("c")
        return third, other, await limiter.admit("c")

    third, other, after_one_ended = asyncio.run(run())
    assert third > 0 and other == 0 and after_one_ended == 0


def test_an_address_is_limited_across_its_conversations(redis_url: str) -> None:
    async def run() -> list[float]:
        limiter = TurnLimiter(redis_url, Limits(per_conversation=0, per_address=60,
                                                address_burst=3))
        return [await limiter.admit(f"page-{n}", "203.0.113.9") for n in range(4)] + [
            await limiter.admit("page-9", "198.51.100.1")]

    waits = asyncio.run(run())
    assert waits[:3] == [0.0] * 3 and waits[3] > 0 and waits[4] == 0


def test_without_redis_a_message_is_admitted() -> None:
    async def run() -> float:
        return await TurnLimiter("redis://127.0.0.1:1/0", Limits()).admit("c")

    assert asyncio.run(run()) == 0.0


@pytest.fixture
def limited(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The channels' limiter on this test's Redis, two turns a conversation at once."""
    current = bot_settings.Settings.from_env({"REDIS_URL": redis_url, "RATE_BURST": "2",
                                              "RATE_PER_CONVERSATION": "6"})
    monkeypatch.setattr(bot_settings, "settings", lambda: current)
    monkeypatch.setattr(base, "_limiters", {})


def test_a_messaging_channel_names_its_conversation_and_slows_a_flood(limited: None) -> None:
    channel = SecretTelegramInput.from_credentials(None)
    seen: list[UserMessage] = []

    async def on_new_message(message: UserMessage) -> None:
        seen.append(message)
        await message.output_channel.send_response(message.sender_id, {"text": "hi"})

    async def run() -> list[dict[str, Any]]:
        output = CollectingOutputChannel()
        for text in ("hello", "again", "还没找到"):
            await channel.guarded(on_new_message)(UserMessage(text, output, "4242"))
        return output.messages

    replies = asyncio.run(run())
    assert [m.sender_id for m in seen] == ["telegram:4242", "telegram:4242"]
    # Replies go to the app's own id; the third message is answered, not run.
    assert [r["recipient_id"] for r in replies] == ["4242"] * 3
    assert replies[2]["text"].startswith("消息发得太快了")
