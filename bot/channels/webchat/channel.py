"""The web chat's socket.io channel: Rasa's, with its rooms and turns shared through Redis.

Rasa's own socket.io channel keeps its rooms in the process that holds the socket, so a
message pushed by another Rasa process or worker (the card service's "card ready") is
lost. Ours builds the same server with python-socketio's Redis manager: an emit to a
conversation's room is published on Redis and every process delivers it to the sockets
it holds. Its turns go through `SharedTurns`; the page itself is served by `page.py`.
Notices (the card service's "card ready") come by `POST /webhooks/webchat/notice`, path
"page": shown on an open page, else kept until one opens (`delivery.py`).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import rasa.core.channels.channel
import socketio
import socketio.exceptions
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, Sanic

from bot import handoff, notices
from bot import redis as bot_redis
from bot import settings as bot_settings
from bot.channels.base import Addressed, ChannelConfig, ChannelInput, conversation_id, limiter
from bot.channels.limits import busy_text, slow_down_text
from bot.channels.webchat.delivery import NoticeDelivery
from bot.channels.webchat.page import chat_page
from bot.channels.webchat.presence import Presence
from bot.channels.webchat.shared_turns import SharedTurns
from bot.channels.webchat.unread import Taken, UnreadNotices
from bot.rasa.patches.message_limit import MAX_CHARACTERS

log = logging.getLogger(__name__)

# The session id is the conversation id and the only thing that lets a socket join a
# conversation's room: it must be long enough not to be guessed. Anything else gets a new one.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")
# With `jwt_key`, the token's subject names the conversation: the signature, not the
# length, keeps others out of it.
SUBJECT = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
SUBSCRIBE_TIMEOUT = 5.0
# A frame beyond this closes the socket instead of being buffered (python-socketio: 1 MB).
# The longest message we still answer (10,000 characters, told it is too long) is 120 kB
# when a client escapes emoji as \uXXXX pairs; its envelope fits in what is left.
MAX_FRAME_BYTES = 160_000
# What a page's customData may carry into the conversation: the only thing we use.
METADATA_LANGUAGES = ("en", "zh")
# How long a page has to acknowledge a notice's message before the notice counts as not
# shown there (a socket whose process died, a phone that went to sleep).
ACK_TIMEOUT_S = 5.0


def notice_tag(notice_id: str) -> str:
    """What a page is told of a notice: enough to count it, nothing of what it is about.

    >>> notice_tag("SC-7K3F-9Q2M:ready_for_collection")
    'n-708bccb60335'
    """
    return "n-" + hashlib.sha256(notice_id.encode()).hexdigest()[:12]


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
    """The widget's `customData` (a JSON object, sometimes sent as a string) as metadata: only
    the page's language is kept, whatever else a client puts there.

    >>> message_metadata({"customData": '{"language": "zh", "x": "' + 'a' * 99 + '"}'},
    ...                  "customData")
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
    language = metadata.get("language") if isinstance(metadata, dict) else None
    return {"language": language} if language in METADATA_LANGUAGES else {}


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


def redis_client_manager(redis_url: str) -> socketio.AsyncRedisManager:
    # Every process of one stack must use the same pub/sub channel.
    return LocalFirstRedisManager(redis_url, channel=bot_redis.SOCKETIO)


@dataclass(frozen=True)
class WebChatConfig(ChannelConfig):
    """Nothing to set but Redis; the rest of the channel's settings are Rasa's, read from
    credentials.yml by `SocketIOInput.from_credentials`."""

    SETTING_NAMES: ClassVar[Mapping[str, str]] = {
        "turns_at_once": "webchat_turns_at_once",
        "allowed_origins": "webchat_allowed_origins",
        "unread_days": "webchat_unread_days"}

    redis_url: str = ""
    turns_at_once: int = 0
    allowed_origins: tuple[str, ...] = ()
    unread_days: int = 30


class AcknowledgedOutput(SocketIOOutput):
    """Rasa's socket.io output for a notice's messages: each goes as a reply does (same
    event, text and buttons), tagged with its notice, to one socket, and waits for the
    page to acknowledge it (raising socket.io's TimeoutError when it does not)."""

    def __init__(self, sio: socketio.AsyncServer, bot_message_evt: str,
                 namespace: str | None) -> None:
        super().__init__(sio, bot_message_evt)
        self.namespace = namespace
        self.metadata: dict[str, Any] = {}
        self.acknowledged = 0

    async def _send_message(self, socket_id: str, response: Any) -> None:
        await self.sio.call(self.bot_message_evt, {**response, "metadata": self.metadata},
                            to=socket_id, namespace=self.namespace, timeout=ACK_TIMEOUT_S)
        self.acknowledged += 1


class WebChatInput(ChannelInput, SocketIOInput):
    """Rasa's socket.io channel (same events, session persistence and `jwt_key`),
    with its rooms and turns shared through Redis."""

    NOTICE_PATHS: ClassVar[tuple[str, ...]] = ("page",)

    def __init__(self, *args: Any, config: WebChatConfig | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config: WebChatConfig = config or WebChatConfig.from_credentials(None)
        # Built with the blueprint, given a data key to seal the notices it keeps.
        self.notice_delivery: NoticeDelivery | None = None

    @classmethod
    def name(cls) -> str:
        return "webchat"

    def proactive_output(self) -> OutputChannel | None:
        # Emitted to the conversation's room from any process; a page not open gets nothing.
        return SocketIOInput.get_output_channel(self)

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        # A page from another site may not open a socket (Rasa's channel turns the check
        # off): the page's own origin, or WEBCHAT_ALLOWED_ORIGINS. A client that sends no
        # Origin (not a browser) is not a page and is let through, as engine.io does.
        origins = self.config.allowed_origins
        sio = socketio.AsyncServer(
            async_mode="sanic",
            cors_allowed_origins=("*" if "*" in origins else list(origins)) if origins else None,
            client_manager=redis_client_manager(self.config.redis_url),
            max_http_buffer_size=MAX_FRAME_BYTES,
        )
        # get_output_channel() hands this server to trigger_intent's "latest" channel.
        self.sio = sio
        blueprint = SocketBlueprint(sio, self.socketio_path, "webchat_socketio", __name__)

        async def run_turn(turn: dict[str, Any]) -> None:
            # Admitted by `user_message` (bot.channels.limits), on whichever process.
            output = Addressed(self.name(), SocketIOOutput(sio, self.bot_message_evt))
            try:
                # As `guarded` does: an agent holding the conversation gets the message.
                await handoff.turn(on_new_message, UserMessage(
                    turn["text"], output, turn["sender_id"], input_channel=self.name(),
                    metadata=turn["metadata"]))
            finally:
                await limiter().done(turn["sender_id"])

        # Rasa does not start without a data key (the tracker store needs it); only a
        # channel built alone, in a unit test, has none.
        current = bot_settings.settings()
        self.shared_turns = SharedTurns(
            self.config.redis_url, self.config.turns_at_once, run_turn,
            vault=current.vault() if current.data_encryption_key else None)
        if current.data_encryption_key:
            client = bot_redis.async_client(self.config.redis_url, "store")
            self.notice_delivery = NoticeDelivery(
                Presence(client), UnreadNotices(client, current.vault(), self.config.unread_days),
                self.show_notices)
        self._add_socket_handlers(sio)
        self.add_health(blueprint)
        self.add_notice_route(blueprint)
        blueprint.add_route(chat_page, "/chat", methods=["GET"], name="chat_page")
        blueprint.add_route(chat_page, "/chat/<asset:str>", methods=["GET"], name="chat_asset")

        async def listen_before_clients(app: Sanic, _loop: Any) -> None:
            await self._start_listening(sio)
            self.shared_turns.start()
            if self.notice_delivery is not None:
                self.notice_delivery.presence.start()

        async def stop_taking_turns(app: Sanic, _loop: Any) -> None:
            await self.shared_turns.stop()
            if self.notice_delivery is not None:
                await self.notice_delivery.presence.stop()

        blueprint.listener("after_server_start")(listen_before_clients)
        blueprint.listener("before_server_stop")(stop_taking_turns)
        return blueprint

    async def deliver_notice(self, user: str, notice: notices.Notice) -> notices.Outcome:
        if self.notice_delivery is None:
            return notices.Outcome(notices.RETRY,
                                   detail="no DATA_ENCRYPTION_KEY to seal unread notices with")
        return await self.notice_delivery.deliver(conversation_id(self.name(), user), notice)

    async def show_notices(self, sids: list[str], taken: list[Taken], unread: bool) -> bool:
        """Shows the notices on each socket, in order; True when a page acknowledged them.
        `unread`: they waited for the page (it marks its title until the guardian looks)."""
        shown = await asyncio.gather(*(self._show_on(sid, taken, unread) for sid in sids))
        return any(shown)

    async def _show_on(self, sid: str, taken: list[Taken], unread: bool) -> bool:
        output = AcknowledgedOutput(self.sio, self.bot_message_evt, self.namespace)
        try:
            for notice in taken:
                output.metadata = {"notice": notice_tag(notice.id), "unread": unread}
                for message in notice.messages:
                    # As Rasa's collecting output gave it: addressed to the conversation.
                    await output.send_response(sid, {key: value for key, value in
                                                     message.items() if key != "recipient_id"})
        except socketio.exceptions.TimeoutError:
            # Part of it acknowledged: the page is there and showed it; shown again in
            # full later would be shown twice.
            return output.acknowledged > 0
        return True

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
            request = environ.get("sanic.request")
            # Sanic's remote_addr is the proxy's forwarded address when it is told to trust
            # one (SANIC_REAL_IP_HEADER, SANIC_PROXIES_COUNT), else empty.
            address = (request.remote_addr or request.ip) if request is not None else None
            session: dict[str, Any] = {"address": address}
            if self.jwt_key:
                token = (auth or {}).get("token")
                payload = token and rasa.core.channels.channel.decode_bearer_token(
                    token, self.jwt_key, self.jwt_algorithm
                )
                if not payload:
                    return False
                # A token for a user is a token for that user's conversation only.
                subject = payload.get("sub") if isinstance(payload, dict) else None
                if subject is not None and not (isinstance(subject, str)
                                                and SUBJECT.fullmatch(subject)):
                    return False
                session["subject"] = subject
            await sio.save_session(sid, session, namespace=namespace)
            return True

        @sio.on("session_request", namespace=namespace)
        async def session_request(sid: str, data: dict | None) -> None:
            asked = data.get("session_id") if isinstance(data, dict) else None
            # A malformed request neither moves a socket nor resets it: it keeps the session it
            # has; only a first request without a usable id gets a new one.
            session = await sio.get_session(sid, namespace=namespace)
            bound = session.get("session_id")
            session_id = (session.get("subject") or valid_session_id(asked) or bound
                          or uuid.uuid4().hex)
            if self.session_persistence:
                joined = sio.enter_room(sid, session_id, namespace=namespace)
                # A coroutine from python-socketio 5.10 on (Rasa's channel forgets to await it).
                if inspect.isawaitable(joined):
                    await joined
            # The socket's conversation from now on: a message cannot name another one.
            await sio.save_session(sid, {**session, "session_id": session_id},
                                   namespace=namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=namespace)
            if self.session_persistence and self.notice_delivery is not None:
                # After the confirmation: the page shows messages of its session only.
                await self.notice_delivery.page_arrived(
                    sid, conversation_id(self.name(), session_id))
                if not sio.manager.is_connected(sid, namespace or "/"):
                    # Closed while it arrived: its goodbye came first and found nothing.
                    await self.notice_delivery.page_left(sid)

        @sio.on("disconnect", namespace=namespace)
        async def disconnect(sid: str) -> None:
            if self.notice_delivery is not None:
                await self.notice_delivery.page_left(sid)

        @sio.on(self.user_message_evt, namespace=namespace)
        async def user_message(sid: str, data: dict) -> None:
            if not isinstance(data, dict):
                return
            session = await sio.get_session(sid, namespace=namespace)
            if self.session_persistence:
                bound = session.get("session_id")
                named = data.get("session_id")
                if bound is None or (named is not None and named != bound):
                    log.warning("webchat: a message %s ignored",
                                "before its session request" if bound is None
                                else "naming another conversation")
                    return
                user = bound
            else:
                user = sid
            # Rasa reads no more than MAX_CHARACTERS of it: the rest need not wait in Redis.
            text = str(data.get("message") or "")[:2 * MAX_CHARACTERS]
            metadata = message_metadata(data, self.metadata_key or "metadata")
            conversation = conversation_id(self.name(), user)
            wait = await limiter().admit(conversation, session.get("address"))
            if wait:
                await sio.emit(self.bot_message_evt,
                               {"text": slow_down_text(text, wait, metadata.get("language"))},
                               room=sid, namespace=namespace)
                return
            if not await self.shared_turns.submit({"text": text, "sender_id": conversation,
                                                   "metadata": metadata}):
                await limiter().done(conversation)
                await sio.emit(self.bot_message_evt,
                               {"text": busy_text(text, metadata.get("language"))},
                               room=sid, namespace=namespace)
