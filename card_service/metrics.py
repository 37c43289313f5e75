"""The card service's metrics (bot/metrics.py serves them): filings, notices, the outbox.

Filings are read from the filing route's answers, whose statuses the contract fixes
(docs/contract.md): 201 a new report, 200 the same Idempotency-Key and body again, 400,
413 or 422 a filing refused for what it carried. A refused token (401, 403) or a storage
failure (503) is no filing and shows only in the HTTP counts. Notices are counted as the
outbox writes each ledger attempt, and once more when a notice is settled.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from prometheus_client import Counter, Gauge

from bot import metrics
from card_service.store import PREFIX, _ms

log = logging.getLogger("card_service.metrics")

FILING_ROUTE = "v1/loss-reports"
FILING_OUTCOMES = {201: "created", 200: "existing", 400: "rejected", 413: "rejected",
                   422: "rejected"}

FILINGS = Counter(metrics.PREFIX + "filings",
                  "Loss-report filings: created, existing (a repeat), rejected", ["outcome"])
NOTICE_ATTEMPTS = Counter(metrics.PREFIX + "notice_attempts",
                          "Ledger attempts of notices, by path and outcome", ["path", "outcome"])
NOTICES_SETTLED = Counter(metrics.PREFIX + "notices_settled",
                          "Notices done: delivered (and by which path) or undeliverable",
                          ["kind", "state", "path"])
OUTBOX_BACKLOG = Gauge(metrics.PREFIX + "outbox_backlog",
                       "Notices and erasures waiting in the outbox, read at scrape time")
OUTBOX_DUE = Gauge(metrics.PREFIX + "outbox_due",
                   "Outbox entries already due (late when it stays above zero)")


def notice_attempt(path: str, outcome: str) -> None:
    NOTICE_ATTEMPTS.labels(metrics.label(path), metrics.label(outcome)).inc()


def notice_settled(kind: str, state: str, path: str = "") -> None:
    NOTICES_SETTLED.labels(metrics.label(kind), metrics.label(state),
                           metrics.label(path)).inc()


async def count_filing(request: Any, response: Any) -> None:
    """Sanic response middleware: a filing's outcome from its status."""
    route = request.route
    if request.method != "POST" or route is None or route.path != FILING_ROUTE:
        return
    outcome = FILING_OUTCOMES.get(getattr(response, "status", 0))
    if outcome is not None:
        FILINGS.labels(outcome).inc()


def attach(app: Any, service: Any) -> None:
    """GET /metrics on the card service (nothing with METRICS=off); the backlog is asked of
    Redis once per scrape, never on a request."""
    settings = service.settings
    if not settings.metrics_enabled:
        return

    async def read_backlog() -> None:
        try:
            async with service.store.redis.pipeline(transaction=False) as pipe:
                pipe.zcard(PREFIX + "outbox")
                pipe.zcount(PREFIX + "outbox", "-inf", _ms(service.clock.now()))
                backlog, due = await pipe.execute()
        except (redis.RedisError, OSError) as error:
            # The counters are still worth a page; the gauges keep their last reading.
            log.warning("metrics: outbox backlog unread (%s)", type(error).__name__)
            return
        OUTBOX_BACKLOG.set(backlog)
        OUTBOX_DUE.set(due)

    metrics.attach(app, settings.metrics_token, before_scrape=read_backlog)
    app.register_middleware(count_filing, "response")
