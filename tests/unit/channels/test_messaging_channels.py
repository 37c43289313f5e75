"""The Telegram, WhatsApp (Twilio) and Facebook channels' own logic: signatures, secrets,
update and form parsing, configuration, and the Bot API client against a local server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time

import pytest

from bot.channels import facebook, whatsapp
from bot.channels.telegram import (
    BadUpdate,
    BotApiOutput,
    SecretTelegramInput,
    TelegramConfig,
    parse_update,
    secret_valid,
)
from bot.channels.whatsapp import BadForm, TwilioConfig, parse_form
from bot.settings import Settings
from tests.testkit.messaging_servers import TelegramServer, form_body, twilio_signature
from tests.testkit.processes import free_port

AUTH_TOKEN = "12345678901234567890123456789012"
URL = "https://bot.example.com/webhooks/whatsapp/webhook"
BOT_TOKEN = "123456789:TEST-telegram-token_0123456789"
SECRET = "s" * 32


# Twilio's signature ---------------------------------------------------------------------


def test_twilio_signature_by_hand_matches_the_documented_example() -> None:
    # Twilio's documentation example: this URL, these fields, this token, this signature.
    fields = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310",
              "Digits": "1234", "From": "+14158675310", "To": "+18005551212"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, fields) == "GvWf1cFY/Q7PnoempGyD5oXAezc="
    form = parse_form(form_body(fields))
    assert whatsapp.signature_valid("12345", url, form, "GvWf1cFY/Q7PnoempGyD5oXAezc=")


def test_twilio_signature_refusals() -> None:
    fields = {"From": "whatsapp:+8613912345678", "Body": "你好", "To": "whatsapp:+1415"}
    form = parse_form(form_body(fields))
    good = twilio_signature(AUTH_TOKEN, URL, fields)
    assert whatsapp.signature_valid(AUTH_TOKEN, URL, form, good)
    # The URL with its default port is the same URL to Twilio.
    assert whatsapp.signature_valid(AUTH_TOKEN, URL.replace(".com/", ".com:443/"), form, good)
    assert not whatsapp.signature_valid(AUTH_TOKEN, URL, form, None)
    assert not whatsapp.signature_valid(AUTH_TOKEN, URL, form, "")
    assert not whatsapp.signature_valid("", URL, form, good)
    assert not whatsapp.signature_valid("other-token", URL, form, good)
    assert not whatsapp.signature_valid(AUTH_TOKEN, URL + "?x=1", form, good)
    changed = parse_form(form_body({**fields, "Body": "我孩子的社保卡丢了"}))
    assert not whatsapp.signature_valid(AUTH_TOKEN, URL, changed, good)
    added = parse_form(form_body({**fields, "Extra": "1"}))
    assert not whatsapp.signature_valid(AUTH_TOKEN, URL, added, good)


def test_twilio_signature_covers_repeated_fields() -> None:
    body = b"From=whatsapp%3A%2B1&MediaUrl=b&MediaUrl=a"
    by_hand = base64.b64encode(hmac.new(
        AUTH_TOKEN.encode(), (URL + "From" + "whatsapp:+1" + "MediaUrl" + "a" + "MediaUrl"
                              + "b").encode(), hashlib.sha1).digest()).decode()
    assert whatsapp.signature_valid(AUTH_TOKEN, URL, parse_form(body), by_hand)
    one_dropped = parse_form(b"From=whatsapp%3A%2B1&MediaUrl=b")
    assert not whatsapp.signature_valid(AUTH_TOKEN, URL, one_dropped, by_hand)


@pytest.mark.parametrize("body", [b"\xff\xfe", b"a=%ff", b"=&=&", b"x" * 70_000,
                                  b"&".join(b"k%d=v" % n for n in range(300))])
def test_unreadable_forms_refused(body: bytes) -> None:
    with pytest.raises(BadForm):
        parse_form(body)


def test_twilio_config_from_credentials_then_environment() -> None:
    env = {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_NUMBER": "whatsapp:+1",
           "TWILIO_API_BASE": "http://127.0.0.1:9/", "REDIS_URL": "redis://127.0.0.1:1/0"}
    config = TwilioConfig.from_credentials({"account_sid": "", "auth_token": "yml"},
                                           Settings.from_env(env))
    assert (config.account_sid, config.auth_token, config.base_url) == (
        "AC1", "yml", "http://127.0.0.1:9")
    assert config.configured and config.webhook_url == ""
    assert not TwilioConfig.from_credentials(
        {}, Settings.from_env({"REDIS_URL": "redis://x:1/0"})).configured


# Telegram -----------------------------------------------------------------------------


def test_telegram_secret_compared_exactly() -> None:
    assert secret_valid(SECRET, SECRET)
    assert not secret_valid(SECRET, SECRET[:-1])
    assert not secret_valid(SECRET, SECRET + "s")
    assert not secret_valid(SECRET, "é" * 32)
    assert not secret_valid("", "")


def test_telegram_configured_only_with_a_token_and_a_strong_secret() -> None:
    env = {"TELEGRAM_ACCESS_TOKEN": BOT_TOKEN, "TELEGRAM_SECRET_TOKEN": SECRET}

    def config(env: dict[str, str]) -> TelegramConfig:
        return TelegramConfig.from_credentials({}, Settings.from_env(env))

    assert config(env).configured
    assert config(env).base_url == "https://api.telegram.org"
    assert not config({**env, "TELEGRAM_SECRET_TOKEN": ""}).configured
    assert not config({**env, "TELEGRAM_SECRET_TOKEN": "short"}).configured
    assert not config({**env, "TELEGRAM_SECRET_TOKEN": "with spaces " * 3}).configured
    assert not config({**env, "TELEGRAM_ACCESS_TOKEN": "not-a-token"}).configured
    # Not configured: no output channel for trigger_intent, and no Bot object made.
    assert SecretTelegramInput(TelegramConfig()).get_output_channel() is None


@pytest.mark.parametrize("update", [
    None, [], "text", {"message": {}}, {"update_id": "1"}, {"update_id": True},
    {"update_id": 1, "message": {"text": "hi"}},
    {"update_id": 1, "message": {"chat": {"id": "7"}, "text": "hi"}},
    {"update_id": 1, "message": {"chat": {"id": True}, "text": "hi"}},
    {"update_id": 1, "callback_query": {"data": "/affirm"}},
])
def test_malformed_updates_refused(update: object) -> None:
    with pytest.raises(BadUpdate):
        parse_update(update)


def test_updates_without_text_ignored() -> None:
    chat = {"chat": {"id": 7}}
    assert parse_update({"update_id": 1, "channel_post": {**chat, "text": "x"}}) is None
    assert parse_update({"update_id": 1, "message": {**chat, "sticker": {}}}) is None
    assert parse_update({"update_id": 1, "message": {**chat, "text": "\x00 / "}}) is None


def test_telegram_text_cleaned_and_capped() -> None:
    long = parse_update({"update_id": 1, "message": {"chat": {"id": -100}, "text": "a" * 10_000}})
    assert long is not None and len(long.text) == 4096 and long.chat_id == "-100"
    start = parse_update({"update_id": 1, "message": {
        "chat": {"id": 1}, "text": "/start@card_bot", "from": {"language_code": "en"}}})
    assert start is not None and (start.text, start.language) == ("/greet", "en")


def test_set_webhook_against_an_unreachable_api_returns_false_quickly() -> None:
    config = TelegramConfig(access_token=BOT_TOKEN, secret_token=SECRET,
                            base_url=f"http://127.0.0.1:{free_port()}")

    async def attempt() -> bool:
        output = BotApiOutput(config)
        try:
            return await output.register_webhook("https://bot.example.com/hook", SECRET)
        finally:
            await output.session.close()

    started = time.monotonic()
    assert asyncio.run(attempt()) is False
    assert time.monotonic() - started < 15


def test_bot_api_output_raises_only_when_asked_and_retrying_helps() -> None:
    server = TelegramServer(BOT_TOKEN).start()
    config = TelegramConfig(access_token=BOT_TOKEN, secret_token=SECRET, base_url=server.url)
    bad_gateway = {"ok": False, "error_code": 502, "description": "Bad Gateway"}

    async def scenario() -> None:
        quiet, loud = BotApiOutput(config), BotApiOutput(config, raise_errors=True)
        try:
            assert await loud.register_webhook("https://bot.example.com/hook", SECRET)
            await loud.send_text_message("42", "first\n\nsecond " + "x" * 5000)
            server.fail_next("sendMessage", 502, bad_gateway)
            await quiet.send_text_message("42", "lost, logged")
            server.fail_next("sendMessage", 502, bad_gateway)
            with pytest.raises(Exception, match="Bad Gateway"):
                await loud.send_text_message("42", "raised")
            # A blocked bot is final: nothing to retry.
            server.fail_next("sendMessage", 403, {"ok": False, "error_code": 403,
                                                  "description": "Forbidden: bot was "
                                                                 "blocked by the user"})
            await loud.send_text_message("42", "blocked")
        finally:
            await quiet.session.close()
            await loud.session.close()

    try:
        asyncio.run(scenario())
        assert server.messages_to(42)[:1] == ["first"]
        assert [len(t) for t in server.messages_to(42)[1:]] == [4096, 911]
        hook = server.calls_to("setWebhook")[-1].fields
        assert hook["secret_token"] == SECRET and hook["url"] == "https://bot.example.com/hook"
    finally:
        server.stop()


# Facebook -----------------------------------------------------------------------------


def test_facebook_signatures() -> None:
    body = b'{"object": "page", "entry": []}'
    sha1 = "sha1=" + hmac.new(b"app", body, hashlib.sha1).hexdigest()
    sha256 = "sha256=" + hmac.new(b"app", body, hashlib.sha256).hexdigest()
    assert facebook.signature_valid("app", body, sha1)
    assert facebook.signature_valid("app", body, sha256.upper().replace("SHA256", "sha256"))
    assert not facebook.signature_valid("app", body + b" ", sha256)
    assert not facebook.signature_valid("", body, "sha256=" + hmac.new(
        b"", body, hashlib.sha256).hexdigest())  # an empty secret signs nothing
    for header in (None, "", "sha256", "sha256=", "md5=abc", "new=abc", "sha256=é"):
        assert not facebook.signature_valid("app", body, header)
    assert facebook.signature_header({"X-Hub-Signature": "a", "X-Hub-Signature-256": "b"}) == "b"


def test_facebook_unconfigured_has_no_output() -> None:
    config = facebook.FacebookConfig.from_credentials(
        {"verify": "v"}, Settings.from_env({"FACEBOOK_SECRET": "s"}))
    assert (config.verify, config.secret, config.configured) == ("v", "s", False)
    assert facebook.CheckedFacebookInput(config).get_output_channel() is None


def test_unconfigured_channels_answer_503_and_reach_no_conversation() -> None:
    reached: list[object] = []

    async def on_new_message(message: object) -> None:
        reached.append(message)

    async def scenario() -> tuple[tuple[int, str], tuple[int, str]]:
        tg = await SecretTelegramInput(TelegramConfig()).receive(
            {"X-Telegram-Bot-Api-Secret-Token": ""}, b"{}", on_new_message)
        wa = await whatsapp.SignedTwilioInput(TwilioConfig(redis_url="redis://127.0.0.1:1/0")
                                              ).receive(URL, {}, b"Body=hi", on_new_message)
        return tg, wa

    (tg_status, _), (wa_status, _) = asyncio.run(scenario())
    assert (tg_status, wa_status, reached) == (503, 503, [])
