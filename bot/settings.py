"""Runtime settings: the only module that reads the environment (with `.env` underneath)."""

from __future__ import annotations

import functools
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, unquote, urlsplit

from dotenv import dotenv_values

if TYPE_CHECKING:
    from bot.crypto import Vault

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_REDIS_PORT = 6390
# Measured in `make bench` (cluster-paced web chat, 32 guardians, p95 over runs): every turn
# a process receives run at once 225-350 ms; up to 2 at once 165-323; 3: 217; 4: 151-188.
DEFAULT_TURNS_AT_ONCE = 4
MAX_TURNS_AT_ONCE = 64
# Made on the first `make run` and never rewritten (see `ensure_secrets`).
GENERATED_SECRETS = (
    "RASA_TOKEN",
    "RASA_JWT_SECRET",
    "CARD_SERVICE_TOKEN",
    "CARD_SERVICE_STAFF_TOKEN",
    "CARD_SERVICE_CONSOLE_TOKEN",
    "REDIS_PASSWORD",
    "REDIS_RASA_PASSWORD",
    "REDIS_CARD_SERVICE_PASSWORD",
    "REDIS_CONSOLE_PASSWORD",
    "DATA_ENCRYPTION_KEY",
    # `make run`'s console takes handoffs from its own Rasa; deploy sets its own.
    "HANDOFF_TOKEN",
)

N = TypeVar("N", int, float)


@dataclass(frozen=True)
class WeChatSettings:
    token: str = ""
    app_id: str = ""
    app_secret: str = ""
    api_base: str = "https://api.weixin.qq.com"
    # Safe mode (AES): the platform's EncodingAESKey, and the one before it while a change
    # of key reaches WeChat's servers.
    encoding_aes_key: str = ""
    encoding_aes_key_previous: str = ""
    # Notices past the 48-hour window: the subscription notification's (订阅通知) and the
    # template message's template, each with its keys and what fills them (the keys come
    # with the template the deployer picks on the platform; bot/channels/wechat.py).
    subscribe_template_id: str = ""
    subscribe_template_keys: str = ("character_string1=reference,thing2=status,thing3=city,"
                                    "date4=date")
    template_id: str = ""
    template_keys: str = "character_string1=reference,thing2=status,thing3=city,date4=date"
    # Where phones reach Rasa (https://bot.example.cn): the subscription page's address,
    # on a domain registered as the account's JS interface domain (JS接口安全域名).
    public_url: str = ""


@dataclass(frozen=True)
class TelegramSettings:
    access_token: str = ""
    secret_token: str = ""
    webhook_url: str = ""
    verify: str = ""
    api_base: str = "https://api.telegram.org"


@dataclass(frozen=True)
class TwilioSettings:
    """WhatsApp through Twilio."""

    account_sid: str = ""
    auth_token: str = ""
    number: str = ""
    webhook_url: str = ""
    api_base: str = "https://api.twilio.com"
    # Approved WhatsApp templates (Twilio Content SIDs, HX...) for notices outside the
    # 24-hour window: one SID, or per language "zh:HX...,en:HX..." (bot/channels/whatsapp.py).
    content_sid_card_ready: str = ""
    content_sid_lapse_reminder: str = ""


@dataclass(frozen=True)
class FacebookSettings:
    verify: str = ""
    secret: str = ""
    page_access_token: str = ""
    api_base: str = "https://graph.facebook.com"
    # The Page's approved utility message templates for notices outside the 24-hour window
    # (bot/channels/facebook.py).
    utility_template_card_ready: str = ""
    utility_template_lapse_reminder: str = ""


SMS_PROVIDERS = ("aliyun",)


@dataclass(frozen=True)
class SmsSettings:
    """The card service's last path for a notice (card_service/sms.py); SMS_* variables.
    No provider: no SMS."""

    provider: str = ""
    access_key_id: str = ""
    access_key_secret: str = field(default="", repr=False)
    sign_name: str = ""
    # The approved template code (SMS_...) of each notice.
    template_card_ready: str = ""
    template_lapse_reminder: str = ""
    api_base: str = "https://dysmsapi.aliyuncs.com"


Channel = TypeVar("Channel", WeChatSettings, TelegramSettings, TwilioSettings,
                  FacebookSettings, SmsSettings)


@dataclass(frozen=True)
class Limits:
    """How fast one client may talk (bot/channels/limits.py): messages a minute and how
    many at once, per conversation and per client address; 0 turns a tally off."""

    # A person waits for the answer: a third message while two are pending is a script.
    in_flight: int = 3
    # A whole report is about 15 messages; a person types one every few seconds at best.
    per_conversation: int = 60
    burst: int = 30
    # A school or an office behind one address: many guardians at once.
    per_address: int = 600
    address_burst: int = 200


@dataclass(frozen=True)
class Settings:
    bind_host: str
    rasa_port: int
    actions_port: int
    card_service_port: int
    redis_url: str
    redis_embedded: bool
    redis_embedded_port: int
    rasa_token: str
    card_service_token: str
    staff_token: str
    data_dir: Path
    tracker_expiry_seconds: int
    # Card service: key material for data at rest, an optional Rasa URL override and a
    # clock offset (days) that tests and demos use to see temporary reports lapse.
    data_encryption_key: str = ""
    # Signs the short-lived, one-conversation tokens the card service presents to Rasa's API.
    rasa_jwt_secret: str = ""
    # The embedded Redis's memory ceiling; it never evicts (reports, conversations and the
    # outbox must not vanish): past the ceiling writes fail loudly instead.
    redis_maxmemory: str = "512mb"
    # Each component's own Redis user (bot/redis.py ACL_USERS), used once its password is
    # set: the embedded Redis then turns its default user off (REDIS_PASSWORD becomes the
    # admin user's) and `make run` hands each process a URL naming its user.
    redis_rasa_password: str = ""
    redis_card_service_password: str = ""
    redis_console_password: str = ""
    # The staff console (console/): its own process and port, and its own token for the
    # card service's staff calls, the one token with which a call names its person
    # (X-Staff-User); the shared staff token is for machines (a bank system).
    staff_console_port: int = 8090
    console_token: str = ""
    # Prometheus's HTTP API, where the console's dashboard reads the last seven days (unset:
    # the dashboard says so). Reached from the console's server, never from a browser.
    prometheus_url: str = ""
    # Earlier DATA_ENCRYPTION_KEYs: they still open what they sealed until a rotation.
    data_encryption_keys_retired: tuple[str, ...] = ()
    rasa_url_override: str = ""
    # Where the action server finds the card service when it runs on another host.
    card_service_url_override: str = ""
    clock_offset_days: int = 0
    outbox_max_delay_seconds: float = 60.0
    # Days a report's personal data is kept once its status is final (docs/privacy.md);
    # 0 erases it as soon as the report is final.
    report_retention_days: int = 30
    # Days before a temporary report's last valid day that its guardian is reminded (0: no
    # reminder), and hours a notice kept for the web page waits before the next path (SMS).
    lapse_reminder_days: int = 2
    notice_queue_wait_hours: float = 24.0

    def vault(self) -> Vault:
        """The keys for personal data at rest (conversations and reports)."""
        from bot.crypto import Vault

        return Vault(self.data_encryption_key, self.data_encryption_keys_retired)
    wechat: WeChatSettings = field(default_factory=WeChatSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    twilio: TwilioSettings = field(default_factory=TwilioSettings)
    facebook: FacebookSettings = field(default_factory=FacebookSettings)
    sms: SmsSettings = field(default_factory=SmsSettings)
    # "production" serves the REST channel only with a REST_TOKEN.
    bot_env: str = "development"
    rest_token: str = ""
    # Web chat turns a process runs at once before sharing the rest through Redis (0: a
    # process that only holds sockets, when others run the turns).
    webchat_turns_at_once: int = DEFAULT_TURNS_AT_ONCE
    # Pages that may open a web chat socket; none named: only the page's own origin (the one
    # Rasa serves, or the public one nginx forwards).
    webchat_allowed_origins: tuple[str, ...] = ()
    # Days a web chat notice waits, sealed, for a page of its conversation to open (0:
    # none waits; the card service's next path takes it).
    webchat_unread_days: int = 30
    # How fast one client may talk (bot/channels/limits.py); RATE_* variables.
    limits: Limits = field(default_factory=Limits)
    # How long `make run` waits for every health check.
    start_timeout: float = 300.0
    env_file: Path = ROOT / ".env"
    # Names of Rasa patches to leave out, or "all".
    rasa_patches_off: tuple[str, ...] = ()
    # The agents' handoff API (bot/channels/handoff.py): 503 until a token is set.
    handoff_token: str = ""
    # When agents answer handoffs, China time (bot/handoff.py StaffedHours); outside them the
    # guardian is offered 12333 and the request waits in the queue.
    staffed_hours: str = "Mon-Fri 09:00-17:00"
    # GET /metrics on every process (bot/metrics.py); METRICS=off drops the route and the
    # per-turn counting. Without METRICS_TOKEN only loopback clients may read it.
    metrics_enabled: bool = True
    metrics_token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `env` (the process's environment alone when None); raises
        ValueError naming the variable that is malformed."""
        env = os.environ if env is None else env
        embedded_port = _port(env, "REDIS_EMBEDDED_PORT", EMBEDDED_REDIS_PORT)
        external_url = env.get("REDIS_URL", "").strip()
        if external_url:
            redis_url = external_url
        else:
            password = env.get("REDIS_PASSWORD", "")
            auth = f"{_redis_admin(env)}:{quote(password, safe='')}@" if password else ""
            redis_url = f"redis://{auth}127.0.0.1:{embedded_port}/0"
        return cls(
            bind_host=env.get("BIND_HOST", "127.0.0.1"),
            rasa_port=_port(env, "RASA_PORT", 5005),
            actions_port=_port(env, "ACTIONS_PORT", 5055),
            card_service_port=_port(env, "CARD_SERVICE_PORT", 8080),
            redis_url=redis_url,
            redis_embedded=not external_url,
            redis_embedded_port=embedded_port,
            rasa_token=env.get("RASA_TOKEN", ""),
            card_service_token=env.get("CARD_SERVICE_TOKEN", ""),
            staff_token=env.get("CARD_SERVICE_STAFF_TOKEN", ""),
            data_dir=Path(env.get("DATA_DIR", str(ROOT / "var"))),
            tracker_expiry_seconds=_number(env, "TRACKER_EXPIRY_SECONDS", 90 * 24 * 3600, int),
            data_encryption_key=env.get("DATA_ENCRYPTION_KEY", ""),
            rasa_jwt_secret=env.get("RASA_JWT_SECRET", ""),
            redis_maxmemory=env.get("REDIS_MAXMEMORY", "512mb").strip() or "512mb",
            redis_rasa_password=env.get("REDIS_RASA_PASSWORD", ""),
            redis_card_service_password=env.get("REDIS_CARD_SERVICE_PASSWORD", ""),
            redis_console_password=env.get("REDIS_CONSOLE_PASSWORD", ""),
            staff_console_port=_port(env, "STAFF_CONSOLE_PORT", 8090),
            console_token=env.get("CARD_SERVICE_CONSOLE_TOKEN", ""),
            prometheus_url=_http_url(env, "PROMETHEUS_URL"),
            data_encryption_keys_retired=tuple(
                key.strip() for key in env.get("DATA_ENCRYPTION_KEYS_RETIRED", "").split(",")
                if key.strip()),
            rasa_url_override=env.get("RASA_URL", "").strip().rstrip("/"),
            card_service_url_override=env.get("CARD_SERVICE_URL", "").strip().rstrip("/"),
            clock_offset_days=_number(env, "CARD_SERVICE_CLOCK_OFFSET_DAYS", 0, int),
            outbox_max_delay_seconds=_number(env, "CARD_SERVICE_OUTBOX_MAX_DELAY", 60.0, float),
            report_retention_days=_days(env, "REPORT_RETENTION_DAYS", 30),
            lapse_reminder_days=_days(env, "LAPSE_REMINDER_DAYS", 2),
            notice_queue_wait_hours=_number(env, "NOTICE_QUEUE_WAIT_HOURS", 24.0, float),
            wechat=_section(WeChatSettings, env, "WECHAT_"),
            telegram=_section(TelegramSettings, env, "TELEGRAM_"),
            twilio=_section(TwilioSettings, env, "TWILIO_"),
            facebook=_section(FacebookSettings, env, "FACEBOOK_"),
            sms=sms_settings(env),
            bot_env=(env.get("BOT_ENV") or "development").strip().lower(),
            rest_token=env.get("REST_TOKEN", "").strip(),
            webchat_turns_at_once=turns_at_once(env.get("WEBCHAT_TURNS_AT_ONCE")),
            webchat_allowed_origins=tuple(
                origin.strip().rstrip("/") for origin in
                env.get("WEBCHAT_ALLOWED_ORIGINS", "").split(",") if origin.strip()),
            webchat_unread_days=_days(env, "WEBCHAT_UNREAD_DAYS", 30),
            limits=Limits(
                in_flight=_number(env, "RATE_TURNS_IN_FLIGHT", Limits.in_flight, int),
                per_conversation=_number(env, "RATE_PER_CONVERSATION", Limits.per_conversation,
                                         int),
                burst=_number(env, "RATE_BURST", Limits.burst, int),
                per_address=_number(env, "RATE_PER_ADDRESS", Limits.per_address, int),
                address_burst=_number(env, "RATE_ADDRESS_BURST", Limits.address_burst, int)),
            start_timeout=_number(env, "START_TIMEOUT", 300.0, float),
            env_file=env_file(env),
            rasa_patches_off=tuple(name.strip() for name in
                                   env.get("RASA_PATCHES_OFF", "").split(",") if name.strip()),
            handoff_token=env.get("HANDOFF_TOKEN", "").strip(),
            staffed_hours=_staffed_hours(env),
            metrics_enabled=_switch(env, "METRICS", True),
            metrics_token=env.get("METRICS_TOKEN", "").strip(),
        )

    @property
    def local_host(self) -> str:
        """Where this machine reaches our own servers (a wildcard bind is not an address)."""
        return "127.0.0.1" if self.bind_host in ("0.0.0.0", "::", "") else self.bind_host  # noqa: S104

    @property
    def redis_password(self) -> str:
        return unquote(urlsplit(self.redis_url).password or "")

    def redis_user_passwords(self) -> dict[str, str]:
        """The component users with a password set, by user name (bot/redis.py)."""
        from bot import redis as bot_redis

        return {name: password for name, password in (
            (bot_redis.RASA_USER, self.redis_rasa_password),
            (bot_redis.CARD_SERVICE_USER, self.redis_card_service_password),
            (bot_redis.CONSOLE_USER, self.redis_console_password)) if password}

    def redis_url_for(self, user: str) -> str:
        """The URL a component connects with: REDIS_URL's server as its own user once its
        password is set, else REDIS_URL itself (one credential for all, as before).

        >>> s = Settings.from_env({"REDIS_PASSWORD": "a", "REDIS_RASA_PASSWORD": "r/1"})
        >>> s.redis_url, s.redis_url_for("rasa"), s.redis_url_for("card-service")
        ('redis://admin:a@127.0.0.1:6390/0', 'redis://rasa:r%2F1@127.0.0.1:6390/0', 'redis://admin:a@127.0.0.1:6390/0')
        """
        password = self.redis_user_passwords().get(user)
        if not password:
            return self.redis_url
        parts = urlsplit(self.redis_url)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        where = f"{host}:{parts.port}" if parts.port else str(host)
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}@"
        return parts._replace(netloc=auth + where).geturl()

    @property
    def rasa_url(self) -> str:
        if self.rasa_url_override:
            return self.rasa_url_override
        return f"http://{self.local_host}:{self.rasa_port}"

    @property
    def actions_url(self) -> str:
        return f"http://{self.local_host}:{self.actions_port}"

    @property
    def card_service_url(self) -> str:
        if self.card_service_url_override:
            return self.card_service_url_override
        return f"http://{self.local_host}:{self.card_service_port}"

    @property
    def staff_console_url(self) -> str:
        return f"http://{self.local_host}:{self.staff_console_port}"

    @property
    def chat_page_url(self) -> str:
        return f"{self.rasa_url}/webhooks/webchat/chat/"

    def child_env(self) -> dict[str, str]:
        """Variables every process of the stack gets; endpoints.yml reads the REDIS_* ones
        (the launcher gives each process its own, `redis_env`)."""
        return {
            "BIND_HOST": self.bind_host,
            "SANIC_HOST": self.bind_host,
            "RASA_PORT": str(self.rasa_port),
            "ACTIONS_PORT": str(self.actions_port),
            "ACTIONS_URL": f"{self.actions_url}/webhook",
            "CARD_SERVICE_PORT": str(self.card_service_port),
            "CARD_SERVICE_URL": self.card_service_url,
            "STAFF_CONSOLE_PORT": str(self.staff_console_port),
            **redis_env(self.redis_url),
            "REDIS_EMBEDDED_PORT": str(self.redis_embedded_port),
            "RASA_TOKEN": self.rasa_token,
            "RASA_JWT_SECRET": self.rasa_jwt_secret,
            "CARD_SERVICE_TOKEN": self.card_service_token,
            "CARD_SERVICE_STAFF_TOKEN": self.staff_token,
            "CARD_SERVICE_CONSOLE_TOKEN": self.console_token,
            "DATA_DIR": str(self.data_dir),
            "TRACKER_EXPIRY_SECONDS": str(self.tracker_expiry_seconds),
        }


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """This process's settings, read once: the environment with `.env` underneath."""
    return Settings.from_env(environment(env_file()))


def env_file(env: Mapping[str, str] | None = None) -> Path:
    """ENV_FILE, else the project's `.env`."""
    env = os.environ if env is None else env
    return Path(env.get("ENV_FILE", "").strip() or ROOT / ".env")


def environment(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment with `.env` filled in underneath: a variable already set wins."""
    env = dict(os.environ if environ is None else environ)
    if path.exists():
        for name, value in dotenv_values(path).items():
            if value is not None:
                env.setdefault(name, value)
    return env


def ensure_secrets(path: Path) -> list[str]:
    """Add every missing secret to `path` (created with mode 600); return the names added.

    Existing values are never rewritten: tokens already handed out and data already
    encrypted must keep working.
    """
    present = dotenv_values(path) if path.exists() else {}
    missing = [name for name in GENERATED_SECRETS if not present.get(name)]
    if missing:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
                out.write("\n")
            for name in missing:
                out.write(f"{name}={secrets.token_urlsafe(32)}\n")
    os.chmod(path, 0o600)
    return missing


def turns_at_once(value: str | None) -> int:
    """`WEBCHAT_TURNS_AT_ONCE`, from 0 to 64.

    >>> turns_at_once(None), turns_at_once(" 2 "), turns_at_once("0")
    (4, 2, 0)
    >>> turns_at_once("many")
    Traceback (most recent call last):
    ...
    ValueError: WEBCHAT_TURNS_AT_ONCE must be a whole number from 0 to 64, not 'many'
    """
    if value is None or not value.strip():
        return DEFAULT_TURNS_AT_ONCE
    if value.strip().isdigit() and int(value) <= MAX_TURNS_AT_ONCE:
        return int(value)
    raise ValueError("WEBCHAT_TURNS_AT_ONCE must be a whole number from 0 to "
                     f"{MAX_TURNS_AT_ONCE}, not {value!r}")


def _section(kind: type[Channel], env: Mapping[str, str], prefix: str) -> Channel:
    """A channel's settings: each field from `<prefix><FIELD>` (WECHAT_APP_ID), trimmed;
    the field's default when unset or empty."""
    values = {each.name: (env.get(prefix + each.name.upper()) or "").strip()
              for each in fields(kind)}
    return kind(**{name: value for name, value in values.items() if value})


def sms_settings(env: Mapping[str, str]) -> SmsSettings:
    """SMS_* variables; SMS_PROVIDER is empty (off) or a provider card_service/sms.py knows.

    >>> sms_settings({"SMS_PROVIDER": " Aliyun ", "SMS_SIGN_NAME": "社保卡通知"}).provider
    'aliyun'
    >>> sms_settings({"SMS_PROVIDER": "twilio"})
    Traceback (most recent call last):
    ...
    ValueError: SMS_PROVIDER must be empty (no SMS) or one of aliyun, not 'twilio'
    """
    sms = _section(SmsSettings, env, "SMS_")
    provider = sms.provider.lower()
    if provider and provider not in SMS_PROVIDERS:
        raise ValueError(f"SMS_PROVIDER must be empty (no SMS) or one of "
                         f"{', '.join(SMS_PROVIDERS)}, not {sms.provider!r}")
    return replace(sms, provider=provider)


def redis_env(url: str) -> dict[str, str]:
    """The REDIS_* variables of a process connecting with `url` (endpoints.yml reads them).

    >>> redis_env("redis://rasa:p%40ss@redis.internal:6380/2")["REDIS_USERNAME"]
    'rasa'
    """
    parts = urlsplit(url)
    return {
        "REDIS_URL": url,
        "REDIS_HOST": parts.hostname or "127.0.0.1",
        "REDIS_PORT": str(parts.port or 6379),
        "REDIS_DB": (parts.path.lstrip("/") or "0"),
        "REDIS_USERNAME": unquote(parts.username or ""),
        "REDIS_PASSWORD": unquote(parts.password or ""),
    }


def _redis_admin(env: Mapping[str, str]) -> str:
    """The user the embedded Redis's URL names: the admin once component users exist (the
    default user is then off), else none (the default user and REDIS_PASSWORD)."""
    from bot.redis import ADMIN_USER

    return ADMIN_USER if env.get("REDIS_RASA_PASSWORD") or \
        env.get("REDIS_CARD_SERVICE_PASSWORD") or env.get("REDIS_CONSOLE_PASSWORD") else ""


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    """`on` or `off` (any case; empty: the default).

    >>> _switch({"METRICS": " OFF "}, "METRICS", True), _switch({}, "METRICS", True)
    (False, True)
    >>> _switch({"METRICS": "maybe"}, "METRICS", True)
    Traceback (most recent call last):
    ...
    ValueError: METRICS must be on or off, got 'maybe'
    """
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("on", "off"):
        raise ValueError(f"{name} must be on or off, got {raw!r}")
    return raw == "on"


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_STAFFED_SPAN = re.compile(r"(?P<first>[a-z]{3})(?:-(?P<last>[a-z]{3}))?\s+"
                           r"(?P<start>\d{1,2}):(?P<sm>\d{2})-(?P<end>\d{1,2}):(?P<em>\d{2})")


def staffed_spans(text: str) -> tuple[tuple[int, int, int], ...]:
    """STAFFED_HOURS as (weekday 0-6, first minute, minute after the last): spans of
    weekdays with times, e.g. "Mon-Fri 09:00-17:00, Sat 09:00-12:00"; "" is never. Raises
    ValueError naming the variable.

    >>> staffed_spans("Sat-Mon 09:00-12:30")
    ((5, 540, 750), (6, 540, 750), (0, 540, 750))
    """
    spans: list[tuple[int, int, int]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = _STAFFED_SPAN.fullmatch(part.lower())
        if not match or match["first"] not in _WEEKDAYS or \
                (match["last"] or "mon") not in _WEEKDAYS:
            raise ValueError(f'STAFFED_HOURS: "{part}" is not like "Mon-Fri 09:00-17:00"')
        start = int(match["start"]) * 60 + int(match["sm"])
        end = int(match["end"]) * 60 + int(match["em"])
        if int(match["sm"]) > 59 or int(match["em"]) > 59 or not start < end <= 24 * 60:
            raise ValueError(f'STAFFED_HOURS: "{part}": times from 00:00 to 24:00, the end '
                             "after the start")
        first = _WEEKDAYS.index(match["first"])
        last = _WEEKDAYS.index(match["last"]) if match["last"] else first
        days = range(first, last + 1) if last >= first else [*range(first, 7),
                                                              *range(0, last + 1)]
        spans.extend((day, start, end) for day in days)
    return tuple(spans)


def _staffed_hours(env: Mapping[str, str]) -> str:
    value = env.get("STAFFED_HOURS", "Mon-Fri 09:00-17:00").strip()
    staffed_spans(value)  # malformed: stop at start-up, naming the variable
    return value


def _http_url(env: Mapping[str, str], name: str) -> str:
    """An optional http(s) base URL, without its trailing slash.

    >>> _http_url({"PROMETHEUS_URL": " http://127.0.0.1:9090/ "}, "PROMETHEUS_URL")
    'http://127.0.0.1:9090'
    >>> _http_url({}, "PROMETHEUS_URL")
    ''
    >>> _http_url({"PROMETHEUS_URL": "prometheus:9090"}, "PROMETHEUS_URL")
    Traceback (most recent call last):
    ValueError: PROMETHEUS_URL must be an http:// or https:// URL
    """
    value = env.get(name, "").strip().rstrip("/")
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{name} must be an http:// or https:// URL")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{name} must be a port number from 1 to 65535, got {raw!r}")
    return int(raw)


def _days(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number of days, 0 or more.

    >>> _days({"DAYS": " 7 "}, "DAYS", 30), _days({}, "DAYS", 30)
    (7, 30)
    >>> _days({"DAYS": "-1"}, "DAYS", 30)
    Traceback (most recent call last):
    ...
    ValueError: DAYS must be 0 or more days, got -1
    """
    days = _number(env, name, default, int)
    if days < 0:
        raise ValueError(f"{name} must be 0 or more days, got {days}")
    return days


def _number(env: Mapping[str, str], name: str, default: N, kind: type[N]) -> N:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name} must be {what}, got {raw!r}") from None
