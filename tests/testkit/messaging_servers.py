"""Local stand-ins for the messaging apps' APIs, and requests signed as their servers sign.

- `TelegramServer`: the Bot API (`POST /bot<token>/<method>`: setWebhook, sendMessage,
  getMe), JSON or form parameters, `{"ok": ..., "result": ...}` answers. A chat the test
  marks `blocked` (or `deactivated`, `unknown`) is refused as Telegram refuses it, and
  `flood` answers 429 with `parameters.retry_after`.
- `TwilioServer`: `POST /2010-04-01/Accounts/<sid>/Messages.json`, form-encoded, HTTP
  Basic auth with the account SID and auth token, a message resource (201) back. A body
  (free-form) or a content template (`ContentSid` with `ContentVariables`, a JSON string
  of numbered variables) registered by the test.
- `GraphServer`: Facebook's `POST /v<version>/me/messages` (JSON), the Page token in the
  query (`access_token`) or an `Authorization: Bearer` header. Text and button templates,
  message tags, and utility messages from templates registered by the test.

Each keeps what it was sent (`Call.how`: the way it was sent) and can be told to refuse the
next calls. With `windows=True` Twilio and Messenger keep their 24-hour rule: a free-form
message reaches a user only within 24 hours of the last message the user sent, which the
test sends through the server (`user_says`) or reports (`user_wrote`), against the server's
clock, which the test moves (`advance`). Off by default: older tests post their users'
messages to Rasa directly, so the server never hears them.

The signing functions and the providers' rules and error bodies are written from the
providers' documentation, not with our code or theirs.
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

import requests

from tests.testkit.local_server import LocalServer

# A status, a JSON body and, where the provider sends any, extra headers (Retry-After).
Answer = tuple[int, dict[str, Any]] | tuple[int, dict[str, Any], dict[str, str]]
WINDOW_SECONDS = 24 * 3600
HUMAN_AGENT_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Call:
    method: str  # the API method ("sendMessage", "Messages", "messages")
    fields: dict[str, Any]
    query: dict[str, str] = field(default_factory=dict)
    authorization: str = ""
    # How an accepted message was sent: "body" or "template" (Twilio), the messaging_type
    # (Messenger: "RESPONSE", "UPDATE", "MESSAGE_TAG", "UTILITY"), "text" or
    # "inline_keyboard" (Telegram).
    how: str = ""


class RecordingServer(LocalServer):
    """A threaded HTTP server that records calls; subclasses answer them. Its clock is the
    real one moved by `advance`."""

    def __init__(self, windows: bool = False) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.windows = windows
        self.offset_seconds = 0.0
        self._failures: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = {}
        # When each user last wrote (server clock), for the reply windows.
        self._wrote: dict[str, float] = {}

    def now(self) -> float:
        return time.time() + self.offset_seconds

    def advance(self, hours: float = 0, days: float = 0) -> None:
        """Moves the server's clock on: a window that was open may now be closed."""
        with self._lock:
            self.offset_seconds += hours * 3600 + days * 86400

    def user_wrote(self, user: str) -> None:
        """The user sent the business a message now (by the server's clock)."""
        with self._lock:
            self._wrote[user] = self.now()

    def since_user_wrote(self, user: str) -> float | None:
        """Seconds since the user last wrote; None if never."""
        with self._lock:
            wrote = self._wrote.get(user)
        return None if wrote is None else self.now() - wrote

    def in_window(self, user: str, seconds: float = WINDOW_SECONDS) -> bool:
        since = self.since_user_wrote(user)
        return not self.windows or (since is not None and since < seconds)

    def fail_next(self, method: str, status: int, body: dict[str, Any], times: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self._failures.setdefault(method, []).extend(
                [(status, body, dict(headers or {}))] * times)

    def _failure(self, method: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
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

    def answer(self, path: str, query: dict[str, str], headers: Any, body: bytes) -> Answer:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer, *extra = server.answer(parts.path, query, self.headers, body)
                data = json.dumps(answer).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
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


def telegram_error(status: int, description: str, **parameters: Any) -> dict[str, Any]:
    """A Bot API error body."""
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


BLOCKED = "Forbidden: bot was blocked by the user"
DEACTIVATED = "Forbidden: user is deactivated"
CHAT_NOT_FOUND = "Bad Request: chat not found"


class TelegramServer(RecordingServer):
    def __init__(self, token: str = "123456789:TEST-telegram-token_0123456789",  # noqa: S107
                 ) -> None:
        super().__init__()
        self.token = token
        self._message_ids = itertools.count(1)
        # chat id -> (status, description) for every message to it.
        self._refusals: dict[str, tuple[int, str]] = {}

    def env(self, secret: str, webhook_url: str) -> dict[str, str]:
        """The settings that point our Telegram channel at this server."""
        return {"TELEGRAM_ACCESS_TOKEN": self.token, "TELEGRAM_SECRET_TOKEN": secret,
                "TELEGRAM_WEBHOOK_URL": webhook_url, "TELEGRAM_API_BASE": self.url}

    def block(self, chat_id: int | str) -> None:
        """The user blocked the bot."""
        self._refuse(chat_id, 403, BLOCKED)

    def deactivate(self, chat_id: int | str) -> None:
        """The user deleted their Telegram account."""
        self._refuse(chat_id, 403, DEACTIVATED)

    def forget(self, chat_id: int | str) -> None:
        """No such chat (an id Telegram does not know)."""
        self._refuse(chat_id, 400, CHAT_NOT_FOUND)

    def _refuse(self, chat_id: int | str, status: int, description: str) -> None:
        with self._lock:
            self._refusals[str(chat_id)] = (status, description)

    def flood(self, retry_after: int, times: int = 1) -> None:
        """The next sendMessage calls hit Telegram's flood control."""
        self.fail_next("sendMessage", 429, telegram_error(
            429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after),
            times)

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

    def answer(self, path: str, query: dict[str, str], headers: Any, body: bytes) -> Answer:
        found = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", path)
        if not found:
            return 404, telegram_error(404, "Not Found")
        token, method = found.groups()
        if token != self.token:
            return 401, telegram_error(401, "Unauthorized")
        try:
            fields = {**query, **_form_or_json(headers, body)}
        except (ValueError, UnicodeDecodeError):
            return 400, telegram_error(400, "Bad Request")
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
            return self._send(fields)
        return 404, telegram_error(404, "Not Found")

    def _send(self, fields: dict[str, Any]) -> Answer:
        text, chat_id = str(fields.get("text") or ""), fields.get("chat_id")
        if not chat_id or not text.strip():
            return 400, telegram_error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return 400, telegram_error(400, "Bad Request: message is too long")
        with self._lock:
            refusal = self._refusals.get(str(chat_id))
        if refusal:
            self.record(Call("sendMessage:refused", fields))
            return refusal[0], telegram_error(*refusal)
        how = "text"
        if fields.get("reply_markup"):
            problem = _markup_problem(fields["reply_markup"])
            if problem:
                return 400, telegram_error(400, f"Bad Request: {problem}")
            how = "inline_keyboard"
        self.record(Call("sendMessage", fields, how=how))
        return 200, {"ok": True, "result": {
            "message_id": next(self._message_ids), "date": int(self.now()),
            "chat": {"id": int(chat_id), "type": "private"}, "text": text}}


def _markup_problem(markup: Any) -> str:
    """What Telegram says of a malformed inline keyboard ("" when it is fine)."""
    try:
        parsed = json.loads(markup) if isinstance(markup, str) else markup
        rows = parsed["inline_keyboard"]
    except (ValueError, TypeError, KeyError):
        return "can't parse reply keyboard markup JSON object"
    for row in rows if isinstance(rows, list) else [None]:
        for button in row if isinstance(row, list) else [None]:
            if not isinstance(button, dict) or not button.get("text"):
                return "can't parse inline keyboard button: Text buttons are unallowed"
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                return "BUTTON_DATA_INVALID"
    return ""


def telegram_update(chat_id: int, text: str, language: str = "en",
                    update_id: int | None = None) -> dict[str, Any]:
    """A text message update as Telegram posts it to a webhook."""
    user = {"id": chat_id, "is_bot": False, "first_name": "Test", "language_code": language}
    return {"update_id": update_id or int(time.time() * 1000) % 2**31, "message": {
        "message_id": 1, "date": int(time.time()), "from": user,
        "chat": {"id": chat_id, "type": "private", "first_name": "Test"}, "text": text}}


# Twilio -------------------------------------------------------------------------------


def twilio_error(code: int, message: str, status: int = 400) -> dict[str, Any]:
    """Twilio's REST error body."""
    return {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


OUTSIDE_WINDOW = ("Failed to send freeform message because you are outside the allowed "
                  "window. If you are using WhatsApp, please use a Message Template.")
CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")


class TwilioServer(RecordingServer):
    def __init__(self, account_sid: str = "AC" + "0123456789abcdef" * 2,
                 auth_token: str = "twilio-test-auth-token",  # noqa: S107
                 windows: bool = False) -> None:
        super().__init__(windows)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._sids = itertools.count(1)
        # Content SID -> how many numbered variables its template has ({{1}}..{{n}}).
        self._contents: dict[str, int] = {}
        # WhatsApp address -> (code, message) for every message to it.
        self._refusals: dict[str, tuple[int, str]] = {}

    def env(self, number: str, webhook_url: str) -> dict[str, str]:
        """The settings that point our WhatsApp channel at this server; `webhook_url` is the
        public one Twilio signs (behind a proxy, not the one Rasa sees)."""
        return {"TWILIO_ACCOUNT_SID": self.account_sid, "TWILIO_AUTH_TOKEN": self.auth_token,
                "TWILIO_NUMBER": number, "TWILIO_WEBHOOK_URL": webhook_url,
                "TWILIO_API_BASE": self.url}

    def register_content(self, sid: str, variables: int) -> None:
        """A content template approved for WhatsApp, with variables {{1}}..{{variables}}."""
        assert CONTENT_SID.fullmatch(sid), sid
        with self._lock:
            self._contents[sid] = variables

    def opt_out(self, address: str) -> None:
        """The user replied STOP: Twilio refuses every message to them (21610)."""
        with self._lock:
            self._refusals[address] = (21610, "Attempt to send to unsubscribed recipient")

    def not_on_whatsapp(self, address: str) -> None:
        """The number has no WhatsApp account (63003)."""
        with self._lock:
            self._refusals[address] = (63003, "Channel could not find To address")

    def user_says(self, address: str, text: str, to: str, webhook_url: str,
                  signed_url: str) -> requests.Response:
        """A WhatsApp user's message, posted to our webhook as Twilio posts it (signed for
        `signed_url`); the user's 24-hour window opens now."""
        self.user_wrote(address)
        fields = whatsapp_form(address, text, to)
        return requests.post(webhook_url, data=form_body(fields), timeout=60, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(self.auth_token, signed_url, fields)})

    def accepted(self, to: str, how: str | None = None) -> list[Call]:
        """The messages Twilio took for `to` (sent as `how`: "body", "template")."""
        return [c for c in self.calls_to("Messages")
                if c.fields.get("To") == to and how in (None, c.how)]

    def messages_to(self, to: str) -> list[str]:
        return [c.fields["Body"] for c in self.accepted(to, "body")]

    def wait_for_text(self, to: str, containing: str = "", count: int = 1,
                      timeout: float = 30) -> list[str]:
        def seen(calls: list[Call]) -> bool:
            texts = [c.fields.get("Body", "") for c in calls
                     if c.method == "Messages" and c.fields.get("To") == to]
            return sum(containing in t for t in texts) >= count
        self.wait_until(seen, timeout, f"{count} message(s) with {containing!r} to {to}")
        return self.messages_to(to)

    def answer(self, path: str, query: dict[str, str], headers: Any, body: bytes) -> Answer:
        if path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return 404, twilio_error(20404, "The requested resource was not found", 404)
        expected = "Basic " + base64.b64encode(
            f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if headers.get("Authorization") != expected:
            return 401, twilio_error(20003, "Authenticate", 401)
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
        failure = self._failure("Messages")
        if failure:
            self.record(Call("Messages:refused", fields))
            return failure
        refusal = self._refusal(fields)
        if refusal:
            self.record(Call("Messages:refused", fields))
            return 400, twilio_error(*refusal)
        how = "template" if fields.get("ContentSid") else "body"
        self.record(Call("Messages", fields, how=how))
        sid = f"SM{next(self._sids):032x}"
        return 201, {"sid": sid, "account_sid": self.account_sid, "to": fields["To"],
                     "from": fields["From"], "body": fields.get("Body", ""),
                     "status": "queued", "num_segments": "1", "direction": "outbound-api",
                     "api_version": "2010-04-01",
                     "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"}

    def _refusal(self, fields: dict[str, str]) -> tuple[int, str] | None:
        """Twilio's code and message for a send it refuses, else None."""
        to, content = fields.get("To", ""), fields.get("ContentSid")
        if not to or not fields.get("From"):
            return 21604, "A 'To' phone number is required."
        if not re.fullmatch(r"whatsapp:\+[1-9][0-9]{6,14}", to):
            return 21211, f"Invalid 'To' Phone Number: {to}"
        if fields.get("ContentVariables") and not content:
            return 21654, "ContentSid Required"
        with self._lock:
            refusal = self._refusals.get(to)
            variables = self._contents.get(content or "")
        if refusal:
            return refusal
        if content:
            if variables is None:
                return 21655, "The ContentSid is Invalid"
            return _variables_problem(fields.get("ContentVariables"), variables)
        if not fields.get("Body"):
            return 21602, "Message body is required."
        if not self.in_window(to):
            return 63016, OUTSIDE_WINDOW
        return None


def _variables_problem(raw: str | None, expected: int) -> tuple[int, str] | None:
    """A template's variables as Twilio checks them: a JSON object of non-empty strings;
    this server also refuses a missing one (Twilio would fill it with the sample value)."""
    try:
        given = json.loads(raw) if raw else {}
    except ValueError:
        given = None
    if not isinstance(given, dict) or any(
            not isinstance(value, str) or not value.strip() for value in given.values()):
        return 21656, "The ContentVariables Parameter is invalid"
    if set(given) != {str(n) for n in range(1, expected + 1)}:
        return 63028, ("Number of parameters provided does not match the expected number "
                       "of parameters")
    return None


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


def graph_error(code: int, message: str, subcode: int | None = None) -> dict[str, Any]:
    """The Graph API's error body."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                             "fbtrace_id": "ATestTrace"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


OUTSIDE_WINDOW_FB = ("(#10) This message is sent outside of allowed window. Learn more about "
                     "the new policy here: https://developers.facebook.com/docs/"
                     "messenger-platform/policy-overview")
# Refused with code 100 since April 27, 2026 (Meta's Send API documentation).
RETIRED_TAGS = ("ACCOUNT_UPDATE", "POST_PURCHASE_UPDATE", "CONFIRMED_EVENT_UPDATE")


class GraphServer(RecordingServer):
    def __init__(self, page_access_token: str = "graph-test-page-token",  # noqa: S107
                 windows: bool = False) -> None:
        super().__init__(windows)
        self.page_access_token = page_access_token
        # (name, language) -> how many body parameters the utility template has.
        self._templates: dict[tuple[str, str], int] = {}
        self._unavailable: set[str] = set()

    def register_utility_template(self, name: str, language: str, parameters: int) -> None:
        """A utility message template the Page owns (approved), in one language."""
        with self._lock:
            self._templates[(name, language)] = parameters

    def unavailable(self, psid: str) -> None:
        """The person blocked the Page or left Messenger (551)."""
        with self._lock:
            self._unavailable.add(psid)

    def user_says(self, psid: str, text: str, webhook_url: str,
                  app_secret: str) -> requests.Response:
        """A Messenger user's message, posted to our webhook as Meta posts it; the user's
        24-hour window opens now."""
        self.user_wrote(psid)
        body = messenger_body(psid, text)
        return requests.post(webhook_url, data=body, timeout=60, headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": hub_signature(app_secret, body)})

    def texts_to(self, psid: str) -> list[str]:
        return [c.fields["message"]["text"] for c in self.calls_to("messages")
                if c.fields["recipient"]["id"] == psid and "text" in c.fields.get("message", {})]

    def accepted(self, psid: str, how: str | None = None) -> list[Call]:
        """The messages the Send API took for `psid` (sent as `how`: a messaging_type)."""
        return [c for c in self.calls_to("messages")
                if c.fields["recipient"]["id"] == psid and how in (None, c.how)]

    def _token(self, query: dict[str, str], headers: Any) -> str:
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        return token if scheme in ("Bearer", "OAuth") else query.get("access_token", "")

    def answer(self, path: str, query: dict[str, str], headers: Any, body: bytes) -> Answer:
        if not re.fullmatch(r"/v[0-9.]+/me/messages", path):
            return 404, graph_error(803, "Unknown path")
        if self._token(query, headers) != self.page_access_token:
            return 400, graph_error(190, "Invalid OAuth access token.")
        fields = json.loads(body.decode("utf-8"))
        recipient = fields.get("recipient", {}).get("id")
        if "sender_action" in fields:
            self.record(Call("sender_action", fields))
            return 200, {"recipient_id": recipient}
        failure = self._failure("messages")
        if failure:
            self.record(Call("messages:refused", fields))
            return failure
        refusal = self._refusal(str(recipient), fields)
        if refusal:
            self.record(Call("messages:refused", fields))
            return 400, refusal
        self.record(Call("messages", fields, query, headers.get("Authorization") or "",
                         how=fields["messaging_type"]))
        return 200, {"recipient_id": recipient, "message_id": f"m_{len(self.calls)}"}

    def _refusal(self, psid: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        """The Send API's error for a message it refuses, else None."""
        kind, message = fields.get("messaging_type"), fields.get("message")
        with self._lock:
            unavailable = psid in self._unavailable
        if unavailable:
            return graph_error(551, "This person isn't available right now.", 1545041)
        if not isinstance(message, dict):
            return graph_error(100, "(#100) The parameter message is required")
        if kind in ("RESPONSE", "UPDATE"):
            return None if self.in_window(psid) else graph_error(10, OUTSIDE_WINDOW_FB, 2018278)
        if kind == "MESSAGE_TAG":
            tag = fields.get("tag")
            if tag != "HUMAN_AGENT":
                return graph_error(100, f"(#100) Invalid parameter: tag {tag}")
            return (None if self.in_window(psid, HUMAN_AGENT_SECONDS)
                    else graph_error(10, OUTSIDE_WINDOW_FB, 2018278))
        if kind == "UTILITY":
            return self._template_problem(message.get("template"))
        return graph_error(100, "(#100) param messaging_type must be one of {RESPONSE, "
                                "UPDATE, MESSAGE_TAG, UTILITY}")

    def _template_problem(self, template: Any) -> dict[str, Any] | None:
        try:
            key = (template["name"], template["language"]["code"])
            body = [c for c in template.get("components", []) if c.get("type") == "body"]
            values = [p["text"] for c in body for p in c["parameters"] if p["type"] == "text"]
        except (TypeError, KeyError, AttributeError):
            return graph_error(100, "(#100) Invalid parameter: template")
        with self._lock:
            expected = self._templates.get(key)
        if expected is None:
            return graph_error(100, f"(#100) Template {key[0]} ({key[1]}) does not exist")
        if len(values) != expected or not all(isinstance(v, str) and v.strip()
                                              for v in values):
            return graph_error(100, f"(#100) The template needs {expected} body parameters")
        return None


def messenger_body(psid: str, text: str) -> bytes:
    """A page webhook event for one text message, as Messenger posts it."""
    now = int(time.time() * 1000)
    return json.dumps({"object": "page", "entry": [{"id": "PAGE", "time": now, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": "PAGE"}, "timestamp": now,
         "message": {"mid": f"mid.{now}", "text": text}}]}]}, ensure_ascii=False).encode()


def hub_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
