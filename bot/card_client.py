"""The card service client the actions (and the staff tool) use: typed results, named errors.

Every request has a timeout; only calls that are safe to repeat are retried (filing is,
thanks to its Idempotency-Key; look-ups and reads are). Blocking calls have `async`
twins that run in a thread so one slow call never stalls the action server's loop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from bot import settings as bot_settings
from bot.rules.regions import Region

TIMEOUT = (3.05, 10.0)  # connect, read
RETRY_DELAYS = (0.2, 0.6, 1.5)
RETRY_STATUSES = frozenset({500, 502, 503, 504})


class CardServiceError(Exception):
    """Base of every error this client raises."""


class CardServiceUnavailable(CardServiceError):
    """Not reachable, timed out, or answering 5xx after the retries."""


class Unauthorized(CardServiceError):
    """401 or 403: the token is missing, wrong or of the wrong role."""


class NotFound(CardServiceError):
    """Unknown reference, or a guardian ID number that does not match (the same answer)."""


class Conflict(CardServiceError):
    """The report's status does not allow this (409)."""

    def __init__(self, message: str, status: str | None = None):
        super().__init__(message)
        self.status = status


class Invalid(CardServiceError):
    """400/413/422: `fields` maps each bad field to a reason code."""

    def __init__(self, message: str, fields: dict[str, str] | None = None, code: str = ""):
        super().__init__(message)
        self.fields = fields or {}
        self.code = code


class RateLimited(CardServiceError):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class HistoryEntry:
    status: str
    at: str


@dataclass(frozen=True)
class LossReport:
    """A report as the service shows it; numbers are masked, never whole."""

    reference: str
    status: str
    valid_until: str
    city: str
    region: Region
    next_step: str
    history: list[HistoryEntry] = field(default_factory=list)
    can_cancel: bool = False
    terminal: bool = False
    child_id_masked: str = ""
    guardian_id_masked: str = ""
    created: bool = False  # True only on the 201 that filed it
    personal_data: str = "kept"  # "erased": its retention ran out or its guardian asked
    phone_masked: str = ""
    notified_at: str = ""  # when the card-ready notice reached the guardian, and how
    notified_by: str = ""
    sms_consent: bool = False
    filed_on: str = ""  # the filing date in China (YYYY-MM-DD)
    relationship: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any], created: bool = False) -> LossReport:
        return cls(
            reference=data["reference"],
            status=data["status"],
            valid_until=data["valid_until"],
            city=data["city"] or "",  # this and the masked numbers: null once erased
            region=Region.from_json(data["region"]),
            next_step=data["next_step"]["key"],
            history=[HistoryEntry(e["status"], e["at"]) for e in data.get("history", [])],
            can_cancel=bool(data.get("can_cancel")),
            terminal=bool(data.get("terminal")),
            child_id_masked=data["child"]["id_number_masked"] or "",
            guardian_id_masked=data["guardian"]["id_number_masked"] or "",
            created=created,
            personal_data=data.get("personal_data", "kept"),
            phone_masked=(data.get("guardian") or {}).get("phone_masked") or "",
            notified_at=data.get("notified_at") or "",
            notified_by=data.get("notified_by") or "",
            sms_consent=bool(data.get("sms_consent")),
            filed_on=data.get("filed_on") or "",
            relationship=(data.get("guardian") or {}).get("relationship") or "",
        )


# A status answer is a report seen by its guardian: the same fields.
Status = LossReport


@dataclass(frozen=True)
class Erasure:
    """The answer to "delete my data" for a report."""

    reference: str
    status: str
    personal_data: str  # "erased" now, or "kept" while the report is active
    erase_after_days: int | None = None  # with kept: days after it is final (0: at once)
    reason: str | None = None  # with kept: "active", the card is still being replaced

    @property
    def erased(self) -> bool:
        return self.personal_data == "erased"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Erasure:
        return cls(data["reference"], data["status"], data["personal_data"],
                   data.get("erase_after_days"), data.get("reason"))


class CardClient:
    def __init__(self, base_url: str, token: str, timeout: tuple[float, float] = TIMEOUT,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS,
                 session: requests.Session | None = None,
                 headers: dict[str, str] | None = None):
        self.base_url = base_url.rstrip("/")
        # Sent with every call: the staff console names its user (X-Staff-User).
        self.headers = dict(headers or {})
        self.token = token
        self.timeout = timeout
        self.retry_delays = retry_delays
        self.session = session or requests.Session()

    @classmethod
    def from_settings(cls, settings: bot_settings.Settings | None = None) -> CardClient:
        settings = settings or bot_settings.settings()
        return cls(settings.card_service_url, settings.card_service_token)

    # The calls.
    def file_report(self, *, child_name: str, child_id_number: str, guardian_name: str,
                    guardian_id_number: str, relationship: str, phone: str, city: str,
                    conversation_id: str, idempotency_key: str | None = None) -> LossReport:
        """File once: pass the same `idempotency_key` for the same form (a retry is safe)."""
        body = {"child": {"name": child_name, "id_number": child_id_number},
                "guardian": {"name": guardian_name, "id_number": guardian_id_number,
                             "relationship": relationship, "phone": phone},
                "city": city, "conversation_id": conversation_id}
        key = idempotency_key or str(uuid.uuid4())
        response = self._call("POST", "/v1/loss-reports", body, retry=True,
                              headers={"Idempotency-Key": key})
        return LossReport.from_json(response.json(), created=response.status_code == 201)

    def lookup(self, reference: str, guardian_id_number: str,
               caller: str | None = None) -> LossReport:
        return self._as_guardian("lookup", reference, {"guardian_id_number": guardian_id_number},
                                 caller, retry=True)

    def cancel(self, reference: str, guardian_id_number: str, child_id_number: str,
               caller: str | None = None) -> LossReport:
        """Needs the child's ID number too. Not retried: a repeat after a lost answer would
        read as a 409."""
        return self._as_guardian("cancel", reference,
                                 {"guardian_id_number": guardian_id_number,
                                  "child_id_number": child_id_number}, caller, retry=False)

    def _as_guardian(self, verb: str, reference: str, proof: dict[str, str],
                     caller: str | None, retry: bool) -> LossReport:
        response = self._call("POST", f"/v1/loss-reports/{_segment(reference)}/{verb}",
                              proof, retry=retry, headers=_caller(caller))
        return LossReport.from_json(response.json())

    def erase(self, reference: str, conversation_id: str) -> Erasure:
        """Erase the report's personal data, asked by the conversation that filed it: now if
        its status is final, else as soon as it is. NotFound for an unknown reference,
        another conversation's report, or one already erased. Not retried: a repeat after a
        lost answer would read as NotFound."""
        response = self._call("POST", f"/v1/loss-reports/{_segment(reference)}/erase",
                              {"conversation_id": conversation_id}, retry=False)
        return Erasure.from_json(response.json())

    def sms_consent(self, reference: str, conversation_id: str, consent: bool) -> LossReport:
        """Whether the guardian of the report this conversation filed may be texted its
        notices. NotFound for another conversation's report."""
        response = self._call("POST", f"/v1/loss-reports/{_segment(reference)}/sms-consent",
                              {"conversation_id": conversation_id, "consent": consent},
                              retry=True)  # setting it twice is harmless
        return LossReport.from_json(response.json())

    def region(self, city: str) -> Region:
        response = self._call("GET", f"/v1/regions/{_segment(city)}", retry=True)
        return Region.from_json(response.json())

    # Staff calls (staff token).
    def list_reports(self, status: str | None = None, limit: int = 100) -> list[LossReport]:
        params = f"?limit={limit}" + (f"&status={quote(status)}" if status else "")
        response = self._call("GET", "/v1/loss-reports" + params, retry=True)
        return [LossReport.from_json(item) for item in response.json()["reports"]]

    def get_report(self, reference: str) -> LossReport:
        response = self._call("GET", f"/v1/loss-reports/{_segment(reference)}", retry=True)
        return LossReport.from_json(response.json())

    def notices(self, reference: str) -> list[dict[str, Any]]:
        """The report's notice ledger (staff): each notice with its attempts."""
        response = self._call("GET", f"/v1/loss-reports/{_segment(reference)}/notices",
                              retry=True)
        return list(response.json()["notices"])

    def set_status(self, reference: str, status: str) -> LossReport:
        response = self._call("POST", f"/v1/loss-reports/{_segment(reference)}/events",
                              {"status": status}, retry=False)
        return LossReport.from_json(response.json())

    def reveal_phone(self, reference: str) -> str:
        """The guardian's whole phone number (staff; the card service logs who asked).
        Conflict once the report's personal data is erased."""
        response = self._call("POST", f"/v1/loss-reports/{_segment(reference)}/reveal",
                              {}, retry=False)
        return str(response.json()["phone"])

    # Async twins for the action server.
    async def file_report_async(self, **kwargs: Any) -> LossReport:
        return await asyncio.to_thread(lambda: self.file_report(**kwargs))

    async def lookup_async(self, reference: str, guardian_id_number: str,
                           caller: str | None = None) -> LossReport:
        return await asyncio.to_thread(self.lookup, reference, guardian_id_number, caller)

    async def cancel_async(self, reference: str, guardian_id_number: str, child_id_number: str,
                           caller: str | None = None) -> LossReport:
        return await asyncio.to_thread(self.cancel, reference, guardian_id_number,
                                       child_id_number, caller)

    async def erase_async(self, reference: str, conversation_id: str) -> Erasure:
        return await asyncio.to_thread(self.erase, reference, conversation_id)

    async def sms_consent_async(self, reference: str, conversation_id: str,
                                consent: bool) -> LossReport:
        return await asyncio.to_thread(self.sms_consent, reference, conversation_id, consent)

    async def region_async(self, city: str) -> Region:
        return await asyncio.to_thread(self.region, city)

    # The one road every call takes.
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
              retry: bool, headers: dict[str, str] | None = None) -> requests.Response:
        all_headers = {"Authorization": f"Bearer {self.token}", **self.headers,
                       **(headers or {})}
        delays = self.retry_delays if retry else ()
        for attempt in range(len(delays) + 1):
            try:
                response = self.session.request(method, self.base_url + path, json=body,
                                                headers=all_headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                if attempt < len(delays):
                    time.sleep(delays[attempt])
                    continue
                raise CardServiceUnavailable(f"card service unreachable: "
                                             f"{type(error).__name__}") from error
            if response.status_code in RETRY_STATUSES and attempt < len(delays):
                time.sleep(delays[attempt])
                continue
            _raise_for(response)
            return response
        raise AssertionError("unreachable")


def _raise_for(response: requests.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        try:
            response.json()
        except ValueError as not_json:
            raise CardServiceUnavailable("card service answered with something not JSON") \
                from not_json
        return
    try:
        problem = response.json()["error"]
        code, message = str(problem.get("code", "")), str(problem.get("message", ""))
        fields = dict(problem.get("fields") or {})
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message, fields = "", response.reason or f"HTTP {status}", {}
    text = f"{status} {code}: {message}".strip()
    if status in (401, 403):
        raise Unauthorized(text)
    if status == 404:
        raise NotFound(text)
    if status == 409:
        raise Conflict(text, fields.get("status"))
    if status == 429:
        retry_after = response.headers.get("Retry-After", "")
        raise RateLimited(text, int(retry_after) if retry_after.isdigit() else 60)
    if status in (400, 413, 422):
        raise Invalid(text, fields, code)
    if status >= 500:
        raise CardServiceUnavailable(text)
    raise CardServiceError(text)


def _segment(value: str) -> str:
    return quote(value.strip(), safe="")


def _caller(caller: str | None) -> dict[str, str]:
    return {"X-Caller-Id": caller} if caller else {}
