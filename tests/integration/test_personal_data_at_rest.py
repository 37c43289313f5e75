"""Issue 17: after whole conversations in both languages (each detail typed on its own, all
of them in one message, a mistyped ID asked again, the report filed, its status checked by
reference, over REST and the web chat), nothing readable holds a whole ID number, phone
number or name: not a Redis key's name or value of any type, not Redis's own file on disk,
not a line any process logged.

Rasa and the action server run twice on one Redis and one card service: as production runs
them (INFO), and as a second pair at DEBUG, which an operator may switch on. Sealed data is
fine (nothing is decrypted here); what the scan reads is what anyone with the data or the
logs can read, including text behind JSON escapes, URL encoding or base64.

Channel user ids are personal too: one report comes through the WhatsApp channel (the
guardian's own number is the sender), one through Telegram (a chat id), one over REST from
a sender shaped like a WeChat openid; no log line may hold one whole. WhatsApp and Telegram
are local servers speaking their APIs (tests/testkit/messaging_servers.py).

Issue 19's parts go through the same scan: the SMS consent after filing and the card-ready
notice the outbox then sends by SMS (a local Aliyun SMS server); a live handoff (the guardian
asks for a person, an agent takes the case through the handoff API, the guardian types their
ID and phone number to the agent, the agent answers and closes), with Redis read while the
agent holds the case; a queued case erased with its conversation; and a staff console login,
a report page and the audited reveal of its phone number.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import queue
import re
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
import redis
import requests
import socketio

from bot.channels.base import conversation_id
from bot.crypto import Vault
from bot.rules import statuses
from bot.rules.identity import mask, masked_numbers
from bot.settings import ROOT, Settings
from bot.stack import health
from card_service import sms as card_sms
from console.audit import REPORT_FIELDS, REVEALED_PHONE
from tests.testkit.messaging_servers import (
    TelegramServer,
    TwilioServer,
    form_body,
    telegram_update,
    twilio_signature,
    whatsapp_form,
)
from tests.testkit.people import child_id, guardian_id
from tests.testkit.processes import Process, free_port, wait_for
from tests.testkit.redis_server import RedisServer
from tests.testkit.sms_server import AliyunSmsServer
from tests.testkit.stack import Stack, has_cjk

# Starting two Rasa processes and some hundred turns take minutes on a shared machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

TURN_SECONDS = 120.0
START_SECONDS = 600.0
REFERENCE = re.compile(r"SC-[0-9A-Z]{4}-[0-9A-Z]{4}")
# What tells a mistyped ID number from a right one, in each language.
CHECKSUM_WORDS = {"en": "check character", "zh": "校验码"}
DEBUG_NAMES = ("rasa-debug", "actions-debug")
HANDOFF_TOKEN = "personal-data-handoff-token-0123456789"
SMS_CARD_READY, SMS_LAPSE = "SMS_480110001", "SMS_480110002"
CLERK, CLERK_PASSWORD = "clerk", "personal data clerk pass"
JOINED, LEFT = "A staff member has joined", "The staff member has left"


# People ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Name:
    chinese: str
    family: str  # pinyin
    given: tuple[str, ...]  # pinyin syllables

    @property
    def pinyin(self) -> str:
        return f"{self.family} {''.join(self.given)}"


@dataclass(frozen=True)
class Person:
    """One family's details, typed in one conversation (and a status check)."""

    label: str
    child: Name
    guardian: Name
    child_id: str
    guardian_id: str
    phone: str
    sender: str = ""  # REST's sender, the web chat's session, or the app's id for the user

    def typed_name(self, name: Name, language: str) -> str:
        return name.chinese if language == "zh" else name.pinyin


def _person(label: str, child: Name, guardian: Name, sequence: int, phone: str,
            sender: str = "") -> Person:
    return Person(label, child, guardian, child_id(age=9, sequence=sequence),
                  guardian_id(sequence=sequence + 1), phone,
                  sender or f"{label}-{uuid.uuid4().hex[:10]}")


OPENID = "o" + uuid.uuid4().hex[:27]  # WeChat's shape: 28 characters, an "o" first
TELEGRAM_CHAT_ID = str(7_000_000_000 + uuid.uuid4().int % 999_999_999)
TELEGRAM_SECRET = "personal-data-telegram-secret_0123456789"
WHATSAPP_PUBLIC_URL = "https://bot.example.com/webhooks/whatsapp/webhook"
WHATSAPP_NUMBER = "whatsapp:+14155238886"

EN_ONE_BY_ONE = _person("en-one-by-one", Name("周雨桐", "Zhou", ("yu", "tong")),
                        Name("周建国", "Zhou", ("jian", "guo")), 201, "13812345678")
ZH_ONE_BY_ONE = _person("zh-one-by-one", Name("林子涵", "Lin", ("zi", "han")),
                        Name("林国栋", "Lin", ("guo", "dong")), 203, "13987654321")
EN_AT_ONCE = _person("en-at-once", Name("黄浩然", "Huang", ("hao", "ran")),
                     Name("陈美玲", "Chen", ("mei", "ling")), 205, "13700135566")
ZH_WEBCHAT = _person("zh-webchat", Name("赵思琪", "Zhao", ("si", "qi")),
                     Name("赵志强", "Zhao", ("zhi", "qiang")), 207, "15012348765",
                     uuid.uuid4().hex)
ZH_WHATSAPP = _person("zh-whatsapp", Name("孙嘉怡", "Sun", ("jia", "yi")),
                      Name("孙立伟", "Sun", ("li", "wei")), 209, "18611223344",
                      "whatsapp:+8618611223344")
EN_DEBUG = _person("en-debug-openid", Name("郭子轩", "Guo", ("zi", "xuan")),
                   Name("郭文博", "Guo", ("wen", "bo")), 211, "13611112222", OPENID)
ZH_DEBUG = _person("zh-debug-telegram", Name("何欣怡", "He", ("xin", "yi")),
                   Name("何振华", "He", ("zhen", "hua")), 213, "15899887766", TELEGRAM_CHAT_ID)
PEOPLE = (EN_ONE_BY_ONE, ZH_ONE_BY_ONE, EN_AT_ONCE, ZH_WEBCHAT, ZH_WHATSAPP, EN_DEBUG, ZH_DEBUG)
# They file nothing: one talks to an agent, one has a queued case erased.
EN_HANDOFF = _person("en-handoff", Name("吴梓萱", "Wu", ("zi", "xuan")),
                     Name("吴建华", "Wu", ("jian", "hua")), 217, "13566667777")
EN_ERASED = _person("en-handoff-erased", Name("冯思远", "Feng", ("si", "yuan")),
                    Name("冯国强", "Feng", ("guo", "qiang")), 219, "15122334455")
# Its report gets the SMS consent, the card-ready notice and the staff console's views.
NOTIFIED = EN_ONE_BY_ONE
# Planted by the test itself, never typed: the scan must find every one of its details.
CANARY = _person("canary", Name("钱多多", "Qian", ("duo", "duo")),
                 Name("钱守仁", "Qian", ("shou", "ren")), 215, "13755550000")


def mistyped(id_number: str) -> str:
    """The same number with another last character: its check character no longer fits."""
    return id_number[:-1] + ("1" if id_number[-1] == "0" else "0")


# The scanner ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Secret:
    owner: str
    what: str
    pattern: re.Pattern[str]
    shown: str  # masked, for reports


def _number_pattern(number: str) -> re.Pattern[str]:
    # Grouped any common way: "138 1234 5678", "138-1234-5678"; inside "+8613812345678".
    pieces = ["[Xx]" if ch in "Xx" else re.escape(ch) for ch in number]
    return re.compile(r"[\s\-.]?".join(pieces))


def _name_patterns(name: Name) -> list[re.Pattern[str]]:
    gap = r"[\s_.\-]*"
    given = gap.join(name.given)
    return [
        re.compile(r"\s?".join(name.chinese)),
        re.compile(rf"(?<![a-z]){name.family}{gap}{given}(?![a-z])", re.IGNORECASE),
        re.compile(rf"(?<![a-z]){given}{gap}{name.family}(?![a-z])", re.IGNORECASE),
    ]


def secrets_of(person: Person) -> list[Secret]:
    found = [
        Secret(person.label, "child's ID number", _number_pattern(person.child_id),
               mask(person.child_id)),
        Secret(person.label, "mistyped child's ID number",
               _number_pattern(mistyped(person.child_id)), mask(person.child_id)),
        Secret(person.label, "guardian's ID number", _number_pattern(person.guardian_id),
               mask(person.guardian_id)),
        Secret(person.label, "mistyped guardian's ID number",
               _number_pattern(mistyped(person.guardian_id)), mask(person.guardian_id)),
        Secret(person.label, "phone number", _number_pattern(person.phone), mask(person.phone)),
    ]
    for what, name in (("child's name", person.child), ("guardian's name", person.guardian)):
        shown = name.chinese[0] + "*" * (len(name.chinese) - 1)
        found += [Secret(person.label, what, pattern, shown) for pattern in _name_patterns(name)]
    return found


def channel_id_secrets() -> list[Secret]:
    return [Secret("sender", what, re.compile(re.escape(value)), value[:4] + "***")
            for what, value in (("WeChat openid", OPENID),
                                ("Telegram chat id", TELEGRAM_CHAT_ID))]


_JSON_ESCAPE = re.compile(r"\\+u([0-9a-fA-F]{4})")
_BASE64 = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,2}")


def _base64_read(text: str) -> str:
    decoded = []
    for token in _BASE64.findall(text):
        body = token.rstrip("=").replace("+", "-").replace("/", "_")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            continue
        decoded.append(raw.decode("utf-8", "ignore"))
    return "\n".join(decoded)


def _readable(text: str) -> str:
    """JSON escapes read, full-width digits made plain: what an excerpt is masked in."""
    return unicodedata.normalize(
        "NFKC", _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))


def views(text: str) -> Iterator[tuple[str, str]]:
    """The text as written, then as a reader would decode it."""
    yield "as written", text
    seen = {text}
    for name, view in (
        ("NFKC", unicodedata.normalize("NFKC", text)),
        ("JSON escapes read", _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)),
        ("URL-decoded", unquote(text)),
        ("base64 read", _base64_read(text)),
    ):
        if view and view not in seen:
            seen.add(view)
            yield name, view


@dataclass(frozen=True)
class Finding:
    secret: Secret
    where: str
    view: str
    excerpt: str


@dataclass(frozen=True)
class Unit:
    """Something readable: a Redis key with its value, a log file, a file on disk."""

    where: str
    text: str
    by_line: bool = False  # report line numbers


def masked_text(text: str, secrets: Iterable[Secret]) -> str:
    for secret in secrets:
        text = secret.pattern.sub(f"<{secret.what}: {secret.shown}>", text)
    return masked_numbers(text)


_AOF_COMMAND = re.compile(r"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n\$\d+\r\n([^\r]*)\r\n")


def _aof_command(text: str, at: int) -> str:
    """The command and key of Redis's append-only file that wrote what is at `at`."""
    line_end = text.find("\r\n", at)
    end = len(text) if line_end < 0 else line_end + 2  # the key itself may be what was found
    commands = list(_AOF_COMMAND.finditer(text, max(0, at - 200_000), end))
    return f" ({commands[-1][1]} {commands[-1][2]})" if commands else ""


def scan(units: Iterable[Unit], secrets: list[Secret],
         mask_also: Iterable[Secret] = ()) -> list[Finding]:
    """Each secret found in each unit, once per place (a key, a line), in the first view
    that shows it, with an excerpt in which every secret is masked."""
    maskers = [*secrets, *mask_also]
    findings: dict[tuple[int, str], Finding] = {}
    for unit in units:
        for view, text in views(unit.text):
            for number, secret in enumerate(secrets):
                for found in secret.pattern.finditer(text):
                    place = unit.where
                    if unit.by_line and view != "base64 read":
                        place += f":{text.count(chr(10), 0, found.start()) + 1}"
                        if unit.where.endswith(".aof"):
                            place += _aof_command(text, found.start())
                    place = masked_text(place, maskers)
                    if (number, place) in findings:
                        continue
                    line_start = text.rfind("\n", 0, found.start()) + 1
                    line_end = text.find("\n", found.end())
                    line = masked_text(_readable(text[line_start:None if line_end < 0
                                                      else line_end]), maskers)
                    at = max(0, line.find(f"<{secret.what}: "))
                    findings[(number, place)] = Finding(secret, place, view,
                                                        line[max(0, at - 80):at + 120])
    return list(findings.values())


def report(findings: list[Finding], limit: int = 30) -> str:
    """Grouped by what was found with the same masked excerpt: where, what, one excerpt."""
    groups: dict[str, dict[str, Any]] = {}
    for finding in findings:
        described = f"{finding.secret.owner}: {finding.secret.what} ({finding.secret.shown})"
        if finding.view != "as written":
            described += f", {finding.view}"
        group = groups.setdefault(finding.excerpt, {"where": [], "what": set()})
        if finding.where not in group["where"]:
            group["where"].append(finding.where)
        group["what"].add(described)
    lines = []
    for excerpt, group in list(groups.items())[:limit]:
        where = ", ".join(group["where"][:4]) + (
            f" and {len(group['where']) - 4} more" if len(group["where"]) > 4 else "")
        lines.append(f"{where}: {'; '.join(sorted(group['what']))}\n    {excerpt}")
    if len(groups) > limit:
        lines.append(f"... and {len(groups) - limit} more")
    return f"{len(findings)} found:\n" + "\n".join(lines)


# Reading Redis ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return "\n".join(_text(item) for item in value)
    if isinstance(value, dict):
        return "\n".join(f"{_text(k)}: {_text(v)}" for k, v in value.items())
    return str(value)


def _value(client: redis.Redis, key: bytes, kind: str) -> Any:
    if kind == "string":
        return client.get(key)
    if kind == "hash":
        return client.hgetall(key)
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return client.smembers(key)
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == "stream":
        return client.xrange(key)
    return f"<unread type {kind}>"


def redis_units(client: redis.Redis) -> list[Unit]:
    """Every key of every database, its name and all it holds, whatever its type."""
    units = []
    for db in sorted(int(name[2:]) for name in client.info("keyspace")):
        each = client if db == 0 else redis.Redis(**{**client.connection_pool.connection_kwargs,
                                                     "db": db})
        for key in each.scan_iter(count=500):
            kind = _text(each.type(key))
            units.append(Unit(f"redis db {db} key {_text(key)!r} ({kind})",
                              f"{_text(key)}\n{_text(_value(each, key, kind))}"))
    return units


def file_units(paths: Iterable[Path], root: Path) -> list[Unit]:
    return [Unit(str(path.relative_to(root)), path.read_bytes().decode("utf-8", "replace"),
                 by_line=True) for path in paths]


# Talking to the stack ------------------------------------------------------------------


class Rest:
    """A conversation over the REST channel."""

    def __init__(self, rasa_url: str, token: str, sender: str):
        self.rasa_url = rasa_url
        self.token = token
        self.sender = sender
        self.conversation = sender  # Rasa's id for it
        self.turns = 0

    def says(self, message: str) -> str:
        self.turns += 1
        response = requests.post(f"{self.rasa_url}/webhooks/rest/webhook",
                                 json={"sender": self.sender, "message": message},
                                 timeout=TURN_SECONDS)
        assert response.status_code == 200, response.text
        return "\n".join(reply.get("text", "") for reply in response.json())

    def tracker(self) -> dict:
        response = requests.get(
            f"{self.rasa_url}/conversations/{quote(self.conversation, safe=':+')}/tracker",
            params={"token": self.token}, timeout=TURN_SECONDS)
        response.raise_for_status()
        return dict(response.json())

    def slot(self, name: str) -> Any:
        return self.tracker()["slots"].get(name)


class WebChat(Rest):
    """A conversation on the web chat's socket.io connection, as the page holds it."""

    def __init__(self, rasa_url: str, token: str, session: str, language: str):
        super().__init__(rasa_url, token, session)
        self.language = language
        self.uttered: queue.Queue[dict] = queue.Queue()
        confirmed: queue.Queue[str] = queue.Queue()
        self.client = socketio.Client(reconnection=False)
        self.client.on("bot_uttered", self.uttered.put)
        self.client.on("session_confirm", confirmed.put)
        self.client.connect(rasa_url, socketio_path="/socket.io", transports=["polling"],
                            wait_timeout=TURN_SECONDS)
        self.client.emit("session_request", {"session_id": session})
        self.sender = confirmed.get(timeout=TURN_SECONDS)
        self.conversation = conversation_id("webchat", self.sender)

    def says(self, message: str) -> str:
        self.turns += 1
        self.client.emit("user_uttered", {"message": message, "session_id": self.sender,
                                          "customData": {"language": self.language}})

        def saved() -> bool:  # the reply goes out before the turn is saved
            try:
                events = self.tracker()["events"] or [{}]
            except requests.HTTPError:
                return False
            return (sum(e.get("event") == "user" for e in events) >= self.turns
                    and events[-1].get("name") == "action_listen")

        wait_for(saved, TURN_SECONDS, f"web chat turn {self.turns}", interval=0.2)
        replies = [self.uttered.get(timeout=TURN_SECONDS)]
        while not self.uttered.empty():
            replies.append(self.uttered.get_nowait())
        return "\n".join(reply.get("text", "") for reply in replies)

    def close(self) -> None:
        self.client.disconnect()


class Telegram(Rest):
    """A Telegram chat: updates posted to the webhook as Telegram does, replies read from
    the local Bot API server."""

    def __init__(self, rasa_url: str, token: str, server: TelegramServer, chat_id: str,
                 language: str):
        super().__init__(rasa_url, token, chat_id)
        self.server = server
        self.app_language = "zh-hans" if language == "zh" else "en"
        self.conversation = conversation_id("telegram", chat_id)

    def says(self, message: str) -> str:
        self.turns += 1
        before = len(self.server.messages_to(self.sender))
        update = telegram_update(int(self.sender), message, self.app_language)
        response = requests.post(f"{self.rasa_url}/webhooks/telegram/webhook",
                                 json=update, timeout=TURN_SECONDS,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
        assert response.status_code == 200, response.text
        return "\n".join(self.server.messages_to(self.sender)[before:])


class WhatsApp(Rest):
    """A WhatsApp user as Twilio relays them: signed form posts, replies through the local
    Twilio API server."""

    def __init__(self, rasa_url: str, token: str, server: TwilioServer, number: str,
                 vault: Vault):
        super().__init__(rasa_url, token, number)
        self.server = server
        # Named by a keyed hash of the number (bot/channels/whatsapp.py), never by it.
        self.conversation = conversation_id("whatsapp", f"u{vault.keyed_hash(number)[:32]}")

    def says(self, message: str) -> str:
        self.turns += 1
        before = len(self.server.messages_to(self.sender))
        fields = whatsapp_form(self.sender, message, WHATSAPP_NUMBER)
        signature = twilio_signature(self.server.auth_token, WHATSAPP_PUBLIC_URL, fields)
        response = requests.post(f"{self.rasa_url}/webhooks/whatsapp/webhook",
                                 data=form_body(fields), timeout=TURN_SECONDS,
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Twilio-Signature": signature})
        assert response.status_code == 200, response.text
        return "\n".join(self.server.messages_to(self.sender)[before:])


LANGUAGE_WORDS = {
    "en": {"offer": "my daughter lost her social security card", "yes": "yes",
           "relationship": "I'm her father", "city": "Beijing", "confirm": "yes",
           "status": "what's the status of my report {reference}"},
    "zh": {"offer": "我女儿的社保卡丢了", "yes": "好的", "relationship": "我是她爸爸",
           "city": "北京", "confirm": "对，提交", "status": "查一下进度，受理编号{reference}"},
}


def answer_until_done(user: Rest, answers: dict[str, str | tuple[str, ...]], language: str,
                      mistype: str | None = None) -> str:
    """Answers whatever the open form asks with the person's details (a tuple: the next of
    its answers each time the question comes again), mistyping the ID asked as `mistype`
    once; the last reply. Fails on a question it has no answer for."""
    reply = ""
    mistyped_once = False
    asked_before: dict[str, int] = {}
    for _ in range(20):
        asked = user.slot("requested_slot")
        if asked is None:
            assert mistype is None or mistyped_once, f"{mistype} was never asked"
            return reply
        assert asked in answers, f"unexpected question for {asked}: {reply}"
        answer = answers[asked]
        if isinstance(answer, tuple):
            times = asked_before[asked] = asked_before.get(asked, -1) + 1
            assert times < len(answer), f"none of {answer} was taken: {reply}"
            answer = answer[times]
        if asked == mistype and not mistyped_once:
            reply = user.says(mistyped(answer))
            assert CHECKSUM_WORDS[language] in reply, reply
            assert user.slot("requested_slot") == asked, "the mistyped ID was not asked again"
            mistyped_once = True
            continue
        reply = user.says(answer)
    raise AssertionError(f"the form never ended; last reply: {reply}")


def file_report(user: Rest, person: Person, language: str, opener: str | None = None,
                mistype: str | None = None) -> str:
    """A whole loss report, filed; its reference."""
    words = LANGUAGE_WORDS[language]
    user.says(opener or words["offer"])
    if user.slot("requested_slot") is None:  # the offer to file: take it
        user.says(words["yes"])
    answers: dict[str, str | tuple[str, ...]] = {
        "child_name": person.typed_name(person.child, language),
        "child_id_number": person.child_id,
        "guardian_name": person.typed_name(person.guardian, language),
        "guardian_id_number": person.guardian_id,
        "relationship": words["relationship"],
        "phone_number": person.phone,
        "city": words["city"],
        "report_confirmed": words["confirm"],
    }
    filed = answer_until_done(user, answers, language, mistype)
    reference = REFERENCE.search(filed)
    assert reference, f"no reference in: {filed}"
    assert has_cjk(filed) == (language == "zh"), filed
    assert user.slot("reference_number") == reference.group()
    return reference.group()


def check_status(user: Rest, person: Person, reference: str, language: str) -> None:
    user.says(LANGUAGE_WORDS[language]["status"].format(reference=reference))
    # The model's entity tagging cuts some references ("SC-FH0E-0538" is read as "SC-FH0E-",
    # about one in thirty), and the form then asks again: given run together, they are read.
    compact = reference.replace("-", "")
    answers: dict[str, str | tuple[str, ...]] = {
        "reference_number": (reference, compact, compact.lower()),
        "verify_id_number": person.guardian_id}
    status = answer_until_done(user, answers, language)
    assert reference in status, status


def at_once(person: Person, language: str, phone: str) -> str:
    """Every detail in one message."""
    if language == "zh":
        return (f"孩子{person.child.chinese}的社保卡丢了，要挂失。孩子身份证{person.child_id}，"
                f"我是她爸爸{person.guardian.chinese}，身份证{person.guardian_id}，"
                f"手机{phone}，在北京。")
    return (f"My son {person.child.pinyin} lost his social security card, please report it. "
            f"His ID is {person.child_id}. I'm his mum {person.guardian.pinyin}, my ID is "
            f"{person.guardian_id}, phone {phone}, we live in Beijing.")


def spaced(phone: str) -> str:
    return f"{phone[:3]} {phone[3:7]} {phone[7:]}"


# The run -----------------------------------------------------------------------------


@dataclass
class Run:
    directory: Path
    redis_dir: Path
    redis_keys: list[Unit]
    references: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)
    canary_keys: dict[str, str] = field(default_factory=dict)  # key -> type
    stage: Stage | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)  # the console's, oldest first

    def log_files(self, debug: bool | None = None) -> list[Path]:
        """Every file the run wrote outside Redis's directory: the processes' output and
        anything a process put in its data directory."""
        files = sorted(path for path in self.directory.rglob("*")
                       if path.is_file() and self.redis_dir not in path.parents)
        if debug is None:
            return files
        return [path for path in files if path.stem.startswith(DEBUG_NAMES) == debug]

    def redis_files(self) -> list[Path]:
        return sorted(path for path in self.redis_dir.rglob("*")
                      if path.is_file() and path.suffix != ".conf")


def plant_canaries(client: redis.Redis) -> dict[str, str]:
    """The canary's details in one key of each type, each in another written form."""
    prefix = f"test:canary:{uuid.uuid4().hex[:6]}:"
    escaped = json.dumps({"name": CANARY.child.chinese})  # ASCII, \\u escapes
    client.set(prefix + "string", f"child {CANARY.child_id}")
    client.hset(prefix + "hash", mapping={"phone": f"+86 {spaced(CANARY.phone)}"})
    client.rpush(prefix + "list", escaped)
    client.sadd(prefix + "set", "".join(CANARY.guardian.given).upper() + " QIAN")
    client.zadd(prefix + "zset", {quote(CANARY.guardian.chinese): 1})
    client.xadd(prefix + "stream", {"b64": base64.b64encode(
        f"id={CANARY.guardian_id}".encode()).decode()})
    return {prefix + kind: kind for kind in ("string", "hash", "list", "set", "zset", "stream")}


def converse(production: str, debugging: str, token: str, telegram: TelegramServer,
             twilio: TwilioServer, vault: Vault) -> dict[str, str]:
    """Every person's conversation; each report's reference by the person's label."""
    references: dict[str, str] = {}

    def rest(url: str, person: Person) -> Rest:
        return Rest(url, token, person.sender)

    def status_check(url: str, person: Person, language: str) -> None:
        check_status(Rest(url, token, f"status-{uuid.uuid4().hex[:10]}"), person,
                     references[person.label], language)

    references[EN_ONE_BY_ONE.label] = file_report(
        rest(production, EN_ONE_BY_ONE), EN_ONE_BY_ONE, "en", mistype="child_id_number")
    status_check(production, EN_ONE_BY_ONE, "en")
    references[ZH_ONE_BY_ONE.label] = file_report(
        rest(production, ZH_ONE_BY_ONE), ZH_ONE_BY_ONE, "zh", mistype="guardian_id_number")
    status_check(production, ZH_ONE_BY_ONE, "zh")
    references[EN_AT_ONCE.label] = file_report(
        rest(production, EN_AT_ONCE), EN_AT_ONCE, "en",
        opener=at_once(EN_AT_ONCE, "en", spaced(EN_AT_ONCE.phone)))
    page = WebChat(production, token, ZH_WEBCHAT.sender, "zh")
    try:
        references[ZH_WEBCHAT.label] = file_report(
            page, ZH_WEBCHAT, "zh", opener=at_once(ZH_WEBCHAT, "zh", ZH_WEBCHAT.phone))
    finally:
        page.close()
    references[ZH_WHATSAPP.label] = file_report(
        WhatsApp(production, token, twilio, ZH_WHATSAPP.sender, vault), ZH_WHATSAPP, "zh",
        opener=at_once(ZH_WHATSAPP, "zh", f"+86 {spaced(ZH_WHATSAPP.phone)}"))
    references[EN_DEBUG.label] = file_report(
        rest(debugging, EN_DEBUG), EN_DEBUG, "en", mistype="guardian_id_number")
    status_check(debugging, EN_DEBUG, "en")
    references[ZH_DEBUG.label] = file_report(
        Telegram(debugging, token, telegram, ZH_DEBUG.sender, "zh"), ZH_DEBUG, "zh",
        mistype="child_id_number")
    status_check(debugging, ZH_DEBUG, "zh")
    return references


@dataclass
class Stage:
    """What issue 19's parts showed as they ran: answers, and Redis while an agent held a
    case."""

    consent_reply: str = ""
    ledger: list[dict[str, Any]] = field(default_factory=list)
    sms_sent: int = 0
    transcript: str = ""  # the case as the agent read it
    held_reply: str = ""  # what the guardian got while held
    agent_read: list[str] = field(default_factory=list)
    agent_reply: str = ""  # as it reached the guardian
    held_keys: list[Unit] = field(default_factory=list)
    closed_reply: str = ""
    keys_after_close: list[str] = field(default_factory=list)
    erased_reply: str = ""
    erased_case_status: int = 0
    keys_after_erasure: list[str] = field(default_factory=list)
    console_page: str = ""
    console_revealed: str = ""
    console_reloaded: str = ""


class Agent:
    """A person at the handoff API, as the console calls it."""

    def __init__(self, rasa_url: str, name: str) -> None:
        self.base = f"{rasa_url}/webhooks/handoff"
        self.headers = {"Authorization": f"Bearer {HANDOFF_TOKEN}", "X-Agent": name}

    def call(self, method: str, path: str, **options: Any) -> requests.Response:
        return requests.request(method, self.base + path, headers=self.headers,
                                timeout=TURN_SECONDS, **options)

    def ok(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        answer = self.call(method, path, **options)
        assert answer.status_code == 200, f"{method} {path}: {answer.text}"
        return dict(answer.json())


def handoff_keys(client: redis.Redis, conversation: str) -> list[str]:
    return sorted(_text(key) for key in client.scan_iter(match="cardbot:handoff:*")
                  if _text(key).endswith(":" + conversation)
                  or _text(client.type(key)) == "zset"
                  and client.zscore(key, conversation) is not None)


def sms_and_card_ready(stage: Stage, production: str, token: str, card_url: str,
                       staff_token: str, sms: AliyunSmsServer, reference: str) -> None:
    """The guardian agrees to texts after filing; staff move the report to ready and the
    outbox tells the conversation and texts the phone."""
    stage.consent_reply = Rest(production, token, NOTIFIED.sender).says("/agree_sms")
    staff = {"Authorization": f"Bearer {staff_token}"}
    for status in statuses.MAIN_LINE[1:statuses.MAIN_LINE.index(
            statuses.READY_FOR_COLLECTION) + 1]:
        moved = requests.post(f"{card_url}/v1/loss-reports/{reference}/events", headers=staff,
                              json={"status": status}, timeout=TURN_SECONDS)
        assert moved.status_code == 200, moved.text

    def settled() -> bool:
        answer = requests.get(f"{card_url}/v1/loss-reports/{reference}/notices",
                              headers=staff, timeout=TURN_SECONDS)
        stage.ledger = list(answer.json()["notices"])
        return any(n["state"] in ("delivered", "undeliverable") for n in stage.ledger)

    wait_for(settled, TURN_SECONDS, "the card-ready notice", interval=0.5)
    stage.sms_sent = len(sms.sent_to(NOTIFIED.phone))


def live_handoff(stage: Stage, production: str, token: str, client: redis.Redis) -> None:
    """A guardian asks for a person and talks to one; another's queued case is erased."""
    guardian, alice = Rest(production, token, EN_HANDOFF.sender), Agent(production, "alice")
    guardian.says("hello")
    guardian.says(f"my child's ID number is {EN_HANDOFF.child_id}")
    assert "staff member" in guardian.says("/request_human")
    one = f"/conversations/{guardian.conversation}"
    stage.transcript = json.dumps(alice.ok("GET", one)["transcript"], ensure_ascii=False)
    alice.ok("POST", one + "/take")
    stage.held_reply = guardian.says(
        f"my own ID number is {EN_HANDOFF.guardian_id}, phone {EN_HANDOFF.phone}")
    stage.agent_read = [m["text"] for m in alice.ok(
        "GET", one + "/messages", params={"after": 0, "wait": 10})["messages"]]
    alice.ok("POST", one + "/replies",
             json={"text": f"Thank you. We will call {EN_HANDOFF.phone} within the hour."})
    stage.held_keys = [unit for unit in redis_units(client)
                       if unit.where.split("'")[1].startswith("cardbot:handoff:")]
    stage.agent_reply = guardian.says("thank you")
    alice.ok("POST", one + "/close")
    stage.closed_reply = guardian.says("ok, goodbye")
    stage.keys_after_close = handoff_keys(client, guardian.conversation)

    erased = Rest(production, token, EN_ERASED.sender)
    erased.says("hello")
    erased.says(f"my child's ID number is {EN_ERASED.child_id}")
    assert "staff member" in erased.says("/request_human")
    assert erased.conversation in [c["conversation"] for c in alice.ok("GET", "/queue")["waiting"]]
    stage.erased_reply = erased.says("/delete_my_data")
    stage.erased_case_status = alice.call(
        "GET", f"/conversations/{erased.conversation}").status_code
    stage.keys_after_erasure = handoff_keys(client, erased.conversation)


def console_views(stage: Stage, stack: Stack, reference: str) -> None:
    """A bank clerk logs in, opens the report and reveals its phone number once."""
    added = subprocess.run([sys.executable, "-m", "console", "user", "add", CLERK, "--role",
                            "bank"], input=CLERK_PASSWORD + "\n", capture_output=True,
                           text=True, env=stack.env, cwd=str(ROOT), timeout=120, check=False)
    assert added.returncode == 0, added.stderr
    url = stack.settings.staff_console_url
    browser = requests.Session()

    def csrf(page: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found, page
        return found.group(1)

    login = browser.post(url + "/login", timeout=TURN_SECONDS, allow_redirects=False, data={
        "csrf": csrf(browser.get(url + "/login", timeout=TURN_SECONDS).text), "name": CLERK,
        "password": CLERK_PASSWORD})
    assert login.status_code == 303, login.text
    stage.console_page = browser.get(f"{url}/reports/{reference}?lang=en",
                                     timeout=TURN_SECONDS).text
    stage.console_revealed = browser.post(f"{url}/reports/{reference}/reveal",
                                          data={"csrf": csrf(stage.console_page)},
                                          timeout=TURN_SECONDS).text
    stage.console_reloaded = browser.get(f"{url}/reports/{reference}",
                                         timeout=TURN_SECONDS).text


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("personal-data")
    redis_dir = directory / "redis"
    redis_dir.mkdir()
    seconds: dict[str, float] = {}
    began = time.monotonic()
    telegram, twilio = TelegramServer().start(), TwilioServer().start()
    sms = AliyunSmsServer(templates={
        SMS_CARD_READY: card_sms.PROPOSED_TEMPLATES["card_ready"],
        SMS_LAPSE: card_sms.PROPOSED_TEMPLATES["lapse_reminder"]}).start()
    server = RedisServer(redis_dir, directory).start()
    stack = Stack(server.url, directory, {
        # As production runs it; set, so that the runner's own LOG_LEVEL cannot change it.
        "LOG_LEVEL": "INFO",
        **telegram.env(TELEGRAM_SECRET, "https://bot.example.com/webhooks/telegram/webhook"),
        **twilio.env(WHATSAPP_NUMBER, WHATSAPP_PUBLIC_URL),
        **sms.env(card_ready=SMS_CARD_READY, lapse_reminder=SMS_LAPSE),
        "CARD_SERVICE_OUTBOX_MAX_DELAY": "1",
        "HANDOFF_TOKEN": HANDOFF_TOKEN, "STAFFED_HOURS": "Mon-Sun 00:00-24:00",
    })
    # The second pair, at DEBUG: its own Rasa and action server, the same Redis and card
    # service.
    debug_settings = Settings.from_env({**stack.env, "RASA_PORT": str(free_port()),
                                        "ACTIONS_PORT": str(free_port())})
    debug_env = {**stack.env, **debug_settings.child_env(), "LOG_LEVEL": "DEBUG"}
    debug = {
        "rasa": Process("rasa-debug", stack.processes["rasa"].command, debug_env, directory),
        "actions": Process("actions-debug", f"{stack.processes['actions'].command} --debug",
                           debug_env, directory),
    }
    checks = health.checks(debug_settings)
    try:
        stack.launch()
        for process in debug.values():
            process.start()
        stack.wait(timeout=START_SECONDS)
        for name, process in debug.items():
            def up(process: Process = process, check: Callable[[], bool] = checks[name]) -> bool:
                if not process.running:
                    raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
                return check()

            wait_for(up, START_SECONDS, process.name)
        seconds["start"] = time.monotonic() - began
        began = time.monotonic()
        references = converse(stack.rasa_url, debug_settings.rasa_url,
                              stack.settings.rasa_token, telegram, twilio,
                              stack.settings.vault())
        seconds["conversations"] = time.monotonic() - began
        began = time.monotonic()
        stage = Stage()
        sms_and_card_ready(stage, stack.rasa_url, stack.settings.rasa_token,
                           stack.settings.card_service_url, stack.settings.staff_token, sms,
                           references[NOTIFIED.label])
        live_handoff(stage, stack.rasa_url, stack.settings.rasa_token, server.client())
        console_views(stage, stack, references[NOTIFIED.label])
        seconds["staff and handoff"] = time.monotonic() - began
        canary_keys = plant_canaries(server.client())
    finally:
        for process in debug.values():
            process.stop()
        stack.stop()
        telegram.stop()
        twilio.stop()
        sms.stop()
    # What stays in Redis once every process has stopped; then Redis stops too, so its
    # file and every log are complete.
    try:
        client = redis.Redis.from_url(server.url)
        keys = redis_units(client)
        audit = [json.loads(entry) for entry in client.lrange("cardstaff:audit", 0, -1)]
    finally:
        server.stop()
    result = Run(directory, redis_dir, keys, references, seconds, canary_keys, stage, audit)
    print(f"\npersonal data at rest: start {seconds['start']:.0f} s, conversations "
          f"{seconds['conversations']:.0f} s, staff and handoff "
          f"{seconds['staff and handoff']:.0f} s, {len(keys)} Redis keys, "
          f"{len(result.log_files())} log files")
    yield result


def everyones_secrets() -> list[Secret]:
    return [secret for person in (*PEOPLE, EN_HANDOFF, EN_ERASED)
            for secret in secrets_of(person)]


# The tests ---------------------------------------------------------------------------


def test_the_scan_finds_what_it_looks_for(run: Run, tmp_path: Path) -> None:
    """A positive control: the canary planted in a key of each type, Redis's file and a log
    file in each written form is found, and a masked value is not."""
    canary = secrets_of(CANARY)
    flagged = {finding.where.split("'")[1] for finding in scan(run.redis_keys, canary)}
    assert flagged == set(run.canary_keys), flagged ^ set(run.canary_keys)

    on_disk = scan(file_units(run.redis_files(), run.directory), canary)
    assert {finding.secret.what for finding in on_disk} >= {
        "child's ID number", "guardian's ID number", "phone number", "child's name",
        "guardian's name"}

    forms = {
        "phone, bare": f"sms to {CANARY.phone} sent",
        "phone, +86": f"from +86{CANARY.phone}",
        "phone, grouped": f"phone {spaced(CANARY.phone)}",
        "phone, dashes": f"phone {CANARY.phone[:3]}-{CANARY.phone[3:7]}-{CANARY.phone[7:]}",
        "phone, full width": "手机" + CANARY.phone.translate({d: d + 0xFEE0 for d in range(48, 58)}),
        "ID number, grouped": f"{CANARY.child_id[:6]} {CANARY.child_id[6:14]} "
                              f"{CANARY.child_id[14:]}",
        "mistyped ID number": f"invalid id {mistyped(CANARY.guardian_id)}",
        "name, Chinese": f"姓名：{CANARY.child.chinese}",
        "name, JSON escaped": json.dumps({"text": CANARY.guardian.chinese}),
        "name, URL-encoded": f"/parse?q={quote(CANARY.child.chinese)}",
        "name, pinyin": f"child_name: {CANARY.child.pinyin}",
        "name, pinyin reversed": f"'{''.join(CANARY.guardian.given).title()} Qian'",
        "name, pinyin run together": "user=qianshouren",
        "in base64": base64.b64encode(f"phone={CANARY.phone}".encode()).decode(),
    }
    log = tmp_path / "canary.log"
    log.write_text("\n".join(forms.values()) + "\n", encoding="utf-8")
    found = scan(file_units([log], tmp_path), canary)
    lines = {int(m.group(1)) for f in found if (m := re.search(r"log:(\d+)", f.where))}
    base64_found = any(f.view == "base64 read" for f in found)
    missed = [form for number, form in enumerate(forms, 1)
              if number not in lines and not (form == "in base64" and base64_found)]
    assert not missed, missed

    masked = (f"{mask(CANARY.child_id)} {mask(CANARY.phone)} 钱** Q*** D******* "
              f"{CANARY.phone[:3]}****{CANARY.phone[-4:]}")
    log.write_text(masked + "\n", encoding="utf-8")
    assert scan(file_units([log], tmp_path), canary) == []


def test_every_report_was_filed_and_the_scan_reads_where_it_went(run: Run) -> None:
    """The conversations did carry the details to the card service, and the scan reads the
    keys and the log lines they passed through (else a clean scan proves nothing)."""
    assert set(run.references) == {person.label for person in PEOPLE}
    references = [Secret(label, "reference", re.compile(reference), reference)
                  for label, reference in run.references.items()]
    in_redis = {finding.secret.owner for finding in scan(run.redis_keys, references)}
    assert in_redis == set(run.references)
    logged = {finding.secret.owner for finding in scan(
        file_units(run.log_files(debug=False), run.directory), references)}
    assert logged == set(run.references)  # the card service logs each report it files
    debug_logged = {finding.secret.owner for finding in scan(
        file_units(run.log_files(debug=True), run.directory), references)}
    assert debug_logged == {EN_DEBUG.label, ZH_DEBUG.label}


def test_no_redis_key_or_value_holds_a_whole_id_number_phone_or_name(run: Run) -> None:
    findings = scan(run.redis_keys, everyones_secrets())
    assert not findings, report(findings)


def test_sms_consent_and_the_card_ready_text_went_through(run: Run) -> None:
    """The notice reached the phone (so the scan read a report whose number was opened and
    sent), and the guardian only ever saw the number masked."""
    assert run.stage is not None
    assert mask(NOTIFIED.phone) in run.stage.consent_reply
    assert NOTIFIED.phone not in run.stage.consent_reply
    assert [(n["state"], n["delivered_path"]) for n in run.stage.ledger] == [
        ("delivered", "sms")], run.stage.ledger
    assert run.stage.sms_sent == 1


def test_a_live_handoff_shows_and_sends_numbers_masked_and_leaves_nothing(run: Run) -> None:
    stage = run.stage
    assert stage is not None
    assert mask(EN_HANDOFF.child_id) in stage.transcript
    assert EN_HANDOFF.child_id not in stage.transcript
    assert JOINED in stage.held_reply
    assert stage.agent_read == [f"my own ID number is {mask(EN_HANDOFF.guardian_id)}, "
                                f"phone {mask(EN_HANDOFF.phone)}"]
    # The agent typed the number whole; the guardian got it as every reply gives it.
    assert f"We will call {mask(EN_HANDOFF.phone)} within the hour" in stage.agent_reply
    assert LEFT in stage.closed_reply
    assert stage.keys_after_close == []


def test_while_an_agent_held_the_case_redis_held_it_sealed(run: Run) -> None:
    """Read while the agent held the case, after the guardian's numbers and the agent's
    reply: the case, the messages and the reply kept for the REST guardian are sealed, so
    not even the masked text shows, and nothing whole."""
    stage = run.stage
    assert stage is not None
    conversation = EN_HANDOFF.sender
    held = {unit.where.split("'")[1]: unit.text for unit in stage.held_keys}
    sealed = {f"cardbot:handoff:{kind}:{conversation}" for kind in
              ("case", "messages", "pending")}
    assert sealed <= set(held), sorted(held)
    for key in sealed:
        values = held[key].split("\n")[1:]
        assert values and all(value.startswith("v2:") for value in values), key
    assert held[f"cardbot:handoff:agent:{conversation}"].endswith("alice")
    shown = "\n".join(held.values())
    for masked in (mask(EN_HANDOFF.child_id), mask(EN_HANDOFF.guardian_id),
                   mask(EN_HANDOFF.phone)):
        assert masked not in shown
    findings = scan(stage.held_keys, everyones_secrets())
    assert not findings, report(findings)


def test_erasure_takes_a_queued_handoff_case_with_the_conversation(run: Run) -> None:
    stage = run.stage
    assert stage is not None
    assert "our record of this conversation is deleted" in stage.erased_reply
    assert stage.erased_case_status == 404
    assert stage.keys_after_erasure == []


def test_the_console_shows_masked_reveals_once_and_audits_field_names_only(run: Run) -> None:
    stage = run.stage
    assert stage is not None
    phone = NOTIFIED.phone
    assert mask(phone) in stage.console_page and phone not in stage.console_page
    assert phone in stage.console_revealed
    assert phone not in stage.console_reloaded
    reference = run.references[NOTIFIED.label]
    clerks = [entry for entry in run.audit if entry["user"] == CLERK]
    assert [e["action"] for e in clerks] == ["login", "view", "reveal", "view", "view"]
    assert all(e["reference"] == reference for e in clerks[1:])
    assert clerks[2]["fields"] == [REVEALED_PHONE]
    names = set(REPORT_FIELDS) | {REVEALED_PHONE}
    assert all(set(e["fields"]) <= names for e in run.audit), run.audit
    written = json.dumps(run.audit, ensure_ascii=False)
    assert mask(phone) not in written and not re.search(r"\d{11}", written)
    audit_units = [unit for unit in run.redis_keys if "'cardstaff:audit'" in unit.where]
    assert len(audit_units) == 1 and not scan(audit_units, everyones_secrets())
    sessions = [unit for unit in run.redis_keys if "'cardstaff:session:" in unit.where]
    assert sessions, "the clerk's session was not in Redis to be scanned"
    for unit in sessions:
        assert {line.split(":")[0] for line in unit.text.split("\n")[1:]} <= {
            "user", "csrf", "created"}, unit.where


def test_redis_file_on_disk_holds_no_whole_id_number_phone_or_name(run: Run) -> None:
    """The append-only file keeps every write, also of keys deleted since."""
    assert run.redis_files(), "Redis wrote no data file"
    findings = scan(file_units(run.redis_files(), run.directory), everyones_secrets())
    assert not findings, report(findings)


def test_the_logs_were_written_at_the_levels_meant(run: Run) -> None:
    names = {path.name for path in run.log_files()}
    assert {"rasa.log", "actions.log", "card.log", "rasa-debug.log",
            "actions-debug.log"} <= names, names
    assert any(name.startswith("redis-") for name in names), names
    production = "\n".join(path.read_text(errors="replace") for path in run.log_files(False))
    assert " DEBUG " not in production
    for name in DEBUG_NAMES:
        assert " DEBUG " in (run.directory / f"{name}.log").read_text(errors="replace"), name


def test_no_log_line_at_production_level_holds_a_whole_id_number_phone_or_name(
        run: Run) -> None:
    findings = scan(file_units(run.log_files(debug=False), run.directory), everyones_secrets())
    assert not findings, report(findings)


def test_no_log_line_at_debug_level_holds_a_whole_id_number_phone_or_name(run: Run) -> None:
    findings = scan(file_units(run.log_files(debug=True), run.directory), everyones_secrets())
    assert not findings, report(findings)


def test_no_log_line_holds_a_whole_channel_user_id(run: Run) -> None:
    """The senders imitate a WeChat openid and a Telegram chat id (a WhatsApp number is a
    phone number, searched for above)."""
    findings = scan(file_units(run.log_files(), run.directory), channel_id_secrets(),
                    mask_also=everyones_secrets())
    assert not findings, report(findings)


def test_the_people_are_made_up_and_valid() -> None:
    """Guard on the test's own data: every number passes the rules the bot applies."""
    from bot.rules.identity import check_child_id_number, check_guardian_id_number, check_mobile

    today = dt.date.today()
    for person in (*PEOPLE, EN_HANDOFF, EN_ERASED, CANARY):
        assert check_child_id_number(person.child_id, today).ok, person.label
        assert check_guardian_id_number(person.guardian_id, today).ok, person.label
        assert check_mobile(person.phone).ok, person.label
        assert not check_child_id_number(mistyped(person.child_id), today).ok
