"""The real stack over HTTP: Redis, action server, Rasa server with the trained model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.testkit.stack import Stack, has_cjk, running_stack, texts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def sender() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def test_hi_gets_an_english_greeting_with_the_main_choices(stack: Stack) -> None:
    replies = stack.say(sender(), "hi")
    assert replies, "no reply"
    assert not has_cjk(texts(replies))
    assert "assistant" in texts(replies).lower()
    payloads = {b["payload"] for r in replies for b in r.get("buttons", [])}
    assert {"/report_lost_card", "/check_status", "/request_human"} <= payloads


def test_nihao_gets_a_chinese_greeting(stack: Stack) -> None:
    replies = stack.say(sender(), "你好")
    assert has_cjk(texts(replies))
    assert "社保卡" in texts(replies)
    assert all(has_cjk(b["title"]) for r in replies for b in r.get("buttons", []))


def test_reply_language_follows_the_user_when_they_switch(stack: Stack) -> None:
    user = sender()
    assert has_cjk(texts(stack.say(user, "你好")))
    english = texts(stack.say(user, "thanks a lot"))
    assert english and not has_cjk(english)
    assert has_cjk(texts(stack.say(user, "你是机器人吗")))


def test_bot_challenge_says_it_is_automated_and_how_to_reach_a_person(stack: Stack) -> None:
    reply = texts(stack.say(sender(), "are you a bot?"))
    assert "automated" in reply and "12333" in reply


def test_out_of_scope_offers_the_choices_without_guessing(stack: Stack) -> None:
    replies = stack.say(sender(), "what's the weather like today")
    assert "can't help" in texts(replies)
    assert any(r.get("buttons") for r in replies)


def test_conversation_lives_in_redis(stack: Stack) -> None:
    import redis

    user = sender()
    stack.say(user, "hello")
    keys = redis.Redis.from_url(stack.settings.redis_url).keys(f"*{user}*")
    assert keys, "tracker not stored in Redis"
    ttl = redis.Redis.from_url(stack.settings.redis_url).ttl(keys[0])
    assert 0 < ttl <= stack.settings.tracker_expiry_seconds


def test_http_api_requires_the_token(stack: Stack) -> None:
    url = f"{stack.rasa_url}/conversations/someone/tracker"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, params={"token": "wrong"}, timeout=10).status_code == 401


def test_chat_page_and_widget_are_served_locally(stack: Stack) -> None:
    page = requests.get(f"{stack.settings.chat_page_url}", timeout=10)
    assert page.status_code == 200 and "webchat.js" in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    widget = requests.get(f"{stack.settings.chat_page_url}webchat.js", timeout=10)
    assert widget.status_code == 200 and "WebChat" in widget.text[:2000]
    assert requests.get(f"{stack.settings.chat_page_url}secret.txt", timeout=10).status_code == 404


def test_rasa_killed_and_restarted_keeps_the_conversation(stack: Stack) -> None:
    user = sender()
    stack.say(user, "你好")
    before = stack.tracker(user)["events"]
    assert any(e.get("text") == "你好" for e in before)

    rasa = stack.processes["rasa"]
    rasa.kill()
    assert not rasa.running
    stack.start("rasa")

    after = stack.tracker(user)["events"]
    assert [e.get("timestamp") for e in after[: len(before)]] == [
        e.get("timestamp") for e in before
    ]
    # The conversation goes on in the language it had: the slot came back too.
    assert stack.tracker(user)["slots"]["language"] == "zh"
    reply = texts(stack.say(user, "谢谢"))
    assert has_cjk(reply)
    assert len(stack.tracker(user)["events"]) > len(after)
