"""The WeChat Official Account channel: signed (and, in safe mode, encrypted) XML in,
customer-service messages out.

WeChat's servers call one URL, `/webhooks/wechat/webhook`:

- GET is the server URL check: `signature` is the SHA-1 of the sorted concatenation of
  the token, `timestamp` and `nonce`; on a match we echo `echostr`. A `msg_signature`, if
  the query has one, must also match (the same SHA-1 with `echostr` among the strings).
- POST carries one XML message with a signed query. We answer "success" at once (WeChat
  gives up after 5 s and retries up to three times) and let Rasa work in a background
  task; the bot's replies go out through the customer-service message API
  (`/cgi-bin/message/custom/send`) with an access token cached in Redis for every process.

The mode follows the configuration, and the platform's setting (消息加解密方式) must match:

- Safe mode (安全模式) when an EncodingAESKey is set. The query adds `encrypt_type=aes`
  and `msg_signature`, the SHA-1 of the sorted token, timestamp, nonce and ciphertext, so
  the body is signed too; the body's `<Encrypt>` is AES-256-CBC under the key, and what it
  holds must end with our app id (wechatpy's implementation of the platform's scheme).
  A plain-text POST is then refused (403): the platform in safe mode never sends one,
  and anyone who learnt the token could write one. Compatibility mode (兼容模式) works
  as well, since its body also has `<Encrypt>` and only that is read.
- Plain-text mode (明文模式) without a key, as for `make run`: the signature covers the
  token, timestamp and nonce but not the body; the start-up log says so.

Either way stale timestamps are refused and each signature is used once. "success" is
WeChat's word for "no passive reply" in every mode, and we never send a passive reply,
so no answer of ours needs encrypting; the customer-service API goes over HTTPS and is
not part of the scheme.

Notices (`bot.notices`: the card-ready notice, the lapse reminder) have three
paths, tried in this order:

- `customer_service`: customer-service messages, which reach a user only within 48
  hours of their last message to the account (45015 after that) and 20 at most until
  they write again (45047).
- `subscription`: the service account's subscription notification (订阅通知,
  `message/subscribe/bizsend`), one per acceptance. The message that confirms a filing
  carries `{"notice_offer": ...}`; here it becomes a text linking to
  `/webhooks/wechat/subscribe`, a page with WeChat's `<wx-open-subscribe>` button (signed
  for the JS-SDK with the account's jsapi_ticket). WeChat reports the choice to the
  webhook (`subscribe_msg_popup_event`), never run as a message: each acceptance is
  counted in Redis for 90 days, each send takes one.
- `template`: a template message (`message/template/send`), where the account has one.

Every errcode is read in one table (`ERRCODES`, `classified`); a refused access token is
replaced once inside the call. Each template's keys are mapped to what fills them
(`template_data`), values cut to WeChat's rules for their type (thing: 20 characters...).

Configuration (the contract in `bot.channels.base`): credentials.yml keys `token`,
`app_id`, `app_secret`, `base_url`, `encoding_aes_key`, `encoding_aes_key_previous`;
empty values are read from WECHAT_TOKEN, WECHAT_APP_ID, WECHAT_APP_SECRET,
WECHAT_API_BASE, WECHAT_ENCODING_AES_KEY and WECHAT_ENCODING_AES_KEY_PREVIOUS. Without a
token, app id and secret, or with a key not of the platform's shape (43 letters and
digits), the webhook answers 503. The previous key is tried when the current one cannot
open a message: set it to the old key while a change of key on the platform takes
effect. Redis (REDIS_URL) holds the access token, the seen messages and the numbered
buttons, the jsapi_ticket and the subscriptions accepted. Notices past 48 hours need
WECHAT_SUBSCRIBE_TEMPLATE_ID and WECHAT_PUBLIC_URL (the subscription), or
WECHAT_TEMPLATE_ID (the template message); WECHAT_SUBSCRIBE_TEMPLATE_KEYS and
WECHAT_TEMPLATE_KEYS map each template's keys to what fills them (`template_keys`).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import string
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from xml.parsers import expat

import aiohttp
import jwt
import redis.asyncio as aioredis
from rasa.core.channels.channel import OutputChannel, UserMessage
from redis.exceptions import RedisError
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

from bot import notices
from bot import redis as bot_redis
from bot.channels.base import (
    HTTP_TIMEOUT_SECONDS,
    MAX_BODY_BYTES,
    ChannelConfig,
    ChannelInput,
    ChannelOutput,
)
from bot.channels.buttons import ButtonMemory
from bot.channels.text import GREETING, custom_text, typed
from bot.rules.china_time import CHINA

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW_SECONDS = 300
# The user's choice on the subscription page, and a change of mind in WeChat's settings.
POPUP_EVENT, CHANGE_EVENT = "subscribe_msg_popup_event", "subscribe_msg_change_event"
SUBSCRIPTION_EVENTS = (POPUP_EVENT, CHANGE_EVENT)
# Longer than WeChat's retries (three within about 15 s) and than the clock-skew window,
# so neither a retry nor a replayed signature is processed twice.
SEEN_SECONDS = 2 * MAX_CLOCK_SKEW_SECONDS + 60
# Refresh the access token this long before WeChat says it expires.
TOKEN_MARGIN_SECONDS = 300
TOKEN_LOCK_SECONDS = 15
# Invalid, not the latest, or expired access token: fetch a new one and try again once.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# How long an acceptance of the subscription is kept for a send (WeChat names no limit).
SUBSCRIPTION_DAYS = 90
# Takes one acceptance when there is one: the count and the check in one step.
TAKE_ONE = """
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left > 0 then redis.call('DECR', KEYS[1]) return 1 end
return 0
"""
# WeChat's limit for one customer-service text is 2048 bytes.
MAX_TEXT_BYTES = 2000
TEXT_HEADERS = {"X-Content-Type-Options": "nosniff"}
# An EncodingAESKey as the platform makes one: 43 of these 62 characters, the base64 of a
# 32-byte AES key without its "=".
AES_KEY_SHAPE = re.compile(r"[A-Za-z0-9]{43}")
# The query parameters WeChat signs or sends with a call.
QUERY_NAMES = ("signature", "timestamp", "nonce", "echostr", "encrypt_type", "msg_signature")


# --- the protocol, as pure functions ---------------------------------------------------

_DIGITS = re.compile(r"[0-9]{1,12}")


def signature(token: str, timestamp: str, nonce: str, *signed: str) -> str:
    """WeChat's request signature; `msg_signature` has the signed text (the ciphertext,
    say) among the sorted strings as well.

    >>> signature("test", "1410685589", "test")
    'f21891de399b4e33a1a93c9a7b8a8fffb5a443ff'
    """
    joined = "".join(sorted([token, timestamp, nonce, *signed])).encode("utf-8")
    return hashlib.sha1(joined).hexdigest()  # noqa: S324 - the algorithm WeChat fixes


def signature_valid(token: str, query: Mapping[str, str], now: float | None = None,
                    signed: str | None = None) -> bool:
    """The query's signature is right and its timestamp within the clock-skew window.

    With `signed` (a ciphertext, or the URL check's echostr) the signature checked is
    `msg_signature`, over that text too.
    """
    timestamp = query.get("timestamp", "")
    nonce = query.get("nonce", "")
    given = query.get("signature" if signed is None else "msg_signature", "")
    if not (token and _DIGITS.fullmatch(timestamp) and nonce and given):
        return False
    expected = signature(token, timestamp, nonce, *(() if signed is None else (signed,)))
    if not hmac.compare_digest(expected.encode("ascii"), given.lower().encode("ascii", "replace")):
        return False
    now = time.time() if now is None else now
    return abs(now - int(timestamp)) <= MAX_CLOCK_SKEW_SECONDS


class BadMessage(ValueError):
    """The body is not a WeChat message we can read safely."""


class Refused(Exception):
    """A call that is not WeChat's for this account, as far as we can tell."""

    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status = status
        self.answer = "forbidden" if status == 403 else "bad request"


def parse_xml(body: bytes, items: list[dict[str, str]] | None = None) -> dict[str, str]:
    """The fields of one WeChat XML message (`<xml><Name>value</Name>...</xml>`); the
    fields of each `<List>` inside one (the choices of a subscription event) are appended
    to `items`.

    Read with expat directly so that a DOCTYPE, an entity declaration or an external
    entity is refused before anything is expanded (what defusedxml would do).

    >>> parse_xml(b"<xml><MsgType><![CDATA[text]]></MsgType><MsgId>7</MsgId></xml>")
    {'MsgType': 'text', 'MsgId': '7'}
    >>> found: list[dict[str, str]] = []
    >>> parse_xml(b"<xml><E><List><TemplateId>T</TemplateId></List></E></xml>", found), found
    ({'E': ''}, [{'TemplateId': 'T'}])
    """
    if len(body) > MAX_BODY_BYTES:
        raise BadMessage("too large")
    fields: dict[str, str] = {}
    stack: list[str] = []
    text: list[str] = []
    item: dict[str, str] = {}

    def refuse(*_: Any) -> int:
        raise BadMessage("DTDs and entities are not accepted")

    def start(name: str, _attributes: dict[str, str]) -> None:
        if not stack and name != "xml":
            raise BadMessage("the root element must be <xml>")
        if name == "List" and len(stack) >= 2:
            item.clear()
        stack.append(name)
        text.clear()

    def end(name: str) -> None:
        stack.pop()
        if len(stack) == 1:  # a direct child of <xml>: the fields WeChat sends
            fields[name] = "".join(text).strip()
        elif len(stack) >= 3 and stack[-1] == "List":
            item[name] = "".join(text).strip()
        elif name == "List" and len(stack) >= 2 and items is not None:
            items.append(dict(item))
        text.clear()

    # The encoding is fixed: a declared UTF-16 or similar cannot hide a DOCTYPE.
    parser = expat.ParserCreate(encoding="utf-8")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(body, True)
    except expat.ExpatError as error:
        raise BadMessage(f"malformed XML ({expat.ErrorString(error.code)})") from None
    if not fields:
        raise BadMessage("no fields")
    return fields


@dataclass(frozen=True)
class Inbound:
    """One message from a user, as far as the bot cares."""

    openid: str
    msg_type: str
    text: str | None  # what Rasa should read, or None when there is nothing to read
    dedupe_key: str
    language: str | None = None
    event: str = ""
    # A subscription event's (template id, "accept" or "reject") pairs: never for Rasa.
    choices: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_fields(cls, fields: Mapping[str, str],
                    items: list[dict[str, str]] | None = None) -> Inbound:
        openid = fields.get("FromUserName", "")
        msg_type = fields.get("MsgType", "")
        if not openid or not msg_type:
            raise BadMessage("FromUserName and MsgType are required")
        event = fields.get("Event", "").lower()
        # WeChat's advice: messages are told apart by MsgId, events by sender + time.
        dedupe_key = fields.get("MsgId") or f"{openid}:{fields.get('CreateTime', '')}:{event}"
        text: str | None = None
        language = None
        if msg_type == "text":
            text = typed(fields.get("Content", ""))
        elif msg_type == "voice":
            text = typed(fields.get("Recognition", ""))  # when speech recognition is on
        elif msg_type == "event" and event == "subscribe":
            # A new follower: greet them. The account serves China, so in Chinese.
            text, language = GREETING, "zh"
        choices: tuple[tuple[str, str], ...] = ()
        if msg_type == "event" and event in SUBSCRIPTION_EVENTS:
            choices = tuple((item.get("TemplateId", ""),
                             item.get("SubscribeStatusString", "").lower())
                            for item in items or () if item.get("TemplateId"))
        return cls(openid, msg_type, text, dedupe_key, language, event, choices)


class NotForUs(ValueError):
    """A safe-mode message that no key of ours opens for our app id."""


class SafeMode:
    """The account's EncodingAESKey (and the one before it): opens what WeChat encrypts."""

    def __init__(self, token: str, app_id: str, keys: tuple[str, ...]):
        self._keys = [WeChatCrypto(token, key, app_id) for key in keys if key]

    def open(self, encrypted: str, query: Mapping[str, str]) -> bytes:
        """The message XML inside `encrypted`, whose `msg_signature` the caller checked."""
        for crypto in self._keys:
            try:
                xml = crypto.decrypt_message({"Encrypt": encrypted},
                                             query.get("msg_signature", "").lower(),
                                             query.get("timestamp", ""), query.get("nonce", ""))
            # Another key or another account's message: the appid at the end differs, or
            # what comes out is not even shaped like a message.
            except (InvalidAppIdException, InvalidSignatureException, ValueError,
                    struct.error, IndexError):
                continue
            return str(xml).encode("utf-8")
        raise NotForUs("no key of ours opens it for this app id")


def split_text(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes, cut between lines where possible."""
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode("utf-8")) > limit:  # one very long line: cut by characters
            cut = len(line)
            while len(line[:cut].encode("utf-8")) > limit:
                cut = cut * 3 // 4
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:cut])
            line = line[cut:]
        if len((current + line).encode("utf-8")) > limit:
            pieces.append(current)
            current = ""
        current += line
    if current:
        pieces.append(current)
    return [piece.strip("\n") for piece in pieces if piece.strip()]


def masked(openid: str) -> str:
    """An openid in logs: a short digest, never the id itself."""
    return "wx#" + hashlib.sha256(openid.encode("utf-8")).hexdigest()[:10]


# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class WeChatConfig(ChannelConfig):
    """Served with a token, an app id and its secret; in safe mode with an EncodingAESKey
    too, which when set must have the platform's shape.

    >>> WeChatConfig(token="t", app_id="wx1").missing
    ('app_secret',)
    >>> WeChatConfig(token="t", app_id="wx1", app_secret="s", encoding_aes_key="short").missing
    ('encoding_aes_key',)
    """

    SECTION: ClassVar[str] = "wechat"
    REQUIRED: ClassVar[Mapping[str, re.Pattern[str] | None]] = dict.fromkeys(
        ("token", "app_id", "app_secret"))

    token: str = ""
    app_id: str = ""
    app_secret: str = ""
    base_url: str = ""
    encoding_aes_key: str = ""
    encoding_aes_key_previous: str = ""
    redis_url: str = ""
    subscribe_template_id: str = ""
    subscribe_template_keys: str = ""
    template_id: str = ""
    template_keys: str = ""
    public_url: str = ""

    @property
    def subscribe_page(self) -> str:
        """The subscription page's address, or "" when the subscription is not offered."""
        if not (self.subscribe_template_id and self.public_url):
            return ""
        return self.public_url.rstrip("/") + "/webhooks/wechat/subscribe"

    @property
    def missing(self) -> tuple[str, ...]:
        # A malformed key must not quietly mean plain-text mode: the channel stays closed.
        # So does a previous key alone (safe mode with only the key WeChat no longer uses).
        current, previous = self.encoding_aes_key, self.encoding_aes_key_previous
        wrong = {"encoding_aes_key": bool(current and not AES_KEY_SHAPE.fullmatch(current)
                                          or previous and not current),
                 "encoding_aes_key_previous": bool(previous
                                                   and not AES_KEY_SHAPE.fullmatch(previous))}
        return super().missing + tuple(name for name, bad in wrong.items() if bad)

    @property
    def safe_mode(self) -> bool:
        return bool(self.encoding_aes_key)


# --- notices: the templates' data, the subscription page ------------------------------

# What a template key can be filled with (WECHAT_SUBSCRIBE_TEMPLATE_KEYS: "thing3=city").
SOURCES = ("reference", "status", "city", "date")
# The status in a few words, within a thing's 20 characters.
STATUS_WORDS = {
    ("card_ready", "zh"): "新社保卡已可领取",
    ("card_ready", "en"): "New card ready",
    ("lapse_reminder", "zh"): "临时挂失即将失效",
    ("lapse_reminder", "en"): "Report lapses soon",
}
# A key's type is its name without the number ("character_string1"): WeChat's rules for
# the value follow from it.
_KEY = re.compile(r"([a-z_]+?)[0-9]+")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
THING_CHARACTERS, CHARACTER_STRING_CHARACTERS, PHRASE_CHARACTERS = 20, 32, 5


def template_keys(spec: str) -> tuple[tuple[str, str], ...]:
    """The (key, source) pairs of a template's keys setting.

    >>> template_keys("character_string1=reference, thing3=city")
    (('character_string1', 'reference'), ('thing3', 'city'))
    >>> template_keys("time4=date")  # we know days, not hours
    Traceback (most recent call last):
    ...
    ValueError: time4: keys of type thing, character_string, phrase or date only
    """
    pairs = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, source = (s.strip() for s in part.partition("="))
        found = _KEY.fullmatch(key)
        if not found:
            raise ValueError(f"{part}: a key is a type and a number, like thing3")
        if found.group(1) not in ("thing", "character_string", "phrase", "date"):
            raise ValueError(f"{key}: keys of type thing, character_string, phrase or date only")
        if source not in SOURCES:
            raise ValueError(f"{part}: the value must be one of {', '.join(SOURCES)}")
        pairs.append((key, source))
    if not pairs:
        raise ValueError("no keys")
    return tuple(pairs)


def shaped(key: str, value: str) -> str:
    """`value` as WeChat takes it for `key`'s type, cut where it is too long; ValueError
    when nothing acceptable is left.

    >>> shaped("thing2", "北京市朝阳区社会保险事业管理中心第三分中心服务大厅")
    '北京市朝阳区社会保险事业管理中心第三分…'
    >>> shaped("character_string1", "SC-7K2P-Q9XM（补办）")
    'SC-7K2P-Q9XM'
    >>> shaped("date4", "2025-03-09"), shaped("phrase5", "已可领取了")
    ('2025年3月9日', '已可领取了')
    """
    found_key = _KEY.fullmatch(key)
    kind = found_key.group(1) if found_key else "thing"
    flat = " ".join(value.split())
    if kind == "date":
        found = _DATE.fullmatch(flat)
        if not found:
            raise ValueError(f"{key}: not a date (YYYY-MM-DD): {value!r}")
        year, month, day = (int(part) for part in found.groups())
        return f"{year}年{month}月{day}日"
    if kind == "character_string":  # letters, digits and symbols (ASCII, no spaces)
        flat = "".join(ch for ch in flat if "!" <= ch <= "~")[:CHARACTER_STRING_CHARACTERS]
    elif kind == "phrase":  # Chinese characters only
        flat = "".join(ch for ch in flat if "\u4e00" <= ch <= "\u9fff")[:PHRASE_CHARACTERS]
    elif len(flat) > THING_CHARACTERS:  # a visible cut rather than WeChat's 47003
        flat = flat[:THING_CHARACTERS - 1] + "…"
    if not flat:
        raise ValueError(f"{key}: nothing left of {value!r}")
    return flat


def template_data(spec: str, notice: notices.Notice,
                  today: datetime.date | None = None) -> dict[str, dict[str, str]]:
    """A template's `data` for the notice; ValueError naming what cannot be filled.

    The date is the day the card is ready (the notice's day, if the card service did not
    say) or the day a temporary report lapses.

    >>> notice = notices.Notice("SC-1:ready", "wechat:o1", "subscription", variables={
    ...     "reference": "SC-7K2P-Q9XM", "city": "上海", "ready_on": "2025-03-21"})
    >>> template_data("character_string1=reference,thing2=status,thing3=city,date4=date",
    ...               notice)  # doctest: +NORMALIZE_WHITESPACE
    {'character_string1': {'value': 'SC-7K2P-Q9XM'}, 'thing2': {'value': '新社保卡已可领取'},
     'thing3': {'value': '上海'}, 'date4': {'value': '2025年3月21日'}}
    """
    language = "zh" if notice.language.lower().startswith("zh") else "en"
    if (notice.kind, language) not in STATUS_WORDS:
        raise ValueError(f"kind: no template wording for {notice.kind!r}")
    date = notice.variables.get("lapses_on" if notice.kind == "lapse_reminder" else "ready_on")
    if not date and notice.kind == "card_ready":
        date = (today or datetime.datetime.now(CHINA).date()).isoformat()
    values = {"reference": notice.variables.get("reference", ""),
              "city": notice.variables.get("city", ""),
              "status": STATUS_WORDS[notice.kind, language], "date": date or ""}
    return {key: {"value": shaped(key, values[source])}
            for key, source in template_keys(spec)}


def js_signature(ticket: str, nonce: str, timestamp: str, url: str) -> str:
    """The JS-SDK's `wx.config` signature for the page at `url` (its fragment left out).

    >>> js_signature("sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-"
    ...              "HhTdfl2fzFy1AOcHKP7qg", "Wm3WZYTPz0wzccnW", "1414587457",
    ...              "http://mp.weixin.qq.com?params=value")  # WeChat's published example
    '0f9de62fce790f9a083d5c99e95740ceb90c27ed'
    """
    signed = (f"jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}"
              f"&url={url.split('#')[0]}")
    return hashlib.sha1(signed.encode("utf-8")).hexdigest()  # noqa: S324 - WeChat's choice


def _key(config: WeChatConfig, purpose: str) -> bytes:
    """A key of its own for each use of the app secret."""
    return hmac.new(config.app_secret.encode(), purpose.encode(), hashlib.sha256).digest()


def subscriber(config: WeChatConfig, openid: str) -> str:
    """How Redis and the page's link name a user: a keyed digest, never the openid."""
    return hmac.new(_key(config, "subscriber"), openid.encode(), hashlib.sha256).hexdigest()[:32]


# The subscription page's link is good for a day: it comes with the filing's answer.
PAGE_TOKEN_SECONDS = 24 * 3600
PAGE_AUDIENCE = "wechat-subscribe"


def page_token(config: WeChatConfig, openid: str, kind: str, now: float | None = None) -> str:
    """The subscription page's `t`: signed, short-lived, naming the user by `subscriber`."""
    issued = int(time.time() if now is None else now)
    claims = {"aud": PAGE_AUDIENCE, "sub": subscriber(config, openid), "kind": kind,
              "exp": issued + PAGE_TOKEN_SECONDS}
    return jwt.encode(claims, _key(config, PAGE_AUDIENCE), "HS256")


def page_kind(config: WeChatConfig, token: str, now: float | None = None) -> str | None:
    """The notice kind a page's token offers, if the token is ours and not expired."""
    try:
        claims = jwt.decode(token, _key(config, PAGE_AUDIENCE), algorithms=["HS256"],
                            audience=PAGE_AUDIENCE, options={"verify_exp": False,
                                                             "require": ["exp", "sub"]})
    except jwt.PyJWTError:
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= (now or time.time()):
        return None
    kind = claims.get("kind")
    return kind if kind in {k for k, _ in STATUS_WORDS} else None


# The words of the offer and of the page. The page shows both languages: it is opened
# from a link, and the account serves guardians in China.
OFFER_WORDS = {
    "zh": "超过48小时后，公众号就不能再直接给您发消息了。为了在新卡可以领取时通知您，"
          "请点这里允许一条服务通知：",
    "en": "After 48 hours this account can no longer write to you here. To be told when the "
          "new card can be collected, allow one service notice here:",
}
OFFER_LINK_WORDS = {"zh": "允许领卡通知", "en": "allow the notice"}
PAGE_WORDS: dict[str, dict[str, str]] = {
    "card_ready": {
        "zh": "新社保卡可以领取时，本公众号会给您发一条服务通知，告诉您在哪里领取、要带什么。"
              "点下方按钮即可允许；只发这一条，您随时可以在微信“设置 › 通知”里关闭。",
        "en": "When the new card can be collected, this account will send you one service "
              "notice saying where to collect it and what to bring. Tap the button below to "
              "allow it: that one notice only; you can turn it off in WeChat's settings.",
    },
    "lapse_reminder": {
        "zh": "临时挂失失效前，本公众号会给您发一条服务通知，提醒您办理书面挂失。"
              "点下方按钮即可允许；只发这一条。",
        "en": "Before a temporary report lapses, this account will send you one service notice "
              "reminding you to file the written report. Tap the button below to allow it: "
              "that one notice only.",
    },
}
PAGE_STATES = {
    "waiting": "正在准备… · Getting ready…",
    "ready": "请点上方按钮。 · Tap the button above.",
    "outside": "请在微信中打开此页面。 · Please open this page in WeChat.",
    "accepted": "已允许：到时我们会通知您。 · Allowed: we will tell you.",
    "declined": "未允许。您仍可在对话中查询进度。 · Not allowed: you can still ask in the chat.",
    "failed": "暂时无法订阅，请稍后再试。 · Cannot subscribe now; please try again later.",
    "expired": "此链接已失效。请回到公众号对话中查询进度。 · This link has expired or is not "
               "valid: go back to the chat to ask about your report.",
    "busy": "暂时无法打开，请稍后再试。 · Not available now; please try again later.",
}
JS_SDK = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"
PAGE = string.Template("""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>领卡通知 · Card-ready notice</title>
<style nonce="$nonce">
body { font-family: -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif; margin: 0;
       padding: 20px; line-height: 1.6; color: #1a1a1a; background: #f4f4f4; }
main { max-width: 34em; margin: 0 auto; background: #fff; padding: 20px; border-radius: 8px; }
h1 { font-size: 1.3em; margin-top: 0; }
h1 small, .en { color: #555; font-weight: normal; }
#state { margin-top: 16px; font-weight: 600; }
</style>
</head>
<body>
<main>
<h1>领卡通知<br><small lang="en">Card-ready notice</small></h1>
$body
$button
<p id="state" role="status">$state</p>
</main>
$scripts
</body>
</html>
""")
BUTTON = """<wx-open-subscribe template="$template" id="subscribe">
  <script type="text/wxtag-template">
    <style>.allow { display: block; width: 100%; padding: 12px; font-size: 17px; color: #fff;
                    background: #07c160; border: 0; border-radius: 6px; }</style>
    <button class="allow">允许通知 · Allow the notice</button>
  </script>
</wx-open-subscribe>"""
SCRIPTS = """<script src="$sdk" nonce="$nonce"></script>
<script nonce="$nonce">
(function () {
  var page = $config;
  var state = document.getElementById("state");
  function say(name) { state.textContent = page.states[name]; }
  if (typeof wx === "undefined") { say("outside"); return; }
  wx.config({debug: false, appId: page.appId, timestamp: page.timestamp,
             nonceStr: page.nonceStr, signature: page.signature,
             jsApiList: ["checkJsApi"], openTagList: ["wx-open-subscribe"]});
  wx.ready(function () { say("ready"); });
  wx.error(function () { say("outside"); });
  var button = document.getElementById("subscribe");
  button.addEventListener("success", function (event) {
    var status = "";
    try {
      status = JSON.parse(JSON.parse(event.detail.subscribeDetails)[page.template]).status;
    } catch (ignored) {}
    say(status === "accept" ? "accepted" : "declined");
  });
  button.addEventListener("error", function () { say("failed"); });
})();
</script>"""


def offer_text(config: WeChatConfig, openid: str, offer: Mapping[str, Any],
               now: float | None = None) -> str | None:
    """The customer-service text that offers the subscription, with its link; None when
    the subscription is not configured (the template or the public address unset)."""
    if not config.subscribe_page:
        return None
    kind = str(offer.get("kind") or "card_ready")
    language = "en" if str(offer.get("language") or "zh").lower().startswith("en") else "zh"
    link = f"{config.subscribe_page}?t={page_token(config, openid, kind, now)}"
    return (f'{OFFER_WORDS[language]}<a href="{html.escape(link)}">'
            f"{OFFER_LINK_WORDS[language]}</a>")


def subscribe_page(config: WeChatConfig, kind: str | None, ticket: str | None, url: str,
                   now: float | None = None) -> tuple[int, str, dict[str, str]]:
    """(status, HTML, headers) of the subscription page at `url` (its address as the phone
    asked for it, which the JS-SDK's signature covers): `kind` from its token (None: the
    link is not ours or too old), `ticket` the jsapi_ticket (None: WeChat did not give
    one)."""
    nonce = secrets.token_urlsafe(16)
    headers = {
        # The link's token must not reach the SDK's host in a Referer.
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": f"script-src 'nonce-{nonce}' https://res.wx.qq.com "
                                   "https://res2.wx.qq.com; object-src 'none'; "
                                   "base-uri 'none'; frame-ancestors 'none'",
    }
    fill = {"nonce": nonce, "body": "", "button": "", "scripts": "", "state": ""}
    if kind is None or ticket is None:
        status, state = (403, "expired") if kind is None else (503, "busy")
        return status, PAGE.substitute(fill, state=html.escape(PAGE_STATES[state])), headers
    timestamp, nonce_str = str(int(time.time() if now is None else now)), secrets.token_hex(8)
    page = {"appId": config.app_id, "timestamp": int(timestamp), "nonceStr": nonce_str,
            "signature": js_signature(ticket, nonce_str, timestamp, url),
            "template": config.subscribe_template_id, "states": PAGE_STATES}
    words = PAGE_WORDS[kind]
    body = (f"<p>{html.escape(words['zh'])}</p>\n"
            f'<p class="en" lang="en">{html.escape(words["en"])}</p>')
    # No "<" in the script at all: the HTML parser reads no tag there.
    script_config = json.dumps(page, ensure_ascii=False).replace("<", "\\u003c")
    return 200, PAGE.substitute(
        fill, body=body, state=html.escape(PAGE_STATES["waiting"]),
        button=string.Template(BUTTON).substitute(
            template=html.escape(config.subscribe_template_id)),
        scripts=string.Template(SCRIPTS).substitute(sdk=JS_SDK, nonce=nonce,
                                                    config=script_config)), headers


# --- WeChat's API and the shared state in Redis ----------------------------------------


class WeChatApiError(RuntimeError):
    def __init__(self, errcode: int, errmsg: str = ""):
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode


# What each errcode means for a notice (bot.notices): try again, try the next
# path, or no path of WeChat's can reach the person. An errcode not listed is retried.
ERRCODES: dict[int, tuple[str, str]] = {
    45015: (notices.FALLBACK, "more than 48 hours since the user last wrote"),
    45047: (notices.FALLBACK, "20 customer-service messages since the user last wrote"),
    43101: (notices.FALLBACK, "the user has not accepted the subscription notification"),
    47003: (notices.FALLBACK, "the template's data were refused"),
    40037: (notices.FALLBACK, "no such template for this account"),
    48001: (notices.FALLBACK, "the account may not use this API"),
    43004: (notices.UNREACHABLE, "the user does not follow the account"),
    40003: (notices.UNREACHABLE, "not an openid of this account"),
    43019: (notices.UNREACHABLE, "the user is on the account's blacklist"),
    # Seen here only when a new token was refused as well (the call replaces one once).
    40001: (notices.RETRY, "access token refused"),
    40014: (notices.RETRY, "access token malformed"),
    42001: (notices.RETRY, "access token expired"),
    45009: (notices.RETRY, "the day's quota for this API is used up"),
    45011: (notices.RETRY, "this API is called too often"),
    -1: (notices.RETRY, "WeChat is busy"),
}
# WeChat's quotas start again at midnight in China.
# Errors that a retry cannot cure (soon): the user left the 48-hour window, unfollowed
# the account, got as many messages as WeChat allows until they write again, or the
# openid is not this account's.
PERMANENT_ERRORS = frozenset(code for code, (outcome, _) in ERRCODES.items()
                             if outcome != notices.RETRY)


def classified(errcode: int, now: float | None = None) -> notices.Outcome:
    """What a notice's attempt came to when WeChat answered with `errcode`.

    >>> classified(45015).outcome, classified(43004).outcome, classified(-1).outcome
    ('fallback', 'unreachable', 'retry')
    >>> classified(45009, now=1_700_000_000).retry_after  # 06:13:20 in Beijing
    64000.0
    >>> unknown = classified(61451)
    >>> unknown.outcome, unknown.code, unknown.detail
    ('retry', '61451', 'errcode not known to us')
    """
    outcome, detail = ERRCODES.get(errcode, (notices.RETRY, "errcode not known to us"))
    retry_after: float | None = None
    if errcode == 45009:
        moment = datetime.datetime.fromtimestamp(time.time() if now is None else now, CHINA)
        midnight = datetime.datetime.combine(moment.date() + datetime.timedelta(days=1),
                                             datetime.time(), CHINA)
        retry_after = (midnight - moment).total_seconds()
    elif errcode == 45011:
        retry_after = 60.0
    return notices.Outcome(outcome, code=str(errcode), detail=detail, retry_after=retry_after)


class WeChatApi:
    """Access token, customer-service messages, and the channel's keys in Redis.

    One per Rasa process; the HTTP session and Redis client are made inside the running
    event loop on first use.
    """

    def __init__(self, config: WeChatConfig):
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._redis: aioredis.Redis | None = None
        self._prefix = f"{bot_redis.WECHAT}{config.app_id}"
        self.buttons = ButtonMemory(config.redis_url, self._prefix)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS))
        return self._session

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = bot_redis.async_client(self.config.redis_url, "store",
                                                 decode_responses=True)
        return self._redis

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._redis is not None:
            await self._redis.close()
        await self.buttons.close()

    # Seen messages and signatures ------------------------------------------------------

    async def first_time(self, kind: str, key: str) -> bool:
        """True for the first caller with this key, in any process, for SEEN_SECONDS."""
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        return bool(await self.redis.set(f"{self._prefix}:seen:{kind}:{digest}", "1",
                                          nx=True, ex=SEEN_SECONDS))

    # Access token ----------------------------------------------------------------------

    async def access_token(self, stale: str | None = None) -> str:
        """The cached token, or a new one; `stale` is a token WeChat just refused.

        A Redis lock makes one process fetch while the others wait: each fetch makes the
        previous token invalid soon after, so processes must not race.
        """
        key, lock = f"{self._prefix}:access_token", f"{self._prefix}:access_token:lock"
        deadline = time.monotonic() + TOKEN_LOCK_SECONDS
        while True:
            cached = await self.redis.get(key)
            if cached and cached != stale:
                return str(cached)
            if await self.redis.set(lock, "1", nx=True, ex=TOKEN_LOCK_SECONDS):
                try:
                    cached = await self.redis.get(key)
                    if cached and cached != stale:
                        return str(cached)
                    token, expires_in = await self._fetch_token()
                    lifetime = max(60, expires_in - TOKEN_MARGIN_SECONDS)
                    await self.redis.set(key, token, ex=lifetime)
                    return token
                finally:
                    await self.redis.delete(lock)
            if time.monotonic() > deadline:
                raise WeChatApiError(-1, "timed out waiting for another process's token")
            await asyncio.sleep(0.1)

    async def _fetch_token(self) -> tuple[str, int]:
        params = {"grant_type": "client_credential", "appid": self.config.app_id,
                  "secret": self.config.app_secret}
        async with self.session.get(f"{self.config.base_url}/cgi-bin/token",
                                    params=params) as reply:
            reply.raise_for_status()
            body = await reply.json(content_type=None)
        if not body.get("access_token"):
            raise WeChatApiError(int(body.get("errcode", -1)), str(body.get("errmsg", "")))
        log.info("wechat: new access token, valid %s s", body.get("expires_in"))
        return str(body["access_token"]), int(body.get("expires_in", 7200))

    # Calls with the access token -------------------------------------------------------

    async def call(self, api: str, message: dict[str, Any] | None = None,
                   **params: str) -> dict[str, Any]:
        """WeChat's `api` (the path after /cgi-bin/) with the access token: `message` POSTed
        as JSON, else a GET with `params`. A refused token is replaced and the call made
        again, once. Raises `WeChatApiError` for WeChat's errcodes, aiohttp's errors as
        they come, ValueError for an answer that is not a JSON object."""
        # ensure_ascii=False: Chinese goes as UTF-8, not as \\u escapes.
        data = None if message is None else json.dumps(message, ensure_ascii=False).encode()
        headers = None if data is None else {"Content-Type": "application/json; charset=utf-8"}
        token = await self.access_token()
        refreshed = False
        while True:
            async with self.session.request(
                "GET" if data is None else "POST", f"{self.config.base_url}/cgi-bin/{api}",
                params={"access_token": token, **params}, data=data, headers=headers,
            ) as reply:
                reply.raise_for_status()
                body = await reply.json(content_type=None)
            if not isinstance(body, dict):
                raise ValueError(f"{api}: not a JSON object")
            errcode = int(body.get("errcode", 0))
            if errcode == 0:
                return body
            if errcode in TOKEN_ERRORS and not refreshed:
                log.info("wechat: access token refused (%s); fetching a new one", errcode)
                token = await self.access_token(stale=token)
                refreshed = True
                continue
            raise WeChatApiError(errcode, str(body.get("errmsg", "")))

    async def send_text(self, openid: str, text: str) -> None:
        """Customer-service texts: only within 48 hours of the user's last message."""
        for piece in split_text(text):
            await self.call("message/custom/send", {"touser": openid, "msgtype": "text",
                                                    "text": {"content": piece}})

    async def send_subscription(self, openid: str, template_id: str,
                                data: dict[str, dict[str, str]]) -> None:
        """A subscription notification: one per acceptance of the template (43101)."""
        await self.call("message/subscribe/bizsend", {"touser": openid,
                                                      "template_id": template_id,
                                                      "data": data})

    async def send_template(self, openid: str, template_id: str,
                            data: dict[str, dict[str, str]]) -> None:
        """A template message: to a follower, with a template the account has."""
        await self.call("message/template/send", {"touser": openid, "template_id": template_id,
                                                  "data": data})

    async def jsapi_ticket(self) -> str:
        """The JS-SDK's ticket, shared by every process like the access token."""
        key = f"{self._prefix}:jsapi_ticket"
        cached = await self.redis.get(key)
        if cached:
            return str(cached)
        body = await self.call("ticket/getticket", type="jsapi")
        if not body.get("ticket"):
            raise WeChatApiError(-1, "no ticket in the answer")
        lifetime = max(60, int(body.get("expires_in", 7200)) - TOKEN_MARGIN_SECONDS)
        await self.redis.set(key, str(body["ticket"]), ex=lifetime)
        return str(body["ticket"])

    # Subscriptions accepted: one send each --------------------------------------------

    def _accepted_key(self, openid: str) -> str:
        return f"{self._prefix}:subscribed:{subscriber(self.config, openid)}"

    async def accepted(self, openid: str) -> int:
        """Counts one more acceptance; the count lasts SUBSCRIPTION_DAYS from the last one."""
        key = self._accepted_key(openid)
        async with self.redis.pipeline(transaction=True) as pipe:
            count, _ = await pipe.incr(key).expire(key, SUBSCRIPTION_DAYS * 86400).execute()
        return int(count)

    async def acceptances(self, openid: str) -> int:
        return int(await self.redis.get(self._accepted_key(openid)) or 0)

    async def take_acceptance(self, openid: str) -> bool:
        """Takes one acceptance for a send; False when none is left."""
        return bool(await self.redis.eval(TAKE_ONE, 1, self._accepted_key(openid)))

    async def forget_acceptances(self, openid: str) -> None:
        await self.redis.delete(self._accepted_key(openid))


# --- Rasa's channel classes ------------------------------------------------------------


class WeChatOutput(ChannelOutput):
    """Bot messages as customer-service texts; buttons as a numbered list."""

    def __init__(self, api: WeChatApi, raise_errors: bool = False):
        self.api = api
        self.raise_errors = raise_errors

    @classmethod
    def name(cls) -> str:
        return "wechat"

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        try:
            await self.api.send_text(recipient_id, text)
        except WeChatApiError as error:
            self.undelivered(masked(recipient_id), error, f"errcode {error.errcode}",
                             retry_helps=error.errcode not in PERMANENT_ERRORS)
        except (aiohttp.ClientError, asyncio.TimeoutError, RedisError, ValueError) as error:
            # ValueError: an answer that is not JSON (a proxy's error page, say).
            self.undelivered(masked(recipient_id), error)

    async def send_text_with_buttons(self, recipient_id: str, text: str,
                                     buttons: list[dict[str, Any]], **kwargs: Any) -> None:
        await self.send_text_message(recipient_id, await self.api.buttons.shown(
            recipient_id, text, buttons, masked(recipient_id)))

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any],
                               **kwargs: Any) -> None:
        """The filing's `{"notice_offer": {"reference", "kind"}}` becomes the link to the
        subscription page; other custom payloads give their text."""
        offer = json_message.get("notice_offer") if isinstance(json_message, dict) else None
        if not isinstance(offer, dict):
            await super().send_custom_json(recipient_id, json_message, **kwargs)
            return
        text = offer_text(self.api.config, recipient_id, offer)
        if text is None:
            log.info("wechat: no subscription offered to %s (WECHAT_SUBSCRIBE_TEMPLATE_ID "
                     "or WECHAT_PUBLIC_URL unset)", masked(recipient_id))
            return
        await self.send_text_message(recipient_id, text)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        # An image would first have to be uploaded as WeChat media: send its link.
        await self.send_text_message(recipient_id, image)

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        await self.send_text_message(recipient_id, str(attachment))


class WeChatInput(ChannelInput):
    """`/webhooks/wechat/webhook`: WeChat's URL check (GET) and messages (POST)."""

    TITLE = "WeChat"
    NOTICE_PATHS = ("customer_service", "subscription", "template")

    def __init__(self, config: WeChatConfig):
        self.config: WeChatConfig = config
        self.api = WeChatApi(config)
        keys = (config.encoding_aes_key, config.encoding_aes_key_previous)
        # None: plain-text mode (or not configured, and nothing is read at all).
        self.safe_mode = (SafeMode(config.token, config.app_id, keys)
                          if config.configured and config.safe_mode else None)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def name(cls) -> str:
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WeChatInput:
        return cls(WeChatConfig.from_credentials(credentials))

    def proactive_output(self) -> OutputChannel:
        return WeChatOutput(self.api, raise_errors=True)

    # The HTTP side, independent of Sanic so that it can be tested directly -------------

    def check_url(self, query: Mapping[str, str]) -> tuple[int, str]:
        """`query` holds the parameters the call has (`QUERY_NAMES`), and no others."""
        if refused := self.refusal():
            return refused
        echostr = query.get("echostr", "")
        if not signature_valid(self.config.token, query) or (
                "msg_signature" in query
                and not signature_valid(self.config.token, query, signed=echostr)):
            return 403, "forbidden"
        return 200, echostr

    def opened(self, query: Mapping[str, str], body: bytes) -> tuple[bytes, str]:
        """The message XML of an authentic POST and the signature that vouches for it;
        raises `Refused`."""
        if self.safe_mode is None:
            if not signature_valid(self.config.token, query):
                raise Refused(403, "a bad or stale signature")
            return body, query.get("signature", "").lower()
        if query.get("encrypt_type", "").lower() != "aes":
            raise Refused(403, "a plain-text message (this channel is in safe mode)")
        try:
            encrypted = parse_xml(body).get("Encrypt", "")
        except BadMessage as error:
            raise Refused(400, f"unreadable message: {error}") from None
        if not encrypted:
            raise Refused(400, "unreadable message: no Encrypt")
        if not signature_valid(self.config.token, query, signed=encrypted):
            raise Refused(403, "a bad or stale msg_signature")
        try:
            return self.safe_mode.open(encrypted, query), query["msg_signature"].lower()
        except NotForUs:
            raise Refused(403, "a message that WECHAT_ENCODING_AES_KEY does not open for "
                               "this app id (another key, or another account's)") from None

    async def receive(self, query: Mapping[str, str], body: bytes,
                      on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> tuple[int, str]:
        """Checks one POST and starts its processing; the answer is (status, text)."""
        if refused := self.refusal(body):
            return refused
        items: list[dict[str, str]] = []
        try:
            xml, signed_by = self.opened(query, body)
            fields = parse_xml(xml, items)
        except Refused as refusal:
            log.warning("wechat: refused %s", refusal)
            return refusal.status, refusal.answer
        except BadMessage as error:
            log.warning("wechat: unreadable message: %s", error)
            return 400, "bad request"
        try:
            message = Inbound.from_fields(fields, items)
        except BadMessage as error:
            if "Encrypt" in fields:
                log.warning("wechat: an encrypted message, but no WECHAT_ENCODING_AES_KEY is "
                            "set: set it, or choose plain-text mode on the platform")
            else:
                log.warning("wechat: unreadable message: %s", error)
            return 400, "bad request"
        try:
            # A replayed signature (in plain-text mode the body is not signed) or a retried
            # message: done once.
            if not await self.api.first_time("signature", signed_by):
                log.info("wechat: signature already used; ignored")
                return 200, "success"
            if not await self.api.first_time("message", message.dedupe_key):
                log.info("wechat: duplicate of a message from %s ignored",
                         masked(message.openid))
                return 200, "success"
            if message.choices:
                await self.record_choices(message)
                return 200, "success"
        except RedisError as error:
            log.error("wechat: Redis unavailable (%s); WeChat will retry", type(error).__name__)
            return 503, "try again"
        if message.text is None:
            log.info("wechat: %s message from %s not handled", message.msg_type,
                     masked(message.openid))
            return 200, "success"
        task = asyncio.create_task(self._process(message, on_new_message))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)
        return 200, "success"

    async def record_choices(self, message: Inbound) -> None:
        """A subscription event: an acceptance of our template allows one send; turning it
        off in WeChat's settings ends them all. Other templates are not ours to count."""
        for template_id, status in message.choices:
            if template_id != self.config.subscribe_template_id:
                log.info("wechat: %s for another template ignored", message.event)
            elif message.event == POPUP_EVENT and status == "accept":
                count = await self.api.accepted(message.openid)
                log.info("wechat: %s accepted the subscription (%d to send)",
                         masked(message.openid), count)
            elif message.event == CHANGE_EVENT and status == "reject":
                await self.api.forget_acceptances(message.openid)
                log.info("wechat: %s turned the subscription off", masked(message.openid))

    # Notices -----------------------------------------------------------------------------

    async def deliver_notice(self, user: str, notice: notices.Notice) -> notices.Outcome:
        """One try of `notice.path` for the openid `user`, WeChat's answer classified."""
        attempt = {"customer_service": self._by_customer_service,
                   "subscription": self._by_subscription,
                   "template": self._by_template}[notice.path]
        try:
            return await attempt(user, notice)
        except WeChatApiError as error:
            return classified(error.errcode)
        except aiohttp.ClientResponseError as error:
            return notices.Outcome(notices.RETRY, code=f"HTTP {error.status}",
                                   detail="WeChat's API answered with an HTTP error")
        except (aiohttp.ClientError, asyncio.TimeoutError, RedisError, ValueError) as error:
            return notices.Outcome(notices.RETRY, detail=type(error).__name__)

    async def _by_customer_service(self, openid: str, notice: notices.Notice
                                   ) -> notices.Outcome:
        texts = [text for message in notice.messages
                 if (text := await self._text_of(openid, message))]
        if not texts:
            return notices.Outcome(notices.FALLBACK, detail="no text to send")
        for sent, text in enumerate(texts):
            try:
                await self.api.send_text(openid, text)
            except (WeChatApiError, aiohttp.ClientError, asyncio.TimeoutError) as error:
                if not sent:
                    raise
                # The first part reached them: sending it all again would repeat it.
                code = str(error.errcode) if isinstance(error, WeChatApiError) else ""
                return notices.Outcome(notices.SEEN, code=code,
                                       detail=f"{sent} of {len(texts)} messages sent")
        return notices.Outcome(notices.SEEN)

    async def _text_of(self, openid: str, message: Mapping[str, Any]) -> str | None:
        """A message of the notice as one customer-service text (buttons numbered, as in
        the chat, so that a number typed back picks one)."""
        text = str(message.get("text") or "")
        buttons = message.get("buttons")
        custom = message.get("custom")
        if buttons:
            text = await self.api.buttons.shown(openid, text, list(buttons), masked(openid))
        elif isinstance(custom, dict) and isinstance(custom.get("notice_offer"), dict):
            text = offer_text(self.config, openid, custom["notice_offer"]) or ""
        elif custom is not None:
            text = custom_text(custom) or ""
        elif message.get("image"):
            text = str(message["image"])
        return text.strip() or None

    async def _by_subscription(self, openid: str, notice: notices.Notice) -> notices.Outcome:
        template = self.config.subscribe_template_id
        if not template:
            return notices.Outcome(notices.FALLBACK,
                                   detail="no subscription template (WECHAT_SUBSCRIBE_TEMPLATE_ID)")
        try:
            data = template_data(self.config.subscribe_template_keys, notice)
        except ValueError as error:
            return notices.Outcome(notices.FALLBACK, detail=f"template data: {error}")
        if not await self.api.take_acceptance(openid):
            return notices.Outcome(notices.FALLBACK, detail="no acceptance recorded")
        try:
            await self.api.send_subscription(openid, template, data)
        except WeChatApiError as error:
            if error.errcode == 43101:  # WeChat knows better: none left
                await self.api.forget_acceptances(openid)
            else:
                await self.api.accepted(openid)  # not used up: WeChat did not send
            raise
        except Exception:
            await self.api.accepted(openid)
            raise
        return notices.Outcome(notices.SEEN)

    async def _by_template(self, openid: str, notice: notices.Notice) -> notices.Outcome:
        template = self.config.template_id
        if not template:
            return notices.Outcome(notices.FALLBACK,
                                   detail="no template message (WECHAT_TEMPLATE_ID)")
        try:
            data = template_data(self.config.template_keys, notice)
        except ValueError as error:
            return notices.Outcome(notices.FALLBACK, detail=f"template data: {error}")
        await self.api.send_template(openid, template, data)
        return notices.Outcome(notices.SEEN)

    async def page(self, token: str, url: str) -> tuple[int, str, dict[str, str]]:
        """The subscription page (`subscribe_page`) for its token and address."""
        if refused := self.refusal():
            return refused[0], refused[1], dict(TEXT_HEADERS)
        if not self.config.subscribe_page:
            return 404, "not offered", dict(TEXT_HEADERS)
        kind = page_kind(self.config, token)
        ticket = None
        if kind is not None:
            try:
                ticket = await self.api.jsapi_ticket()
            except (WeChatApiError, aiohttp.ClientError, asyncio.TimeoutError, RedisError,
                    ValueError) as error:
                log.warning("wechat: no jsapi_ticket (%s)", getattr(error, "errcode", "")
                            or type(error).__name__)
        return subscribe_page(self.config, kind, ticket, url)

    async def _process(self, message: Inbound,
                       on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        text = await self.api.buttons.answered(message.openid, message.text or "")
        await self.hand_over(on_new_message, text, WeChatOutput(self.api), message.openid,
                             masked(message.openid), message.language)

    def say_which_mode(self) -> None:
        """The start-up log's line on encryption, once configured."""
        if not self.config.configured:
            return
        if self.safe_mode is not None:
            log.info("wechat: safe mode (AES): plain-text messages are refused")
        else:
            log.warning("wechat: plain-text mode: messages from WeChat are not encrypted and "
                        "their bodies not signed (set WECHAT_ENCODING_AES_KEY and choose "
                        "safe mode on the platform)")

    def say_which_notices(self) -> None:
        """The start-up log's line on the notice paths past 48 hours."""
        if not self.config.configured:
            return
        paths = []
        for name, template, spec in (
                ("subscription", self.config.subscribe_template_id,
                 self.config.subscribe_template_keys),
                ("template message", self.config.template_id, self.config.template_keys)):
            if not template:
                continue
            try:
                template_keys(spec)
            except ValueError as error:
                log.warning("wechat: the %s's keys are not usable (%s); it is not sent",
                            name, error)
                continue
            paths.append(name)
        if self.config.subscribe_template_id and not self.config.public_url:
            log.warning("wechat: WECHAT_PUBLIC_URL unset: the subscription is never offered")
        log.info("wechat: notices after 48 hours by %s", " and ".join(paths) or
                 "no path of WeChat's (set WECHAT_SUBSCRIBE_TEMPLATE_ID or WECHAT_TEMPLATE_ID)")

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        wechat = self.webhook_blueprint()

        def query_of(request: Request) -> dict[str, str]:
            return {name: request.args.get(name, "") for name in QUERY_NAMES
                    if name in request.args}

        @wechat.route("/webhook", methods=["GET"])
        async def url_check(request: Request) -> HTTPResponse:
            status, text = self.check_url(query_of(request))
            return response.text(text, status=status, headers=TEXT_HEADERS)

        @wechat.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            status, text = await self.receive(query_of(request), request.body or b"",
                                              on_new_message)
            return response.text(text, status=status, headers=TEXT_HEADERS)

        @wechat.route("/subscribe", methods=["GET"])
        async def subscription_page(request: Request) -> HTTPResponse:
            # The address the phone asked for, as the JS-SDK's signature must cover it.
            url = self.config.public_url.rstrip("/") + request.path + (
                f"?{request.query_string}" if request.query_string else "")
            status, text, headers = await self.page(request.args.get("t", ""), url)
            if status == 200 or text.startswith("<!doctype"):
                return response.html(text, status=status, headers=headers)
            return response.text(text, status=status, headers=headers)

        @wechat.listener("after_server_start")
        async def say_which_mode(*_: Any) -> None:
            self.say_which_mode()
            self.say_which_notices()

        @wechat.listener("after_server_stop")
        async def close(*_: Any) -> None:
            await self.api.close()

        return wechat
