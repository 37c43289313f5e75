"""The agents' handoff API, served by every Rasa process under /webhooks/handoff/.

Not a channel guardians write to: an input channel because that is how Rasa lets us serve
routes beside the conversations, reach the tracker store and the other channels (to send
the agent's words down the guardian's own channel). The model is `bot/handoff.py`.

Every call but the health check needs `Authorization: Bearer $HANDOFF_TOKEN` (else 401)
and `X-Agent: <the agent's name>` (else 400); until HANDOFF_TOKEN is set every call is 503.
Errors look like the card service's: `{"error": {"code", "message", "fields"}}`.

    GET  /queue                              waiting (longest first) and taken conversations
    GET  /conversations/<id>                 one of them, with its masked transcript
    POST /conversations/<id>/take            the agent holds it; another agent gets 409
    GET  /conversations/<id>/messages?after=<seq>&wait=<s>
                                             the guardian's messages and the agent's replies
                                             after seq, waiting up to s seconds (<= 25) for one
    POST /conversations/<id>/replies {"text"} sent to the guardian; answered with what became
                                             of it (bot/notices.py outcomes)
    POST /conversations/<id>/hand-back       the assistant greets the guardian again
    POST /conversations/<id>/close           the agent says goodbye; the assistant answers next

docs/contract.md ("Handoff API") is the reference.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any, ClassVar
from urllib.parse import unquote

import yaml
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import handoff, notices
from bot import redis as bot_redis
from bot.channels.base import (
    ChannelConfig,
    ChannelInput,
    ChannelOutput,
    NotDelivered,
    user_id,
)
from bot.settings import ROOT

log = logging.getLogger(__name__)

AGENT = re.compile(r"[\w.@-]{1,64}")
MAX_REPLY_CHARACTERS = 2000
MAX_WAIT_S = 25.0
POLL_S = 0.1
# What the guardian is told as the agent comes and goes (domain.yml, both languages).
JOINED, LEFT, BACK = "utter_handoff_joined", "utter_handoff_left", "utter_handoff_back"


@dataclass(frozen=True)
class HandoffConfig(ChannelConfig):
    SETTING_NAMES: ClassVar[Mapping[str, str]] = {"token": "handoff_token"}
    REQUIRED: ClassVar[Mapping[str, re.Pattern[str] | None]] = {"token": None}

    token: str = ""
    staffed_hours: str = ""
    redis_url: str = ""


class NoOutput(ChannelOutput):
    """Nothing is sent to the handoff channel itself: the guardian's own channel carries
    what an agent says."""

    raise_errors = True

    @classmethod
    def name(cls) -> str:
        return "handoff"

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        raise NotDelivered("the handoff channel has no guardians")


def error(status: int, code: str, message: str, **fields: str) -> HTTPResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return response.json({"error": body}, status=status)


@lru_cache(maxsize=1)
def _file_responses() -> dict[str, Any]:
    path = ROOT / "domain.yml"
    if not path.exists():  # the Rasa image carries the model's domain only
        return {}
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")).get("responses") or {})


def responses(app: Sanic | None = None) -> dict[str, Any]:
    """The responses of the model Rasa runs, over domain.yml's (newer than the model)."""
    domain = getattr(getattr(app.ctx, "agent", None), "domain", None) if app else None
    return {**_file_responses(), **(getattr(domain, "responses", None) or {})}


def said(name: str, language: str, known: dict[str, Any] | None = None) -> dict[str, Any]:
    """A response in `language`: the variation conditioned on it, else the one without a
    condition (English)."""
    variations = (known if known is not None else responses())[name]
    for variation in variations:
        if any(c.get("name") == "language" and c.get("value") == language
               for c in variation.get("condition") or []):
            break
    else:
        variation = next(v for v in variations if not v.get("condition"))
    return {key: value for key, value in variation.items() if key in ("text", "buttons")}


Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]


class HandoffInput(ChannelInput, InputChannel):
    TITLE: ClassVar[str] = "Handoff"

    def __init__(self, config: HandoffConfig | None = None) -> None:
        self.config: HandoffConfig = config or HandoffConfig.from_credentials(None)
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def name(cls) -> str:
        return "handoff"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> HandoffInput:
        return cls(HandoffConfig.from_credentials(credentials))

    def proactive_output(self) -> OutputChannel | None:
        return NoOutput()

    def authorised(self, handler: Handler) -> Handler:
        """Refusals first (503 unconfigured, 413), then the token (401), then the agent's
        name (400); the handler gets the queue and the agent."""

        @wraps(handler)
        async def call(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            refused = self.refusal(request.body or b"")
            if refused:
                return error(refused[0], "unavailable" if refused[0] == 503 else "too_large",
                             refused[1])
            scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode(), self.config.token.encode()):
                return error(401, "unauthorized", "Authorization: Bearer <HANDOFF_TOKEN>")
            agent = (request.headers.get("X-Agent") or "").strip()
            if not AGENT.fullmatch(agent):
                return error(400, "invalid", "name the agent", **{
                    "X-Agent": "required: 1 to 64 letters, digits or . _ @ -"})
            desk = handoff.desk()
            if desk is None:
                return error(503, "unavailable", "the handoff desk is starting")
            if "conversation" in kwargs:  # "telegram:42" may come as "telegram%3A42"
                kwargs["conversation"] = unquote(kwargs["conversation"])
            return await handler(request, desk, agent, *args, **kwargs)

        return call

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        blueprint = Blueprint("handoff_api")
        self.add_health(blueprint)
        config = self.config
        auth = self.authorised

        async def install_desk(app: Sanic, _loop: Any) -> None:
            staffed = handoff.StaffedHours.parse(config.staffed_hours)
            client = bot_redis.async_client(config.redis_url, "store")

            async def tracker_events(conversation: str) -> list[dict[str, Any]]:
                agent = getattr(app.ctx, "agent", None)
                store = getattr(agent, "tracker_store", None)
                tracker = await store.retrieve(conversation) if store is not None else None
                return [event.as_dict() for event in tracker.events] if tracker else []

            handoff.install(handoff.Desk(handoff.Queue(client), tracker_events, staffed))

        async def uninstall_desk(app: Sanic, _loop: Any) -> None:
            desk = handoff.desk()
            handoff.install(None)
            if desk is not None:
                await desk.queue.redis.close()

        blueprint.listener("after_server_start")(install_desk)
        blueprint.listener("before_server_stop")(uninstall_desk)

        async def not_a_webhook(request: Request) -> HTTPResponse:
            refused = self.refusal(request.body or b"")
            if refused:
                return response.text(refused[1], status=refused[0])
            return error(404, "not_found", "guardians do not write here; agents: see /queue")

        @auth
        async def queue(request: Request, desk: handoff.Desk, agent: str) -> HTTPResponse:
            now = desk.clock().timestamp()
            cases = await desk.queue.cases()
            return response.json({
                "waiting": [c.as_json(now, with_transcript=False) for c in cases if not c.agent],
                "taken": [c.as_json(now, with_transcript=False) for c in cases if c.agent],
                "staffed_now": desk.staffed.open_at(desk.clock())})

        @auth
        async def case(request: Request, desk: handoff.Desk, agent: str,
                       conversation: str) -> HTTPResponse:
            try:
                found = await desk.queue.case(conversation)
            except handoff.NotFound:
                return not_queued(conversation)
            return response.json(found.as_json(desk.clock().timestamp()))

        @auth
        async def take(request: Request, desk: handoff.Desk, agent: str,
                       conversation: str) -> HTTPResponse:
            now = desk.clock().timestamp()
            try:
                taken, now_taken = await desk.queue.take(conversation, agent, now)
            except handoff.NotFound:
                return not_queued(conversation)
            except handoff.Taken as held:
                return error(409, "taken", f"{held.holder} holds this conversation")
            told = None
            if now_taken:
                handoff.observe_wait(now - taken.queued_at)
                log.info("handoff: %s taken after %.0f s", conversation, now - taken.queued_at)
                told = await self.deliver(request.app, taken, [
                    said(JOINED, taken.language, responses(request.app))])
            return response.json({**taken.as_json(now),
                                  "told": told.as_json() if told else None})

        @auth
        async def messages(request: Request, desk: handoff.Desk, agent: str,
                           conversation: str) -> HTTPResponse:
            try:
                after = int(request.args.get("after", "0"))
                wait = float(request.args.get("wait", "0"))
                if after < 0 or not 0 <= wait <= MAX_WAIT_S:
                    raise ValueError
            except ValueError:
                return error(422, "invalid", "bad query", after="a whole number >= 0",
                             wait=f"seconds, 0 to {MAX_WAIT_S:.0f}")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while True:
                try:
                    found = await desk.queue.case(conversation)
                except handoff.NotFound:
                    return not_queued(conversation)
                kept = await desk.queue.messages(conversation, after)
                if kept or loop.time() >= deadline:
                    break
                await asyncio.sleep(POLL_S)
            return response.json({"messages": kept, "next": kept[-1]["seq"] if kept else after,
                                  "state": "taken" if found.agent else "waiting",
                                  "agent": found.agent})

        @auth
        async def reply(request: Request, desk: handoff.Desk, agent: str,
                        conversation: str) -> HTTPResponse:
            body = request.json if isinstance(request.json, dict) else {}
            text = body.get("text")
            if not isinstance(text, str) or not text.strip() or \
                    len(text) > MAX_REPLY_CHARACTERS:
                return error(422, "invalid", "a reply needs text",
                             text=f"required: 1 to {MAX_REPLY_CHARACTERS} characters")
            found, refused = await held_by(desk, conversation, agent)
            if refused is not None:
                return refused
            assert found is not None
            # The guardian gets what is kept: an ID or mobile number goes out masked, as in
            # every reply of the assistant's.
            text = handoff.masked(text.strip(), {})
            async with self._lock(conversation):  # delivered in the order they were sent
                seq = await desk.queue.add_message(conversation, handoff.AGENT, text,
                                                   desk.clock().timestamp())
                outcome = await self.deliver(request.app, found, [{"text": text}])
            return response.json({"seq": seq, **outcome.as_json()})

        async def release(request: Request, desk: handoff.Desk, agent: str,
                          conversation: str, words: str) -> HTTPResponse:
            found, refused = await held_by(desk, conversation, agent)
            if refused is not None:
                return refused
            assert found is not None
            async with self._lock(conversation):
                await desk.queue.release(conversation, agent)
                told = await self.deliver(request.app, found, [
                    said(words, found.language, responses(request.app))])
            self._locks.pop(conversation, None)
            log.info("handoff: %s %s", conversation, "handed back" if words == BACK
                     else "closed")
            return response.json({"conversation": conversation, "state":
                                  "handed_back" if words == BACK else "closed",
                                  "told": told.as_json()})

        @auth
        async def hand_back(request: Request, desk: handoff.Desk, agent: str,
                            conversation: str) -> HTTPResponse:
            return await release(request, desk, agent, conversation, BACK)

        @auth
        async def close(request: Request, desk: handoff.Desk, agent: str,
                        conversation: str) -> HTTPResponse:
            return await release(request, desk, agent, conversation, LEFT)

        one = "/conversations/<conversation:str>"
        blueprint.add_route(not_a_webhook, "/webhook", methods=["POST"], name="webhook")
        blueprint.add_route(queue, "/queue", methods=["GET"], name="queue")
        blueprint.add_route(case, one, methods=["GET"], name="case")
        blueprint.add_route(take, one + "/take", methods=["POST"], name="take")
        blueprint.add_route(messages, one + "/messages", methods=["GET"], name="messages")
        blueprint.add_route(reply, one + "/replies", methods=["POST"], name="reply")
        blueprint.add_route(hand_back, one + "/hand-back", methods=["POST"], name="hand_back")
        blueprint.add_route(close, one + "/close", methods=["POST"], name="close")
        return blueprint

    def _lock(self, conversation: str) -> asyncio.Lock:
        return self._locks.setdefault(conversation, asyncio.Lock())

    async def deliver(self, app: Sanic, case: handoff.Case,
                      messages: list[dict[str, Any]]) -> notices.Outcome:
        """`messages` to the guardian down the first notice path of their channel: what
        became of them (a REST guardian gets them with their next answer: `queued`)."""
        if case.channel == "rest":
            await handoff.desk().queue.keep_for_rest(  # type: ignore[union-attr]
                case.conversation, messages)
            return notices.Outcome(notices.QUEUED,
                                   detail="given with the guardian's next REST answer")
        channel = next((c for c in getattr(app.ctx, "input_channels", None) or []
                        if c.name() == case.channel), None)
        paths = getattr(channel, "NOTICE_PATHS", ())
        if channel is None or not paths:
            return notices.Outcome(notices.UNREACHABLE,
                                   detail=f"no way to send to {case.channel or 'this channel'}")
        if not channel.config.configured:
            return notices.Outcome(notices.RETRY, detail=f"{case.channel} not configured")
        notice = notices.Notice(
            id=f"handoff:{uuid.uuid4().hex}", conversation=case.conversation, path=paths[0],
            kind="handoff", language=case.language, last=True, messages=tuple(messages))
        try:
            outcome: notices.Outcome = await channel.deliver_notice(
                user_id(case.channel, case.conversation), notice)
        except Exception as failure:  # the agent sees it and may send again
            log.warning("handoff: a message to %s failed (%s)", case.conversation,
                        type(failure).__name__)
            return notices.Outcome(notices.RETRY, detail=type(failure).__name__)
        log.info("handoff: a message to %s: %s %s", case.conversation, outcome.outcome,
                 outcome.code)
        return outcome


def not_queued(conversation: str) -> HTTPResponse:
    return error(404, "not_found", "not in the handoff queue (handed back, closed, or "
                 "never queued)", conversation="unknown")


async def held_by(desk: handoff.Desk, conversation: str, agent: str
                  ) -> tuple[handoff.Case | None, HTTPResponse | None]:
    """The case when `agent` holds it, else the answer saying why not."""
    try:
        found = await desk.queue.case(conversation)
    except handoff.NotFound:
        return None, not_queued(conversation)
    if found.agent is None:
        return None, error(409, "not_taken", "take the conversation first")
    if found.agent != agent:
        return None, error(409, "taken", f"{found.agent} holds this conversation")
    return found, None
