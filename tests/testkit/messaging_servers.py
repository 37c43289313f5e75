"""Local stand-ins for the messaging apps' APIs, and requests signed as their servers sign.

- `TelegramServer`: the Bot API (`POST /bot<token>/<method>`: setWebhook, sendMessage,
  getMe), JSON or form parameters, `{"ok": ..., "result": ...}` answers.
- `TwilioServer`: `POST /2010-04-01/Accounts/<sid>/Messages.json`, form-encoded, HTTP
  Basic auth with the account SID and auth token, a message resource (201) back.
- `GraphServer`: Facebook's `POST /v<version>/me/messages?access_token=...` (JSON).

Each keeps what it was sent and can be told to refuse the next calls. The signing
functions are written from the providers' documentation, not with our code or theirs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.testkit.local_server import LocalServer


@dataclass(frozen=True)
class Call:
    method: str  # the API method ("sendMessage", "Messages", "messages")
    fields: dict[str, Any]
    query: dict[str, str] = field(default_factory=dict)
    authorization: str = ""


class RecordingServer(LocalServer):
    """A threaded HTTP server that records calls; subclasses answer them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self._failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}


    def fail_next(self, method: str, status: int, body: dict[str, Any], times: int = 1) -> None:
        with self._lock:
            self._failures.setdefault(method, []).extend([(status, body)] * times)

    def _failure(self, method: str) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            queue = self._failures.get(method) or []
            return queue.pop(0) if queue else None

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
            self._lock.notify_all()

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def wait_until(self, condition: Any, timeout: float = 30, what: str = "calls") -> list[Call]:
        """The calls, once `condition(calls)` holds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition(self.calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{what}: not seen in {timeout} s; got {self.calls}")
                self._lock.wait(left)
            return list(self.calls)

    def answer(self, path: str, query: dict[str, str], headers: Any,
               body: bytes) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = server.answer(parts.path, query, self.headers, body)
                data = json.dumps(answer).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        return Handler


def _form_or_json(headers: Any, body: bytes) -> dict[str, Any]:
    if (headers.get("Content-Type") or "").startswith("application/json"):
        return dict(json.loads(body.decode("utf-8")))
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}


# Telegram -----------------------------------------------------------------------------


class TelegramServer(RecordingServer):
    def __init__(self, token: str = "123456789:TEST-telegram-token_0123456789",  # noqa: S107
                 ) -> None:
        super().__init__()
        self.token = token
        self._message_ids = itertools.count(1)

    def env(self, secret: str, webhook_url: str) -> dict[str, str]:
        """The settings that point our Telegram channel at this server."""
        return {"TELEGRAM_ACCESS_TOKEN": self.token, "TELEGRAM_SECRET_TOKEN": secret,
                "TELEGRAM_WEBHOOK_URL": webhook_url, "TELEGRAM_API_BASE": self.url}

    def messages_to(self, chat_id: int | str) -> list[str]:
        return [c.fields["text"] for c in self.calls_to("sendMessage")
                if str(c.fields.get("chat_id")) == str(chat_id)]

    def wait_for_text(self, chat_id: int | str, containing: str = "", count: int = 1,
                      timeout: float = 30) -> list[str]:
        def seen(calls: list[Call]) -> bool:
            texts = [c.fields.get("text", "") for c in calls if c.method == "sendMessage"
                     and str(c.fields.get("chat_id")) == str(chat_id)]
            return sum(containing in t for t in texts) >= count
        self.wait_until(seen, timeout, f"{count} message(s) with {containing!r} to {chat_id}")
        return self.messages_to(chat_id)

    def answer(self, path: str, query: dict[str, str], headers: Any,
               body: bytes) -> tuple[int, dict[str, Any]]:
        found = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", path)
        if not found:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        token, method = found.groups()
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        try:
            fields = {**query, **_form_or_json(headers, body)}
        except (ValueError, UnicodeDecodeError):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request"}
        failure = self._failure(method)
        if failure:
            self.record(Call(f"{method}:refused", fields))
            return failure
        if method == "getMe":
            return 200, {"ok": True, "result": {"id": int(self.token.split(":")[0]),
                                                "is_bot": True, "first_name": "Card",
                                                "username": "card_test_bot"}}
        if method == "setWebhook":
            self.record(Call(method, fields))
            return 200, {"ok": True, "result": True, "description": "Webhook was set"}
        if method == "sendMessage":
            text, chat_id = fields.get("text", ""), fields.get("chat_id")
            if not chat_id or not text.strip():
                return 400, {"ok": False, "error_code": 400,
                             "description": "Bad Request: message text is empty"}
            if len(text) > 4096:
                return 400, {"ok": False, "error_code": 400,
                             "description": "Bad Request: message is too long"}
            self.record(Call(method, fields))
            return 200, {"ok": True, "result": {
                "message_id": next(self._message_ids), "date": int(time.time()),
                "chat": {"id": int(chat_id), "type": "private"}, "text": text}}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}


def telegram_update(chat_id: int, text: str, language: str = "en",
                    update_id: int | None = None) -> dict[str, Any]:
    """A text message update as Telegram posts it to a webhook."""
    user = {"id": chat_id, "is_bot": False, "first_name": "Test", "language_code": language}
    return {"update_id": update_id or int(time.time() * 1000) % 2**31, "message": {
        "message_id": 1, "date": int(time.time()), "from": user,
        "chat": {"id": chat_id, "type": "private", "first_name": "Test"}, "text": text}}


# Twilio -------------------------------------------------------------------------------


class TwilioServer(RecordingServer):
    def __init__(self, account_sid: str = "AC" + "0123456789abcdef" * 2,
                 auth_token: str = "twilio-test-auth-token") -> None:  # noqa: S107
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._sids = itertools.count(1)

    def env(self, number: str, webhook_url: str) -> dict[str, str]:
        """The settings that point our WhatsApp channel at this server; `webhook_url` is the
        public one Twilio signs (behind a proxy, not the one Rasa sees)."""
        return {"TWILIO_ACCOUNT_SID": self.account_sid, "TWILIO_AUTH_TOKEN": self.auth_token,
                "TWILIO_NUMBER": number, "TWILIO_WEBHOOK_URL": webhook_url,
                "TWILIO_API_BASE": self.url}

    def messages_to(self, to: str) -> list[str]:
        return [c.fields["Body"] for c in self.calls_to("Messages") if c.fields.get("To") == to]

    def wait_for_text(self, to: str, containing: str = "", count: int = 1,
                      timeout: float = 30) -> list[str]:
        def seen(calls: list[Call]) -> bool:
            texts = [c.fields.get("Body", "") for c in calls
                     if c.method == "Messages" and c.fields.get("To") == to]
            return sum(containing in t for t in texts) >= count
        self.wait_until(seen, timeout, f"{count} message(s) with {containing!r} to {to}")
        return self.messages_to(to)

    def answer(self, path: str, query: dict[str, str], headers: Any,
               body: bytes) -> tuple[int, dict[str, Any]]:
        if path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return 404, {"code": 20404, "message": "The requested resource was not found",
                         "status": 404}
        expected = "Basic " + base64.b64encode(
            f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if headers.get("Authorization") != expected:
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
        failure = self._failure("Messages")
        if failure:
            self.record(Call("Messages:refused", fields))
            return failure
        if not fields.get("To") or not fields.get("From") or not fields.get("Body"):
            return 400, {"code": 21602, "message": "Message body is required.", "status": 400}
        self.record(Call("Messages", fields))
        sid = f"SM{next(self._sids):032x}"
        return 201, {"sid": sid, "account_sid": self.account_sid, "to": fields["To"],
                     "from": fields["From"], "body": fields["Body"], "status": "queued",
                     "num_segments": "1", "direction": "outbound-api", "api_version":
                     "2010-04-01", "uri": f"/2010-04-01/Accounts/{self.account_sid}"
                                          f"/Messages/{sid}.json"}


def twilio_signature(auth_token: str, url: str, fields: dict[str, str]) -> str:
    """Twilio's documented scheme: the URL, then each field's name and value sorted by
    name, HMAC-SHA1 with the auth token, base64."""
    data = url + "".join(name + fields[name] for name in sorted(fields))
    digest = hmac.new(auth_token.encode(), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def whatsapp_form(sender: str, text: str, to: str) -> dict[str, str]:
    """The fields Twilio posts for an incoming WhatsApp text."""
    return {"SmsMessageSid": "SM" + hashlib.md5(text.encode()).hexdigest(),  # noqa: S324
            "NumMedia": "0", "ProfileName": "Test", "SmsSid": "SM1", "WaId": sender[10:],
            "SmsStatus": "received", "Body": text, "To": to, "NumSegments": "1",
            "MessageSid": "SM" + hashlib.sha1(text.encode()).hexdigest()[:32],  # noqa: S324
            "AccountSid": "AC" + "0" * 32, "From": sender, "ApiVersion": "2010-04-01"}


def form_body(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode("ascii")


# Facebook -----------------------------------------------------------------------------


class GraphServer(RecordingServer):
    def __init__(self, page_access_token: str = "graph-test-page-token") -> None:  # noqa: S107
        super().__init__()
        self.page_access_token = page_access_token

    def texts_to(self, psid: str) -> list[str]:
        return [c.fields["message"]["text"] for c in self.calls_to("messages")
                if c.fields["recipient"]["id"] == psid and "text" in c.fields.get("message", {})]

    def answer(self, path: str, query: dict[str, str], headers: Any,
               body: bytes) -> tuple[int, dict[str, Any]]:
        if not re.fullmatch(r"/v[0-9.]+/me/messages", path):
            return 404, {"error": {"message": "Unknown path", "code": 803}}
        if query.get("access_token") != self.page_access_token:
            return 400, {"error": {"message": "Invalid OAuth access token.", "type":
                                   "OAuthException", "code": 190}}
        fields = json.loads(body.decode("utf-8"))
        recipient = fields.get("recipient", {}).get("id")
        if "sender_action" in fields:
            self.record(Call("sender_action", fields))
            return 200, {"recipient_id": recipient}
        self.record(Call("messages", fields))
        return 200, {"recipient_id": recipient, "message_id": f"m_{len(self.calls)}"}


def messenger_body(psid: str, text: str) -> bytes:
    """A page webhook event for one text message, as Messenger posts it."""
    now = int(time.time() * 1000)
    return json.dumps({"object": "page", "entry": [{"id": "PAGE", "time": now, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": "PAGE"}, "timestamp": now,
         "message": {"mid": f"mid.{now}", "text": text}}]}]}, ensure_ascii=False).encode()


def hub_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
