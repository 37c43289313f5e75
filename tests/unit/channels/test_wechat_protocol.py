"""WeChat's protocol as the channel reads it: signatures, safe mode's encryption, XML, long
texts, configuration."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

import pytest
from wechatpy.crypto import WeChatCrypto

from bot.channels import wechat
from bot.channels.wechat import (
    BadMessage,
    Inbound,
    NotForUs,
    SafeMode,
    WeChatConfig,
    WeChatInput,
    parse_xml,
    signature,
    signature_valid,
    split_text,
)
from bot.settings import Settings
from tests.testkit.wechat_server import (
    AnswerRefused,
    SafeModeAccount,
    decrypt,
    encrypt,
    event_xml,
    new_aes_key,
    sha1_of_sorted,
    signed_query,
    text_xml,
)

TOKEN = "channel-test-token"
AES_KEY = new_aes_key()


# Signatures ---------------------------------------------------------------------------


def test_signature_by_hand() -> None:
    # sorted(["abc", "1700000000", "n0nce"]) == ["1700000000", "abc", "n0nce"]
    expected = hashlib.sha1(b"1700000000abcn0nce").hexdigest()  # noqa: S324
    assert signature("abc", "1700000000", "n0nce") == expected
    assert signature("n0nce", "abc", "1700000000") == expected  # order-free by design


def test_signature_published_vector() -> None:
    # The vector in wechatpy's test suite (token "test", nonce "test").
    assert signature("test", "1410685589", "test") == "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"


def test_signature_valid_within_five_minutes_only() -> None:
    now = 1_700_000_000
    good = signed_query(TOKEN, timestamp=now, nonce="42")
    assert signature_valid(TOKEN, good, now=now)
    assert signature_valid(TOKEN, good, now=now + 299)
    assert not signature_valid(TOKEN, good, now=now + 301)  # replayed later
    assert not signature_valid(TOKEN, good, now=now - 301)  # from the future
    assert not signature_valid("other-token", good, now=now)
    assert not signature_valid(TOKEN, {**good, "nonce": "43"}, now=now)
    assert not signature_valid(TOKEN, {**good, "signature": "0" * 40}, now=now)
    assert not signature_valid(TOKEN, {**good, "signature": "签名"}, now=now)
    assert not signature_valid(TOKEN, {"timestamp": str(now), "nonce": "42"}, now=now)
    assert not signature_valid("", signed_query("", timestamp=now, nonce="42"), now=now)


# Safe mode ------------------------------------------------------------------------------

# The vector in wechatpy's test suite (WeChat Work's scheme, the same as the Official
# Account's with the corp id in the app id's place).
VECTOR_TOKEN, VECTOR_KEY, VECTOR_ID = "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", \
    "wx49f0ab532d5d035a"
VECTOR_QUERY = {"timestamp": "1411525903", "nonce": "461056294",
                "msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"}
VECTOR_ENCRYPTED = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHC"
    "rsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpX"
    "aG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQi"
    "MS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQi"
    "pvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=")


def test_safe_mode_published_vector() -> None:
    assert signature(VECTOR_TOKEN, VECTOR_QUERY["timestamp"], VECTOR_QUERY["nonce"],
                     VECTOR_ENCRYPTED) == VECTOR_QUERY["msg_signature"]
    assert signature_valid(VECTOR_TOKEN, VECTOR_QUERY, now=1411525903, signed=VECTOR_ENCRYPTED)
    opened = SafeMode(VECTOR_TOKEN, VECTOR_ID, (VECTOR_KEY,)).open(VECTOR_ENCRYPTED, VECTOR_QUERY)
    fields = parse_xml(opened)
    assert fields["Content"] == "test" and fields["FromUserName"] == "messense"
    # The test platform's own implementation reads it the same way.
    assert decrypt(VECTOR_KEY, VECTOR_ENCRYPTED) == (opened, VECTOR_ID)
    with pytest.raises(NotForUs):
        SafeMode(VECTOR_TOKEN, "wx-another-app", (VECTOR_KEY,)).open(VECTOR_ENCRYPTED,
                                                                    VECTOR_QUERY)


def test_test_platform_encrypts_as_published() -> None:
    # wechatpy's reply vector, with its fixed 16 "random" bytes.
    reply = (b"<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
             b"<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n"
             b"<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n"
             b"<CreateTime>1411525903</CreateTime>\n</xml>")
    sealed = encrypt(VECTOR_KEY, VECTOR_ID, reply, prefix=b"1234567890123456")
    assert sealed.startswith("9s4gMv99m88kKTh/H8IdkOiMg6bisoy3") and sealed.endswith(
        "oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3")
    assert sha1_of_sorted(VECTOR_TOKEN, "1411525903", "461056294", sealed) \
        == "407518b7649e86ef23978113f92d27afa9296533"


def test_safe_mode_opens_every_shape_and_both_keys() -> None:
    previous = new_aes_key()
    safe = SafeMode(TOKEN, "wx-unit", (AES_KEY, previous))
    for length in (0, 1, 11, 12, 27, 28, 100, 5000):  # around the 32-byte padding
        message = ("好" * length).encode()
        for key in (AES_KEY, previous):
            query, body = SafeModeAccount(TOKEN, key, "wx-unit").push(message)
            encrypted = parse_xml(body)["Encrypt"]
            assert safe.open(encrypted, query) == message
    stranger = SafeModeAccount(TOKEN, new_aes_key(), "wx-unit")
    query, body = stranger.push(b"<xml/>")
    with pytest.raises(NotForUs):
        safe.open(parse_xml(body)["Encrypt"], query)
    with pytest.raises(NotForUs):  # not even base64 of whole blocks
        safe.open("AAAA", query)


def test_what_the_test_platform_takes_as_an_answer() -> None:
    account = SafeModeAccount(TOKEN, AES_KEY, "wx-unit")
    assert account.read_answer("success") is None and account.read_answer("") is None
    reply = "<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[好]]></Content></xml>"
    sealed = WeChatCrypto(TOKEN, AES_KEY, "wx-unit").encrypt_message(reply, "77", "1700000000")
    assert account.read_answer(sealed) == reply.encode()
    with pytest.raises(AnswerRefused, match="MsgSignature"):
        account.read_answer(sealed.replace("1700000000", "1700000001"))
    with pytest.raises(AnswerRefused, match="sealed for"):
        account.read_answer(WeChatCrypto(TOKEN, AES_KEY, "wx-other").encrypt_message(
            reply, "77", "1700000000"))
    with pytest.raises(AnswerRefused, match="not an encrypted reply"):
        account.read_answer(reply)


# XML ----------------------------------------------------------------------------------


def test_text_message() -> None:
    fields = parse_xml(text_xml("oUser1", "我孩子的社保卡丢了", msg_id=1234567890123456))
    assert fields["FromUserName"] == "oUser1" and fields["MsgType"] == "text"
    assert fields["Content"] == "我孩子的社保卡丢了" and fields["MsgId"] == "1234567890123456"
    message = Inbound.from_fields(fields)
    assert message.openid == "oUser1" and message.text == "我孩子的社保卡丢了"
    assert message.dedupe_key == "1234567890123456" and message.language is None


def test_typed_text_is_never_a_payload() -> None:
    forged = Inbound.from_fields(parse_xml(text_xml("oU", '/report_lost_card{"city": "北京"}')))
    assert forged.text == 'report_lost_card{"city": "北京"}'
    assert Inbound.from_fields(parse_xml(text_xml("oU", " // "))).text is None


def test_markup_in_cdata_is_text() -> None:
    fields = parse_xml(text_xml("oUser1", "<b>hi</b> ]]> & more"))
    assert fields["Content"] == "<b>hi</b> ]]> & more"


def test_subscribe_event_is_a_chinese_greeting() -> None:
    message = Inbound.from_fields(parse_xml(event_xml("oUser2", create_time=1_700_000_000)))
    assert message.text == "/greet" and message.language == "zh"
    assert message.dedupe_key == "oUser2:1700000000:subscribe"


def test_other_messages_carry_no_text() -> None:
    image = (b"<xml><FromUserName>oU</FromUserName><MsgType>image</MsgType>"
             b"<PicUrl>http://x/y.jpg</PicUrl><MsgId>9</MsgId></xml>")
    assert Inbound.from_fields(parse_xml(image)).text is None
    unsubscribe = event_xml("oU", event="unsubscribe")
    assert Inbound.from_fields(parse_xml(unsubscribe)).text is None
    voice = (b"<xml><FromUserName>oU</FromUserName><MsgType>voice</MsgType>"
             b"<Recognition><![CDATA[\xe4\xbd\xa0\xe5\xa5\xbd]]></Recognition><MsgId>8</MsgId></xml>")
    assert Inbound.from_fields(parse_xml(voice)).text == "你好"


@pytest.mark.parametrize("body", [
    b"",
    b"not xml",
    b"<xml><Content>unclosed</xml>",
    b"<notxml><MsgType>text</MsgType></notxml>",
    b"<xml></xml>",
])
def test_malformed(body: bytes) -> None:
    with pytest.raises(BadMessage):
        parse_xml(body)


def test_missing_sender_refused() -> None:
    with pytest.raises(BadMessage):
        Inbound.from_fields(parse_xml(b"<xml><MsgType>text</MsgType></xml>"))


@pytest.mark.parametrize("body", [
    # Billion laughs: refused at the DOCTYPE, before any expansion.
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><Content>&b;</Content></xml>',
    # External entity: a local file must never be read.
    b'<!DOCTYPE xml [<!ENTITY f SYSTEM "file:///etc/passwd">]><xml><Content>&f;</Content></xml>',
    b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:1/x.dtd"><xml><Content>x</Content></xml>',
    # A declared UTF-16 document must not hide its DOCTYPE from the check.
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><xml><C>&a;</C></xml>'
    .encode("utf-16"),
])
def test_doctype_and_entities_refused(body: bytes) -> None:
    with pytest.raises(BadMessage):
        parse_xml(body)


def test_oversized_refused_before_parsing() -> None:
    body = text_xml("oU", "好" * 30_000)  # 90 kB of UTF-8
    assert len(body) > wechat.MAX_BODY_BYTES
    with pytest.raises(BadMessage, match="too large"):
        parse_xml(body)


def test_long_text_split_within_wechat_limit() -> None:
    text = "\n".join(f"第{n}行：" + "社保卡" * 40 for n in range(60))
    pieces = split_text(text)
    assert len(pieces) > 1
    assert all(len(p.encode("utf-8")) <= wechat.MAX_TEXT_BYTES for p in pieces)
    assert "\n".join(pieces) == text
    one_line = "卡" * 2000
    assert "".join(split_text(one_line)) == one_line
    assert split_text("short") == ["short"]


# Configuration and the webhook's answers ------------------------------------------------


def test_config_from_credentials_then_environment() -> None:
    env = {"WECHAT_TOKEN": "t-env", "WECHAT_APP_ID": "wx-env", "WECHAT_APP_SECRET": "s-env",
           "REDIS_URL": "redis://127.0.0.1:1/0"}
    config = WeChatConfig.from_credentials({"token": "", "app_id": "wx-file", "base_url": ""},
                                           Settings.from_env(env))
    assert config.token == "t-env" and config.app_id == "wx-file" and config.app_secret == "s-env"
    assert config.base_url == "https://api.weixin.qq.com" and config.configured
    assert config.redis_url == "redis://127.0.0.1:1/0"
    local = WeChatConfig.from_credentials(
        None, Settings.from_env({**env, "WECHAT_API_BASE": "http://127.0.0.1:9/"}))
    assert local.base_url == "http://127.0.0.1:9"
    assert not WeChatConfig.from_credentials({}, Settings.from_env({})).configured
    assert not WeChatConfig.from_credentials(
        {}, Settings.from_env({"WECHAT_TOKEN": "only-a-token"})).configured
    assert not config.safe_mode


def test_safe_mode_key_from_environment_and_its_shape() -> None:
    env = {"WECHAT_TOKEN": "t", "WECHAT_APP_ID": "wx1", "WECHAT_APP_SECRET": "s"}

    def config(**more: str) -> WeChatConfig:
        return WeChatConfig.from_credentials({"encoding_aes_key": ""},
                                             Settings.from_env({**env, **more}))

    safe = config(WECHAT_ENCODING_AES_KEY=f" {AES_KEY} ")
    assert safe.configured and safe.safe_mode and safe.encoding_aes_key == AES_KEY
    assert config(WECHAT_ENCODING_AES_KEY=AES_KEY,
                  WECHAT_ENCODING_AES_KEY_PREVIOUS=new_aes_key()).configured
    for wrong in (AES_KEY[:42], AES_KEY + "A", AES_KEY[:42] + "=", AES_KEY[:42] + "+"):
        assert config(WECHAT_ENCODING_AES_KEY=wrong).missing == ("encoding_aes_key",)
    assert config(WECHAT_ENCODING_AES_KEY=AES_KEY, WECHAT_ENCODING_AES_KEY_PREVIOUS="x"
                  ).missing == ("encoding_aes_key_previous",)
    # Only the key WeChat no longer uses: safe mode could open nothing new.
    assert config(WECHAT_ENCODING_AES_KEY_PREVIOUS=AES_KEY).missing == ("encoding_aes_key",)
    closed = WeChatInput(config(WECHAT_ENCODING_AES_KEY="malformed"))
    assert closed.check_url(signed_query("t", echostr="e")) == (503, "WeChat channel not configured")
    assert closed.get_output_channel() is None


def channel(**overrides: str) -> WeChatInput:
    values = {"token": TOKEN, "app_id": "wx-unit", "app_secret": "secret",
              "redis_url": "redis://127.0.0.1:1/0", **overrides}  # nothing listens there
    return WeChatInput(WeChatConfig(**values))


async def never_called(_: object) -> None:
    raise AssertionError("no message should reach Rasa")


def test_url_check() -> None:
    query = signed_query(TOKEN, echostr="echo-123")
    assert channel().check_url(query) == (200, "echo-123")
    assert channel().check_url({**query, "signature": "f" * 40})[0] == 403
    stale = signed_query(TOKEN, timestamp=int(time.time()) - 600, echostr="x")
    assert channel().check_url(stale)[0] == 403
    assert channel(token="").check_url(query) == (503, "WeChat channel not configured")
    assert channel().get_output_channel() is not None
    assert channel(app_secret="").get_output_channel() is None


def test_post_refusals_come_before_any_processing() -> None:
    async def answers() -> list[tuple[int, str]]:
        body = text_xml("oUser", "hi")
        good = signed_query(TOKEN)
        return [
            await channel(token="").receive(good, body, never_called),
            await channel().receive({**good, "signature": "0" * 40}, body, never_called),
            await channel().receive(signed_query(TOKEN, timestamp=int(time.time()) - 400),
                                    body, never_called),
            await channel().receive(good, b"<xml>" + b"x" * 70_000 + b"</xml>", never_called),
            await channel().receive(signed_query(TOKEN), b"<!DOCTYPE x><xml/>", never_called),
        ]

    assert [status for status, _ in asyncio.run(answers())] == [503, 403, 403, 413, 400]


def safe_channel(**overrides: str) -> WeChatInput:
    return channel(encoding_aes_key=AES_KEY, **overrides)


ACCOUNT = SafeModeAccount(TOKEN, AES_KEY, "wx-unit")


def test_start_up_log_names_the_mode(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.channels.wechat")
    safe_channel().say_which_mode()
    channel().say_which_mode()
    channel(token="").say_which_mode()  # not configured: base.py's line says so
    assert [(r.levelname, r.getMessage().split(":")[1].strip()) for r in caplog.records] == [
        ("INFO", "safe mode (AES)"), ("WARNING", "plain-text mode")]
    assert "not encrypted" in caplog.records[1].getMessage()


def test_safe_mode_url_check() -> None:
    query = signed_query(TOKEN, echostr="echo-9")
    assert safe_channel().check_url(query) == (200, "echo-9")  # WeChat signs it as ever
    with_msg_signature = {**query, "msg_signature": sha1_of_sorted(
        TOKEN, query["timestamp"], query["nonce"], "echo-9")}
    assert safe_channel().check_url(with_msg_signature) == (200, "echo-9")
    assert safe_channel().check_url({**with_msg_signature, "msg_signature": "0" * 40})[0] == 403
    assert safe_channel().check_url({**with_msg_signature, "msg_signature": ""})[0] == 403
    assert channel().check_url({**with_msg_signature, "echostr": "other"})[0] == 403


def test_safe_mode_refusals() -> None:
    message = text_xml("oUser", "你好")
    query, body = ACCOUNT.push(message)
    old_query, old_body = ACCOUNT.push(message, timestamp=int(time.time()) - 400)
    other_app = ACCOUNT.push(message, app_id="wx-another-account")
    other_key = ACCOUNT.push(message, aes_key=new_aes_key())
    _, other_body = ACCOUNT.push(text_xml("oUser", "another message"))
    cases = {
        "plain, rightly signed": (signed_query(TOKEN), message, 403),
        "plain, flagged aes": (signed_query(TOKEN, encrypt_type="aes"), message, 400),
        "no encrypt_type": ({k: v for k, v in query.items() if k != "encrypt_type"}, body, 403),
        "forged msg_signature": ({**query, "msg_signature": "0" * 40}, body, 403),
        "no msg_signature": ({k: v for k, v in query.items() if k != "msg_signature"}, body,
                             403),
        "another ciphertext": (query, other_body, 403),
        "stale": (old_query, old_body, 403),
        "for another app id": (*other_app, 403),
        "under another key": (*other_key, 403),
        "empty Encrypt": (query, b"<xml><Encrypt></Encrypt></xml>", 400),
        "a DTD around it": (query, b"<!DOCTYPE x><xml/>", 400),
    }

    async def answers() -> dict[str, int]:
        return {name: (await safe_channel().receive(q, b, never_called))[0]
                for name, (q, b, _) in cases.items()}

    assert asyncio.run(answers()) == {name: status for name, (_, _, status) in cases.items()}


def test_safe_mode_message_reaches_the_shared_state() -> None:
    # Past every check, the next step is Redis (the seen signatures): nothing listens at
    # the test's address, so the answer is WeChat's "try again", and Rasa saw nothing.
    previous = new_aes_key()
    old_key = SafeModeAccount(TOKEN, previous, "wx-unit")

    async def answers() -> list[tuple[int, str]]:
        current = safe_channel(encoding_aes_key_previous=previous)
        return [await current.receive(*ACCOUNT.push(text_xml("oUser", "你好")), never_called),
                await current.receive(*old_key.push(text_xml("oUser", "你好")), never_called)]

    assert asyncio.run(answers()) == [(503, "try again")] * 2


def test_openids_are_masked_in_logs() -> None:
    assert "oUser" not in wechat.masked("oUser1234567890")
    assert wechat.masked("a") == wechat.masked("a") != wechat.masked("b")
