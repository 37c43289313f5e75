"""The WeChat Official Account channel: signed XML in, customer-service messages out.

WeChat's servers call one URL, `/webhooks/wechat/webhook`:

- GET is the server URL check: `signature` is the SHA-1 of the sorted concatenation of
  the token, `timestamp` and `nonce`; on a match we echo `echostr`.
- POST carries one XML message with the same signed query. We answer "success" at once
  (WeChat gives up after 5 s and retries up to three times) and let Rasa work in a
  background task; the bot's replies go out through the customer-service message API
  (`/cgi-bin/message/custom/send`) with an access token cached in Redis for every process.

Only the plain-text mode (明文模式) is implemented, not the AES "safe mode" (安全模式):
in plain-text mode the signature covers the token, timestamp and nonce but not the body,
so we also refuse stale timestamps and let each signature be used once. Customer-service
messages reach a user only within 48 hours of their last message to the account; a
"card ready" notice later than that is refused by WeChat (errcode 45015) and logged,
since template or subscription messages are not implemented.

Configuration (the contract in `bot.channels.base`): credentials.yml keys `token`,
`app_id`, `app_secret`, `base_url`; empty values are read from WECHAT_TOKEN,
WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_API_BASE, and without a token, app id and
secret the webhook answers 503. Redis (REDIS_URL) holds the access token, the seen
messages and the numbered buttons.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
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


# --- the protocol, as pure functions ---------------------------------------------------

_DIGITS = re.compile(r"[0-9]{1,12}")


def signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's request signature.

    >>> signature("test", "1410685589", "test")
    'f21891de399b4e33a1a93c9a7b8a8fffb5a443ff'
    """
    joined = "".join(sorted([token, timestamp, nonce])).encode("utf-8")
    return hashlib.sha1(joined).hexdigest()  # noqa: S324 - the algorithm WeChat fixes


def signature_valid(token: str, query: Mapping[str, str], now: float | None = None) -> bool:
    """The query's signature is right and its timestamp within the clock-skew window."""
    timestamp = query.get("timestamp", "")
    nonce = query.get("nonce", "")
    given = query.get("signature", "")
    if not (token and _DIGITS.fullmatch(timestamp) and nonce and given):
        return False
    expected = signature(token, timestamp, nonce)
    if not hmac.compare_digest(expected.encode("ascii"), given.lower().encode("ascii", "replace")):
        return False
    now = time.time() if now is None else now
    return abs(now - int(timestamp)) <= MAX_CLOCK_SKEW_SECONDS


class BadMessage(ValueError):
    """The body is not a WeChat message we can read safely."""


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
    """Served with a token, an app id and its secret.

    >>> WeChatConfig(token="t", app_id="wx1").missing
    ('app_secret',)
    """

    SECTION: ClassVar[str] = "wechat"
    REQUIRED: ClassVar[Mapping[str, re.Pattern[str] | None]] = dict.fromkeys(
        ("token", "app_id", "app_secret"))

    token: str = ""
    app_id: str = ""
    app_secret: str = ""
    base_url: str = ""
    redis_url: str = ""


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
        if refused := self.refusal():
            return refused
        if not signature_valid(self.config.token, query):
            return 403, "forbidden"
        return 200, query.get("echostr", "")

    async def receive(self, query: Mapping[str, str], body: bytes,
                      on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> tuple[int, str]:
        """Checks one POST and starts its processing; the answer is (status, text)."""
        if refused := self.refusal(body):
            return refused
        if not signature_valid(self.config.token, query):
            log.warning("wechat: refused a request with a bad or stale signature")
            return 403, "forbidden"
        try:
            message = Inbound.from_fields(parse_xml(body))
        except BadMessage as error:
            log.warning("wechat: unreadable message: %s", error)
            return 400, "bad request"
        try:
            # A replayed signature (the body is not signed) or a retried message: done once.
            if not await self.api.first_time("signature", query.get("signature", "").lower()):
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

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        wechat = self.webhook_blueprint()

        def query_of(request: Request) -> dict[str, str]:
            return {name: request.args.get(name, "") for name in
                    ("signature", "timestamp", "nonce", "echostr")}

        @wechat.route("/webhook", methods=["GET"])
        async def url_check(request: Request) -> HTTPResponse:
            status, text = self.check_url(query_of(request))
            return response.text(text, status=status, headers=TEXT_HEADERS)

        @wechat.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            status, text = await self.receive(query_of(request), request.body or b"",
                                              on_new_message)
            return response.text(text, status=status, headers=TEXT_HEADERS)

        @wechat.listener("after_server_stop")
        async def close(*_: Any) -> None:
            await self.api.close()

        return wechat
