"""Scale-out on standard infrastructure: Debian's nginx running deploy/nginx.conf in front of
two Rasa servers, each with its own action server, on one Redis and one card service.

REST goes to the Rasa with fewer requests in progress (round robin among equals), so the
turns of one conversation hop between the Rasas; socket.io is
sticky by client address (ip_hash), so a page's socket lives on one Rasa while a card-ready
push may arrive at either.

The shipped limits per client address hold: a flood from one address is refused with 429
before Rasa sees it, while other addresses are served. These tests come from 127.0.0.2 and
up; 127.0.0.1, the other tests' one address for many guardians, is left uncounted.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import ssl
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import requests
import socketio
from requests.adapters import HTTPAdapter
from websockets.exceptions import InvalidStatusCode
from websockets.legacy.client import connect

from tests.testkit.nginx import MISSING, NGINX, Nginx
from tests.testkit.people import as_kept, child_id, guardian_id
from tests.testkit.redis_server import RedisServer
from tests.testkit.stack import Stack, texts

pytestmark = pytest.mark.integration

REFERENCE = re.compile(r"SC-[0-9A-Z]{4}-[0-9A-Z]{4}")
TIMEOUT = 60.0


@dataclass
class Cluster:
    one: Stack
    two: Stack
    nginx: Nginx

    @property
    def stacks(self) -> tuple[Stack, Stack]:
        return self.one, self.two

    def address(self, stack: Stack) -> str:
        return f"127.0.0.1:{stack.settings.rasa_port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.nginx.certificate))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not NGINX.exists():
        pytest.fail(MISSING, pytrace=False)
    directory = tmp_path_factory.mktemp("nginx-scaleout")
    for part in ("redis", "one", "two"):
        (directory / part).mkdir()
    redis = RedisServer(directory / "redis", directory).start()
    one = Stack(redis.url, directory / "one")
    # The second instance: its own Rasa and action server, the first one's card service.
    two = Stack(redis.url, directory / "two",
                {"CARD_SERVICE_PORT": str(one.settings.card_service_port)})
    nginx = Nginx(directory / "nginx",
                  [one.settings.rasa_port, two.settings.rasa_port],
                  [one.settings.actions_port, two.settings.actions_port])
    try:
        one.launch()
        two.launch("actions", "rasa")
        one.wait(timeout=600)
        two.wait("actions", "rasa", timeout=600)
        nginx.start()
        yield Cluster(one, two, nginx)
    finally:
        nginx.stop()
        two.stop()
        one.stop()
        redis.stop()


def test_one_report_over_rest_hops_between_both_rasas_and_stays_whole(cluster: Cluster) -> None:
    child, guardian = child_id(age=9, sequence=201), guardian_id(sequence=202)
    sender = f"guardian-{uuid.uuid4().hex[:10]}"
    messages = ["my son lost his social security card", "yes", "Li Ming", child, "Li Qiang",
                guardian, "I'm his father", "13800138000", "Beijing", "yes"]
    served_by, replies = [], []
    for message in messages:
        response = requests.post(f"{cluster.nginx.https_url}/webhooks/rest/webhook",
                                 json={"sender": sender, "message": message},
                                 verify=str(cluster.nginx.certificate), timeout=TIMEOUT)
        assert response.ok, response.text
        served_by.append(response.headers["X-Upstream"])
        replies.append(texts(response.json()))

    assert set(served_by) == {cluster.address(stack) for stack in cluster.stacks}, served_by
    # Each answer continues the form where the other Rasa left it.
    assert "ID number" in replies[2] and "your full name" in replies[3].lower()
    summary, filed = replies[-2], replies[-1]
    masked = f"{child[:4]}**********{child[-4:]}"
    assert masked in summary and child not in summary
    reference = REFERENCE.search(filed)
    assert reference, filed

    listing = requests.get(f"{cluster.one.settings.card_service_url}/v1/loss-reports",
                           params={"limit": 500}, timeout=TIMEOUT,
                           headers={"Authorization": f"Bearer {cluster.one.settings.staff_token}"})
    assert listing.ok, listing.text
    filed_for_child = [report["reference"] for report in listing.json()["reports"]
                       if report["child"]["id_number_masked"] == masked]
    assert filed_for_child == [reference.group()]

    for stack in cluster.stacks:
        events = stack.tracker(sender)["events"]
        said = [event["text"] for event in events if event["event"] == "user"]
        # Every message, in order, as it is kept once filed: numbers and names masked.
        kept = [as_kept(m, ("Li Ming", "Li Qiang")) for m in messages]
        assert said == kept, f"tracker on {cluster.address(stack)}"

    for process in [cluster.nginx.process, *cluster.one.processes.values(),
                    *cluster.two.processes.values()]:
        log = process.log_path.read_text(errors="replace") if process.log_path.exists() else ""
        assert child not in log and guardian not in log, process.name


class Page:
    """What rasa-webchat does on the page, through nginx, over one socket.io transport."""

    transport = ""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.received: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def connect(self) -> None:
        raise NotImplementedError

    async def emit(self, event: str, data: dict) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def next(self, event: str, what: str) -> Any:
        try:
            while True:
                name, data = await asyncio.wait_for(self.received.get(), TIMEOUT)
                if name == event:
                    return data
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} over {self.transport} within {TIMEOUT:.0f} s") \
                from None


class PollingPage(Page):
    """Long polling, how the widget starts (python-socketio's client)."""

    transport = "polling"

    async def connect(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self.cluster.ssl_context())
        self.http = aiohttp.ClientSession(connector=connector)
        self.client = socketio.AsyncClient(reconnection=False, http_session=self.http)
        for event in ("session_confirm", "bot_uttered"):
            self.client.on(event, functools.partial(self._put, event))
        await self.client.connect(self.cluster.nginx.https_url, socketio_path="/socket.io",
                                  transports=["polling"], wait_timeout=TIMEOUT)

    def _put(self, event: str, data: Any) -> None:
        self.received.put_nowait((event, data))

    async def emit(self, event: str, data: dict) -> None:
        await self.client.emit(event, data)

    async def close(self) -> None:
        await self.client.disconnect()
        await self.http.close()


class WebsocketPage(Page):
    """The websocket the widget upgrades to, spoken by hand: python-engineio's websocket
    client needs a newer aiohttp than Rasa's."""

    transport = "websocket"

    async def connect(self) -> None:
        url = (f"wss://127.0.0.1:{self.cluster.nginx.https_port}"
               "/socket.io/?EIO=4&transport=websocket")
        self.socket = await connect(url, ssl=self.cluster.ssl_context(), open_timeout=TIMEOUT)
        opened = await asyncio.wait_for(self.socket.recv(), TIMEOUT)
        assert str(opened).startswith("0{"), opened  # Engine.IO "open"
        await self.socket.send("40")  # Socket.IO: join the default namespace
        joined = await asyncio.wait_for(self.socket.recv(), TIMEOUT)
        assert str(joined).startswith("40"), joined
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for packet in self.socket:
            if packet == "2":  # Engine.IO ping
                await self.socket.send("3")
            elif isinstance(packet, str) and packet.startswith("42"):
                event, data = json.loads(packet[2:])
                self.received.put_nowait((event, data))

    async def emit(self, event: str, data: dict) -> None:
        await self.socket.send("42" + json.dumps([event, data]))

    async def close(self) -> None:
        self.reader.cancel()
        await self.socket.close()


async def _pushes_from_each_rasa(cluster: Cluster, transport: str) -> dict[str, str]:
    session = uuid.uuid4().hex
    page = {"polling": PollingPage, "websocket": WebsocketPage}[transport](cluster)
    await page.connect()
    try:
        await page.emit("session_request", {"session_id": session})
        assert await page.next("session_confirm", "session_confirm") == session
        # The greeting makes web chat the conversation's latest channel.
        await page.emit("user_uttered", {"message": '/greet{"language": "en"}',
                                         "session_id": session, "customData": {"language": "en"}})
        assert "assistant" in (await page.next("bot_uttered", "greeting"))["text"]
        await asyncio.sleep(1)  # the greeting may come in several messages
        while not page.received.empty():
            page.received.get_nowait()

        delivered = {}
        for stack, reference in zip(cluster.stacks, ("SC-7K3F-9Q2M", "SC-4M8P-2R7T"), strict=True):
            response = await asyncio.to_thread(
                requests.post, f"{stack.rasa_url}/conversations/webchat:{session}/trigger_intent",
                params={"token": stack.settings.rasa_token, "output_channel": "latest"},
                json={"name": "EXTERNAL_card_ready", "entities": {"reference_number": reference}},
                timeout=TIMEOUT)
            assert response.ok, response.text
            what = f"card-ready push sent to {cluster.address(stack)}"
            while reference not in (text := (await page.next("bot_uttered", what))["text"]):
                pass
            delivered[cluster.address(stack)] = text
        return delivered
    finally:
        await page.close()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_card_ready_sent_to_either_rasa_reaches_the_page_through_nginx(
        cluster: Cluster, transport: str) -> None:
    # In a thread of its own: another test's Playwright may hold this thread's event loop.
    with ThreadPoolExecutor(1) as thread:
        delivered = thread.submit(asyncio.run, _pushes_from_each_rasa(cluster, transport)).result()
    assert set(delivered) == {cluster.address(stack) for stack in cluster.stacks}
    assert all("ready to collect" in text for text in delivered.values()), delivered
    # Sticky: every socket.io request went to one Rasa, so that Rasa held the page's socket
    # and the other Rasa's push crossed over through Redis.
    held_by = set(cluster.nginx.upstreams_of("/socket.io/"))
    assert len(held_by) == 1 and held_by <= set(cluster.nginx.rasa_addresses), held_by


def test_public_server_hides_the_http_api_and_refuses_oversized_bodies(cluster: Cluster) -> None:
    https, ca = cluster.nginx.https_url, str(cluster.nginx.certificate)
    token = {"token": cluster.one.settings.rasa_token}
    assert requests.get(f"{cluster.one.rasa_url}/status", params=token, timeout=TIMEOUT).ok
    for path in ("/status", "/conversations/someone/tracker"):
        assert requests.get(https + path, params=token, verify=ca, timeout=TIMEOUT).status_code \
            == 404, path
    big = {"sender": "someone", "message": "x" * 100_000}
    assert requests.post(f"{https}/webhooks/rest/webhook", json=big, verify=ca,
                         timeout=TIMEOUT).status_code == 413
    # Plain HTTP redirects a browser and refuses a webhook: a message sent in clear is not
    # forwarded (WeChat, like every platform, is configured with an https:// URL).
    page = requests.get(f"{cluster.nginx.http_url}/webhooks/webchat/chat/", timeout=TIMEOUT,
                        allow_redirects=False)
    assert page.status_code == 301 and page.headers["Location"].startswith("https://")
    for channel in ("wechat", "rest"):
        plain = requests.post(f"{cluster.nginx.http_url}/webhooks/{channel}/webhook",
                              data=b"<xml/>", timeout=TIMEOUT, allow_redirects=False)
        assert plain.status_code == 403, channel
    assert not [line for line in cluster.nginx.access_log.read_text().splitlines()
                if line.startswith("POST /webhooks/wechat/") and not line.endswith(" -")]


# Limits per client address (deploy/nginx.conf): the people zone (the chat page and its
# socket) allows a burst of 40 and 10 a second, the platforms zone (channel webhooks) a
# burst of 100 and 20 a second; one address holds 10 sockets at most.


class FromAddress(HTTPAdapter):
    """Connections from one loopback address, which nginx sees as one client."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_at(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("https://", FromAddress(address))
    return session


def flood(cluster: Cluster, address: str, path: str, refusals: int = 20, most: int = 2000
          ) -> tuple[list[int], float, requests.Response]:
    """GETs from `address` as fast as one client sends them, until nginx has refused
    `refusals`: every status in order, the seconds it took and the last refusal."""
    client = client_at(address)
    codes: list[int] = []
    refused: requests.Response | None = None
    started = time.monotonic()
    while codes.count(429) < refusals and len(codes) < most:
        response = client.get(cluster.nginx.https_url + path, timeout=TIMEOUT,
                              verify=str(cluster.nginx.certificate))
        codes.append(response.status_code)
        if response.status_code == 429:
            refused = response
    assert refused is not None, codes[-5:]
    return codes, time.monotonic() - started, refused


@pytest.mark.parametrize("path, burst, rate", [
    ("/", 40, 10),                   # the chat page's location (people)
    ("/webhooks/rest/", 100, 20),    # a channel webhook (platforms)
], ids=["people", "platforms"])
def test_a_flood_from_one_address_is_refused_while_another_is_served(
        cluster: Cluster, path: str, burst: int, rate: int) -> None:
    flooder, neighbour = ("127.0.0.2", "127.0.0.3") if path == "/" else ("127.0.0.4",
                                                                          "127.0.0.5")
    before = len(cluster.nginx.access_log.read_text().splitlines())
    codes, seconds, refused = flood(cluster, flooder, path)
    assert set(codes) == {200, 429}, set(codes)
    # The burst is served at once, then the rate: never more, whatever the pace.
    assert codes[:burst + 1] == [200] * (burst + 1)
    assert codes.count(200) <= burst + 1 + math.ceil(rate * seconds), (codes.count(200), seconds)
    assert refused.headers["Retry-After"] == "1"
    assert "Too many requests" in refused.text and "请稍候" in refused.text
    # The refused never reached a Rasa; the next address, and 127.0.0.1, are served.
    logged = cluster.nginx.access_log.read_text().splitlines()[before:]
    assert all(line.endswith(" -") for line in logged if " 429 " in line)
    assert sum(" 429 " in line for line in logged) == codes.count(429)
    for other in (neighbour, "127.0.0.1"):
        assert client_at(other).get(cluster.nginx.https_url + path, timeout=TIMEOUT,
                                    verify=str(cluster.nginx.certificate)).status_code == 200


async def _sockets_from(cluster: Cluster, address: str, count: int) -> tuple[list[Any], int]:
    """Opens `count` web chat websockets from `address`: the open ones and the status of
    the first refused (0 if none was)."""
    url = f"wss://127.0.0.1:{cluster.nginx.https_port}/socket.io/?EIO=4&transport=websocket"
    opened: list[Any] = []
    for _ in range(count):
        try:
            socket = await connect(url, ssl=cluster.ssl_context(), open_timeout=TIMEOUT,
                                   local_addr=(address, 0))
        except InvalidStatusCode as error:
            return opened, error.status_code
        assert str(await asyncio.wait_for(socket.recv(), TIMEOUT)).startswith("0{")
        opened.append(socket)
    return opened, 0


async def _one_address_holds_ten_sockets(cluster: Cluster) -> None:
    held, refused = await _sockets_from(cluster, "127.0.0.6", 11)
    try:
        assert (len(held), refused) == (10, 429)
        others, none_refused = await _sockets_from(cluster, "127.0.0.7", 1)
        assert (len(others), none_refused) == (1, 0)
        await others[0].close()
        # A socket closed is a place free again for that address.
        await held.pop().close()
        for _ in range(int(TIMEOUT / 0.1)):
            again, refused = await _sockets_from(cluster, "127.0.0.6", 1)
            if again:
                held.extend(again)
                break
            await asyncio.sleep(0.1)
        assert len(held) == 10
    finally:
        for socket in held:
            await socket.close()


def test_one_address_holds_ten_web_chat_sockets_at_most(cluster: Cluster) -> None:
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _one_address_holds_ten_sockets(cluster)).result()
