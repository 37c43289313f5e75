"""The web chat channel: socket.io rooms shared through Redis, and the chat page itself.

Rasa's own socket.io channel keeps its rooms in the process that holds the socket, so a
message pushed by another Rasa process or worker (the card service's "card ready") is
lost. Ours builds the same server with python-socketio's Redis manager: an emit to a
conversation's room is published on Redis and every process delivers it to the sockets
it holds.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import inspect
import json
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import rasa.core.channels.channel
import redis.asyncio
import socketio
from rasa.core.channels.channel import UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.settings import ROOT, Settings

log = logging.getLogger(__name__)

WEB_DIR = ROOT / "web"
# The files the page may fetch, and nothing else: the widget bundle comes from npm.
ASSETS: dict[str, tuple[Path, str]] = {
    "": (WEB_DIR / "index.html", "text/html; charset=utf-8"),
    "chat.js": (WEB_DIR / "chat.js", "application/javascript; charset=utf-8"),
    "chat.css": (WEB_DIR / "chat.css", "text/css; charset=utf-8"),
    "webchat.js": (
        WEB_DIR / "node_modules" / "rasa-webchat" / "lib" / "index.js",
        "application/javascript; charset=utf-8",
    ),
}
SECURITY_HEADERS = {
    # No inline script: even markup that slipped into the page could not run.
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: https:; "
        "style-src 'self' 'unsafe-inline'; font-src 'self' data:; script-src 'self'; "
        "object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# The session id is the conversation id and the only thing that lets a socket join a
# conversation's room: it must be long enough not to be guessed. Anything else gets a new one.
# rasa-webchat's styles import a web font from Google: taken out so the page fetches
# nothing from elsewhere (the CSP would block it anyway, and it is slow or blocked in China).
REMOTE_FONT_IMPORT = re.compile(rb"@import url\(https://fonts\.googleapis\.com/[^)]*\);")
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")
# Every process of one stack must use the same channel; the prefix keeps it apart from
# other users of the same Redis.
REDIS_CHANNEL = "cardbot:socketio"
SUBSCRIBE_TIMEOUT = 5.0
SHARED_TURNS_KEY = "cardbot:webchat:turns"
PROCESSES_KEY = "cardbot:webchat:processes"
CLAIMED_PREFIX = "cardbot:webchat:claimed:"  # + process name: its turns in progress
ALIVE_PREFIX = "cardbot:webchat:alive:"  # + process name, kept fresh while it runs
BLOCK_S = 1  # how long a read of the shared turns blocks
ALIVE_S = 10.0  # a process whose alive key is gone this long has its turns taken over
BEAT_S = 2.0
STOP_WAIT_S = 5.0
REDIS_TIMEOUT_S = 5.0
# KEYS: alive key, claim list, shared turns, processes. ARGV: process name. Puts a stopped
# process's claimed turns back at the head of the shared list, oldest first, and returns
# how many (-1 if the process is alive again). One script, so two processes taking over
# the same one cannot both get its turns.
RETURN_CLAIMED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local moved = 0
while redis.call('RPOPLPUSH', KEYS[2], KEYS[3]) do moved = moved + 1 end
redis.call('SREM', KEYS[4], ARGV[1])
return moved
"""
# Measured in `make bench` (cluster-paced web chat, 32 guardians, p95 over runs): every turn
# a process receives run at once 225-350 ms; up to 2 at once 165-323; 3: 217; 4: 151-188.
DEFAULT_TURNS_AT_ONCE = 4


def valid_session_id(value: Any) -> str | None:
    """The client's session id when it is one we could have issued, else None.

    >>> valid_session_id("3f2a9c0d1e8b4f6a9d7c5b3a1e0f2d4c")
    '3f2a9c0d1e8b4f6a9d7c5b3a1e0f2d4c'
    >>> valid_session_id("alice") is None
    True
    >>> valid_session_id({"id": 1}) is None
    True
    """
    if isinstance(value, str) and SESSION_ID.fullmatch(value):
        return value
    return None


def message_metadata(data: dict[str, Any], key: str) -> dict[str, Any]:
    """The widget's `customData` (a JSON object, sometimes sent as a string) as metadata.

    >>> message_metadata({"customData": '{"language": "zh"}'}, "customData")
    {'language': 'zh'}
    >>> message_metadata({"customData": "not json"}, "customData")
    {}
    """
    metadata = data.get(key) or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return {}
    return metadata if isinstance(metadata, dict) else {}


@functools.lru_cache(maxsize=8)
def served_file(path: Path, mtime_ns: int) -> tuple[bytes, bytes, str]:
    """The file as served, gzipped, and its ETag (cached per version of the file).

    Imports from other sites are taken out; gzip matters on a phone (the widget is 700 KB).
    """
    body = REMOTE_FONT_IMPORT.sub(b"", path.read_bytes())
    return body, gzip.compress(body), f'"{hashlib.sha256(body).hexdigest()[:32]}"'


class LocalFirstRedisManager(socketio.AsyncRedisManager):
    """python-socketio's Redis manager, delivering to this process's own sockets at once.

    The stock manager sends every emit through Redis, to itself too: each reply of a turn
    waited for a Redis round trip and was pickled, read back and unpickled by the process
    that sent it. Here the sockets this process holds get it straight away, and Redis
    carries it to the other processes only (the sender skips its own copy when it comes
    back). What reaches which socket is unchanged; acknowledged emits keep the stock way.
    """

    async def emit(self, event: str, data: Any, namespace: str | None = None,
                   room: str | None = None, skip_sid: Any = None, callback: Any = None,
                   **kwargs: Any) -> None:
        if kwargs.get("ignore_queue") or callback is not None:
            await super().emit(event, data, namespace=namespace, room=room,
                               skip_sid=skip_sid, callback=callback, **kwargs)
            return
        namespace = namespace or "/"
        await socketio.AsyncManager.emit(self, event, data, namespace, room=room,
                                         skip_sid=skip_sid)
        await self._publish({"method": "emit", "event": event, "data": data,
                             "namespace": namespace, "room": room, "skip_sid": skip_sid,
                             "callback": None, "host_id": self.host_id})

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        if message.get("host_id") == self.host_id and message.get("callback") is None:
            return  # delivered to this process's sockets when it was emitted
        await super()._handle_emit(message)


class SharedTurns:
    """Web chat turns share the Rasa processes like REST turns do behind nginx's least_conn.

    A page's socket lives on one process (the balancer is sticky by client address), and
    that process used to run every turn of the page itself, however busy it was, while
    another stood idle: two queues, one per process, instead of one for both. Here a
    process runs up to `limit` web chat turns at once; a message arriving beyond that goes
    on a Redis list, which every process (this one included) reads while it has room.
    The replies reach the page through the socket.io Redis manager, from any process.
    If Redis cannot take the message, this process runs the turn itself.

    A turn in progress stays on this process's claim list in Redis until it is done (the
    move off the shared list onto it is one Redis command), and every process keeps an
    alive key fresh. When a process is killed, another puts its claimed turns back on the
    shared list once the key has been gone for `alive_s` seconds as seen by it (twice, so
    a Redis restart that dropped every key does not make live processes look dead): a
    message the page sent is answered, even by another process, after the one running it
    died. At least once: a process stalled past that, or killed between saving the
    tracker and dropping the claim, has its turn run again.
    """

    def __init__(self, redis_url: str, limit: int,
                 run_turn: Callable[[dict[str, Any]], Awaitable[Any]],
                 alive_s: float = ALIVE_S, beat_s: float = BEAT_S) -> None:
        self.limit = limit
        self.running = 0
        self.name = uuid.uuid4().hex
        self._claimed = CLAIMED_PREFIX + self.name
        self._alive_s = alive_s
        self._beat_s = beat_s
        self._run_turn = run_turn
        self._room = asyncio.Event()
        self._room.set()
        self._stop_event = asyncio.Event()
        # A blocked read must not be cut short by the socket timeout, and a Redis that
        # stops answering must not hang a guardian's message for ever.
        self._redis = redis.asyncio.Redis.from_url(
            redis_url, socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=BLOCK_S + REDIS_TIMEOUT_S)
        self._return_claimed = self._redis.register_script(RETURN_CLAIMED)
        self._tasks: set[asyncio.Task[None]] = set()
        self._unreleased: set[bytes] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def submit(self, turn: dict[str, Any]) -> None:
        raw = json.dumps({**turn, "id": uuid.uuid4().hex}).encode()
        if self.running < self.limit:
            self._enter()  # before any await: the place is this turn's
            await self._run(raw, claimed=await self._pushed(self._claimed, raw))
        elif not await self._pushed(SHARED_TURNS_KEY, raw):
            self._enter()
            await self._run(raw, claimed=False)

    async def _pushed(self, key: str, raw: bytes) -> bool:
        try:
            await self._redis.rpush(key, raw)
            return True
        except redis.RedisError as error:
            log.warning("webchat: turn not put on %s (%s), run here", key, type(error).__name__)
            return False

    def _enter(self) -> None:
        self.running += 1
        if self.running >= self.limit:
            self._room.clear()

    def _leave(self) -> None:
        self.running -= 1
        if self.running < self.limit:
            self._room.set()

    async def _run(self, raw: bytes, claimed: bool) -> None:
        """Run a turn whose place `_enter` took."""
        try:
            await self._run_turn(json.loads(raw))
        except Exception:
            log.exception("webchat: turn failed")
        finally:
            self._leave()
            if claimed:
                await self._release(raw)

    async def _release(self, raw: bytes) -> None:
        try:
            await self._redis.lrem(self._claimed, 1, raw)
        except redis.RedisError:
            self._unreleased.add(raw)  # dropped at the next beat, so it is not run again

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._take_shared_turns()),
                         asyncio.create_task(self._beat())]

    async def stop(self) -> None:
        """Take no more shared turns, let the running ones finish for a few seconds, then
        hand back what is still claimed (a blocked read is left to time out: redis-py's
        asyncio client does not always give up a blocked read when cancelled)."""
        self._stopping = True
        self._room.set()
        self._stop_event.set()
        if self._workers:
            await asyncio.wait(self._workers, timeout=BLOCK_S + 2)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_WAIT_S
        while self.running and loop.time() < deadline:
            await asyncio.sleep(0.05)
        try:
            await self._flush_unreleased()
            await self._redis.delete(ALIVE_PREFIX + self.name)
            handed = await self._give_back_claims(self.name)
            if handed:
                log.warning("webchat: %d unfinished turn(s) handed to the other processes",
                            handed)
        except redis.RedisError:
            pass  # the other processes take them over once this one's alive key is gone
        await self._redis.close()

    async def _take_shared_turns(self) -> None:
        while not self._stopping:
            await self._room.wait()
            if self._stopping:
                return
            try:
                raw = await self._redis.blmove(SHARED_TURNS_KEY, self._claimed, BLOCK_S,
                                               "LEFT", "RIGHT")
            except redis.RedisError as error:
                log.warning("webchat: shared turns unreadable (%s)", type(error).__name__)
                await asyncio.sleep(1)
                continue
            if raw is None:
                continue
            if self._stopping or self.running >= self.limit:
                # Filled by this process's own pages while it waited, or stopping: back to
                # the head of the list, for a process with room.
                await self._give_back(raw)
                continue
            self._start(raw)

    def _start(self, raw: bytes) -> None:
        self._enter()
        task = asyncio.create_task(self._run(raw, claimed=True))
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def _give_back(self, raw: bytes) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lrem(self._claimed, 1, raw)
                pipe.lpush(SHARED_TURNS_KEY, raw)
                await pipe.execute()
        except redis.RedisError:
            self._start(raw)  # never dropped: run here, over the limit

    async def _give_back_claims(self, name: str) -> int:
        keys = [ALIVE_PREFIX + name, CLAIMED_PREFIX + name, SHARED_TURNS_KEY, PROCESSES_KEY]
        return int(await self._return_claimed(keys=keys, args=[name]))

    async def _flush_unreleased(self) -> None:
        if self._unreleased:
            unreleased = list(self._unreleased)
            async with self._redis.pipeline(transaction=False) as pipe:
                for raw in unreleased:
                    pipe.lrem(self._claimed, 1, raw)
                await pipe.execute()
            self._unreleased.difference_update(unreleased)

    async def _beat(self) -> None:
        gone_since: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.set(ALIVE_PREFIX + self.name, 1, px=int(self._alive_s * 1000))
                    pipe.sadd(PROCESSES_KEY, self.name)
                    await pipe.execute()
                await self._flush_unreleased()
                await self._take_over(gone_since, loop.time())
            except redis.RedisError as error:
                log.warning("webchat: claims unchecked (%s)", type(error).__name__)
            try:
                await asyncio.wait_for(self._stop_event.wait(), self._beat_s)
            except asyncio.TimeoutError:
                pass

    async def _take_over(self, gone_since: dict[str, float], now: float) -> None:
        """Put the claimed turns of processes gone for `alive_s` back on the shared list."""
        names = {name.decode() for name in await self._redis.smembers(PROCESSES_KEY)}
        others = list(names - {self.name})
        alive = await self._redis.mget([ALIVE_PREFIX + name for name in others]) if others else []
        for name in set(gone_since) - names:
            del gone_since[name]
        for name, key in zip(others, alive, strict=True):
            if key is not None:
                gone_since.pop(name, None)
            elif now - gone_since.setdefault(name, now) >= self._alive_s:
                del gone_since[name]
                returned = await self._give_back_claims(name)
                if returned > 0:
                    log.warning("webchat: %d turn(s) of a stopped process shared again",
                                returned)


def turns_at_once(value: str | None) -> int:
    """`WEBCHAT_TURNS_AT_ONCE`: web chat turns a process runs at once before sharing the
    rest (0: a process that only holds sockets, when others run the turns).

    >>> turns_at_once(None), turns_at_once(" 2 "), turns_at_once("0")
    (4, 2, 0)
    >>> turns_at_once("many")
    Traceback (most recent call last):
    ...
    ValueError: WEBCHAT_TURNS_AT_ONCE must be a whole number from 0 to 64, not 'many'
    """
    if value is None or not value.strip():
        return DEFAULT_TURNS_AT_ONCE
    if value.strip().isdigit() and int(value) <= 64:
        return int(value)
    raise ValueError(f"WEBCHAT_TURNS_AT_ONCE must be a whole number from 0 to 64, not {value!r}")


def redis_client_manager(redis_url: str) -> socketio.AsyncRedisManager:
    return LocalFirstRedisManager(redis_url, channel=REDIS_CHANNEL)


class WebChatInput(SocketIOInput):
    """Rasa's socket.io channel (same events, session persistence and `jwt_key`),
    with its rooms shared through Redis."""

    @classmethod
    def name(cls) -> str:
        return "webchat"

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        redis_url = Settings.from_env().redis_url
        # cors_allowed_origins=[] as in Rasa: Rasa's own --cors setting decides.
        sio = socketio.AsyncServer(
            async_mode="sanic",
            cors_allowed_origins=[],
            client_manager=redis_client_manager(redis_url),
        )
        # get_output_channel() hands this server to trigger_intent's "latest" channel.
        self.sio = sio
        blueprint = SocketBlueprint(sio, self.socketio_path, "webchat_socketio", __name__)
        limit = turns_at_once(os.environ.get("WEBCHAT_TURNS_AT_ONCE"))

        async def run_turn(turn: dict[str, Any]) -> None:
            await on_new_message(UserMessage(
                turn["text"], SocketIOOutput(sio, self.bot_message_evt), turn["sender_id"],
                input_channel=self.name(), metadata=turn["metadata"]))

        self.shared_turns = SharedTurns(redis_url, limit, run_turn)
        self._add_socket_handlers(sio)
        blueprint.add_route(self._health, "/", methods=["GET"], name="health")
        blueprint.add_route(self._page, "/chat", methods=["GET"], name="chat_page")
        blueprint.add_route(self._page, "/chat/<asset:str>", methods=["GET"], name="chat_asset")

        async def listen_before_clients(app: Sanic, _loop: Any) -> None:
            await self._start_listening(sio)
            self.shared_turns.start()

        async def stop_taking_turns(app: Sanic, _loop: Any) -> None:
            await self.shared_turns.stop()

        blueprint.listener("after_server_start")(listen_before_clients)
        blueprint.listener("before_server_stop")(stop_taking_turns)
        return blueprint

    async def _start_listening(self, sio: socketio.AsyncServer) -> None:
        """Subscribe to the Redis channel now, not at the first connection.

        Left to python-socketio, the subscription starts with the first socket and the
        reply to that socket's session request can be published before it is in place.
        """
        if sio.manager_initialized:
            return
        sio.manager_initialized = True
        sio.manager.initialize()
        pubsub = sio.manager.pubsub
        deadline = asyncio.get_running_loop().time() + SUBSCRIBE_TIMEOUT
        while not pubsub.subscribed:
            if asyncio.get_running_loop().time() > deadline:
                log.warning("webchat: not subscribed to Redis after %.0f s", SUBSCRIBE_TIMEOUT)
                return
            await asyncio.sleep(0.02)

    def _add_socket_handlers(self, sio: socketio.AsyncServer) -> None:
        namespace = self.namespace

        @sio.on("connect", namespace=namespace)
        async def connect(sid: str, environ: dict, auth: dict | None) -> bool:
            if not self.jwt_key:
                return True
            token = (auth or {}).get("token")
            payload = token and rasa.core.channels.channel.decode_bearer_token(
                token, self.jwt_key, self.jwt_algorithm
            )
            return bool(payload)

        @sio.on("session_request", namespace=namespace)
        async def session_request(sid: str, data: dict | None) -> None:
            asked = data.get("session_id") if isinstance(data, dict) else None
            session_id = valid_session_id(asked) or uuid.uuid4().hex
            if self.session_persistence:
                joined = sio.enter_room(sid, session_id, namespace=namespace)
                # A coroutine from python-socketio 5.10 on (Rasa's channel forgets to await it).
                if inspect.isawaitable(joined):
                    await joined
            await sio.emit("session_confirm", session_id, room=sid, namespace=namespace)

        @sio.on(self.user_message_evt, namespace=namespace)
        async def user_message(sid: str, data: dict) -> None:
            if not isinstance(data, dict):
                return
            if self.session_persistence:
                sender_id = valid_session_id(data.get("session_id"))
                if sender_id is None:
                    log.warning("webchat: message without a valid session_id ignored")
                    return
            else:
                sender_id = sid
            await self.shared_turns.submit({
                "text": str(data.get("message") or ""), "sender_id": sender_id,
                "metadata": message_metadata(data, self.metadata_key or "metadata")})

    @staticmethod
    async def _health(_: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    @staticmethod
    async def _page(request: Request, asset: str = "") -> HTTPResponse:
        if not asset and not request.path.endswith("/"):
            # The page's assets are relative to the folder.
            return response.redirect(request.path + "/")
        if asset not in ASSETS:
            return response.text("not found", status=404)
        path, content_type = ASSETS[asset]
        if not path.is_file():
            return response.text("the chat page is not installed: run `make run`", status=503)
        body, zipped, etag = served_file(path, path.stat().st_mtime_ns)
        headers = {**SECURITY_HEADERS, "ETag": etag, "Vary": "Accept-Encoding"}
        if request.headers.get("If-None-Match") == etag:
            return response.empty(status=304, headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return response.raw(zipped, content_type=content_type,
                                headers={**headers, "Content-Encoding": "gzip"})
        return response.raw(body, content_type=content_type, headers=headers)
