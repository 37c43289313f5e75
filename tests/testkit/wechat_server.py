"""A local stand-in for WeChat: its API server, and signed requests as its servers send them.

`WeChatServer` answers `/cgi-bin/token` and `/cgi-bin/message/custom/send` the way
api.weixin.qq.com does (errcode bodies with HTTP 200), keeps what was sent, and can be
told to refuse the next send with an errcode. The functions below it build the GET URL
check and the signed XML POSTs that WeChat's servers make to our webhook, and
`SafeModeAccount` what they make in safe mode (安全模式): the message AES-encrypted, the
query with `msg_signature`, and WeChat's reading of the webhook's answer. The scheme is
written from WeChat's documentation, not with our code or wechatpy's.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import string
import struct
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.testkit.local_server import LocalServer


@dataclass(frozen=True)
class Sent:
    touser: str
    content: str
    access_token: str


class WeChatServer(LocalServer):
    def __init__(self, app_id: str = "wx-test-app",
                 app_secret: str = "test-app-secret",  # noqa: S107 - a test double's
                 expires_in: int = 7200):
        self.app_id = app_id
        self.app_secret = app_secret
        self.expires_in = expires_in
        super().__init__()
        self.token_requests = 0
        self.sent: list[Sent] = []
        self._tokens = itertools.count(1)
        self._valid_token = ""
        self._fail_next: list[int] = []


    def fail_next_send(self, errcode: int) -> None:
        """The next customer-service send is refused with `errcode` (40001: bad token)."""
        with self._lock:
            self._fail_next.append(errcode)

    def messages_to(self, openid: str) -> list[str]:
        with self._lock:
            return [m.content for m in self.sent if m.touser == openid]

    def wait_for(self, openid: str, count: int = 1, timeout: float = 30,
                 containing: str = "") -> list[str]:
        """The texts sent to `openid`, once at least `count` of them contain `containing`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                texts = [m.content for m in self.sent if m.touser == openid]
                if sum(containing in t for t in texts) >= count:
                    return texts
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} message(s) containing {containing!r} for "
                        f"{openid}, got {texts}")
                self._lock.wait(left)

    # The API --------------------------------------------------------------------------

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
            return {"access_token": self._valid_token, "expires_in": self.expires_in}

    def _send(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        token = query.get("access_token", "")
        with self._lock:
            if not token or token != self._valid_token:
                return {"errcode": 40001, "errmsg": "invalid credential, access_token is "
                                                    "invalid or not latest"}
            if self._fail_next:
                errcode = self._fail_next.pop(0)
                if errcode in (40001, 40014, 42001):
                    self._valid_token = ""  # the token really is dead now
                return {"errcode": errcode, "errmsg": "refused by the test"}
        try:
            message = json.loads(body.decode("utf-8"))
            touser, content = message["touser"], message["text"]["content"]
            assert message["msgtype"] == "text" and isinstance(content, str) and content
        except (ValueError, KeyError, TypeError, AssertionError):
            return {"errcode": 44002, "errmsg": "empty post data or bad message"}
        if len(content.encode("utf-8")) > 2048:
            return {"errcode": 45002, "errmsg": "content size out of limit"}
        with self._lock:
            self.sent.append(Sent(touser, content, token))
            self._lock.notify_all()
        return {"errcode": 0, "errmsg": "ok"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

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
                else:
                    self._reply({"errcode": 404, "errmsg": "no such API"})

            def do_POST(self) -> None:  # noqa: N802
                path, query = self._query()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if path == "/cgi-bin/message/custom/send":
                    self._reply(server._send(query, body))
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
