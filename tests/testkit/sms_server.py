"""A local stand-in for Aliyun SMS (`dysmsapi`): the RPC endpoint answering `SendSms`
(API version 2017-05-25) as Aliyun does, checks and error codes included.

The gateway's checks come first, with HTTP 4xx and a JSON body carrying `Code`: every common
parameter present (MissingParameter), the signature method and version, the AccessKey ID
known (InvalidAccessKeyId.NotFound), the Timestamp within 15 minutes of this server's clock
(InvalidTimeStamp.Expired), the signature recomputed with the AccessKey secret
(SignatureDoesNotMatch), the nonce never seen before (SignatureNonceUsed). Then SendSms's own,
answered with HTTP 200 and an `isv.*` code: the sign name and template code registered, the
mainland number format, TemplateParam a JSON object of strings covering the template's
variables, each at most `variable_limit` characters and no link, the balance, and the flow
control per number (a message a minute, five an hour, ten a day by default).

The clock is this server's own: `offset` moves it, so a test sees a stale timestamp or a
new minute of the flow control without waiting. The signing below is written from Aliyun's
documentation (RPC signature, version 1.0), not with the code under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from tests.testkit.local_server import LocalServer

COMMON = ("AccessKeyId", "Action", "Format", "RegionId", "SignatureMethod", "SignatureNonce",
          "SignatureVersion", "Timestamp", "Version", "Signature")
TIMESTAMP_WINDOW = dt.timedelta(minutes=15)
# Aliyun's default flow control per number: (window in seconds, messages in it).
DEFAULT_LIMITS = ((60, 1), (3600, 5), (86400, 10))
_MAINLAND = re.compile(r"(?:\+86|0086|86|\+)?(1[3-9]\d{9})")
_VARIABLE = re.compile(r"\$\{(\w+)\}")
_LINK = re.compile(r"https?://|www\.|\w\.(?:com|cn|net)\b", re.IGNORECASE)


def aliyun_signature(secret: str, method: str, params: dict[str, str]) -> str:
    """Aliyun's RPC signature, version 1.0, from its documentation."""
    def encode(text: str) -> str:
        return quote(text, safe="-_.~")

    query = "&".join(f"{encode(k)}={encode(params[k])}" for k in sorted(params)
                     if k != "Signature")
    to_sign = f"{method}&{encode('/')}&{encode(query)}"
    mac = hmac.new(f"{secret}&".encode(), to_sign.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


@dataclass(frozen=True)
class Sms:
    number: str  # as Aliyun keeps it: 11 digits
    sign_name: str
    template_code: str
    params: dict[str, str]
    out_id: str
    text: str  # what the phone shows
    at: dt.datetime


@dataclass
class AliyunSmsServer(LocalServer):
    access_key_id: str = "LTAI5tTestKeyForSms00000"
    access_key_secret: str = "test-access-key-secret-for-sms"  # noqa: S105 - a test double's
    sign_names: tuple[str, ...] = ("社保卡服务",)
    templates: dict[str, str] = field(default_factory=dict)  # code -> text with ${variables}
    limits: tuple[tuple[int, int], ...] = DEFAULT_LIMITS
    variable_limit: int = 20
    balance: int | None = None  # messages left; None: never runs out
    # Moves this server's clock (a test's time travel; Aliyun's clock is not ours).
    offset: dt.timedelta = dt.timedelta()

    def __post_init__(self) -> None:
        super().__init__()
        # Stopping waits for the serving loop's next look: keep that short, tests make many.
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self.sent: list[Sms] = []
        self.refused: list[str] = []  # every code other than OK, in order
        self.requests: list[tuple[str, bytes]] = []  # (method, body or query) as received
        self._nonces: set[str] = set()
        self._failures: list[tuple[int, str, str]] = []
        self._biz = itertools.count(900_000_000)

    # What tests use ---------------------------------------------------------------------

    def env(self, **templates: str) -> dict[str, str]:
        """The settings pointing the card service here; `templates` by kind (card_ready=...)."""
        return {"SMS_PROVIDER": "aliyun", "SMS_ACCESS_KEY_ID": self.access_key_id,
                "SMS_ACCESS_KEY_SECRET": self.access_key_secret,
                "SMS_SIGN_NAME": self.sign_names[0], "SMS_API_BASE": self.url,
                **{f"SMS_TEMPLATE_{kind.upper()}": code for kind, code in templates.items()}}

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)

    def fail_next(self, status: int, code: str, message: str = "refused by the test",
                  times: int = 1) -> None:
        """The next sends that pass the gateway's checks get this answer instead."""
        with self._lock:
            self._failures.extend([(status, code, message)] * times)

    def sent_to(self, number: str) -> list[Sms]:
        with self._lock:
            return [sms for sms in self.sent if sms.number == number]

    # The API ----------------------------------------------------------------------------

    def answer(self, method: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        status, body = self._answer(method, params)
        body = {"RequestId": str(uuid.uuid4()).upper(), **body}
        if body.get("Code") != "OK":
            body.setdefault("HostId", "dysmsapi.aliyuncs.com")
            with self._lock:
                self.refused.append(body["Code"])
        return status, body

    def _answer(self, method: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        for name in COMMON:
            if not params.get(name):
                return 400, _error("MissingParameter", f'The input parameter "{name}" that is '
                                   "mandatory for processing this request is not supplied.")
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            return 400, _error("InvalidParameter", "The specified signature method or version "
                               "is not supported.")
        if params["Version"] != "2017-05-25" or params["Action"] != "SendSms":
            return 404, _error("InvalidAction.NotFound", "Specified api is not found, please "
                               "check your url and method.")
        if params["Format"] != "JSON":
            return 400, _error("InvalidParameter", "This stand-in answers JSON only.")
        if params["AccessKeyId"] != self.access_key_id:
            return 404, _error("InvalidAccessKeyId.NotFound", "Specified access key is not "
                               "found.")
        try:
            stamp = dt.datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=dt.timezone.utc)
        except ValueError:
            return 400, _error("InvalidTimeStamp.Format", "Specified time stamp or date value "
                               "is not well formatted.")
        now = self.now()
        if abs(now - stamp) > TIMESTAMP_WINDOW:
            return 400, _error("InvalidTimeStamp.Expired", "Specified time stamp or date value "
                               "is expired.")
        expected = aliyun_signature(self.access_key_secret, method, params)
        if not hmac.compare_digest(expected, params["Signature"]):
            return 400, _error("SignatureDoesNotMatch", "Specified signature is not matched "
                               "with our calculation.")
        with self._lock:
            if params["SignatureNonce"] in self._nonces:
                return 400, _error("SignatureNonceUsed", "Specified signature nonce was used "
                                   "already.")
            self._nonces.add(params["SignatureNonce"])
            if self._failures:
                status, code, message = self._failures.pop(0)
                return status, _error(code, message)
        return self._send_sms(params, now)

    def _send_sms(self, params: dict[str, str], now: dt.datetime) -> tuple[int, dict[str, Any]]:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                return 400, _error("MissingParameter", f'The input parameter "{name}" that is '
                                   "mandatory for processing this request is not supplied.")
        if params["SignName"] not in self.sign_names:
            return 200, _error("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        text = self.templates.get(params["TemplateCode"])
        if text is None:
            return 200, _error("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        numbers = []
        for raw in params["PhoneNumbers"].split(","):
            found = _MAINLAND.fullmatch(raw.strip())
            if not found:
                return 200, _error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
            numbers.append(found[1])
        try:
            values = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            return 200, _error("isv.INVALID_JSON_PARAM", "JSON参数不合法")
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            return 200, _error("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        wanted = _VARIABLE.findall(text)
        if any(not values.get(name) for name in wanted):
            return 200, _error("isv.TEMPLATE_MISSING_PARAMETERS", "模板缺少变量")
        if any(len(values[name]) > self.variable_limit for name in wanted):
            return 200, _error("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
        if any(_LINK.search(values[name]) for name in wanted):
            return 200, _error("isv.PARAM_NOT_SUPPORT_URL", "不支持URL")
        with self._lock:
            if self.balance is not None and self.balance < len(numbers):
                return 200, _error("isv.AMOUNT_NOT_ENOUGH", "账户余额不足")
            for number in numbers:
                earlier = [sms.at for sms in self.sent if sms.number == number
                           and sms.sign_name == params["SignName"]]
                for seconds, most in self.limits:
                    since = now - dt.timedelta(seconds=seconds)
                    if sum(at > since for at in earlier) >= most:
                        return 200, _error("isv.BUSINESS_LIMIT_CONTROL", "触发号码天级流控")
            shown = f"【{params['SignName']}】" + _VARIABLE.sub(lambda m: values[m[1]], text)
            for number in numbers:
                self.sent.append(Sms(number, params["SignName"], params["TemplateCode"],
                                     {name: values[name] for name in wanted},
                                     params.get("OutId", ""), shown, now))
            if self.balance is not None:
                self.balance -= len(numbers)
            biz = next(self._biz)
        return 200, {"Code": "OK", "Message": "OK", "BizId": f"{biz}^0"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, method: str, raw: bytes) -> None:
                with server._lock:
                    server.requests.append((method, raw))
                try:
                    params = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"),
                                                           keep_blank_values=True).items()}
                except UnicodeDecodeError:
                    params = {}
                status, body = server.answer(method, params)
                data = json.dumps(body, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._handle("GET", urlsplit(self.path).query.encode())

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self._handle("POST", self.rfile.read(length))

            def log_message(self, *_: Any) -> None:
                pass

        return Handler


def _error(code: str, message: str) -> dict[str, str]:
    return {"Code": code, "Message": message}
