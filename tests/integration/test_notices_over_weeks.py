"""Weeks in minutes: guardians on every channel file on day 0, the lapse reminder has come
by day 4 (Shanghai: valid 5 days, reminded at 10:00 on day 3; test_notice_ledger.py holds
the hour), the cards are ready on day 21. The whole stack runs (Rasa
with the trained model, action server, card service, Redis), each app is a local server
that keeps its reply window by a clock the test moves, and the card service's clock is
moved by restarting it with CARD_SERVICE_CLOCK_OFFSET_DAYS; Redis and Rasa restart in
between. Every guardian gets each notice exactly once, by the path their situation allows.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from bot.rules import statuses
from card_service import sms as card_sms
from tests.testkit import people
from tests.testkit.messaging_servers import (
    GraphServer,
    TelegramServer,
    TwilioServer,
    telegram_update,
)
from tests.testkit.processes import wait_for
from tests.testkit.redis_server import RedisServer
from tests.testkit.sms_server import AliyunSmsServer
from tests.testkit.stack import Stack
from tests.testkit.wechat_server import SafeModeAccount, WeChatServer, new_aes_key, new_openid

pytestmark = pytest.mark.integration

WECHAT_TOKEN = "weeks-wechat-token"
AES_KEY = new_aes_key()
SUBSCRIPTION, TEMPLATE = "Weeks_Card_Ready_Sub-01", "Weeks_Card_Ready_Tpl-02"
WECHAT_KEYS = ("character_string1", "thing2", "thing3", "date4")
TELEGRAM_SECRET = "weeks-telegram-secret_" + "y" * 16
WHATSAPP_NUMBER = "whatsapp:+14155238886"
WHATSAPP_PUBLIC_URL = "https://bot.example.com/webhooks/whatsapp/webhook"
FACEBOOK_SECRET = "weeks-facebook-app-secret"
CONTENT_CARD_READY = "HX" + "2d" * 16
UTILITY_TEMPLATE = "card_ready_weeks"
SMS_CARD_READY, SMS_LAPSE = "SMS_900000001", "SMS_900000002"
SETTLE = 60


@pytest.fixture(scope="module")
def apps() -> Iterator[dict[str, Any]]:
    servers: dict[str, Any] = {
        "wechat": WeChatServer(subscription_templates={SUBSCRIPTION: WECHAT_KEYS},
                               templates={TEMPLATE: WECHAT_KEYS}),
        "twilio": TwilioServer(windows=True), "graph": GraphServer(windows=True),
        "telegram": TelegramServer(),
        "sms": AliyunSmsServer(templates={
            SMS_CARD_READY: card_sms.PROPOSED_TEMPLATES["card_ready"],
            SMS_LAPSE: card_sms.PROPOSED_TEMPLATES["lapse_reminder"]}),
    }
    for server in servers.values():
        server.start()
    servers["twilio"].register_content(CONTENT_CARD_READY, 2)
    servers["graph"].register_utility_template(UTILITY_TEMPLATE, "zh_CN", 2)
    yield servers
    for server in servers.values():
        server.stop()


@dataclass
class World:
    stack: Stack
    redis: RedisServer
    apps: dict[str, Any]

    @property
    def card(self) -> str:
        return self.stack.settings.card_service_url

    def staff(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, self.card + path, json=body, timeout=30, headers={
            "Authorization": f"Bearer {self.stack.settings.staff_token}"})

    def service(self, path: str, body: Any, **headers: str) -> requests.Response:
        return requests.post(self.card + path, json=body, timeout=30, headers={
            "Authorization": f"Bearer {self.stack.settings.card_service_token}", **headers})

    def day(self, day: int) -> None:
        """The card service restarted with its clock on `day`; every app's clock with it."""
        process = self.stack.processes["card"]
        process.stop()
        process.env = {**process.env, "CARD_SERVICE_CLOCK_OFFSET_DAYS": str(day)}
        moved = day - getattr(self, "today", 0)
        self.today = day
        self.apps["wechat"].advance(days=moved)
        for name in ("twilio", "graph", "telegram"):
            self.apps[name].advance(days=moved)
        self.stack.start("card")

    def restart(self, name: str) -> None:
        if name == "redis":
            self.redis.stop()
            self.redis.start()
            return
        self.stack.processes[name].stop()
        self.stack.start(name)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, apps: dict[str, Any]) -> Iterator[World]:
    log_dir = tmp_path_factory.mktemp("weeks")
    (log_dir / "redis").mkdir()
    redis_server = RedisServer(log_dir / "redis", log_dir).start()
    stack = Stack(redis_server.url, log_dir, extra_env={
        "WECHAT_TOKEN": WECHAT_TOKEN, "WECHAT_APP_ID": apps["wechat"].app_id,
        "WECHAT_APP_SECRET": apps["wechat"].app_secret, "WECHAT_API_BASE": apps["wechat"].url,
        "WECHAT_ENCODING_AES_KEY": AES_KEY, "WECHAT_SUBSCRIBE_TEMPLATE_ID": SUBSCRIPTION,
        "WECHAT_TEMPLATE_ID": TEMPLATE,
        **apps["telegram"].env(TELEGRAM_SECRET, "https://bot.example.com/webhooks/telegram/"
                                                "webhook"),
        **apps["twilio"].env(WHATSAPP_NUMBER, WHATSAPP_PUBLIC_URL),
        "TWILIO_CONTENT_SID_CARD_READY": CONTENT_CARD_READY,
        "FACEBOOK_VERIFY": "weeks-verify", "FACEBOOK_SECRET": FACEBOOK_SECRET,
        "FACEBOOK_PAGE_ACCESS_TOKEN": apps["graph"].page_access_token,
        "FACEBOOK_API_BASE": apps["graph"].url,
        "FACEBOOK_UTILITY_TEMPLATE_CARD_READY": UTILITY_TEMPLATE,
        **apps["sms"].env(card_ready=SMS_CARD_READY, lapse_reminder=SMS_LAPSE),
        "CARD_SERVICE_OUTBOX_MAX_DELAY": "1",
    })
    try:
        stack.start(timeout=400)
        apps["wechat"].relay_to(f"{stack.rasa_url}/webhooks/wechat/webhook",
                                SafeModeAccount(WECHAT_TOKEN, AES_KEY, apps["wechat"].app_id))
        yield World(stack, redis_server, apps)
    finally:
        stack.stop()
        redis_server.stop()


@dataclass
class Guardian:
    channel: str
    user: str  # the app's id for them
    conversation: str
    phone: str  # as typed at filing
    reference: str = ""

    @property
    def mobile(self) -> str:
        return "".join(ch for ch in self.phone if ch.isdigit())[-11:]


def files(world: World, guardian: Guardian, city: str = "上海", sms: bool = False,
          written: bool = True) -> Guardian:
    """Files as the action server does, says yes or no to texts, and (written) files the
    written report at once, so that nothing lapses."""
    body = people.report_body(conversation_id=guardian.conversation, city=city,
                              phone=guardian.phone)
    filed = world.service("/v1/loss-reports", body, **{"Idempotency-Key": guardian.conversation})
    assert filed.status_code == 201, filed.text
    guardian.reference = filed.json()["reference"]
    consent = world.service(f"/v1/loss-reports/{guardian.reference}/sms-consent",
                            {"conversation_id": guardian.conversation, "consent": sms})
    assert consent.status_code == 200, consent.text
    if written:
        move(world, guardian, statuses.REPORTED_WRITTEN)
    return guardian


def move(world: World, guardian: Guardian, *targets: str) -> None:
    for target in targets:
        moved = world.staff("POST", f"/v1/loss-reports/{guardian.reference}/events",
                            {"status": target})
        assert moved.status_code == 200, moved.text


def ledger(world: World, guardian: Guardian) -> list[dict[str, Any]]:
    answer = world.staff("GET", f"/v1/loss-reports/{guardian.reference}/notices")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["notices"])


def settled(world: World, guardian: Guardian, kind: str, state: str = "delivered"
            ) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((n for n in ledger(world, guardian)
                     if n["kind"] == kind and n["state"] == state), None)
    wait_for(lambda: found() is not None, SETTLE, f"{guardian.channel}'s {kind} {state}")
    notice = found()
    assert notice is not None
    return notice


def trail(notice: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["path"], a["outcome"], a["code"]) for a in notice["attempts"]]


def wechat_guardian(world: World, subscribes: bool) -> Guardian:
    wechat: WeChatServer = world.apps["wechat"]
    openid = new_openid()
    assert wechat.user_says(openid, "孩子的社保卡丢了").status_code == 200
    wechat.wait_for(openid)
    if subscribes:
        wechat.accept_subscription(openid, SUBSCRIPTION)
    return Guardian("wechat", openid, f"wechat:{openid}", f"139{secrets.randbelow(10**8):08d}")


def whatsapp_guardian(world: World) -> Guardian:
    number = f"whatsapp:+86137{secrets.randbelow(10**8):08d}"
    said = world.apps["twilio"].user_says(number, "孩子的社保卡丢了", WHATSAPP_NUMBER,
                                          f"{world.stack.rasa_url}/webhooks/whatsapp/webhook",
                                          WHATSAPP_PUBLIC_URL)
    assert said.status_code == 200, said.text
    conversation = f"whatsapp:u{world.stack.settings.vault().keyed_hash(number)[:32]}"
    return Guardian("whatsapp", number, conversation, number.removeprefix("whatsapp:"))


def messenger_guardian(world: World) -> Guardian:
    psid = str(10**14 + secrets.randbelow(10**14))
    said = world.apps["graph"].user_says(psid, "孩子的社保卡丢了",
                                         f"{world.stack.rasa_url}/webhooks/facebook/webhook",
                                         FACEBOOK_SECRET)
    assert said.status_code == 200, said.text
    return Guardian("facebook", psid, f"facebook:{psid}", f"136{secrets.randbelow(10**8):08d}")


def telegram_guardian(world: World) -> Guardian:
    chat = 10**9 + secrets.randbelow(10**9)
    said = requests.post(f"{world.stack.rasa_url}/webhooks/telegram/webhook", timeout=60,
                         data=json.dumps(telegram_update(chat, "孩子的社保卡丢了", "zh-hans")),
                         headers={"Content-Type": "application/json",
                                  "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    assert said.status_code == 200, said.text
    return Guardian("telegram", str(chat), f"telegram:{chat}",
                    f"135{secrets.randbelow(10**8):08d}")


def web_guardian() -> Guardian:
    session = secrets.token_hex(16)  # as the page makes them
    return Guardian("webchat", session, f"webchat:{session}",
                    f"138{secrets.randbelow(10**8):08d}")


def rest_guardian(world: World) -> Guardian:
    sender = f"weeks-rest-{secrets.token_hex(4)}"
    assert world.stack.say(sender, "你好")
    return Guardian("rest", sender, sender, f"134{secrets.randbelow(10**8):08d}")


def counts(world: World, guardians: dict[str, Guardian]) -> dict[str, Any]:
    """What each app delivered to whom, so far (a later restart must add nothing)."""
    apps = world.apps
    return {
        "wechat": {g.user: len(apps["wechat"].deliveries_to(g.user))
                   for g in guardians.values() if g.channel == "wechat"},
        "twilio": {g.user: len(apps["twilio"].accepted(g.user))
                   for g in guardians.values() if g.channel == "whatsapp"},
        "graph": {g.user: len(apps["graph"].accepted(g.user))
                  for g in guardians.values() if g.channel == "facebook"},
        "telegram": {g.user: len(apps["telegram"].messages_to(g.user))
                     for g in guardians.values() if g.channel == "telegram"},
        "sms": {g.mobile: len(apps["sms"].sent_to(g.mobile)) for g in guardians.values()},
    }


def test_every_guardian_hears_each_notice_once_by_the_path_that_reaches_them(
        world: World) -> None:
    apps = world.apps
    # Day 0: everyone writes once and files; most file the written report at once.
    g = {
        "wechat_subscribed": wechat_guardian(world, subscribes=True),
        "wechat_plain": wechat_guardian(world, subscribes=False),
        "whatsapp": whatsapp_guardian(world),
        "messenger": messenger_guardian(world),
        "telegram_blocked": telegram_guardian(world),
        "web_never_back": web_guardian(),
        "rest": rest_guardian(world),
        "telegram_lapsing": telegram_guardian(world),
        "telegram_written": telegram_guardian(world),
    }
    for name, guardian in g.items():
        files(world, guardian, sms=name in ("telegram_blocked", "web_never_back", "rest"),
              written=name != "telegram_lapsing")
    apps["telegram"].block(g["telegram_blocked"].user)
    sms_before = len(apps["sms"].sent)

    # Redis and Rasa restart in between: nothing is lost.
    world.restart("redis")
    world.restart("rasa")

    # Day 4: past the reminder (two days before the last valid day, day 5) of the report
    # still temporary; whatever the hour of day 0 was, its day 3 at 10:00 is behind us.
    world.day(4)
    reminder = settled(world, g["telegram_lapsing"], "lapse_reminder")
    assert trail(reminder) == [("message", "seen", "")]
    [text] = apps["telegram"].messages_to(g["telegram_lapsing"].user)[-1:]
    assert g["telegram_lapsing"].reference in text and "书面挂失" in text
    time.sleep(2)
    for name, guardian in g.items():
        if name != "telegram_lapsing":
            assert ledger(world, guardian) == [], name  # moved on: no reminder

    # Day 21: the cards are ready.
    world.day(21)
    before = counts(world, g)
    for name, guardian in g.items():
        if name != "telegram_lapsing":
            move(world, guardian, *statuses.MAIN_LINE[2:statuses.MAIN_LINE.index(
                statuses.READY_FOR_COLLECTION) + 1])
    ready = {name: settled(world, g[name], "card_ready")
             for name in ("wechat_subscribed", "wechat_plain", "whatsapp", "messenger",
                          "telegram_blocked", "telegram_written", "rest")}
    assert trail(ready["wechat_subscribed"]) == [
        ("customer_service", "fallback", "45015"), ("subscription", "seen", "")]
    assert trail(ready["wechat_plain"]) == [
        ("customer_service", "fallback", "45015"), ("subscription", "fallback", ""),
        ("template", "seen", "")]
    assert [(p, o) for p, o, _ in trail(ready["whatsapp"])] == [
        ("session", "fallback"), ("template", "seen")]
    assert trail(ready["messenger"]) == [
        ("standard", "fallback", "10/2018278"), ("utility", "seen", "")]
    assert [(p, o) for p, o, _ in trail(ready["telegram_blocked"])] == [
        ("message", "unreachable"), ("sms", "seen")]
    assert trail(ready["telegram_written"]) == [("message", "seen", "")]
    assert trail(ready["rest"]) == [("sms", "seen", "")]
    web = settled(world, g["web_never_back"], "card_ready", state="queued")
    assert trail(web) == [("page", "queued", "")]

    after = counts(world, g)
    wechat_sent = {user: apps["wechat"].deliveries_to(user)[before["wechat"][user]:]
                   for user in before["wechat"]}
    assert [m.path for m in wechat_sent[g["wechat_subscribed"].user]] == ["subscription"]
    assert [m.path for m in wechat_sent[g["wechat_plain"].user]] == ["template"]
    [template] = apps["twilio"].accepted(g["whatsapp"].user)[before["twilio"][g["whatsapp"].user]:]
    assert template.how == "template" and template.fields["ContentSid"] == CONTENT_CARD_READY
    [utility] = apps["graph"].accepted(g["messenger"].user)[before["graph"][g["messenger"].user]:]
    assert utility.how == "UTILITY"
    texts = apps["sms"].sent[sms_before:]
    assert sorted(t.number for t in texts) == sorted(
        [g["telegram_blocked"].mobile, g["rest"].mobile])
    assert {t.template_code for t in texts} == {SMS_CARD_READY}
    assert all(g["rest"].reference.replace("-", "") in t.text or
               g["telegram_blocked"].reference.replace("-", "") in t.text for t in texts)

    # Day 23: the web guardian never came back to the page: past the wait, a text.
    world.day(23)
    web = settled(world, g["web_never_back"], "card_ready")
    assert trail(web) == [("page", "queued", ""), ("page", "fallback", ""),
                          ("sms", "seen", "")]
    assert len(apps["sms"].sent_to(g["web_never_back"].mobile)) == 1

    # Restarts after the fact send nothing again.
    settled_counts = counts(world, g)
    world.restart("rasa")
    world.day(23)
    time.sleep(3)
    assert counts(world, g) == settled_counts
    for name, guardian in g.items():
        kinds = [n["kind"] for n in ledger(world, guardian)]
        assert sorted(kinds) == (["lapse_reminder"] if name == "telegram_lapsing"
                                 else ["card_ready"]), name
    status = world.staff("GET", f"/v1/loss-reports/{g['messenger'].reference}").json()
    assert status["notified_by"] == "utility" and status["notified_at"]
    # For the record (`pytest -s`): the attempts of each notice, by path.
    print(json.dumps({name: trail(n) for name, n in {**ready, "web": web,
                                                      "reminder": reminder}.items()}))
    blocked, written = g["telegram_blocked"].user, g["telegram_written"].user
    assert after["telegram"][blocked] == before["telegram"][blocked]  # nothing reached it
    assert after["telegram"][written] == before["telegram"][written] + 1
    [ready_text] = apps["telegram"].messages_to(written)[-1:]
    assert g["telegram_written"].reference in ready_text and "领取" in ready_text
