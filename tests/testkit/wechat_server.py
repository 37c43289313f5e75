"""A local stand-in for WeChat: its API server, and signed requests as its servers send them.

`WeChatServer` answers `/cgi-bin/token`, `/cgi-bin/ticket/getticket` and the three message
APIs (`message/custom/send`, `message/subscribe/bizsend`, `message/template/send`) the way
api.weixin.qq.com does (errcode bodies with HTTP 200), keeps what was delivered and by
which path, and can be told to refuse the next send with an errcode. Its clock is the
test's: `advance()` moves it, and with it the access tokens' expiry (42001) and, once
`relay_to()` has it carry the users' messages to the bot, every user's 48-hour window
for customer-service messages (45015) and their 20 messages per message of theirs
(45047). A subscription notification needs an acceptance of its template, one per send
(43101): `accept_subscription()` pushes WeChat's event to the bot as the platform does.
The functions below it build the GET URL check and the signed XML POSTs that WeChat's
servers make to our webhook, and `SafeModeAccount` what they make in safe mode
(安全模式): the message AES-encrypted, the query with `msg_signature`, and WeChat's
reading of the webhook's answer. The scheme is written from WeChat's documentation, not
with our code or wechatpy's.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import itertools
import json
import re
import secrets
import string
import struct
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.testkit.local_server import LocalServer

CUSTOMER_SERVICE, SUBSCRIPTION, TEMPLATE = "customer_service", "subscription", "template"
WINDOW_SECONDS = 48 * 3600
MESSAGES_PER_USER_MESSAGE = 20
TOKEN_ERRORS = (40001, 40014, 42001)
# WeChat's rules for a template value, by the type its key names ("thing2": thing).
VALUE_RULES = {
    "thing": re.compile(r"[^\n]{1,20}"),
    "character_string": re.compile(r"[!-~]{1,32}"),
    "number": re.compile(r"[0-9]{1,32}(\.[0-9]+)?"),
    "letter": re.compile(r"[A-Za-z]{1,32}"),
    "phrase": re.compile(r"[\u4e00-\u9fff]{1,5}"),
    "date": re.compile(r"[0-9]{4}年[0-9]{1,2}月[0-9]{1,2}日( [0-9]{1,2}:[0-9]{2})?"),
    "time": re.compile(r"([0-9]{4}年[0-9]{1,2}月[0-9]{1,2}日 )?[0-9]{1,2}:[0-9]{2}"),
}


@dataclass(frozen=True)
class Sent:
    touser: str
    content: str  # a customer-service text; for a template, its values joined
    access_token: str
    path: str = CUSTOMER_SERVICE
    template_id: str = ""
    data: dict[str, str] = field(default_factory=dict)


def data_refusal(keys: tuple[str, ...], data: Any) -> str:
    """Why WeChat would refuse a template's `data` (47003), or ""."""
    if not isinstance(data, dict) or set(data) != set(keys):
        return f"data must have the keys {sorted(keys)}"
    for key, entry in data.items():
        kind = re.fullmatch(r"([a-z_]+?)[0-9]+", key)
        rule = VALUE_RULES.get(kind.group(1) if kind else "")
        value = entry.get("value") if isinstance(entry, dict) else None
        if rule is None or not isinstance(value, str) or not rule.fullmatch(value):
            return f"data.{key}.value invalid"
    return ""


class WeChatServer(LocalServer):
    def __init__(self, app_id: str = "wx-test-app",
                 app_secret: str = "test-app-secret",  # noqa: S107 - a test double's
                 expires_in: int = 7200,
                 subscription_templates: dict[str, tuple[str, ...]] | None = None,
                 templates: dict[str, tuple[str, ...]] | None = None):
        """`subscription_templates`, `templates`: the account's templates of each kind,
        with their keys."""
        self.app_id = app_id
        self.app_secret = app_secret
        self.expires_in = expires_in
        self.subscription_templates = dict(subscription_templates or {})
        self.templates = dict(templates or {})
        super().__init__()
        self.token_requests = 0
        self.ticket_requests = 0
        self.sent: list[Sent] = []
        self.attempts: collections.Counter[str] = collections.Counter()  # calls, by path
        self.offset = 0.0  # seconds the test moved the clock on
        self._tokens = itertools.count(1)
        self._valid_token = ""
        self._token_expires = 0.0
        self._tickets: dict[str, float] = {}
        self._fail_next: list[int] = []
        self._relay: tuple[str, SafeModeAccount] | None = None
        self._wrote: dict[str, float] = {}  # a user's last message, by the server's clock
        self._since: dict[str, int] = {}  # customer-service messages since then
        self._unfollowed: set[str] = set()
        self._accepted: dict[tuple[str, str], int] = {}
        self._created = 0

    # The test's hand on WeChat -----------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, days: float = 0, hours: float = 0, seconds: float = 0) -> None:
        """Moves the server's clock on: windows close, access tokens expire."""
        with self._lock:
            self.offset += days * 86400 + hours * 3600 + seconds

    def fail_next_send(self, errcode: int) -> None:
        """The next message send is refused with `errcode` (40001: bad token)."""
        with self._lock:
            self._fail_next.append(errcode)

    def invalidate_token(self) -> None:
        """The access token stops working (WeChat's 40001), as when another client of the
        account fetched a new one."""
        with self._lock:
            self._valid_token = ""

    def relay_to(self, webhook_url: str, account: SafeModeAccount) -> WeChatServer:
        """From now on the test's users write to the bot through this server (`user_says`),
        and every user is held to the 48-hour window from their last message."""
        self._relay = (webhook_url, account)
        return self

    def user_says(self, openid: str, text: str) -> requests.Response:
        """The user's message, pushed to the bot as WeChat does; it opens their window."""
        if openid in self._unfollowed:
            raise AssertionError("a user who unfollowed the account cannot write to it")
        with self._lock:
            self._wrote[openid] = self.now()
            self._since[openid] = 0
        return self._push(text_xml(openid, text, create_time=self._create_time()))

    def follow(self, openid: str) -> requests.Response:
        """The user follows the account: the subscribe event, which opens their window."""
        with self._lock:
            self._unfollowed.discard(openid)
            self._wrote[openid] = self.now()
            self._since[openid] = 0
        return self._push(event_xml(openid, "subscribe", create_time=self._create_time()))

    def unfollow(self, openid: str) -> requests.Response:
        with self._lock:
            self._unfollowed.add(openid)
        return self._push(event_xml(openid, "unsubscribe", create_time=self._create_time()))

    def accept_subscription(self, openid: str, template_id: str,
                            status: str = "accept") -> requests.Response:
        """The user's choice on the subscription page (`accept` or `reject`), pushed to the
        bot as `subscribe_msg_popup_event`; each acceptance allows one send."""
        if status == "accept" and template_id in self.subscription_templates:
            with self._lock:
                self._accepted[openid, template_id] = \
                    self._accepted.get((openid, template_id), 0) + 1
        return self._push(subscription_event_xml(openid, [(template_id, status)],
                                                 create_time=self._create_time()))

    def withdraw_subscription(self, openid: str, template_id: str,
                              tell_the_bot: bool = True) -> requests.Response | None:
        """The user turns the notifications off in WeChat's settings: none can be sent.
        `tell_the_bot=False`: the event never reached the bot (its webhook was down)."""
        with self._lock:
            self._accepted.pop((openid, template_id), None)
        if not tell_the_bot:
            return None
        return self._push(subscription_event_xml(openid, [(template_id, "reject")],
                                                 event="subscribe_msg_change_event",
                                                 create_time=self._create_time()))

    def acceptances(self, openid: str, template_id: str) -> int:
        with self._lock:
            return self._accepted.get((openid, template_id), 0)

    def _create_time(self) -> int:
        # WeChat tells events apart by sender and CreateTime: never two in one second.
        with self._lock:
            self._created = max(int(self.now()), self._created + 1)
            return self._created

    def _push(self, xml: bytes) -> requests.Response:
        if self._relay is None:
            raise AssertionError("relay_to() first: the server does not know the bot's URL")
        url, account = self._relay
        query, body = account.push(xml)
        return requests.post(url, params=query, data=body, headers={"Content-Type": "text/xml"},
                             timeout=10)

    # What was delivered -------------------------------------------------------------------

    def messages_to(self, openid: str) -> list[str]:
        """The customer-service texts sent to `openid`."""
        with self._lock:
            return [m.content for m in self.sent
                    if m.touser == openid and m.path == CUSTOMER_SERVICE]

    def deliveries_to(self, openid: str) -> list[Sent]:
        """Everything delivered to `openid`, by any path."""
        with self._lock:
            return [m for m in self.sent if m.touser == openid]

    def wait_for(self, openid: str, count: int = 1, timeout: float = 30,
                 containing: str = "") -> list[str]:
        """The texts sent to `openid`, once at least `count` of them contain `containing`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                texts = self.messages_to(openid)
                if sum(containing in t for t in texts) >= count:
                    return texts
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} message(s) containing {containing!r} for "
                        f"{openid}, got {texts}")
                self._lock.wait(left)

    def js_signature_valid(self, url: str, noncestr: str, timestamp: str,
                           signature: str) -> bool:
        """A page's wx.config, as the JS-SDK checks it: signed with a live jsapi_ticket
        for the page's address (without its fragment)."""
        with self._lock:
            live = [t for t, expires in self._tickets.items() if expires > self.now()]
        page = url.split("#")[0]
        return any(hashlib.sha1(  # noqa: S324 - WeChat's choice
            f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={page}"
            .encode()).hexdigest() == signature for ticket in live)

    # The API ------------------------------------------------------------------------------

    def _token(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        if query.get("appid") != self.app_id:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if query.get("secret") != self.app_secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        with self._lock:
            self.token_requests += 1
            # A new token replaces the old one at once (WeChat allows a short overlap;
            # being stricter catches processes that fetch without sharing).
            self._valid_token = f"ACCESS-{next(self._tokens)}-{secrets.token_hex(4)}"
            self._token_expires = self.now() + self.expires_in
            return {"access_token": self._valid_token, "expires_in": self.expires_in}

    def _token_refusal(self, token: str) -> dict[str, Any] | None:
        with self._lock:
            if not token or token != self._valid_token:
                return {"errcode": 40001, "errmsg": "invalid credential, access_token is "
                                                    "invalid or not latest"}
            if self.now() >= self._token_expires:
                return {"errcode": 42001, "errmsg": "access_token expired"}
            return None

    def _ticket(self, query: dict[str, str]) -> dict[str, Any]:
        refusal = self._token_refusal(query.get("access_token", ""))
        if refusal:
            return refusal
        if query.get("type") != "jsapi":
            return {"errcode": 40097, "errmsg": "invalid args"}
        with self._lock:
            self.ticket_requests += 1
            ticket = secrets.token_urlsafe(48)
            self._tickets[ticket] = self.now() + 7200
        return {"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": 7200}

    def _send(self, path: str, query: dict[str, str], body: bytes) -> dict[str, Any]:
        token = query.get("access_token", "")
        with self._lock:
            self.attempts[path] += 1
        refusal = self._token_refusal(token)
        if refusal:
            return refusal
        with self._lock:
            if self._fail_next:
                errcode = self._fail_next.pop(0)
                if errcode in TOKEN_ERRORS:
                    self._valid_token = ""  # the token really is dead now
                return {"errcode": errcode, "errmsg": "refused by the test"}
        try:
            message = json.loads(body.decode("utf-8"))
            touser = message["touser"]
            assert isinstance(touser, str) and touser
        except (ValueError, KeyError, TypeError, AssertionError):
            return {"errcode": 44002, "errmsg": "empty post data"}
        check = {CUSTOMER_SERVICE: self._custom, SUBSCRIPTION: self._bizsend,
                 TEMPLATE: self._template}[path]
        with self._lock:
            answer = check(touser, message)
            if isinstance(answer, dict):
                return answer
            self.sent.append(Sent(touser, answer[0], token, path,
                                  str(message.get("template_id", "")), answer[1]))
            self._lock.notify_all()
        return {"errcode": 0, "errmsg": "ok"}

    def _custom(self, touser: str, message: dict[str, Any]
                ) -> dict[str, Any] | tuple[str, dict[str, str]]:
        content = (message.get("text") or {}).get("content") \
            if isinstance(message.get("text"), dict) else None
        if message.get("msgtype") != "text" or not isinstance(content, str) or not content:
            return {"errcode": 44002, "errmsg": "empty post data or bad message"}
        if len(content.encode("utf-8")) > 2048:
            return {"errcode": 45002, "errmsg": "content size out of limit"}
        if touser in self._unfollowed:
            return {"errcode": 43004, "errmsg": "require subscribe"}
        if self._relay is not None:
            wrote = self._wrote.get(touser)
            if wrote is None or self.now() - wrote > WINDOW_SECONDS:
                return {"errcode": 45015, "errmsg": "response out of time limit or subscription "
                                                    "is canceled"}
            if self._since.get(touser, 0) >= MESSAGES_PER_USER_MESSAGE:
                return {"errcode": 45047, "errmsg": "out of response count limit"}
            self._since[touser] = self._since.get(touser, 0) + 1
        return content, {}

    def _bizsend(self, touser: str, message: dict[str, Any]
                 ) -> dict[str, Any] | tuple[str, dict[str, str]]:
        template = str(message.get("template_id", ""))
        keys = self.subscription_templates.get(template)
        if keys is None:
            return {"errcode": 40037, "errmsg": "invalid template_id"}
        refusal = data_refusal(keys, message.get("data"))
        if refusal:
            return {"errcode": 47003, "errmsg": f"argument invalid! {refusal}"}
        if self._accepted.get((touser, template), 0) < 1:
            return {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
        self._accepted[touser, template] -= 1
        return self._values(message)

    def _template(self, touser: str, message: dict[str, Any]
                  ) -> dict[str, Any] | tuple[str, dict[str, str]]:
        keys = self.templates.get(str(message.get("template_id", "")))
        if keys is None:
            return {"errcode": 40037, "errmsg": "invalid template_id"}
        # Relaying, only a user the server saw follow or write follows; else any but those
        # who unfollowed.
        if touser in self._unfollowed or (self._relay is not None and touser not in self._wrote):
            return {"errcode": 43004, "errmsg": "require subscribe"}
        refusal = data_refusal(keys, message.get("data"))
        if refusal:
            return {"errcode": 47003, "errmsg": f"argument invalid! {refusal}"}
        return self._values(message)

    @staticmethod
    def _values(message: dict[str, Any]) -> tuple[str, dict[str, str]]:
        values = {key: entry["value"] for key, entry in message["data"].items()}
        return " / ".join(values.values()), values

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self
        sends = {"/cgi-bin/message/custom/send": CUSTOMER_SERVICE,
                 "/cgi-bin/message/subscribe/bizsend": SUBSCRIPTION,
                 "/cgi-bin/message/template/send": TEMPLATE}

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode("utf-8")
                self.send_response(200)
                # What WeChat really sends; clients must not insist on application/json.
                self.send_header("Content-Type", "application/json; encoding=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _query(self) -> tuple[str, dict[str, str]]:
                parts = urlsplit(self.path)
                return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path, query = self._query()
                if path == "/cgi-bin/token":
                    self._reply(server._token(query))
                elif path == "/cgi-bin/ticket/getticket":
                    self._reply(server._ticket(query))
                else:
                    self._reply({"errcode": 404, "errmsg": "no such API"})

            def do_POST(self) -> None:  # noqa: N802
                path, query = self._query()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if path in sends:
                    self._reply(server._send(sends[path], query, body))
                else:
                    self._reply({"errcode": 404, "errmsg": "no such API"})

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


# What WeChat's servers send to the webhook ---------------------------------------------


def sha1_of_sorted(*texts: str) -> str:
    """WeChat's signatures: SHA-1 of the texts sorted and joined, in lower-case hex."""
    joined = "".join(sorted(texts)).encode("utf-8")
    return hashlib.sha1(joined).hexdigest()  # noqa: S324 - WeChat's choice


def signed_query(token: str, timestamp: int | None = None, nonce: str | None = None,
                 **extra: str) -> dict[str, str]:
    """The query WeChat signs: sha1 over the sorted token, timestamp and nonce."""
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or str(secrets.randbelow(10**10))
    digest = sha1_of_sorted(token, timestamp_text, nonce)
    return {"signature": digest, "timestamp": timestamp_text, "nonce": nonce, **extra}


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_xml(openid: str, content: str, msg_id: int | None = None,
             account: str = "gh_test_account", create_time: int | None = None) -> bytes:
    msg_id = secrets.randbits(62) if msg_id is None else msg_id
    return _message_xml(openid, account, create_time, "text",
                        f"<Content>{_cdata(content)}</Content><MsgId>{msg_id}</MsgId>")


def event_xml(openid: str, event: str = "subscribe", account: str = "gh_test_account",
              create_time: int | None = None) -> bytes:
    return _message_xml(openid, account, create_time, "event", f"<Event>{_cdata(event)}</Event>")


def subscription_event_xml(openid: str, choices: list[tuple[str, str]],
                           event: str = "subscribe_msg_popup_event",
                           account: str = "gh_test_account",
                           create_time: int | None = None) -> bytes:
    """The user's choice of each template (accept or reject) on a subscription page
    (`subscribe_msg_popup_event`), or in WeChat's settings (`subscribe_msg_change_event`)."""
    outer = "SubscribeMsgPopupEvent" if event == "subscribe_msg_popup_event" \
        else "SubscribeMsgChangeEvent"
    items = "".join(f"<List><TemplateId>{_cdata(template)}</TemplateId>"
                    f"<SubscribeStatusString>{_cdata(status)}</SubscribeStatusString>"
                    f"<PopupScene>2</PopupScene></List>" for template, status in choices)
    return _message_xml(openid, account, create_time, "event",
                        f"<Event>{_cdata(event)}</Event><{outer}>{items}</{outer}>")


def _message_xml(openid: str, account: str, create_time: int | None, kind: str,
                 body: str) -> bytes:
    created = int(time.time()) if create_time is None else create_time
    return (
        f"<xml><ToUserName>{_cdata(account)}</ToUserName>"
        f"<FromUserName>{_cdata(openid)}</FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType>{_cdata(kind)}</MsgType>{body}</xml>"
    ).encode()


def new_openid() -> str:
    """Shaped like a real openid (28 characters, starting with 'o')."""
    return "o" + secrets.token_urlsafe(21)[:27]


# Safe mode (安全模式) ------------------------------------------------------------------

BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16


def new_aes_key() -> str:
    """An EncodingAESKey as the platform makes one: 43 letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(43))


def _cipher(aes_key: str) -> Cipher[modes.CBC]:
    # The key is the EncodingAESKey's base64 with its "=" put back; the IV its first 16 bytes.
    key = base64.b64decode(aes_key + "=")
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt(aes_key: str, app_id: str, message: bytes, prefix: bytes | None = None) -> str:
    """Base64 of AES-256-CBC over 16 random bytes (`prefix`), the message's length in 4
    bytes (network order), the message and the app id, padded PKCS#7-wise to 32 bytes."""
    plain = (prefix or secrets.token_bytes(16)) + struct.pack(">I", len(message)) + message \
        + app_id.encode("utf-8")
    pad = BLOCK - len(plain) % BLOCK
    plain += bytes([pad]) * pad
    encryptor = _cipher(aes_key).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def decrypt(aes_key: str, encrypted: str) -> tuple[bytes, str]:
    """The message and the app id inside; ValueError when it was not sealed with this key."""
    decryptor = _cipher(aes_key).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted, validate=True)) + decryptor.finalize()
    pad = plain[-1] if plain else 0
    if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad padding")
    inside = plain[16:-pad]
    length = struct.unpack(">I", inside[:4])[0] if len(inside) >= 4 else -1
    if not 0 <= length <= len(inside) - 4:
        raise ValueError("bad length")
    return inside[4:4 + length], inside[4 + length:].decode("utf-8")


class AnswerRefused(AssertionError):
    """An answer WeChat would not take: the user sees "该公众号暂时无法提供服务"."""


@dataclass(frozen=True)
class SafeModeAccount:
    """An account set to safe mode, as WeChat's servers hold it."""

    token: str
    aes_key: str
    app_id: str
    account: str = "gh_test_account"  # the account's original id, the messages' ToUserName

    def push(self, xml: bytes, timestamp: int | None = None, nonce: str | None = None,
             app_id: str | None = None, aes_key: str | None = None
             ) -> tuple[dict[str, str], bytes]:
        """The query and body WeChat posts for the message `xml`. `app_id`, `aes_key`:
        sealed for another account, or with another key."""
        encrypted = encrypt(aes_key or self.aes_key, app_id or self.app_id, xml)
        query = signed_query(self.token, timestamp, nonce, encrypt_type="aes")
        query["msg_signature"] = sha1_of_sorted(self.token, query["timestamp"], query["nonce"],
                                                encrypted)
        return query, envelope(self.account, encrypted)

    def read_answer(self, text: str) -> bytes | None:
        """What WeChat makes of the webhook's 200 answer to a pushed message: None for
        "success" or nothing (no passive reply), the reply inside an encrypted answer;
        `AnswerRefused` for anything else, a plain reply included."""
        if text in ("success", ""):
            return None
        fields = dict(re.findall(
            r"<(Encrypt|MsgSignature|TimeStamp|Nonce)>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</\1>",
            text, re.S))
        if set(fields) != {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}:
            raise AnswerRefused(f"not an encrypted reply: {text[:200]!r}")
        expected = sha1_of_sorted(self.token, fields["TimeStamp"], fields["Nonce"],
                                  fields["Encrypt"])
        if fields["MsgSignature"] != expected:
            raise AnswerRefused("the reply's MsgSignature is wrong")
        try:
            reply, app_id = decrypt(self.aes_key, fields["Encrypt"])
        except ValueError as error:
            raise AnswerRefused(f"the reply cannot be decrypted: {error}") from None
        if app_id != self.app_id:
            raise AnswerRefused(f"the reply is sealed for {app_id!r}")
        return reply


def envelope(account: str, encrypted: str) -> bytes:
    """The body of a safe-mode POST: the account and the ciphertext, nothing else."""
    return (f"<xml><ToUserName>{_cdata(account)}</ToUserName>"
            f"<Encrypt>{_cdata(encrypted)}</Encrypt></xml>").encode()
