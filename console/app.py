"""The staff console on Sanic: pages behind a login, each guarded by one decorator that
checks the session, the role and (on POST) the CSRF token."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import redis
from sanic import Request, Sanic
from sanic.response import HTTPResponse, html, raw, redirect
from sanic.response import json as json_response

from bot import redis as bot_redis
from bot.card_client import CardClient, CardServiceUnavailable, Conflict, LossReport, NotFound
from bot.rules import identity, statuses
from bot.settings import Settings
from console import handoff as handoff_api
from console import pages
from console.accounts import NAME, Account, Accounts, may
from console.audit import REPORT_FIELDS, REVEALED_PHONE, AuditLog
from console.dashboard import UNREACHABLE, read_week
from console.lockout import Clock, Lockout
from console.sessions import ABSOLUTE_SECONDS, COOKIE, Session, Sessions
from console.words import LANGUAGES, status_label, word

log = logging.getLogger("console")

STATIC = Path(__file__).with_name("static")
LANGUAGE_COOKIE = "console_lang"
MAX_BODY_BYTES = 16 * 1024
LIST_LIMIT = 500  # the card service's most; the search runs over the newest this many
# No script at all, nothing from elsewhere, no framing, forms only back to this origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self' data:; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]


@dataclass(frozen=True)
class Who:
    """The person behind a request, once the guard let it through."""

    session: Session
    account: Account
    view: pages.View


class Console:
    def __init__(self, settings: Settings, clock: Clock):
        if not settings.console_token:
            raise ValueError("CARD_SERVICE_CONSOLE_TOKEN must be set: the console reads "
                             "reports through the card service, with a token of its own")
        self.settings, self.clock = settings, clock
        self.redis: Any = None
        self.accounts: Accounts
        self.sessions: Sessions
        self.lockout: Lockout
        self.audit: AuditLog

    def connect(self) -> None:
        self.redis = bot_redis.async_client(
            self.settings.redis_url_for(bot_redis.CONSOLE_USER), "store",
                                            retry_on_timeout=True)
        self.accounts = Accounts(self.redis)
        self.sessions = Sessions(self.redis, self.clock)
        self.lockout = Lockout(self.redis, self.clock)
        self.audit = AuditLog(self.redis)

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)

    def card(self, who: Who) -> CardClient:
        """The card service, with the console's token, on behalf of this person
        (X-Staff-User, which the card service reads with that token only)."""
        return CardClient(self.settings.card_service_url, self.settings.console_token,
                          headers={"X-Staff-User": who.account.name})

    def plain_http_allowed(self, request: Request) -> bool:
        """Cookies go without Secure only to a console bound to loopback and reached by
        plain http with no proxy in front: a developer's `make run` and the tests. Anything
        reachable from elsewhere (or behind a TLS proxy) gets Secure cookies."""
        if request.scheme != "http" or "forwarded" in request.headers or \
                "x-forwarded-proto" in request.headers:
            return False
        host = self.settings.bind_host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def set_cookie(self, request: Request, response: HTTPResponse, name: str, value: str,
                   max_age: int, http_only: bool = True) -> None:
        response.cookies[name] = value
        cookie = response.cookies[name]
        cookie["path"] = "/"
        cookie["samesite"] = "Strict"
        cookie["max-age"] = max_age
        if http_only:
            cookie["httponly"] = True
        if not self.plain_http_allowed(request):
            cookie["secure"] = True


def language_of(request: Request) -> str:
    asked = request.args.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    if asked in LANGUAGES:
        return str(asked)
    accepted = (request.headers.get("accept-language") or "").lower()
    return "en" if accepted.startswith("en") else "zh"


def next_statuses(status: str) -> list[str]:
    """What staff may move a report to now: the table's next statuses they may set."""
    return [s for s in statuses.TABLE[status].next if s in statuses.STAFF_SETTABLE] \
        if status in statuses.TABLE else []


def phone_matches(masked: str, digits: str) -> bool:
    """The typed last digits against what the mask keeps of a phone number (its last two
    for an 11-digit number): a candidate, not proof.

    >>> phone_matches("13*******78", "5678"), phone_matches("13*******78", "5679")
    (True, False)
    """
    visible = re.search(r"(\d+)$", masked)
    if not visible or not digits:
        return False
    tail = visible.group(1)
    n = min(len(tail), len(digits))
    return tail[-n:] == digits[-n:]


def search(found: list[LossReport], query: str, city: str) -> tuple[list[LossReport], str]:
    """Reports matching the query (reference, last digits of the phone, or filing date) and
    city; and which kind of search it was ("phone" ones are audited)."""
    query = query.strip()
    kind = ""
    if query:
        reference = identity.parse_reference(query)
        compact = query.upper().replace("-", "").replace(" ", "")
        if DATE.match(query):  # before references: a date also reads as one
            kind, found = "date", [r for r in found if r.filed_on == query]
        elif reference.ok:
            kind, found = "reference", [r for r in found if r.reference == reference.value]
        elif query.isdigit() and len(query) <= 11:
            kind, found = "phone", [r for r in found if phone_matches(r.phone_masked, query)]
        else:
            kind, found = "reference", [r for r in found
                                        if compact in r.reference.replace("-", "")]
    if city:
        found = [r for r in found if r.city == city]
    return found, kind


# The handoff case page's own policy: the one page with a script (console.js, this origin)
# and a long poll back to this origin; everything else as strict as the rest.
HANDOFF_CSP = SECURITY_HEADERS["Content-Security-Policy"] + "; script-src 'self'; " \
    "connect-src 'self'"


def outcome_words(outcome: str, language: str) -> str:
    """What became of a reply, for the agent (bot/notices.py's outcomes)."""
    if outcome in ("seen", "queued"):
        return word(f"reply_outcome_{outcome}", language)
    return word("reply_outcome_other", language, outcome=outcome[:20])


def create_app(settings: Settings, clock: Clock = time.time, name: str = "console") -> Sanic:
    console = Console(settings, clock)
    app = Sanic(name)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    # Sanic's own error pages in plain text: its HTML ones carry inline style.
    app.config.FALLBACK_ERROR_FORMAT = "text"
    app.ctx.console = console

    @app.before_server_start
    async def connect(app: Sanic, _loop: Any) -> None:
        console.connect()

    @app.after_server_start
    async def ready(app: Sanic, _loop: Any) -> None:
        log.info("staff console ready on %s:%s", settings.bind_host, settings.staff_console_port)

    @app.before_server_stop
    async def close(app: Sanic, _loop: Any) -> None:
        await console.redis.close()

    @app.on_response
    async def secure(request: Request, response: HTTPResponse) -> None:
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        if "lang" in request.args and request.args.get("lang") in LANGUAGES:
            console.set_cookie(request, response, LANGUAGE_COOKIE, str(request.args.get("lang")),
                               365 * 24 * 3600, http_only=False)

    def anonymous_view(request: Request, session: Session | None) -> pages.View:
        return pages.View(language_of(request), request.path,
                          csrf=session.csrf if session else "")

    def guard(action: str) -> Callable[[Handler], Handler]:
        """The one gate of every page: a live session of an enabled account whose role may
        `action`; a POST also needs the session's CSRF token (else 403, nothing done)."""

        def wrap(handler: Handler) -> Handler:
            @functools.wraps(handler)
            async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
                session = await console.sessions.get(request.cookies.get(COOKIE))
                account = await console.accounts.get(session.user) \
                    if session and session.user else None
                view = anonymous_view(request, session)
                if request.method == "POST":
                    if session is None or not session.csrf_ok(request.form.get("csrf")):
                        log.warning("refused %s %s: no valid CSRF token", request.method,
                                    request.path)
                        return html(pages.message(view, "title", "csrf"), status=403)
                if session is None or account is None or account.disabled:
                    if session is not None and session.user:
                        await console.sessions.end(session.id)  # disabled meanwhile
                    if request.method == "POST":
                        return html(pages.message(view, "title", "csrf"), status=403)
                    return redirect("/login")
                view = pages.View(view.language, request.path, account.name, account.role,
                                  session.csrf)
                if not may(account.role, action):
                    return html(pages.message(view, "title", "forbidden"), status=403)
                who = Who(session, account, view)
                try:
                    return await handler(request, who, *args, **kwargs)
                except CardServiceUnavailable:
                    return html(pages.message(view, "title", "unavailable"), status=503)
            return guarded
        return wrap

    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        try:
            await console.redis.ping()
        except (redis.RedisError, OSError):
            return json_response({"status": "unavailable", "redis": False}, status=503)
        return json_response({"status": "ok", "redis": True})

    @app.get("/static/console.css")
    async def stylesheet(request: Request) -> HTTPResponse:
        return raw((STATIC / "console.css").read_bytes(), content_type="text/css; charset=utf-8",
                   headers={"Cache-Control": "no-cache"})

    @app.get("/")
    async def home(request: Request) -> HTTPResponse:
        return redirect("/reports")

    @app.get("/login")
    async def login_page(request: Request) -> HTTPResponse:
        session = await console.sessions.get(request.cookies.get(COOKIE))
        if session is not None and session.user:
            return redirect("/reports")
        if session is None:
            session = await console.sessions.start()
        response = html(pages.login(anonymous_view(request, session)))
        console.set_cookie(request, response, COOKIE, session.id, ABSOLUTE_SECONDS)
        return response

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        session = await console.sessions.get(request.cookies.get(COOKIE))
        view = anonymous_view(request, session)
        if session is None or not session.csrf_ok(request.form.get("csrf")):
            return html(pages.message(view, "title", "csrf"), status=403)
        name = (request.form.get("name") or "").strip().lower()[:64]
        password = request.form.get("password") or ""
        address = request.ip or "unknown"
        wait = await console.lockout.wait(name, address)
        if wait > 0:
            return html(pages.login(view, word("locked", view.language, seconds=int(wait) + 1),
                                    name), status=429, headers={"Retry-After": str(int(wait) + 1)})
        account = await console.accounts.verify(name, password)
        if account is None:
            await console.lockout.failed(name, address)
            await console.audit.record(console.now(), name if NAME.match(name) else "?", "",
                                       "login_failed")
            wait = await console.lockout.wait(name, address)
            text = word("locked", view.language, seconds=int(wait) + 1) if wait > 0 \
                else word("wrong_login", view.language)
            return html(pages.login(view, text, name), status=429 if wait > 0 else 401)
        await console.lockout.succeeded(name, address)
        fresh = await console.sessions.login(session, account.name)
        await console.audit.record(console.now(), account.name, account.role, "login")
        response = redirect("/reports", status=303)
        console.set_cookie(request, response, COOKIE, fresh.id, ABSOLUTE_SECONDS)
        return response

    @app.post("/logout")
    @guard("reports")
    async def logout(request: Request, who: Who) -> HTTPResponse:
        await console.sessions.end(who.session.id)
        await console.audit.record(console.now(), who.account.name, who.account.role, "logout")
        response = redirect("/login", status=303)
        console.set_cookie(request, response, COOKIE, "", 0)
        return response

    @app.get("/reports")
    @guard("reports")
    async def report_list(request: Request, who: Who) -> HTTPResponse:
        lang = who.view.language
        wanted = request.args.get("status") or ""
        wanted = wanted if wanted in statuses.TABLE else ""
        query = (request.args.get("q") or "")[:40]
        city = (request.args.get("city") or "")[:40]
        everything = await asyncio.to_thread(console.card(who).list_reports,
                                             wanted or None, LIST_LIMIT)
        cities = sorted({r.city for r in everything if r.city})
        found, kind = search(everything, query, city)
        if kind == "phone":
            await console.audit.record(
                console.now(), who.account.name, who.account.role, "search",
                fields=["guardian.phone_masked"],
                detail="matched: " + " ".join(r.reference for r in found[:12]))
        labels = {s: status_label(s, lang) for s in statuses.STATUSES}
        return html(pages.reports(who.view, found, query, wanted, city, cities, labels))

    async def report_page(request: Request, who: Who, reference: str, phone: str = "",
                          flash: str = "", status: int = 200) -> HTTPResponse:
        client = console.card(who)
        try:
            found = await asyncio.to_thread(client.get_report, reference)
            notices = await asyncio.to_thread(client.notices, found.reference)
        except NotFound:
            return html(pages.message(who.view, "reports", "not_found", "reports"), status=404)
        shown = {"child.id_number_masked": found.child_id_masked,
                 "guardian.id_number_masked": found.guardian_id_masked,
                 "guardian.phone_masked": found.phone_masked,
                 "guardian.relationship": found.relationship, "city": found.city}
        fields = [name for name in REPORT_FIELDS if shown[name]]
        if fields:  # an erased report shows nobody's data: nothing to record
            await console.audit.record(console.now(), who.account.name, who.account.role,
                                       "view", found.reference, fields)
        lang = who.view.language
        labels = {s: status_label(s, lang) for s in statuses.STATUSES}
        return html(pages.report(who.view, found, notices, next_statuses(found.status), labels,
                                 flash, phone), status=status)

    @app.get("/reports/<reference:str>")
    @guard("reports")
    async def report(request: Request, who: Who, reference: str) -> HTTPResponse:
        flash = ""
        moved = request.args.get("moved")
        if moved in statuses.TABLE:
            flash = word("moved", who.view.language, label=status_label(moved, who.view.language))
        elif request.args.get("error") == "conflict":
            flash = word("conflict", who.view.language)
        return await report_page(request, who, reference, flash=flash)

    @app.post("/reports/<reference:str>/status")
    @guard("move")
    async def move(request: Request, who: Who, reference: str) -> HTTPResponse:
        target = request.form.get("status") or ""
        client = console.card(who)
        try:
            current = await asyncio.to_thread(client.get_report, reference)
        except NotFound:
            return html(pages.message(who.view, "reports", "not_found", "reports"), status=404)
        back = f"/reports/{quote(current.reference)}"
        if target not in next_statuses(current.status):
            return redirect(back + "?error=conflict", status=303)
        try:
            await asyncio.to_thread(client.set_status, current.reference, target)
        except Conflict:
            return redirect(back + "?error=conflict", status=303)
        await console.audit.record(console.now(), who.account.name, who.account.role, "status",
                                   current.reference, detail=f"{current.status} -> {target}")
        return redirect(f"{back}?moved={quote(target)}", status=303)

    @app.post("/reports/<reference:str>/reveal")
    @guard("reveal")
    async def reveal(request: Request, who: Who, reference: str) -> HTTPResponse:
        """Answered with the page itself, the number in it: never in a URL, never cached,
        gone on reload."""
        client = console.card(who)
        try:
            phone = await asyncio.to_thread(client.reveal_phone, reference)
        except NotFound:
            return html(pages.message(who.view, "reports", "not_found", "reports"), status=404)
        except Conflict:
            return await report_page(request, who, reference)
        canonical = identity.parse_reference(reference).value or reference
        await console.audit.record(console.now(), who.account.name, who.account.role, "reveal",
                                   canonical, [REVEALED_PHONE])
        return await report_page(request, who, reference, phone=phone)

    # ---- live handoff: the queue, a case, take / reply / hand back / close -------------
    # Every call goes to Rasa's handoff API as the logged-in agent (console/handoff.py);
    # what is audited names the conversation and the outcome, never what was said.
    desk = handoff_api.HandoffClient(settings.rasa_url, settings.handoff_token)
    if not desk.configured:
        log.warning("handoff pages unavailable: %s", handoff_api.NOT_CONFIGURED)

    @app.before_server_stop
    async def close_desk(app: Sanic, _loop: Any) -> None:
        await desk.close()

    @app.get("/static/console.js")
    async def script(request: Request) -> HTTPResponse:
        return raw((STATIC / "console.js").read_bytes(),
                   content_type="text/javascript; charset=utf-8",
                   headers={"Cache-Control": "no-cache"})

    def wants_json(request: Request) -> bool:
        return "application/json" in (request.headers.get("accept") or "")

    def desk_down(request: Request, who: Who, failure: Exception) -> HTTPResponse:
        log.warning("handoff API: %s", failure)
        key = "handoff_unavailable" if desk.configured else "handoff_not_configured"
        if wants_json(request):
            return json_response({"error": {"code": "unavailable", "message": word(
                key, who.view.language)}}, status=503)
        return html(pages.message(who.view, "handoff", key, "handoff"), status=503)

    def at_desk(handler: Handler) -> Handler:
        """Between the guard and a handoff handler: the conversation id unquoted, and an
        unreachable or unconfigured API answered 503 with a page saying which."""

        @functools.wraps(handler)
        async def call(request: Request, who: Who, *args: Any, **kwargs: Any) -> HTTPResponse:
            if "conversation" in kwargs:  # "webchat:x" arrives as "webchat%3Ax"
                kwargs["conversation"] = unquote(kwargs["conversation"])
            try:
                return await handler(request, who, *args, **kwargs)
            except handoff_api.HandoffUnavailable as failure:
                return desk_down(request, who, failure)
        return call

    def case_url(conversation: str, **flash: str) -> str:
        query = f"?{urlencode(flash)}" if flash else ""
        return pages.case_href(conversation) + query

    @app.get("/handoff")
    @guard("handoff")
    @at_desk
    async def handoff(request: Request, who: Who) -> HTTPResponse:
        if not desk.configured:  # a setting, not an outage: the page says which one
            return html(pages.message(who.view, "handoff", "handoff_not_configured",
                                      "handoff"))
        lang = who.view.language
        flash = ""
        done = request.args.get("done")
        if done in ("handed_back", "closed"):
            flash = word(done, lang)
        elif request.args.get("gone"):
            flash = word("not_queued", lang)
        queue = await desk.queue(who.account.name)
        return html(pages.handoff_queue(who.view, queue, flash))

    @app.get("/handoff/<conversation:str>")
    @guard("handoff")
    @at_desk
    async def handoff_case(request: Request, who: Who, conversation: str) -> HTTPResponse:
        lang = who.view.language
        try:
            case = await desk.case(who.account.name, conversation)
        except handoff_api.NotQueued:
            return html(pages.message(who.view, "handoff", "not_queued", "handoff"),
                        status=404)
        flash = ""
        sent = request.args.get("sent") or ""
        if request.args.get("error") == "taken" and case.get("agent"):
            flash = word("taken_by_other", lang, agent=case["agent"])
        elif request.args.get("error") == "invalid":
            flash = word("reply_invalid", lang)
        elif sent:
            flash = outcome_words(sent, lang)
        kept, after = [], 0
        if case.get("agent"):
            found = await desk.messages(who.account.name, case["conversation"])
            kept, after = found.messages, found.next
        return html(pages.handoff_case(who.view, case, kept, after, flash),
                    headers={"Content-Security-Policy": HANDOFF_CSP})

    @app.get("/handoff/<conversation:str>/messages")
    @guard("handoff")
    @at_desk
    async def handoff_messages(request: Request, who: Who, conversation: str) -> HTTPResponse:
        """console.js's long poll: what was said after `after`, waiting up to `wait` s."""
        try:
            after = max(0, int(request.args.get("after", "0")))
            wait = min(float(request.args.get("wait", "0")), handoff_api.LONG_POLL_S)
        except ValueError:
            return json_response({"error": {"code": "invalid", "message": "bad query",
                                            "fields": {"after": "a whole number >= 0",
                                                       "wait": "seconds"}}}, status=422)
        try:
            found = await desk.messages(who.account.name, conversation, after, wait)
        except handoff_api.NotQueued:
            # Handed back, closed or expired while the page polled: the end of the
            # conversation, not an error of the page's.
            return json_response({"messages": [], "next": after, "state": "ended",
                                  "agent": None,
                                  "message": word("not_queued", who.view.language)})
        return json_response({
            "messages": [{**m, "time": pages.clock_time(m.get("at"))} for m in found.messages],
            "next": found.next, "state": found.state, "agent": found.agent})

    @app.post("/handoff/<conversation:str>/take")
    @guard("handoff")
    @at_desk
    async def handoff_take(request: Request, who: Who, conversation: str) -> HTTPResponse:
        return await act(who, conversation, "take", case_url(conversation))

    @app.post("/handoff/<conversation:str>/reply")
    @guard("handoff")
    @at_desk
    async def handoff_reply(request: Request, who: Who, conversation: str) -> HTTPResponse:
        lang = who.view.language
        text = (request.form.get("text") or "").strip()
        try:
            if not text or len(text) > handoff_api.MAX_REPLY:
                raise handoff_api.HandoffError(422, "invalid", "a reply needs text")
            sent = await desk.reply(who.account.name, conversation, text)
        except handoff_api.NotQueued:
            if wants_json(request):
                return json_response({"error": {"code": "not_found", "message": word(
                    "not_queued", lang)}}, status=404)
            return redirect("/handoff?gone=1", status=303)
        except handoff_api.HandoffError as refused:
            taken = isinstance(refused, handoff_api.Held)
            if wants_json(request):
                key = {"not_taken": "not_taken_yet", "taken": "held_elsewhere"}.get(
                    refused.code, "reply_invalid")
                return json_response({"error": {"code": refused.code,
                                                "message": word(key, lang)}},
                                     status=refused.status)
            return redirect(case_url(conversation, error="taken" if taken else "invalid"),
                            status=303)
        outcome = str(sent.get("outcome") or "")
        await console.audit.record(console.now(), who.account.name, who.account.role,
                                   "handoff_reply", conversation, detail=f"outcome: {outcome}")
        if wants_json(request):
            return json_response({"seq": sent.get("seq"), "outcome": outcome,
                                  "message": outcome_words(outcome, lang)})
        return redirect(case_url(conversation, sent=outcome), status=303)

    async def act(who: Who, conversation: str, verb: str, then: str) -> HTTPResponse:
        """Takes, hands back or closes a case, audited with what the guardian was told, and
        goes on to `then`; a case gone, or held by another agent, goes back saying so."""
        name = who.account.name
        run = {"take": desk.take, "hand_back": desk.hand_back, "close": desk.close_case}[verb]
        try:
            done = await run(name, conversation)
        except handoff_api.NotQueued:
            return redirect("/handoff?gone=1", status=303)
        except handoff_api.Held:
            return redirect(case_url(conversation, error="taken"), status=303)
        # Taking a case already this agent's tells the guardian nothing again.
        told = (done.get("told") or {}).get("outcome") or ("already held" if verb == "take"
                                                            else "")
        await console.audit.record(console.now(), name, who.account.role, f"handoff_{verb}",
                                   conversation, detail=f"told: {told}")
        return redirect(then, status=303)

    @app.post("/handoff/<conversation:str>/hand-back")
    @guard("handoff")
    @at_desk
    async def handoff_hand_back(request: Request, who: Who, conversation: str) -> HTTPResponse:
        return await act(who, conversation, "hand_back", "/handoff?done=handed_back")

    @app.post("/handoff/<conversation:str>/close")
    @guard("handoff")
    @at_desk
    async def handoff_close(request: Request, who: Who, conversation: str) -> HTTPResponse:
        return await act(who, conversation, "close", "/handoff?done=closed")

    @app.get("/dashboard")
    @guard("dashboard")
    async def dashboard(request: Request, who: Who) -> HTTPResponse:
        # Prometheus is asked off the event loop; unset or down, the page says which.
        week = await asyncio.to_thread(read_week, settings.prometheus_url, console.clock())
        return html(pages.dashboard(who.view, week),
                    status=503 if week.problem == UNREACHABLE else 200)

    @app.get("/accounts")
    @guard("accounts")
    async def account_list(request: Request, who: Who) -> HTTPResponse:
        return html(pages.accounts(who.view, await console.accounts.all()))

    @app.post("/accounts/<name:str>/<verb:str>")
    @guard("accounts")
    async def account_change(request: Request, who: Who, name: str, verb: str) -> HTTPResponse:
        if verb not in ("disable", "enable") or name == who.account.name:
            # Nobody disables themselves: the last admin would lock everyone out.
            return html(pages.message(who.view, "accounts", "forbidden", "accounts"), status=403)
        try:
            await console.accounts.set_disabled(name, verb == "disable", console.now())
        except ValueError:
            return html(pages.message(who.view, "accounts", "not_found", "accounts"), status=404)
        await console.audit.record(console.now(), who.account.name, who.account.role, "account",
                                   detail=f"{verb} {name}")
        return redirect("/accounts", status=303)

    @app.get("/audit")
    @guard("audit")
    async def audit(request: Request, who: Who) -> HTTPResponse:
        entries = await console.audit.latest(
            200, user=(request.args.get("user") or "")[:64],
            reference=(request.args.get("reference") or "")[:40])
        return html(pages.audit(who.view, entries))

    return app
