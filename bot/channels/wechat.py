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
not part of the scheme. Customer-service messages reach a user only within 48 hours of
their last message to the account; a "card ready" notice later than that is refused by
WeChat (errcode 45015) and logged, since template or subscription messages are not
implemented.

Configuration (the contract in `bot.channels.base`): credentials.yml keys `token`,
`app_id`, `app_secret`, `base_url`, `encoding_aes_key`, `encoding_aes_key_previous`;
empty values are read from WECHAT_TOKEN, WECHAT_APP_ID, WECHAT_APP_SECRET,
WECHAT_API_BASE, WECHAT_ENCODING_AES_KEY and WECHAT_ENCODING_AES_KEY_PREVIOUS. Without a
token, app id and secret, or with a key not of the platform's shape (43 letters and
digits), the webhook answers 503. The previous key is tried when the current one cannot
open a message: set it to the old key while a change of key on the platform takes
effect. Redis (REDIS_URL) holds the access token, the seen messages and the numbered
buttons.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from xml.parsers import expat

import aiohttp
import redis.asyncio as aioredis
from rasa.core.channels.channel import OutputChannel, UserMessage
from redis.exceptions import RedisError
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

from bot import redis as bot_redis
from bot.channels.base import (
    HTTP_TIMEOUT_SECONDS,
    MAX_BODY_BYTES,
    ChannelConfig,
    ChannelInput,
    ChannelOutput,
)
from bot.channels.buttons import ButtonMemory
from bot.channels.text import GREETING, typed

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW_SECONDS = 300
# Longer than WeChat's retries (three within about 15 s) and than the clock-skew window,
# so neither a retry nor a replayed signature is processed twice.
SEEN_SECONDS = 2 * MAX_CLOCK_SKEW_SECONDS + 60
# Refresh the access token this long before WeChat says it expires.
TOKEN_MARGIN_SECONDS = 300
TOKEN_LOCK_SECONDS = 15
# Invalid, not the latest, or expired access token: fetch a new one and try again once.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
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


def parse_xml(body: bytes) -> dict[str, str]:
    """The fields of one WeChat XML message (`<xml><Name>value</Name>...</xml>`).

    Read with expat directly so that a DOCTYPE, an entity declaration or an external
    entity is refused before anything is expanded (what defusedxml would do).

    >>> parse_xml(b"<xml><MsgType><![CDATA[text]]></MsgType><MsgId>7</MsgId></xml>")
    {'MsgType': 'text', 'MsgId': '7'}
    """
    if len(body) > MAX_BODY_BYTES:
        raise BadMessage("too large")
    fields: dict[str, str] = {}
    stack: list[str] = []
    text: list[str] = []

    def refuse(*_: Any) -> int:
        raise BadMessage("DTDs and entities are not accepted")

    def start(name: str, _attributes: dict[str, str]) -> None:
        if not stack and name != "xml":
            raise BadMessage("the root element must be <xml>")
        stack.append(name)
        text.clear()

    def end(name: str) -> None:
        stack.pop()
        if len(stack) == 1:  # a direct child of <xml>: the fields WeChat sends
            fields[name] = "".join(text).strip()
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

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Inbound:
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
        return cls(openid, msg_type, text, dedupe_key, language)


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


# --- WeChat's API and the shared state in Redis ----------------------------------------


class WeChatApiError(RuntimeError):
    def __init__(self, errcode: int, errmsg: str = ""):
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode


# Errors that a retry cannot cure (soon): the user left the 48-hour window, unfollowed
# the account, got as many messages as WeChat allows until they write again, or the
# openid is not this account's.
PERMANENT_ERRORS = frozenset({40003, 43004, 45015, 45047})


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

    # Customer-service messages ---------------------------------------------------------

    async def send_text(self, openid: str, text: str) -> None:
        for piece in split_text(text):
            await self._send({"touser": openid, "msgtype": "text", "text": {"content": piece}})

    async def _send(self, message: dict[str, Any]) -> None:
        # ensure_ascii=False: Chinese goes as UTF-8, not as \\u escapes.
        data = json.dumps(message, ensure_ascii=False).encode("utf-8")
        token = await self.access_token()
        for attempt in (1, 2):
            async with self.session.post(
                f"{self.config.base_url}/cgi-bin/message/custom/send",
                params={"access_token": token},
                data=data,
                headers={"Content-Type": "application/json; charset=utf-8"},
            ) as reply:
                reply.raise_for_status()
                body = await reply.json(content_type=None)
            errcode = int(body.get("errcode", 0))
            if errcode == 0:
                return
            if errcode in TOKEN_ERRORS and attempt == 1:
                log.info("wechat: access token refused (%s); fetching a new one", errcode)
                token = await self.access_token(stale=token)
                continue
            raise WeChatApiError(errcode, str(body.get("errmsg", "")))


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

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        # An image would first have to be uploaded as WeChat media: send its link.
        await self.send_text_message(recipient_id, image)

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        await self.send_text_message(recipient_id, str(attachment))


class WeChatInput(ChannelInput):
    """`/webhooks/wechat/webhook`: WeChat's URL check (GET) and messages (POST)."""

    TITLE = "WeChat"

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
        try:
            xml, signed_by = self.opened(query, body)
            fields = parse_xml(xml)
        except Refused as refusal:
            log.warning("wechat: refused %s", refusal)
            return refusal.status, refusal.answer
        except BadMessage as error:
            log.warning("wechat: unreadable message: %s", error)
            return 400, "bad request"
        try:
            message = Inbound.from_fields(fields)
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

        @wechat.listener("after_server_start")
        async def say_which_mode(*_: Any) -> None:
            self.say_which_mode()

        @wechat.listener("after_server_stop")
        async def close(*_: Any) -> None:
            await self.api.close()

        return wechat
