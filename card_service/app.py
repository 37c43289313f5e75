"""The card service's HTTP API (docs/contract.md, "Card service API, version 1") on Sanic."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import unquote

import redis
from sanic import Request, Sanic
from sanic.handlers import ErrorHandler
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from bot import redis as bot_redis
from bot.rules import identity, regions, statuses
from bot.settings import Settings
from card_service import metrics, validation
from card_service.notices import Ledger
from card_service.openapi import document
from card_service.outbox import Outbox
from card_service.sms import make_sms
from card_service.store import ASKED, Backoff, Clock, Limit, Store, effective_status, iso, lapses_at

log = logging.getLogger("card_service")

MAX_BODY_BYTES = 16 * 1024
SERVICE, STAFF = "service", "staff"
# The staff console's token: the staff role, and the one token whose calls name a person.
CONSOLE = "console"
# Failed verifications (lookups and cancels). One caller on one reference: the first failure
# is free (a typo), then it waits 2 s, 4 s, 8 s ... up to 15 min before its next try.
BACKOFF_FREE_FAILURES = 1
BACKOFF_FIRST_SECONDS = 2
BACKOFF_CAP_SECONDS = 15 * 60
BACKOFF_MEMORY_SECONDS = 24 * 3600
# Beyond that, windowed limits answer 429 until the window ends. Every caller together on one
# reference (so new chat sessions gain nothing), except the conversation that filed it: a
# flood from others never locks the guardian out. At 20 a day, guessing an ID number that
# differs from a known one in only its three sequence digits takes weeks.
FAILURES_PER_REFERENCE = 20
REFERENCE_WINDOW_SECONDS = 24 * 3600
# One caller across every reference: probing many references from one conversation.
FAILURES_PER_CALLER = 20
CALLER_WINDOW_SECONDS = 15 * 60
REFERENCE_ATTEMPTS = 8
LIST_LIMIT_MAX = 500
OUTBOX_STOP_SECONDS = 12
# How often each process looks for personal data past its retention; an erasure due (or
# asked for) waits at most this long, and a look costs two range queries on small indexes.
SWEEP_SECONDS = 60
SWEEP_STOP_SECONDS = 5
UNKNOWN_REFERENCE = "No loss report has this reference."
NOT_FOUND_MESSAGE = "No loss report matches this reference and guardian ID number."
CANCEL_NOT_FOUND_MESSAGE = ("No loss report matches this reference, guardian ID number and "
                            "child ID number.")
# Hashed in place of a real one when the reference is unknown, so both take the same time.
_DUMMY_HASH = "0" * 64


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 fields: dict[str, str] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = fields or {}
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, fields: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> HTTPResponse:
    return json_response({"error": {"code": code, "message": message, "fields": fields or {}}},
                         status=status, headers=headers)


class JsonErrors(ErrorHandler):
    """Every error, Sanic's own included (404 route, 405, 413), in the contract's shape."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, ApiError):
            return error_response(exception.status, exception.code, exception.message,
                                  exception.fields, exception.headers)
        if isinstance(exception, (redis.RedisError, OSError)):
            log.error("redis unavailable: %s", type(exception).__name__)
            return error_response(503, "unavailable", "Storage is unavailable; try again.",
                                  headers={"Retry-After": "1"})
        status = getattr(exception, "status_code", 500)
        if status >= 500:
            log.exception("unexpected error on %s %s", request.method, request.path)
            return error_response(500, "internal", "Internal error.")
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
                 413: "payload_too_large"}
        messages = {413: f"The body is larger than {MAX_BODY_BYTES} bytes.",
                    404: "No such endpoint.", 405: "Method not allowed on this endpoint."}
        return error_response(status, codes.get(status, "bad_request"),
                              messages.get(status, str(exception)))


class Service:
    """What the handlers share: settings, storage, keys and the clock."""

    def __init__(self, settings: Settings):
        if not settings.card_service_token or not settings.staff_token:
            raise ValueError("CARD_SERVICE_TOKEN and CARD_SERVICE_STAFF_TOKEN must be set")
        given = [token for token in (settings.card_service_token, settings.staff_token,
                                     settings.console_token) if token]
        if len(set(given)) != len(given):
            raise ValueError("CARD_SERVICE_TOKEN, CARD_SERVICE_STAFF_TOKEN and "
                             "CARD_SERVICE_CONSOLE_TOKEN must differ")
        self.settings = settings
        self.vault = settings.vault()
        if not settings.rasa_jwt_secret:
            raise ValueError("RASA_JWT_SECRET is not set: the card-ready notices could not "
                             "reach Rasa; `make run` writes one to .env")
        self.clock = Clock(settings.clock_offset_days)
        self.tokens = {SERVICE: settings.card_service_token.encode(),
                       STAFF: settings.staff_token.encode()}
        if settings.console_token:  # unset: no console reaches the staff calls
            self.tokens[CONSOLE] = settings.console_token.encode()
        self.store: Store

    def role_of(self, request: Request, *allowed: str) -> str:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        presented = token.strip().encode()
        role = None
        if scheme.lower() == "bearer" and presented:
            for name, expected in self.tokens.items():
                if hmac.compare_digest(presented, expected):
                    role = name
        if role is None:
            raise ApiError(401, "unauthorized", "A valid bearer token is required.",
                           headers={"WWW-Authenticate": "Bearer"})
        request.ctx.from_console = role == CONSOLE
        if role == CONSOLE:
            role = STAFF
        if role not in allowed:
            raise ApiError(403, "forbidden", f"This call needs the {' or '.join(allowed)} token.")
        return role

    def child_matches(self, reference: str, record: dict[str, str], child_id: str) -> bool:
        """Constant-time, like the guardian's. A report filed before child hashes were kept
        is checked against its sealed child ID number instead (`python -m bot.crypto rotate`
        adds the hash); a report whose child ID is gone (erased) matches nothing."""
        if "child_hash" in record or "child_id" not in record:
            return self.vault.matches(child_id, record.get("child_hash", _DUMMY_HASH))
        try:
            sealed = self.vault.decrypt(record["child_id"], f"{reference}:child_id")
        except ValueError:
            return False
        return hmac.compare_digest(self.vault.keyed_hash(child_id),
                                   self.vault.keyed_hash(sealed))

    def view(self, reference: str, record: dict[str, str],
             history: list[dict[str, Any]]) -> dict[str, Any]:
        """A report as callers see it: masked numbers, effective status, region and next step."""
        status = effective_status(record, self.clock.today())
        if status == statuses.EXPIRED and record["status"] != statuses.EXPIRED:
            history = [*history, {"status": statuses.EXPIRED,
                                  "at": iso(lapses_at(record["valid_until"]))}]
        region = regions.all_regions().get(record["region"], regions.default())
        entry = statuses.TABLE[status]
        where = {"file_written_report": (region.written_report_en, region.written_report_zh),
                 "apply_at_bank": (region.bank_en, region.bank_zh),
                 "collect_card": (region.bank_en, region.bank_zh)}.get(entry.next_step)
        return {
            "reference": reference,
            "status": status,
            "status_label": {"en": entry.label_en, "zh": entry.label_zh},
            "terminal": statuses.is_terminal(status),
            "can_cancel": statuses.can_move(status, statuses.CANCELLED),
            "history": history,
            "created_at": record["created_at"],
            "filed_on": record["filed_on"],
            "valid_until": record["valid_until"],
            "city": record.get("city"),  # this and the numbers below: None once erased
            "region": region.as_dict(),
            "next_step": {
                "key": entry.next_step,
                "where": {"en": where[0], "zh": where[1]} if where else None,
                "deadline": record["valid_until"] if status == statuses.REPORTED_TEMPORARY
                else None,
            },
            "child": {"id_number_masked": record.get("child_id_masked")},
            "guardian": {"id_number_masked": record.get("guardian_id_masked"),
                         "phone_masked": record.get("phone_masked"),
                         "relationship": record.get("relationship")},
            "notified_at": record.get("notified_at"),
            # How the card-ready notice reached the guardian ("page", "sms"...), when it did.
            "notified_by": record.get("notified_by"),
            "reminded_at": record.get("reminded_at"),
            "sms_consent": record.get("sms_consent") == "yes",
            "personal_data": "erased" if "personal_data_erased_at" in record else "kept",
            "personal_data_erased_at": record.get("personal_data_erased_at"),
            "erase_requested_at": record.get("erase_requested_at"),
        }


class Sweeper:
    """Erases personal data past its retention every SWEEP_SECONDS (Store.sweep); any number
    of processes may run one, and `python -m card_service purge` runs one pass."""

    def __init__(self, store: Store, clock: Clock, retention_days: int):
        self.store, self.clock, self.retention_days = store, clock, retention_days
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                erased = await self.store.sweep(self.clock.now(), self.clock.today(),
                                                self.retention_days)
                if erased:
                    log.info("retention: personal data of %d report(s) erased", erased)
                reminded = await self.store.remind(self.clock.now(), self.clock.today())
                if reminded:
                    log.info("notices: %d lapse reminder(s) due", reminded)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
                log.warning("retention: redis unavailable (%s); trying again in %s s",
                            type(error).__name__, SWEEP_SECONDS)
            except Exception:  # the task must outlive one bad sweep; it is logged, not lost
                log.exception("retention: sweep failed; trying again in %s s", SWEEP_SECONDS)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), SWEEP_SECONDS)


def json_body(request: Request) -> dict[str, Any]:
    if len(request.body or b"") > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"The body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise ApiError(400, "malformed_json", "The body is not valid JSON.") from error
    if not isinstance(body, dict):
        raise ApiError(400, "not_an_object", "The body must be a JSON object.")
    return body


def path_reference(raw: str) -> str | None:
    parsed = identity.parse_reference(unquote(raw))
    return parsed.value if parsed.ok else None


async def stopped(app: Sanic, name: str, timeout: float) -> None:
    """Asks the background loop `app.ctx.<name>` to stop; cancels it after `timeout` s."""
    task = getattr(app.ctx, f"{name}_task", None)
    if task is None:
        return
    getattr(app.ctx, name).stop()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning("%s did not stop within %s s; cancelling", name, timeout)
        task.cancel()


def create_app(settings: Settings, name: str = "card_service") -> Sanic:
    service = Service(settings)
    app = Sanic(name, error_handler=JsonErrors())
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.service = service
    metrics.attach(app, service)

    @app.before_server_start
    async def connect(app: Sanic, _loop: Any) -> None:
        client = bot_redis.async_client(settings.redis_url, "store", retry_on_timeout=True,
                                        health_check_interval=30)
        service.store = Store(client)
        service.store.remind_days_before = settings.lapse_reminder_days

    @app.after_server_start
    async def start_outbox(app: Sanic, _loop: Any) -> None:
        outbox = Outbox(service.store, service.clock, settings.rasa_url,
                        settings.rasa_jwt_secret, settings.outbox_max_delay_seconds,
                        vault=service.vault, sms=make_sms(settings),
                        queue_wait_hours=settings.notice_queue_wait_hours)
        app.ctx.outbox = outbox
        app.ctx.outbox_task = asyncio.get_running_loop().create_task(outbox.run())
        log.info("card service ready on %s:%s", settings.bind_host, settings.card_service_port)

    @app.before_server_stop
    async def stop_outbox(app: Sanic, _loop: Any) -> None:
        # Bounded: an undelivered notification stays in Redis whatever happens here.
        await stopped(app, "outbox", OUTBOX_STOP_SECONDS)
        await service.store.redis.close()

    # Registered after the outbox: Sanic runs stop listeners in reverse, so this one stops
    # before the Redis client closes.
    @app.after_server_start
    async def start_sweeper(app: Sanic, _loop: Any) -> None:
        app.ctx.sweeper = Sweeper(service.store, service.clock, settings.report_retention_days)
        app.ctx.sweeper_task = asyncio.get_running_loop().create_task(app.ctx.sweeper.run())

    @app.before_server_stop
    async def stop_sweeper(app: Sanic, _loop: Any) -> None:
        # Each erasure is one script: cutting a sweep short loses nothing.
        await stopped(app, "sweeper", SWEEP_STOP_SECONDS)

    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        try:
            await service.store.redis.ping()
        except (redis.RedisError, OSError):
            return json_response({"status": "unavailable", "redis": False}, status=503)
        return json_response({"status": "ok", "redis": True})

    @app.get("/v1/openapi.json")
    async def openapi(request: Request) -> HTTPResponse:
        service.role_of(request, SERVICE, STAFF)
        return json_response(document())

    @app.get("/v1/regions/<city:str>")
    async def region(request: Request, city: str) -> HTTPResponse:
        service.role_of(request, SERVICE, STAFF)
        city = unquote(city)  # Sanic hands path segments over still percent-encoded
        found = regions.resolve(city)
        return json_response({**found.as_dict(), "query": city})

    @app.post("/v1/loss-reports")
    async def file_report(request: Request) -> HTTPResponse:
        service.role_of(request, SERVICE)
        key = (request.headers.get("idempotency-key") or "").strip()
        if not key or len(key) > 200:
            raise ApiError(400, "idempotency_key_required",
                           "Send an Idempotency-Key header (1 to 200 characters).",
                           {"Idempotency-Key": identity.MISSING if not key else "too_long"})
        body = json_body(request)
        today = service.clock.today()
        report, fields = validation.loss_report(body, today)
        if report is None:
            raise ApiError(422, "invalid_fields", "Some fields are missing or invalid: "
                           + ", ".join(sorted(fields)) + ".", fields)
        fingerprint = service.vault.keyed_hash(json.dumps(body, sort_keys=True))
        now = service.clock.now()
        for _ in range(REFERENCE_ATTEMPTS):
            reference = identity.new_reference()
            created = await service.store.create(key, fingerprint, reference,
                                                 _record(service, reference, report, now, today),
                                                 now)
            if created is not None:
                break
        else:
            raise ApiError(503, "unavailable", "Could not allocate a reference; try again.",
                           headers={"Retry-After": "1"})
        if created.outcome == "mismatch":
            raise ApiError(422, "idempotency_key_reused",
                           "This Idempotency-Key was used with a different body.",
                           {"Idempotency-Key": "reused"})
        if created.outcome == "created":
            log.info("filed %s region=%s child=%s", created.reference, report.region.key,
                     identity.mask(report.child_id_number))
        found = await service.store.get(created.reference)
        assert found is not None
        return json_response(service.view(created.reference, *found),
                             status=201 if created.outcome == "created" else 200)

    async def verified(request: Request, raw_reference: str, cancelling: bool = False
                       ) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
        """The report if the guardian's ID number (and, to cancel, the child's) matches; the
        same 404 otherwise, counted as a failure."""
        body = json_body(request)
        if cancelling:
            guardian_id, child_id, fields = validation.cancel_check(body)
        else:
            (guardian_id, fields), child_id = validation.guardian_id_number(body), None
        if guardian_id is None or (cancelling and child_id is None):
            raise ApiError(422, "invalid_fields", "Some fields are missing or invalid: "
                           + ", ".join(sorted(fields)) + ".", fields)
        canonical = path_reference(raw_reference)
        reference = canonical or raw_reference[:40]
        caller = (request.headers.get("x-caller-id") or request.ip or "unknown")[:200]
        caller_digest = _digest(caller)
        found = await service.store.get(reference) if canonical else None
        record = found[0] if found else {}
        # The conversation that filed the report is not held to the limit every caller
        # shares (its failures still count there), so a flood never locks its guardian out.
        filer = hmac.compare_digest(record.get("filer_hash", ""), caller_digest)
        limits = [Limit(f"fail:ref:{reference}", FAILURES_PER_REFERENCE,
                        REFERENCE_WINDOW_SECONDS, checked=not filer),
                  Limit(f"fail:caller:{caller_digest}", FAILURES_PER_CALLER,
                        CALLER_WINDOW_SECONDS)]
        backoff = Backoff(_digest(f"{reference}\n{caller}"), BACKOFF_FREE_FAILURES,
                          BACKOFF_FIRST_SECONDS, BACKOFF_CAP_SECONDS, BACKOFF_MEMORY_SECONDS)
        wait = await service.store.attempt(limits, backoff)
        if wait:
            raise ApiError(429, "too_many_failures",
                           "Too many failed verifications; try again later.",
                           headers={"Retry-After": str(wait)})
        # Both numbers are always compared, against dummies for an unknown reference, so a
        # wrong guardian, a wrong child and an unknown reference take the same time.
        right = service.vault.matches(guardian_id, record.get("guardian_hash", _DUMMY_HASH))
        if child_id is not None:
            right = service.child_matches(reference, record, child_id) and right
        if not right or found is None:
            log.info("verification failed for %s", reference)  # already counted by attempt
            raise ApiError(404, "not_found",
                           CANCEL_NOT_FOUND_MESSAGE if cancelling else NOT_FOUND_MESSAGE)
        await service.store.succeeded(limits, backoff)
        return reference, found[0], found[1]

    @app.post("/v1/loss-reports/<reference:str>/lookup")
    async def lookup(request: Request, reference: str) -> HTTPResponse:
        service.role_of(request, SERVICE)
        canonical, record, history = await verified(request, reference)
        return json_response(service.view(canonical, record, history))

    @app.post("/v1/loss-reports/<reference:str>/cancel")
    async def cancel(request: Request, reference: str) -> HTTPResponse:
        service.role_of(request, SERVICE)
        canonical, _record_, _history = await verified(request, reference, cancelling=True)
        return await move(canonical, statuses.CANCELLED)

    @app.post("/v1/loss-reports/<reference:str>/events")
    async def event(request: Request, reference: str) -> HTTPResponse:
        service.role_of(request, STAFF)
        body = json_body(request)
        target = body.get("status")
        if not isinstance(target, str) or target not in statuses.STAFF_SETTABLE:
            raise ApiError(422, "invalid_fields", "status must be one of: "
                           + ", ".join(sorted(statuses.STAFF_SETTABLE)) + ".",
                           {"status": identity.MISSING if target is None else
                            validation.UNKNOWN_STATUS})
        canonical = path_reference(reference)
        if canonical is None:
            raise ApiError(404, "not_found", UNKNOWN_REFERENCE)
        log.info("%s: %s asked by %s", canonical, target, staff_caller(request))
        return await move(canonical, target)

    @app.post("/v1/loss-reports/<reference:str>/reveal")
    async def reveal(request: Request, reference: str) -> HTTPResponse:
        """The guardian's whole phone number, for a person at the console who clicked to
        call them back (staff; logged with who asked)."""
        service.role_of(request, STAFF)
        canonical, (record, _history) = await known(reference)
        if "phone" not in record:
            raise ApiError(409, "personal_data_erased",
                           "This report's personal data has been erased.",
                           {"phone": "erased"})
        phone = service.vault.decrypt(record["phone"], f"{canonical}:phone")
        log.info("%s: phone number revealed to %s", canonical, staff_caller(request))
        return json_response({"reference": canonical, "phone": phone})

    async def move(reference: str, target: str) -> HTTPResponse:
        found = await service.store.get(reference)
        notification = None
        if found and target in statuses.NOTIFY_ON:
            notification = {"reference": reference,
                            "conversation_id": found[0]["conversation_id"]}
        moved = await service.store.move(reference, target, service.clock.now(),
                                         service.clock.today(), notification)
        if moved.outcome == "not_found":
            raise ApiError(404, "not_found", UNKNOWN_REFERENCE)
        if moved.outcome == "conflict":
            allowed = statuses.TABLE[moved.previous].next
            raise ApiError(409, "transition_not_allowed",
                           f"A report that is {moved.previous} cannot become {target}; allowed: "
                           + (", ".join(allowed) if allowed else "none (final status)") + ".",
                           {"status": moved.previous})
        log.info("%s: %s -> %s", reference, moved.previous, target)
        if statuses.is_terminal(target):
            # Erased now, not at the next sweep, when its guardian asked (it is then in the
            # asked index from this move) or nothing is to be kept after a final status.
            now = service.clock.now()
            keep_none = settings.report_retention_days == 0
            await service.store.erase(reference, now, service.clock.today(),
                                      index=None if keep_none else ASKED, cutoff=now)
        after = await service.store.get(reference)
        assert after is not None
        return json_response(service.view(reference, *after))

    @app.post("/v1/loss-reports/<reference:str>/erase")
    async def erase(request: Request, reference: str) -> HTTPResponse:
        """The conversation that filed a report asks for its personal data to go: now if the
        report is final, else as soon as it is (the card-ready notice still comes)."""
        service.role_of(request, SERVICE)
        conversation, fields = validation.conversation_id(json_body(request))
        if conversation is None:
            raise ApiError(422, "invalid_fields", "conversation_id is missing or invalid.",
                           fields)
        canonical = path_reference(reference)
        found = await service.store.get(canonical) if canonical else None
        filer = found[0].get("conversation_id", "") if found else ""
        # Equal-length digests compared in constant time; an erased report keeps no filer, so
        # it answers like an unknown reference, as does any other conversation.
        same = hmac.compare_digest(_digest(conversation), _digest(filer))
        if canonical is None or not filer or not same:
            raise ApiError(404, "not_found", UNKNOWN_REFERENCE)
        done = await service.store.erase(canonical, service.clock.now(), service.clock.today(),
                                         ask=True)
        if done.outcome == "not_found":
            raise ApiError(404, "not_found", UNKNOWN_REFERENCE)
        if done.outcome == "active":
            log.info("%s: erasure asked while %s; kept until final", canonical, done.status)
            return json_response({"reference": canonical, "status": done.status,
                                  "personal_data": "kept", "erase_after_days": 0,
                                  "reason": "active"})
        log.info("%s: personal data erased at the guardian's request", canonical)
        return json_response({"reference": canonical, "status": done.status,
                              "personal_data": "erased"})

    @app.post("/v1/loss-reports/<reference:str>/sms-consent")
    async def sms_consent(request: Request, reference: str) -> HTTPResponse:
        """The filing conversation says whether its guardian may be texted the notices at
        the phone number of the report; anyone else gets the unknown-reference 404."""
        service.role_of(request, SERVICE)
        body = json_body(request)
        conversation, fields = validation.conversation_id(body)
        consent = body.get("consent")
        if not isinstance(consent, bool):
            fields = {**fields, "consent": identity.MISSING if consent is None
                      else validation.TYPE}
        if conversation is None or not isinstance(consent, bool):
            raise ApiError(422, "invalid_fields", "conversation_id (string) and consent "
                           "(true or false) are required.", fields)
        canonical = path_reference(reference)
        found = await service.store.get(canonical) if canonical else None
        filer = found[0].get("conversation_id", "") if found else ""
        if canonical is None or not filer or not hmac.compare_digest(_digest(conversation),
                                                                     _digest(filer)):
            raise ApiError(404, "not_found", UNKNOWN_REFERENCE)
        await service.store.redis.hset(service.store.report_key(canonical), mapping={
            "sms_consent": "yes" if consent else "no", "sms_consent_at": iso(service.clock.now())})
        log.info("%s: SMS notices %s", canonical, "agreed" if consent else "declined")
        after = await service.store.get(canonical)
        assert after is not None
        return json_response(service.view(canonical, *after))

    @app.get("/v1/loss-reports/<reference:str>/notices")
    async def report_notices(request: Request, reference: str) -> HTTPResponse:
        """The notice ledger of a report: every notice, every attempt (staff)."""
        service.role_of(request, STAFF)
        canonical, _ = await known(reference)
        return json_response({"reference": canonical,
                              "notices": await Ledger(service.store.redis).of_report(canonical)})

    @app.get("/v1/loss-reports")
    async def list_reports(request: Request) -> HTTPResponse:
        service.role_of(request, STAFF)
        wanted = request.args.get("status")
        if wanted is not None and wanted not in statuses.TABLE:
            raise ApiError(422, "invalid_fields", "Unknown status filter.",
                           {"status": validation.UNKNOWN_STATUS})
        raw_limit = request.args.get("limit", "100")
        if not raw_limit.isdigit() or not 0 < int(raw_limit) <= LIST_LIMIT_MAX:
            raise ApiError(422, "invalid_fields", f"limit must be 1 to {LIST_LIMIT_MAX}.",
                           {"limit": validation.TYPE})
        views = []
        for reference in await service.store.references(int(raw_limit)):
            found = await service.store.get(reference)
            if found:
                view = service.view(reference, *found)
                if wanted is None or view["status"] == wanted:
                    views.append(view)
        return json_response({"reports": views})

    @app.get("/v1/loss-reports/<reference:str>")
    async def show_report(request: Request, reference: str) -> HTTPResponse:
        service.role_of(request, STAFF)
        canonical, found = await known(reference)
        return json_response(service.view(canonical, *found))

    async def known(reference: str) -> tuple[str, tuple[dict[str, str], list[Any]]]:
        """The report a path names, in its canonical spelling; else the unknown 404."""
        canonical = path_reference(reference)
        found = await service.store.get(canonical) if canonical else None
        if canonical is None or found is None:
            raise ApiError(404, "not_found", UNKNOWN_REFERENCE)
        return canonical, found

    return app


def _record(service: Service, reference: str, report: validation.LossReportInput,
            now: dt.datetime, today: dt.date) -> dict[str, str]:
    seal = service.vault.encrypt
    return {
        "status": statuses.INITIAL,
        "created_at": iso(now),
        "filed_on": today.isoformat(),
        "valid_until": (today + dt.timedelta(days=report.region.temporary_report_days)).isoformat(),
        "city": report.city,
        "region": report.region.key,
        "conversation_id": report.conversation_id,
        "relationship": report.relationship,
        "child_name": seal(report.child_name, f"{reference}:child_name"),
        "child_id": seal(report.child_id_number, f"{reference}:child_id"),
        "guardian_name": seal(report.guardian_name, f"{reference}:guardian_name"),
        "guardian_id": seal(report.guardian_id_number, f"{reference}:guardian_id"),
        "phone": seal(report.phone, f"{reference}:phone"),
        "guardian_hash": service.vault.keyed_hash(report.guardian_id_number),
        "child_hash": service.vault.keyed_hash(report.child_id_number),
        # The filing conversation, recognised later by its X-Caller-Id (the actions send the
        # same sender id as both); hashed like the per-caller counter's key.
        "filer_hash": _digest(report.conversation_id),
        "child_id_masked": identity.mask(report.child_id_number),
        "guardian_id_masked": identity.mask(report.guardian_id_number),
        "phone_masked": identity.mask(report.phone),
    }


def staff_caller(request: Request) -> str:
    """Who a staff call is for, as logs name it: with the console's token, the person its
    X-Staff-User names (its account name); with the shared staff token, that token's machine
    caller, whatever the header says (a bank system cannot name a person)."""
    if not getattr(request.ctx, "from_console", False):
        return "the staff token"
    named = (request.headers.get("x-staff-user") or "").strip()
    if named and len(named) <= 32 and all(ch.isalnum() or ch in "._-" for ch in named):
        return f"staff user {named}"
    return "the console (no person named)"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
