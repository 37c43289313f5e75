"""The card service's HTTP API (docs/contract.md, "Card service API, version 1") on Sanic."""

from __future__ import annotations

import asyncio
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
from card_service import validation
from card_service.openapi import document
from card_service.outbox import Outbox
from card_service.store import Clock, Store, effective_status, iso

log = logging.getLogger("card_service")

MAX_BODY_BYTES = 16 * 1024
SERVICE, STAFF = "service", "staff"
# Failed guardian verifications allowed per window before lookups/cancels answer 429.
FAILURES_PER_REFERENCE = 5
FAILURES_PER_CALLER = 20
FAILURE_WINDOW_SECONDS = 15 * 60
REFERENCE_ATTEMPTS = 8
LIST_LIMIT_MAX = 500
OUTBOX_STOP_SECONDS = 12
NOT_FOUND_MESSAGE = "No loss report matches this reference and guardian ID number."
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
        if settings.card_service_token == settings.staff_token:
            raise ValueError("CARD_SERVICE_TOKEN and CARD_SERVICE_STAFF_TOKEN must differ")
        self.settings = settings
        self.vault = settings.vault()
        if not settings.rasa_jwt_secret:
            raise ValueError("RASA_JWT_SECRET is not set: the card-ready notices could not "
                             "reach Rasa; `make run` writes one to .env")
        self.clock = Clock(settings.clock_offset_days)
        self.tokens = {SERVICE: settings.card_service_token.encode(),
                       STAFF: settings.staff_token.encode()}
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
        if role not in allowed:
            raise ApiError(403, "forbidden", f"This call needs the {' or '.join(allowed)} token.")
        return role

    def view(self, reference: str, record: dict[str, str],
             history: list[dict[str, Any]]) -> dict[str, Any]:
        """A report as callers see it: masked numbers, effective status, region and next step."""
        status = effective_status(record, self.clock.today())
        if status == statuses.EXPIRED and record["status"] != statuses.EXPIRED:
            history = [*history, {"status": statuses.EXPIRED,
                                  "at": f"{record['valid_until']}T16:00:00Z"}]  # midnight, China
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
            "city": record["city"],
            "region": region.as_dict(),
            "next_step": {
                "key": entry.next_step,
                "where": {"en": where[0], "zh": where[1]} if where else None,
                "deadline": record["valid_until"] if status == statuses.REPORTED_TEMPORARY
                else None,
            },
            "child": {"id_number_masked": record["child_id_masked"]},
            "guardian": {"id_number_masked": record["guardian_id_masked"],
                         "phone_masked": record["phone_masked"],
                         "relationship": record["relationship"]},
            "notified_at": record.get("notified_at"),
        }


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


def create_app(settings: Settings, name: str = "card_service") -> Sanic:
    service = Service(settings)
    app = Sanic(name, error_handler=JsonErrors())
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.service = service

    @app.before_server_start
    async def connect(app: Sanic, _loop: Any) -> None:
        client = bot_redis.async_client(settings.redis_url, "store", retry_on_timeout=True,
                                        health_check_interval=30)
        service.store = Store(client)

    @app.after_server_start
    async def start_outbox(app: Sanic, _loop: Any) -> None:
        outbox = Outbox(service.store, service.clock, settings.rasa_url,
                        settings.rasa_jwt_secret, settings.outbox_max_delay_seconds)
        app.ctx.outbox = outbox
        app.ctx.outbox_task = asyncio.get_running_loop().create_task(outbox.run())
        log.info("card service ready on %s:%s", settings.bind_host, settings.card_service_port)

    @app.before_server_stop
    async def stop_outbox(app: Sanic, _loop: Any) -> None:
        task = getattr(app.ctx, "outbox_task", None)
        if task is not None:
            app.ctx.outbox.stop()
            # Bounded: an undelivered notification stays in Redis whatever happens here.
            done, _ = await asyncio.wait({task}, timeout=OUTBOX_STOP_SECONDS)
            if not done:
                log.warning("outbox did not stop within %s s; cancelling", OUTBOX_STOP_SECONDS)
                task.cancel()
        await service.store.redis.close()

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

    async def verified(request: Request, raw_reference: str) -> tuple[str, dict[str, str],
                                                                       list[dict[str, Any]]]:
        """The report if the guardian's ID number matches; the same 404 otherwise."""
        body = json_body(request)
        guardian_id, fields = validation.guardian_id_number(body)
        if guardian_id is None:
            raise ApiError(422, "invalid_fields", "guardian_id_number is missing or invalid.",
                           fields)
        reference = path_reference(raw_reference) or raw_reference[:40]
        caller = (request.headers.get("x-caller-id") or request.ip or "unknown")[:200]
        counters = {f"fail:ref:{reference}": FAILURES_PER_REFERENCE,
                    f"fail:caller:{hashlib.sha256(caller.encode()).hexdigest()}":
                        FAILURES_PER_CALLER}
        wait = await service.store.blocked_for(counters)
        if wait:
            raise ApiError(429, "too_many_failures",
                           "Too many failed verifications; try again later.",
                           headers={"Retry-After": str(wait)})
        found = await service.store.get(reference) if path_reference(raw_reference) else None
        expected = found[0].get("guardian_hash", _DUMMY_HASH) if found else _DUMMY_HASH
        if not service.vault.matches(guardian_id, expected) or found is None:
            await service.store.count_failure(list(counters), FAILURE_WINDOW_SECONDS)
            log.info("verification failed for %s", reference)
            raise ApiError(404, "not_found", NOT_FOUND_MESSAGE)
        return reference, found[0], found[1]

    @app.post("/v1/loss-reports/<reference:str>/lookup")
    async def lookup(request: Request, reference: str) -> HTTPResponse:
        service.role_of(request, SERVICE)
        canonical, record, history = await verified(request, reference)
        return json_response(service.view(canonical, record, history))

    @app.post("/v1/loss-reports/<reference:str>/cancel")
    async def cancel(request: Request, reference: str) -> HTTPResponse:
        service.role_of(request, SERVICE)
        canonical, _record_, _history = await verified(request, reference)
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
            raise ApiError(404, "not_found", "No loss report has this reference.")
        return await move(canonical, target)

    async def move(reference: str, target: str) -> HTTPResponse:
        found = await service.store.get(reference)
        notification = None
        if found and target in statuses.NOTIFY_ON:
            notification = {"reference": reference,
                            "conversation_id": found[0]["conversation_id"]}
        moved = await service.store.move(reference, target, service.clock.now(),
                                         service.clock.today(), notification)
        if moved.outcome == "not_found":
            raise ApiError(404, "not_found", "No loss report has this reference.")
        if moved.outcome == "conflict":
            allowed = statuses.TABLE[moved.previous].next
            raise ApiError(409, "transition_not_allowed",
                           f"A report that is {moved.previous} cannot become {target}; allowed: "
                           + (", ".join(allowed) if allowed else "none (final status)") + ".",
                           {"status": moved.previous})
        log.info("%s: %s -> %s", reference, moved.previous, target)
        after = await service.store.get(reference)
        assert after is not None
        return json_response(service.view(reference, *after))

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
        canonical = path_reference(reference)
        found = await service.store.get(canonical) if canonical else None
        if canonical is None or found is None:
            raise ApiError(404, "not_found", "No loss report has this reference.")
        return json_response(service.view(canonical, *found))

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
        "child_id_masked": identity.mask(report.child_id_number),
        "guardian_id_masked": identity.mask(report.guardian_id_number),
        "phone_masked": identity.mask(report.phone),
    }
