"""Redis users per component on a real Redis configured as the embedded one is (bot/redis.py
ACL_USERS): Rasa's stores and channels and the card service each do their real work as their
own user, and are refused the other's keys and anything dangerous; the default user is off."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot import redis as bot_redis
from bot.channels.buttons import ButtonMemory
from bot.channels.webchat import SharedTurns
from bot.rasa.lock_store import AtomicRedisLockStore
from bot.rasa.tracker_store import RedisTrackerStore
from bot.rules import statuses
from bot.settings import ROOT, settings
from bot.stack import redis_server
from tests.integration.conftest import CardService
from tests.testkit import people
from tests.testkit.processes import Process, free_port, wait_for
from tests.testkit.rasa_stand_in import RasaStandIn
from tests.testkit.redis_server import ADMIN_PASSWORD, RedisServer

pytestmark = pytest.mark.integration

RASA, CARD, CONSOLE = bot_redis.RASA_USER, bot_redis.CARD_SERVICE_USER, bot_redis.CONSOLE_USER
USERS = {RASA: "rasa-test-password", CARD: "card-service-test-password",
         CONSOLE: "console-test-password"}
WAIT = 10.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    started = RedisServer(directory, tmp_path, users=USERS).start()
    yield started
    started.stop()


def as_user(server: RedisServer, user: str) -> redis.Redis:
    return redis.Redis.from_url(server.url_for(user), decode_responses=True)


def refused(call: Callable[[], Any]) -> str:
    """The error Redis answers `call` with; fails the test when it is answered."""
    try:
        call()
    except (redis.exceptions.NoPermissionError, redis.ResponseError,
            redis.AuthenticationError) as error:
        return str(error)
    raise AssertionError("Redis allowed it")


def test_the_default_user_is_off_and_only_the_admin_reaches_everything(
        server: RedisServer) -> None:
    anonymous = redis.Redis(port=server.port)
    assert "Authentication" in refused(anonymous.ping) or "NOAUTH" in refused(anonymous.ping)
    # The admin's password alone (the `requirepass` way) names the default user: refused.
    default = redis.Redis(port=server.port, password=ADMIN_PASSWORD)
    refused(default.ping)
    admin = server.client()
    admin.set("cardsvc:report:SC-TEST-0001", "x")
    admin.set("cardbot:tracker:someone", "y")
    assert admin.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert set(admin.acl_users()) == {"default", "admin", RASA, CARD, CONSOLE}
    wrong = redis.Redis(port=server.port, username=RASA, password="not-the-password")
    refused(wrong.ping)


def test_rasa_keeps_conversations_locks_turns_and_buttons_as_its_own_user(
        server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_ENCRYPTION_KEY", "acl-test-key-0123456789")
    monkeypatch.delenv("DATA_ENCRYPTION_KEYS_RETIRED", raising=False)
    settings.cache_clear()
    url = server.url_for(RASA)
    domain = Domain.load(str(ROOT / "domain.yml"))
    trackers = RedisTrackerStore(domain, host="127.0.0.1", port=server.port, username=RASA,
                                 password=USERS[RASA], key_prefix=bot_redis.TRACKER,
                                 record_exp=60)
    locks = AtomicRedisLockStore("127.0.0.1", server.port, username=RASA,
                                 password=USERS[RASA], key_prefix=bot_redis.TRACKER)

    async def work() -> dict[str, Any]:
        done: dict[str, Any] = {}
        events = [ActionExecuted("action_session_start", timestamp=1.0),
                  SessionStarted(timestamp=1.1), ActionExecuted("action_listen", timestamp=1.2),
                  UserUttered("hello", {"name": "greet", "confidence": 1.0}, timestamp=1.3),
                  SlotSet("language", "en", timestamp=1.4)]
        async with locks.lock("webchat:acl"):
            await trackers.save(DialogueStateTracker.from_events("webchat:acl", events))
        found = await trackers.retrieve("webchat:acl")
        done["slot"] = found.get_slot("language") if found else None
        # A second process's lock on the same conversation waits for the first (the scripts
        # read Redis's clock: TIME).
        number = locks.issue_ticket("webchat:acl", 30)
        done["locked"] = locks.is_someone_waiting("webchat:acl")
        locks.finish_serving("webchat:acl", number)

        buttons = ButtonMemory(url, f"{bot_redis.WECHAT}wx-acl")
        await buttons.remember("openid-1", [{"title": "Yes", "payload": "/affirm"}])
        done["button"] = await buttons.answered("openid-1", "1")
        await buttons.close()

        # A turn beyond a busy process waits on Redis and runs on the other process.
        ran: dict[str, list[str]] = {"busy": [], "idle": []}
        gate = asyncio.Event()

        def runner(name: str) -> Callable[[dict[str, Any]], Any]:
            async def run(turn: dict[str, Any]) -> None:
                ran[name].append(turn["text"])
                if name == "busy":
                    await gate.wait()
            return run

        busy, idle = SharedTurns(url, 1, runner("busy")), SharedTurns(url, 1, runner("idle"))
        busy.start()
        idle.start()
        try:
            held = asyncio.create_task(busy.submit({"text": "one", "sender_id": "webchat:a"}))
            await until(lambda: ran["busy"] == ["one"])
            await busy.submit({"text": "two", "sender_id": "webchat:b"})
            await until(lambda: ran["idle"] == ["two"])
            gate.set()
            await held
        finally:
            await busy.stop()
            await idle.stop()
        done["turns"] = ran

        # socket.io rooms: every Rasa process publishes and listens on one channel.
        listener = redis.asyncio.Redis.from_url(url)
        pubsub = listener.pubsub()
        await pubsub.subscribe(bot_redis.SOCKETIO)
        await listener.publish(bot_redis.SOCKETIO, "room message")
        message = None
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message:
                break
        done["room"] = message["data"] if message else None
        await pubsub.close()
        await listener.close()
        return done

    done = asyncio.run(work())
    assert done["slot"] == "en"
    assert done["locked"] is True
    assert done["button"] == "/affirm"
    assert done["turns"] == {"busy": ["one"], "idle": ["two"]}
    assert done["room"] == b"room message"
    admin = server.client()
    assert admin.exists(f"{bot_redis.TRACKER}:tracker:webchat:acl")


def test_rasa_cannot_touch_reports_or_run_dangerous_commands(server: RedisServer) -> None:
    server.client().hset("cardsvc:report:SC-TEST-0001", "guardian_phone", "sealed")
    rasa = as_user(server, RASA)
    assert "no permissions" in refused(lambda: rasa.hgetall("cardsvc:report:SC-TEST-0001"))
    refused(lambda: rasa.get("cardsvc:report:SC-TEST-0001"))
    refused(lambda: rasa.delete("cardsvc:outbox"))
    # A script runs as its caller: it reaches no key the caller could not.
    refused(lambda: rasa.eval("return redis.call('HGETALL', KEYS[1])", 1,
                              "cardsvc:report:SC-TEST-0001"))
    refused(lambda: rasa.eval("return redis.call('HGETALL', 'cardsvc:report:SC-TEST-0001')", 0))
    for dangerous in (rasa.flushall, rasa.flushdb, lambda: rasa.keys("*"),
                      lambda: rasa.config_get("*"), rasa.info, lambda: rasa.acl_list(),
                      lambda: rasa.scan(0), rasa.randomkey):
        refused(dangerous)
    refused(lambda: rasa.publish("another-channel", "x"))
    assert server.client().hget("cardsvc:report:SC-TEST-0001", "guardian_phone") == "sealed"


def test_the_card_service_does_its_work_as_its_own_user(server: RedisServer,
                                                         tmp_path: Path) -> None:
    rasa = RasaStandIn(free_port()).start()
    service = CardService(server.url_for(CARD), tmp_path,
                          {"RASA_URL": rasa.url, "CARD_SERVICE_OUTBOX_MAX_DELAY": "1"}).start()
    try:
        body = people.report_body(conversation_id="webchat:acl-card")
        first = service.post("/v1/loss-reports", body, **{"Idempotency-Key": "acl-1"})
        assert first.status_code == 201, first.text
        reference = first.json()["reference"]
        again = service.post("/v1/loss-reports", body, **{"Idempotency-Key": "acl-1"})
        assert again.json()["reference"] == reference
        wrong = {"guardian_id_number": people.guardian_id(sequence=91)}
        assert service.post(f"/v1/loss-reports/{reference}/lookup", wrong,
                            **{"X-Caller-Id": "acl-caller"}).status_code == 404
        right = {"guardian_id_number": body["guardian"]["id_number"]}
        assert service.post(f"/v1/loss-reports/{reference}/lookup", right,
                            **{"X-Caller-Id": "acl-caller"}).status_code == 200
        for status in statuses.MAIN_LINE[1:statuses.MAIN_LINE.index(
                statuses.READY_FOR_COLLECTION) + 1]:
            moved = service.post(f"/v1/loss-reports/{reference}/events", {"status": status},
                                 role="staff")
            assert moved.status_code == 200, moved.text
        # The outbox tells Rasa (its stand-in) the card is ready, and marks it delivered.
        wait_for(lambda: len(rasa.received) == 1, WAIT, "the card-ready notice")
        listing = service.get("/v1/loss-reports?limit=10", role="staff")
        assert [report["reference"] for report in listing.json()["reports"]] == [reference]
        assert requests.get(service.url + "/health", timeout=5).json()["redis"] is True
    finally:
        service.stop()
        rasa.stop()
    log = service.process.log_path.read_text(errors="replace")
    assert not any(word in log for word in ("NOPERM", "NoPermission", "unavailable")), log
    assert server.client().exists(f"cardsvc:report:{reference}")


def test_the_card_service_cannot_read_conversations_or_rooms(server: RedisServer) -> None:
    server.client().set("cardbot:tracker:webchat:someone", "sealed conversation")
    card = as_user(server, CARD)
    assert "no permissions" in refused(lambda: card.get("cardbot:tracker:webchat:someone"))
    refused(lambda: card.set("cardbot:webchat:turns", "x"))
    refused(lambda: card.set("wechat:wx-acl:token", "x"))
    refused(lambda: card.publish(bot_redis.SOCKETIO, "a forged room message"))
    refused(lambda: card.scan(0))
    refused(card.flushall)
    card.hset("cardsvc:report:SC-TEST-0002", "status", "reported_temporary")  # its own: fine
    assert server.client().get("cardbot:tracker:webchat:someone") == "sealed conversation"


def users(client: redis.Redis) -> dict[str, set[str]]:
    """ACL LIST as {user: its rules}, password digests left out (Redis lists rules in no
    fixed order)."""
    listed = [rule.split() for rule in client.acl_list()]
    return {words[1]: {word for word in words[2:] if not word.startswith("#")}
            for words in listed}


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(int(WAIT / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {WAIT:.0f} s")


def test_deploy_starts_redis_with_the_same_users(server: RedisServer, tmp_path: Path) -> None:
    """deploy/redis-start.sh (compose and Kubernetes) run with a real redis-server: the same
    users and rules as the embedded Redis, and no password in the process's arguments."""
    port = free_port()
    binary = Path(redis_server.binary())
    env = {**os.environ, "PATH": f"{binary.parent}{os.pathsep}{os.environ['PATH']}",
           "REDIS_PASSWORD": "deploy-admin", "REDIS_RASA_PASSWORD": USERS[RASA],
           "REDIS_CARD_SERVICE_PASSWORD": USERS[CARD], "REDIS_CONSOLE_PASSWORD": USERS[CONSOLE],
           "REDIS_MAXMEMORY": "64mb",
           "TMPDIR": str(tmp_path)}
    deployed = Process("redis-start", ["sh", str(ROOT / "deploy" / "redis-start.sh"), "--port",
                                       str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)],
                       env, tmp_path).start()
    try:
        admin = redis.Redis(port=port, username="admin", password="deploy-admin",
                            decode_responses=True)

        def up() -> bool:
            try:
                return bool(admin.ping())
            except redis.ConnectionError:
                return False

        wait_for(up, WAIT, "redis-start.sh")
        assert users(admin) == users(server.client())
        assert admin.config_get("appendfsync") == {"appendfsync": "always"}
        assert admin.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        rasa = redis.Redis(port=port, username=RASA, password=USERS[RASA])
        assert rasa.set("cardbot:tracker:deploy", "x")
        refused(lambda: rasa.get("cardsvc:report:SC-TEST-0003"))
        refused(redis.Redis(port=port).ping)
        assert deployed.popen is not None
        arguments = Path(f"/proc/{deployed.popen.pid}/cmdline").read_bytes().decode()
        assert "deploy-admin" not in arguments and USERS[RASA] not in arguments
    finally:
        deployed.stop()
