"""The last path for a notice: a text message through Aliyun SMS (`SendSms`, API 2017-05-25),
sent by the card service itself with the phone number it opens at send time.

The request is Aliyun's RPC style, signed as its signature mechanism (version 1.0) says:
every parameter but `Signature`, sorted by name, each name and value percent-encoded by
RFC 3986 (space as %20, `~` kept) and joined with `=` and `&`; the string to sign is
`POST&%2F&` and that query, percent-encoded once more; the signature is the base64 of its
HMAC-SHA1 keyed with the AccessKey secret and `&`. The parameters go in a form body, never
in the URL: the phone number is one of them, and URLs end up in logs.

What a deployer registers with Aliyun (one sign name, one notification template per kind,
with the variables of `TEMPLATE_VARIABLES`) is in `PROPOSED_TEMPLATES`. Each value sent is
shaped to the strictest rule Aliyun has stated for a variable (at most 20 characters,
letters and digits for a number, a date as YYYY-MM-DD), so the send is never refused for a
value the card service could have written otherwise.

    >>> sorted(TEMPLATE_VARIABLES)
    ['card_ready', 'lapse_reminder']
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.notices import FALLBACK, RETRY, SEEN, UNREACHABLE, Outcome
from bot.rules import identity, regions
from bot.settings import Settings

log = logging.getLogger("card_service.sms")

ALIYUN = "aliyun"
ACTION = "SendSms"
API_VERSION = "2017-05-25"
REGION_ID = "cn-hangzhou"  # the one region of dysmsapi
DEFAULT_API_BASE = "https://dysmsapi.aliyuncs.com"
# Aliyun asks for at least a second; a send cut short may still go out (SendSms is not
# idempotent), so the wait is generous rather than tight.
TIMEOUT_SECONDS = 10.0

CARD_READY, LAPSE_REMINDER = "card_ready", "lapse_reminder"
TEMPLATE_VARIABLES: dict[str, tuple[str, ...]] = {
    CARD_READY: ("reference", "city", "ready_on"),
    LAPSE_REMINDER: ("reference", "city", "lapses_on"),
}
# The notification templates a deployer registers, in Chinese (a domestic template). Only
# the reference, a place and a date vary: no name or number of a person is ever sent.
PROPOSED_TEMPLATES: dict[str, str] = {
    CARD_READY: (
        "您为孩子补办的社保卡已制好（受理编号${reference}，${ready_on}起可领取）。"
        "请到${city}原开卡的合作银行网点领取，带上您本人的身份证、孩子的身份证或户口簿"
        "和补卡回执。领卡后社保功能和银行功能需分别激活。咨询请拨12333。"),
    # lapses_on is the report's last valid day (valid_until), hence 有效期至.
    LAPSE_REMINDER: (
        "您为孩子办理的社保卡临时挂失（受理编号${reference}）有效期至${lapses_on}。"
        "如卡仍未找到，请在有效期内带上孩子的身份证或户口簿和您本人的身份证，到${city}的"
        "社保卡服务网点或社保经办机构办理书面挂失；卡已找到则无需办理。咨询请拨12333。"),
}
# Aliyun's older rule held every variable to 20 characters (isv.PARAM_LENGTH_LIMIT); the
# newer per-kind limits are all as long or longer for what we send.
MAX_VARIABLE_CHARS = 20
# The place when the city is one we have no rules for (the national default).
LOCAL_PLACE = "当地"

OK = "OK"
# What each answer of Aliyun means for the notice: (outcome, seconds before trying again,
# what an operator must fix). An operator's problem is logged at ERROR: no guardian can be
# reached by SMS until someone changes the account, the templates or the settings.
_CODES: dict[str, tuple[str, float | None, str]] = {
    # Aliyun's flow control per number (for one sign name: a message a minute, a few an
    # hour, some a day); its shortest window is a minute, so sooner cannot succeed.
    "isv.BUSINESS_LIMIT_CONTROL": (RETRY, 60.0, ""),
    "Throttling": (RETRY, 1.0, ""),
    "Throttling.User": (RETRY, 1.0, ""),
    "Throttling.Api": (RETRY, 1.0, ""),
    "isp.SYSTEM_ERROR": (RETRY, None, ""),
    "InternalError": (RETRY, None, ""),
    "ServiceUnavailable": (RETRY, None, ""),
    # Each attempt signs with a fresh nonce: the next one cannot collide again.
    "SignatureNonceUsed": (RETRY, None, ""),
    # The account's own daily or monthly ceiling, set in the console: messages wait for it.
    "isv.DAY_LIMIT_CONTROL": (RETRY, 3600.0, "the account's daily SMS limit is reached; raise "
                                             "it in the SMS console"),
    "isv.MONTH_LIMIT_CONTROL": (RETRY, 3600.0, "the account's monthly SMS limit is reached; "
                                               "raise it in the SMS console"),
    "isv.MOBILE_NUMBER_ILLEGAL": (UNREACHABLE, None, ""),
    "isv.SMS_TEMPLATE_ILLEGAL": (FALLBACK, None, "the template code is not an approved template "
                                                 "of this account (SMS_TEMPLATE_*)"),
    "isv.SMS_SIGNATURE_ILLEGAL": (FALLBACK, None, "the sign name is not an approved sign name of "
                                                  "this account (SMS_SIGN_NAME)"),
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": (FALLBACK, None, "the sign name is for verification codes "
                                                        "only; a notification needs a general one"),
    "isv.SIGN_STATE_ILLEGAL": (FALLBACK, None, "the sign name is not usable (see its state in "
                                               "the SMS console)"),
    "isv.TEMPLATE_MISSING_PARAMETERS": (FALLBACK, None, "the template has a variable this "
                                                        "service does not send; register the "
                                                        "proposed template text"),
    "isv.INVALID_JSON_PARAM": (FALLBACK, None, "a template variable was refused"),
    "isv.PARAM_LENGTH_LIMIT": (FALLBACK, None, "a template variable is too long for its type"),
    "isv.PARAM_NOT_SUPPORT_URL": (FALLBACK, None, "a template variable looks like a link"),
    "isv.BLACK_KEY_CONTROL_LIMIT": (FALLBACK, None, "the message hit a blocked keyword"),
    "isv.AMOUNT_NOT_ENOUGH": (FALLBACK, None, "the account's balance is used up"),
    "isv.OUT_OF_SERVICE": (FALLBACK, None, "the account is suspended (balance)"),
    "isv.PRODUCT_UN_SUBSCRIPT": (FALLBACK, None, "the account has not enabled SMS"),
    "isv.ACCOUNT_NOT_EXISTS": (FALLBACK, None, "the account does not exist"),
    "isv.ACCOUNT_ABNORMAL": (FALLBACK, None, "the account is abnormal"),
    "isv.DENY_IP_RANGE": (FALLBACK, None, "Aliyun refuses SMS from this server's address"),
    "isp.RAM_PERMISSION_DENY": (FALLBACK, None, "the AccessKey's user lacks the SMS permission "
                                                "(AliyunDysmsFullAccess or dysms:SendSms)"),
    "SignatureDoesNotMatch": (FALLBACK, None, "the AccessKey secret is wrong "
                                              "(SMS_ACCESS_KEY_SECRET)"),
    "IncompleteSignature": (FALLBACK, None, "the request signature is malformed"),
    "InvalidAccessKeyId.NotFound": (FALLBACK, None, "the AccessKey ID is unknown "
                                                    "(SMS_ACCESS_KEY_ID)"),
    "InvalidAccessKeyId.Inactive": (FALLBACK, None, "the AccessKey is disabled"),
    "InvalidTimeStamp.Expired": (FALLBACK, None, "this server's clock is more than 15 minutes "
                                                 "off; set up time synchronisation"),
    "Forbidden.RAM": (FALLBACK, None, "the AccessKey's user may not send SMS"),
}


@dataclass(frozen=True)
class SmsConfig:
    provider: str = ""
    access_key_id: str = ""
    access_key_secret: str = field(default="", repr=False)
    sign_name: str = ""
    # The template code registered for each kind; a kind without one is not sent.
    templates: Mapping[str, str] = field(default_factory=dict)
    api_base: str = DEFAULT_API_BASE
    timeout: float = TIMEOUT_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsConfig:
        sms = settings.sms
        templates = {CARD_READY: sms.template_card_ready,
                     LAPSE_REMINDER: sms.template_lapse_reminder}
        return cls(provider=sms.provider, access_key_id=sms.access_key_id,
                   access_key_secret=sms.access_key_secret, sign_name=sms.sign_name,
                   templates={kind: code for kind, code in templates.items() if code},
                   api_base=sms.api_base.rstrip("/") or DEFAULT_API_BASE)

    def missing(self) -> list[str]:
        """The variables a send needs that are not set.

        >>> SmsConfig(ALIYUN, "id", "secret", templates={CARD_READY: "SMS_1"}).missing()
        ['SMS_SIGN_NAME']
        """
        wanted = {"SMS_ACCESS_KEY_ID": self.access_key_id,
                  "SMS_ACCESS_KEY_SECRET": self.access_key_secret,
                  "SMS_SIGN_NAME": self.sign_name,
                  "SMS_TEMPLATE_CARD_READY or SMS_TEMPLATE_LAPSE_REMINDER": "".join(
                      self.templates.values())}
        return [name for name, value in wanted.items() if not value]

    @property
    def configured(self) -> bool:
        """A provider chosen and everything it needs set (one template at least: a template
        waiting for Aliyun's approval need not hold the other back)."""
        return self.provider == ALIYUN and not self.missing()


# The signature ------------------------------------------------------------------------


def percent_encode(value: str) -> str:
    """RFC 3986 on UTF-8, as Aliyun's RPC signature wants it: letters, digits and `-_.~`
    kept, a space as %20 (not +), `*` and `/` encoded.

    >>> percent_encode("a b*c~-_./社")
    'a%20b%2Ac~-_.%2F%E7%A4%BE'
    """
    return quote(value, safe="")


def canonical_query(params: Mapping[str, str]) -> str:
    """Every parameter but `Signature`, sorted by name, encoded and joined.

    >>> canonical_query({"b": "2", "a": "x y", "Signature": "s"})
    'a=x%20y&b=2'
    """
    return "&".join(f"{percent_encode(name)}={percent_encode(params[name])}"
                    for name in sorted(params) if name != "Signature")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """Base64 of HMAC-SHA1 over the string to sign, keyed with the secret and `&`."""
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode("utf-8"),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def timestamp(moment: dt.datetime) -> str:
    """ISO 8601 in UTC, to the second, as the common parameter `Timestamp`.

    >>> timestamp(dt.datetime(2026, 3, 1, 8, 5, 9, 123, tzinfo=dt.timezone(dt.timedelta(hours=8))))
    '2026-03-01T00:05:09Z'
    """
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed(config: SmsConfig, method: str, action: Mapping[str, str], moment: dt.datetime,
           nonce: str) -> dict[str, str]:
    """The common parameters, the action's, and the `Signature` over them all."""
    params = {"AccessKeyId": config.access_key_id, "Action": ACTION, "Format": "JSON",
              "RegionId": REGION_ID, "SignatureMethod": "HMAC-SHA1", "SignatureNonce": nonce,
              "SignatureVersion": "1.0", "Timestamp": timestamp(moment),
              "Version": API_VERSION, **action}
    params["Signature"] = signature(config.access_key_secret, method, params)
    return params


# What is sent -------------------------------------------------------------------------


def mainland_number(phone: str) -> str | None:
    """The number as SendSms takes a mainland one (11 digits), from the stored form; None
    when it is not a mainland mobile number.

    >>> mainland_number("+86 138 0013 8000"), mainland_number("13800138000")
    ('13800138000', '13800138000')
    >>> mainland_number("010 12345678") is None
    True
    """
    checked = identity.check_mobile(phone or "")
    return checked.value if checked.ok else None


def masked_phone(phone: str) -> str:
    """A phone number as a log line may show it.

    >>> masked_phone("+86 138 0013 8000")
    '13*******00'
    """
    number = mainland_number(phone) or re.sub(r"\D", "", phone or "")
    return identity.mask(number)


def _reference(value: str) -> str:
    """Letters and digits only (Aliyun's "other number" type): the dashes go; the bot and the
    staff tool read it back either way (`identity.parse_reference`).

    >>> _reference("sc-7k3f-9q2m")
    'SC7K3F9Q2M'
    """
    parsed = identity.parse_reference(value)
    if not parsed.ok or parsed.value is None:
        raise ValueError(f"not a reference ({parsed.reason})")
    return parsed.value.replace("-", "")


def _date(value: str) -> str:
    """A calendar date as YYYY-MM-DD, one of the forms Aliyun's date type accepts.

    >>> _date("2026-12-05")
    '2026-12-05'
    """
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"not a date as YYYY-MM-DD: {value!r}") from None


def _place(value: str) -> str:
    """The city in Chinese (the templates are), or 当地 for the national default (also sent
    as no city at all); a city we have no rules for keeps its letters and digits only, cut
    to the limit.

    >>> _place("Shanghai"), _place("全国（通用）"), _place("杭州 <b>"), _place("Xi'an")
    ('上海', '当地', '杭州b', '西安')
    """
    region = regions.lookup(value)
    if region is not None:
        return region.name_zh if region.known else LOCAL_PLACE
    kept = "".join(ch for ch in value if ch.isalnum())
    return kept[:MAX_VARIABLE_CHARS] or LOCAL_PLACE


_SHAPERS: dict[str, Callable[[str], str]] = {
    "reference": _reference, "city": _place, "ready_on": _date, "lapses_on": _date}


def template_param(kind: str, variables: Mapping[str, str]) -> dict[str, str]:
    """The TemplateParam values of `kind`'s template, each within Aliyun's rules; raises
    ValueError naming the variable.

    >>> template_param("card_ready", {"reference": "SC-7K3F-9Q2M", "city": "Beijing",
    ...                               "ready_on": "2026-12-05", "unused": "x"})
    {'reference': 'SC7K3F9Q2M', 'city': '北京', 'ready_on': '2026-12-05'}
    >>> template_param("lapse_reminder", {"reference": "SC-7K3F-9Q2M", "city": ""})
    Traceback (most recent call last):
    ...
    ValueError: lapses_on: required
    """
    names = TEMPLATE_VARIABLES.get(kind)
    if names is None:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(TEMPLATE_VARIABLES)}")
    shaped = {}
    for name in names:
        value = str(variables.get(name) or "").strip()
        if not value and name == "city":  # no city of ours: the text still reads right
            value = LOCAL_PLACE
        if not value:
            raise ValueError(f"{name}: required")
        try:
            shaped[name] = _SHAPERS[name](value)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        if len(shaped[name]) > MAX_VARIABLE_CHARS:
            raise ValueError(f"{name}: longer than {MAX_VARIABLE_CHARS} characters")
    return shaped


# What came back -----------------------------------------------------------------------


def classify(status: int, body: Mapping[str, Any], retry_after: float | None = None) -> Outcome:
    """What an answer of Aliyun means for the notice.

    >>> classify(200, {"Code": "OK", "BizId": "9^0"}).outcome
    'seen'
    >>> classify(200, {"Code": "isv.BUSINESS_LIMIT_CONTROL"}).retry_after
    60.0
    >>> classify(400, {"Code": "SignatureDoesNotMatch"}).outcome
    'fallback'
    >>> classify(502, {}).outcome, classify(403, {}).outcome
    ('retry', 'fallback')
    """
    code = str(body.get("Code") or "")
    message = identity.masked_numbers(str(body.get("Message") or ""))[:200]
    if status == 200 and code == OK:
        return Outcome(SEEN, "", f"accepted, BizId {body.get('BizId') or '?'}")
    known = _CODES.get(code)
    if known is not None:
        outcome, wait, hint = known
        detail = "; ".join(part for part in (message, hint) if part)
        return Outcome(outcome, code, detail, retry_after or wait)
    if status >= 500 or status == 429:
        return Outcome(RETRY, code or f"http_{status}", message or f"HTTP {status}", retry_after)
    # Unknown to us, and not the server's fault: waiting would not change it.
    return Outcome(FALLBACK, code or f"http_{status}",
                   "; ".join(part for part in (message, "an answer this service does not know")
                             if part))


def operator_problem(outcome: Outcome) -> bool:
    """True when someone must change the account, templates or settings."""
    known = _CODES.get(outcome.code)
    return outcome.outcome == FALLBACK or bool(known and known[2])


# The adapter --------------------------------------------------------------------------


class AliyunSms:
    """Sends one notice by SMS and says what became of it (bot/notices.py)."""

    def __init__(self, config: SmsConfig, *, now: Callable[[], dt.datetime] | None = None,
                 nonce: Callable[[], str] | None = None,
                 session: aiohttp.ClientSession | None = None):
        self.config = config
        # Aliyun checks the timestamp against its own clock: wall time, never the card
        # service's shifted clock of demos and tests.
        self._now = now or (lambda: dt.datetime.now(dt.timezone.utc))
        self._nonce = nonce or (lambda: uuid.uuid4().hex)
        self._session = session

    def __repr__(self) -> str:
        return f"AliyunSms({self.config.api_base}, sign {self.config.sign_name!r})"

    async def send(self, phone: str, kind: str, variables: dict[str, str],
                   out_id: str) -> Outcome:
        who = masked_phone(phone)
        number = mainland_number(phone)
        if number is None:
            log.warning("sms %s to %s: not a mainland mobile number, not sent", kind, who)
            return Outcome(UNREACHABLE, "invalid_number", "not a mainland China mobile number")
        template = self.config.templates.get(kind)
        if not template:
            outcome = Outcome(FALLBACK, "template_not_configured",
                              f"SMS_TEMPLATE_{kind.upper()} is not set")
            log.error("sms %s to %s not sent: %s", kind, who, outcome.detail)
            return outcome
        try:
            params = template_param(kind, variables)
        except ValueError as error:
            log.error("sms %s to %s not sent: a variable cannot be sent (%s)", kind, who, error)
            return Outcome(FALLBACK, "invalid_variables", str(error))
        action = {"PhoneNumbers": number, "SignName": self.config.sign_name,
                  "TemplateCode": template,
                  "TemplateParam": json.dumps(params, ensure_ascii=False, separators=(",", ":")),
                  "OutId": out_id}
        body = signed(self.config, "POST", action, self._now(), self._nonce())
        try:
            status, answer, retry_after = await self._post(body)
        except asyncio.TimeoutError:
            log.warning("sms %s to %s: no answer in %s s; it may have gone out (SendSms is not "
                        "idempotent)", kind, who, self.config.timeout)
            return Outcome(RETRY, "timeout", f"no answer in {self.config.timeout} s")
        except (aiohttp.ClientError, OSError) as error:
            log.warning("sms %s to %s: Aliyun unreachable (%s)", kind, who,
                        type(error).__name__)
            return Outcome(RETRY, "network", type(error).__name__)
        outcome = classify(status, answer, retry_after)
        if outcome.outcome == SEEN:
            log.info("sms %s to %s accepted (%s)", kind, who, outcome.detail)
        elif operator_problem(outcome):
            log.error("sms %s to %s refused by Aliyun, operator action needed: %s %s",
                      kind, who, outcome.code, outcome.detail)
        else:
            log.warning("sms %s to %s: %s %s (%s)", kind, who, outcome.outcome, outcome.code,
                        outcome.detail)
        return outcome

    async def _post(self, params: Mapping[str, str]) -> tuple[int, dict[str, Any], float | None]:
        data = "&".join(f"{percent_encode(name)}={percent_encode(value)}"
                        for name, value in params.items()).encode("ascii")
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                   "Accept": "application/json"}
        url = self.config.api_base + "/"
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        if self._session is not None:
            async with self._session.post(url, data=data, headers=headers,
                                          timeout=timeout) as response:
                return await _read(response)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.post(url, data=data, headers=headers) as response:
            return await _read(response)


async def _read(response: aiohttp.ClientResponse) -> tuple[int, dict[str, Any], float | None]:
    raw = await response.read()
    try:
        answer = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        answer = {}
    wait = response.headers.get("Retry-After", "")
    return (response.status, answer if isinstance(answer, dict) else {},
            float(wait) if wait.isdigit() else None)


def make_sms(settings: Settings) -> AliyunSms | None:
    """The SMS path as the settings configure it; None when SMS is off (SMS_PROVIDER empty).
    Raises ValueError naming what is missing when a provider is chosen but not set up."""
    config = SmsConfig.from_settings(settings)
    if not config.provider:
        return None
    if not config.configured:
        raise ValueError(f"SMS_PROVIDER is {config.provider} but "
                         f"{', '.join(config.missing())} not set")
    return AliyunSms(config)
