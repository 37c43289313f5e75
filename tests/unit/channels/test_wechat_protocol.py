"""WeChat's protocol as the channel reads it: signatures, XML, long texts, configuration."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from bot.channels import wechat
from bot.channels.wechat import (
    BadMessage,
    Inbound,
    WeChatConfig,
    WeChatInput,
    parse_xml,
    signature,
    signature_valid,
    split_text,
)
from bot.settings import Settings
from tests.testkit.wechat_server import event_xml, signed_query, text_xml

TOKEN = "channel-test-token"


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


def test_openids_are_masked_in_logs() -> None:
    assert "oUser" not in wechat.masked("oUser1234567890")
    assert wechat.masked("a") == wechat.masked("a") != wechat.masked("b")
