"""The console's dashboard: the last seven days of the assistant's metrics (bot/metrics.py,
card_service/metrics.py), asked of Prometheus's HTTP API at PROMETHEUS_URL.

Days are China's calendar days: the six before today whole, and today until now. Each
figure is PromQL's `increase` over that day's window (its `histogram_quantile` for waiting
times), so a process restarting mid-day is counted right, and figures are approximate by
Prometheus's own extrapolation at a window's edges when scrapes do not fall on them.

Every request has a timeout, and the page a limit for all of them. Prometheus unset or
unreachable gives a Week with a `problem` and no panel; a query that fails marks its own
panel only, with Prometheus's reason.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import requests

from bot.rules.china_time import CHINA

DAY = 86400
DAYS = 7
# (connect, read) seconds per request; Prometheus is told to give up a little sooner, so a
# heavy query ends there rather than running on for nobody.
TIMEOUT = (2.0, 6.0)
QUERY_TIMEOUT = "5s"
# The whole page waits no longer than this for its panels; a panel still unanswered then
# says so, and its queries left are dropped.
PAGE_SECONDS = 12.0
WORKERS = 6
UNSET, UNREACHABLE = "unset", "unreachable"
COUNT, PERCENT, SECONDS = "count", "percent", "seconds"


@dataclass(frozen=True)
class Query:
    """One PromQL expression with `{range}` where the window goes. Its series are rows
    named by the values of `by`; with no `by`, one row named `name` (words key `dash_`
    + name)."""

    name: str
    expr: str
    by: tuple[str, ...] = ()
    unit: str = COUNT


@dataclass(frozen=True)
class Panel:
    key: str  # its title's words key (after `dash_`), and its id in the page
    queries: tuple[Query, ...]


def _increase(metric: str, by: tuple[str, ...] = (), selector: str = "") -> str:
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"sum{grouping} (increase({metric}{selector}[{{range}}]))"


def _quantile(q: float) -> str:
    return f"histogram_quantile({q}, {_increase('cardbot_handoff_wait_seconds_bucket', ('le',))})"


SLOT = ("form", "slot")
PANELS = (
    Panel("turns_by_channel", (
        Query("total", _increase("cardbot_turns_total")),
        Query("", _increase("cardbot_turns_total", ("channel",)), ("channel",)))),
    Panel("turns_by_language", (
        Query("", _increase("cardbot_turns_total", ("language",)), ("language",)),)),
    Panel("fallbacks", (
        Query("fallback_count", _increase("cardbot_fallbacks_total")),
        Query("fallback_rate", f"{_increase('cardbot_fallbacks_total')} / "
                               f"{_increase('cardbot_turns_total')}", unit=PERCENT))),
    Panel("filings", (
        Query("", _increase("cardbot_filings_total", ("outcome",)), ("outcome",)),)),
    # Asked minus filled per slot; a slot never filled still has its row (`or ... * 0`).
    Panel("drop_off", (
        Query("", f"{_increase('cardbot_form_slots_asked_total', SLOT)} - "
                  f"({_increase('cardbot_form_slots_filled_total', SLOT)} or "
                  f"{_increase('cardbot_form_slots_asked_total', SLOT)} * 0)", SLOT),)),
    Panel("notices", (
        Query("", _increase("cardbot_notice_attempts_total", ("path", "outcome")),
              ("path", "outcome")),)),
    Panel("handoff_wait", (
        Query("handoffs_taken", _increase("cardbot_handoff_wait_seconds_count")),
        Query("median", _quantile(0.5), unit=SECONDS),
        Query("p90", _quantile(0.9), unit=SECONDS))),
    Panel("server_errors", (
        Query("total", _increase("cardbot_http_responses_total", (), '{status="5xx"}')),
        Query("", _increase("cardbot_http_responses_total", ("route",), '{status="5xx"}'),
              ("route",)))),
)
# Read at this moment, not per day: the card service's outbox as last scraped (`max`: every
# card service reads the same outbox).
NOW_QUERIES = (Query("outbox_backlog", "max(cardbot_outbox_backlog)"),
               Query("outbox_due", "max(cardbot_outbox_due)"))


@dataclass
class Row:
    name: str  # the query's name: the row's words key when `labels` is empty
    labels: tuple[str, ...]
    unit: str
    days: list[float | None] = field(default_factory=lambda: [None] * DAYS)
    week: float | None = None


@dataclass
class PanelFigures:
    key: str
    rows: list[Row]
    error: str = ""


@dataclass
class Week:
    """What the dashboard shows: days oldest first, each panel's rows, or why nothing."""

    days: list[dt.date]
    at: dt.datetime  # China time
    source: str = ""  # Prometheus's address, without any user name or password
    problem: str = ""  # UNSET, UNREACHABLE or empty
    detail: str = ""
    panels: list[PanelFigures] = field(default_factory=list)
    now: dict[str, float | None] = field(default_factory=dict)
    now_error: str = ""


class QueryFailed(Exception):
    """Prometheus did not answer a query; the message says why, for the page."""


def shown_address(url: str) -> str:
    """The URL as staff may read it: any user name or password left out.

    >>> shown_address("http://user:secret@prometheus:9090")
    'http://prometheus:9090'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def window(seconds: float) -> str:
    """A range selector's length in whole seconds (at least one).

    >>> window(86400), window(0.2)
    ('86400s', '1s')
    """
    return f"{max(1, int(seconds))}s"


def number(text: str) -> float | None:
    """A sample's value; None for NaN and infinities (a quantile of nothing, 0 / 0).

    >>> number("3"), number("NaN"), number("+Inf")
    (3.0, None, None)
    """
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value


def days_before(now: float) -> tuple[list[dt.date], float]:
    """The seven China days ending today, oldest first, and when today began (epoch s).

    >>> days, start = days_before(1764892800.0)  # 2025-12-05 08:00 China time
    >>> [d.isoformat() for d in (days[0], days[-1])], start
    (['2025-11-29', '2025-12-05'], 1764864000.0)
    """
    today = dt.datetime.fromtimestamp(now, CHINA).date()
    start = dt.datetime.combine(today, dt.time(), CHINA).timestamp()
    return [today - dt.timedelta(days=DAYS - 1 - i) for i in range(DAYS)], start


class Prometheus:
    """Prometheus's HTTP API: instant and range queries, each bounded by TIMEOUT."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def get(self, path: str, params: dict[str, str]) -> list[dict[str, object]]:
        try:
            response = requests.get(self.url + path, params=params, timeout=TIMEOUT)
        except requests.Timeout as error:
            raise QueryFailed(f"no answer within {TIMEOUT[1]:.0f} s") from error
        except requests.RequestException as error:
            raise QueryFailed(f"cannot reach Prometheus ({type(error).__name__})") from error
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            reason = body.get("error") or response.reason or "no reason given"
            raise QueryFailed(f"HTTP {response.status_code}: {str(reason)[:200]}")
        result = body["data"]["result"]
        return result if isinstance(result, list) else []

    def ready(self) -> str:
        """Empty when Prometheus answers, else why not."""
        try:
            self.get("/api/v1/query", {"query": "1", "timeout": QUERY_TIMEOUT})
        except QueryFailed as error:
            return str(error)
        return ""

    def instant(self, expr: str, at: float) -> list[dict[str, object]]:
        return self.get("/api/v1/query",
                        {"query": expr, "time": str(at), "timeout": QUERY_TIMEOUT})

    def steps(self, expr: str, start: float, end: float, step: int) -> list[dict[str, object]]:
        return self.get("/api/v1/query_range",
                        {"query": expr, "start": str(start), "end": str(end),
                         "step": str(step), "timeout": QUERY_TIMEOUT})


def _row_key(query: Query, metric: object) -> tuple[str, ...]:
    labels = metric if isinstance(metric, dict) else {}
    return tuple(str(labels.get(name, "")) for name in query.by)


def read_query(prometheus: Prometheus, query: Query, now: float) -> list[Row]:
    """One query's rows: the six whole days in one range query (a step a day, each at the
    day's end), today and the whole week each in an instant query at `now`."""
    _, today = days_before(now)
    first = today - (DAYS - 1) * DAY
    rows: dict[tuple[str, ...], Row] = {}

    def row(metric: object) -> Row:
        key = _row_key(query, metric)
        return rows.setdefault(key, Row(query.name, key, query.unit))

    def over(seconds: float) -> str:
        return query.expr.replace("{range}", window(seconds))

    for series in prometheus.steps(over(DAY), first + DAY, today, DAY):
        found = row(series.get("metric"))
        for at, value in series.get("values", []):  # type: ignore[attr-defined]
            index = round((float(at) - first) / DAY) - 1
            if 0 <= index < DAYS - 1:
                found.days[index] = number(value)
    for series in prometheus.instant(over(now - today), now):
        row(series.get("metric")).days[DAYS - 1] = number(series["value"][1])  # type: ignore[index]
    for series in prometheus.instant(over(now - first), now):
        row(series.get("metric")).week = number(series["value"][1])  # type: ignore[index]
    if not query.by and not rows:
        rows[()] = Row(query.name, (), query.unit)  # a named row stays, empty
    # Labelled rows: the largest week first (where most happened), then by name.
    return sorted(rows.values(), key=lambda r: (-(r.week or 0.0), r.labels))


def read_panel(prometheus: Prometheus, panel: Panel, now: float) -> PanelFigures:
    rows: list[Row] = []
    try:
        for query in panel.queries:
            rows.extend(read_query(prometheus, query, now))
    except QueryFailed as error:
        return PanelFigures(panel.key, [], str(error))
    return PanelFigures(panel.key, rows)


def read_now(prometheus: Prometheus, now: float) -> tuple[dict[str, float | None], str]:
    figures: dict[str, float | None] = {}
    try:
        for query in NOW_QUERIES:
            found = prometheus.instant(query.expr, now)
            figures[query.name] = number(found[0]["value"][1]) if found else None  # type: ignore[index]
    except QueryFailed as error:
        return {}, str(error)
    return figures, ""


def read_week(url: str, now: float, panels: tuple[Panel, ...] = PANELS) -> Week:
    """The dashboard's figures at `now` (epoch seconds), from the Prometheus at `url`."""
    now = float(int(now))  # whole seconds: the windows are whole seconds long
    days, _ = days_before(now)
    at = dt.datetime.fromtimestamp(now, CHINA)
    if not url:
        return Week(days, at, problem=UNSET)
    prometheus = Prometheus(url)
    week = Week(days, at, source=shown_address(url))
    reason = prometheus.ready()
    if reason:
        week.problem, week.detail = UNREACHABLE, reason
        return week
    late = f"no answer within {PAGE_SECONDS:.0f} s"
    deadline = time.monotonic() + PAGE_SECONDS
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dashboard")
    try:
        current = pool.submit(read_now, prometheus, now)
        figures = [(panel, pool.submit(read_panel, prometheus, panel, now)) for panel in panels]
        for panel, future in figures:
            try:
                week.panels.append(future.result(max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                week.panels.append(PanelFigures(panel.key, [], late))
        try:
            week.now, week.now_error = current.result(max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            week.now_error = late
    finally:
        # Queries not started are dropped; one under way ends by its own TIMEOUT.
        pool.shutdown(wait=False, cancel_futures=True)
    return week
