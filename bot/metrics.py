"""Prometheus metrics of the assistant: what every process counts, and its GET /metrics.

Each process (Rasa, the action server, the card service) keeps its own counters in memory
and serves them as Prometheus text on its own port; Prometheus adds them up across
processes (deploy/prometheus.yml). Nothing here calls Redis or the network on a turn: a
turn costs a few in-memory increments. METRICS=off (bot/settings.py) leaves the route and
the per-turn counting out; METRICS_TOKEN, when set, is asked of every reader as
`Authorization: Bearer`, else only loopback clients may read.

What is counted where:
  Rasa (bot/rasa/patches/metrics.py): turns, turn latency, intents, fallbacks, form slots
      asked and filled, HTTP responses; handoff waits (`observe_handoff_wait`).
  Action server (rasa_sdk_plugins/): action calls, HTTP responses.
  Card service (card_service/metrics.py): filings, notice attempts and outcomes, outbox
      backlog, HTTP responses.

`scrape` and `Figures` read a /metrics page back (tests, the staff console).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

# No `_created` series beside every counter: half the page, and nothing here reads them.
disable_created_metrics()

PREFIX = "cardbot_"
PATH = "/metrics"
# Intents that mean the model did not understand, or the question is not ours.
FALLBACK_INTENTS = frozenset({"nlu_fallback", "out_of_scope"})
# Reply languages the `language` slot holds; anything else is counted as "other" so a
# label never grows without bound.
LANGUAGES = frozenset({"zh", "en"})
# Label values are names chosen by code or by the model, never by what a person typed; the
# cut is a guard against a runaway label, not a rule.
LABEL_MAX = 60

TURNS = Counter(PREFIX + "turns", "Guardian messages answered, by channel and reply language",
                ["channel", "language"])
TURN_SECONDS = Histogram(
    PREFIX + "turn_seconds",
    "Rasa's time for one message, received to last reply sent (lock wait excluded)",
    ["channel"], buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0))
INTENTS = Counter(PREFIX + "intents", "Messages by the intent they were read as", ["intent"])
FALLBACKS = Counter(PREFIX + "fallbacks",
                    "Messages not understood (nlu_fallback) or not ours (out_of_scope)",
                    ["intent"])
SLOTS_ASKED = Counter(PREFIX + "form_slots_asked",
                      "Times a form moved on to asking a slot (a repeated question is one)",
                      ["form", "slot"])
SLOTS_FILLED = Counter(PREFIX + "form_slots_filled",
                       "Asked slots that held a value when the form moved past them",
                       ["form", "slot"])
HANDOFF_WAIT = Histogram(
    PREFIX + "handoff_wait_seconds",
    "Time from a guardian asking for a person to a person taking the conversation",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600))
HTTP_RESPONSES = Counter(PREFIX + "http_responses",
                         "HTTP responses by route and status class (2xx, 4xx, 5xx...)",
                         ["route", "status"])
ACTION_CALLS = Counter(PREFIX + "action_calls",
                       "Custom actions the action server was asked to run", ["action"])


def label(value: object, default: str = "none") -> str:
    """A label value: the text, cut; `default` for an empty one.

    >>> label("ask_fee"), label(None), label("x" * 80) == "x" * 60
    ('ask_fee', 'none', True)
    """
    text = str(value) if value else ""
    return text[:LABEL_MAX] or default


def language_label(value: object) -> str:
    """The `language` slot as a label: zh, en or other.

    >>> language_label("zh"), language_label(None), language_label("fr")
    ('zh', 'other', 'other')
    """
    return value if isinstance(value, str) and value in LANGUAGES else "other"


def status_class(status: int) -> str:
    """An HTTP status as its class.

    >>> status_class(201), status_class(404), status_class(503)
    ('2xx', '4xx', '5xx')
    """
    return f"{status // 100}xx"


def observe_handoff_wait(seconds: float) -> None:
    """A guardian waited `seconds` for a person (from the request to an agent taking it)."""
    HANDOFF_WAIT.observe(max(0.0, seconds))


def count_intent(intent: str | None) -> None:
    name = label(intent)
    INTENTS.labels(name).inc()
    if name in FALLBACK_INTENTS:
        FALLBACKS.labels(name).inc()


# Reading access.
def is_loopback(address: str | None) -> bool:
    """Whether a client address is this machine's.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("10.0.0.5")
    (True, True, False)
    >>> is_loopback(""), is_loopback("not-an-ip")
    (False, False)
    """
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def allowed(token: str, client: str | None, authorization: str | None) -> bool:
    """May this client read the metrics: the bearer token when one is set, else loopback.

    >>> allowed("", "127.0.0.1", None), allowed("", "10.1.2.3", None)
    (True, False)
    >>> allowed("s3", "10.1.2.3", "Bearer s3"), allowed("s3", "127.0.0.1", "Bearer no")
    (True, False)
    """
    if not token:
        return is_loopback(client)
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode())


def exposition() -> bytes:
    """This process's metrics as Prometheus text."""
    return bytes(generate_latest())


def attach(app: Any, token: str,
           before_scrape: Callable[[], Awaitable[None]] | None = None) -> None:
    """Adds GET /metrics and the HTTP response counter to a Sanic app (Rasa's, the action
    server's, the card service's). `before_scrape` refreshes gauges that are read, not
    counted (the outbox backlog)."""
    from sanic.response import HTTPResponse, raw

    async def metrics(request: Any) -> HTTPResponse:
        if not allowed(token, request.ip, request.headers.get("authorization")):
            headers = {"WWW-Authenticate": "Bearer"} if token else {}
            return raw(b"metrics: forbidden\n", status=401 if token else 403,
                       headers=headers, content_type="text/plain")
        if before_scrape is not None:
            await before_scrape()
        return raw(exposition(), content_type=CONTENT_TYPE_LATEST)

    app.add_route(metrics, PATH, methods=["GET"], name="cardbot_metrics")
    app.register_middleware(count_response, "response")


async def count_response(request: Any, response: Any) -> None:
    """Sanic response middleware: one count per response, by the route's pattern (never
    the raw path, which carries references and conversation ids)."""
    route = request.route
    name = route.path if route is not None else "unmatched"
    status = getattr(response, "status", 0) or 0
    HTTP_RESPONSES.labels(label(name, "root"), status_class(status)).inc()


def attach_action_server(app: Any, token: str) -> None:
    """`attach`, and each action call counted by the action's name (rasa_sdk_plugins/)."""
    attach(app, token)
    app.register_middleware(count_action, "response")


async def count_action(request: Any, response: Any) -> None:
    """The body rasa_sdk's handler already parsed (a compressed one it parsed itself is
    not kept: counted as `unknown`); only calls that ran."""
    route = request.route
    if route is None or route.path != "webhook" or getattr(response, "status", 0) != 200:
        return
    call = request.parsed_json if isinstance(request.parsed_json, dict) else {}
    ACTION_CALLS.labels(label(call.get("next_action"), "unknown")).inc()


# Reading a page back.
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse(text: str) -> Samples:
    """Prometheus text as {sample name: {sorted labels: value}}.

    >>> page = 'cardbot_turns_total{channel="rest",language="en"} 3.0\\n'
    >>> parse(page)["cardbot_turns_total"]
    {(('channel', 'rest'), ('language', 'en')): 3.0}
    """
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                float(sample.value)
    return samples


def scrape(url: str, token: str = "", timeout: float = 5.0) -> Samples:
    """Reads a process's /metrics (`url` is the process's base URL or the page itself)."""
    import requests

    page = url if url.rstrip("/").endswith(PATH) else url.rstrip("/") + PATH
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(page, headers=headers, timeout=timeout)
    response.raise_for_status()
    return parse(response.text)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when none).

    >>> s = parse('cardbot_intents_total{intent="greet"} 2\\n'
    ...           'cardbot_intents_total{intent="faq"} 1\\n')
    >>> total(s, "cardbot_intents_total"), total(s, "cardbot_intents_total", intent="greet")
    (3.0, 2.0)
    """
    wanted = set(labels.items())
    return sum(value for key, value in samples.get(name, {}).items() if wanted <= set(key))


def by_label(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """`name`'s samples summed by the values of `keys`."""
    out: dict[tuple[str, ...], float] = {}
    for labels, value in samples.get(name, {}).items():
        found = dict(labels)
        if "le" in found:  # a histogram's bucket; read through its _count and _sum
            continue
        group = tuple(found.get(key, "") for key in keys)
        out[group] = out.get(group, 0.0) + value
    return out


def quantile(samples: Samples, name: str, q: float, **labels: str) -> float | None:
    """The q-quantile of a histogram from its buckets (linear inside a bucket, as PromQL's
    histogram_quantile); None without observations."""
    buckets: dict[float, float] = {}
    wanted = set(labels.items())
    for key, value in samples.get(name + "_bucket", {}).items():
        found = dict(key)
        if wanted <= set(key):
            bound = float(found["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
    if not buckets or buckets.get(float("inf"), 0.0) == 0:
        return None
    rank = q * buckets[float("inf")]
    lower, below = 0.0, 0.0
    for bound in sorted(buckets):
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * ((rank - below) / max(count - below, 1e-12))
        lower, below = bound, count
    return lower


@dataclass
class Figures:
    """The headline figures of one or more scraped pages (counters summed across them)."""

    turns: float = 0.0
    turns_by_channel: dict[str, float] = field(default_factory=dict)
    fallback_rate: float = 0.0
    latency_p50: float | None = None
    latency_p95: float | None = None
    # Per (form, slot): asked, filled, and the difference (where guardians stopped).
    slots: dict[tuple[str, ...], tuple[float, float, float]] = field(default_factory=dict)
    filings: dict[str, float] = field(default_factory=dict)
    # Per (path, outcome) and per (route, status class).
    notice_attempts: dict[tuple[str, ...], float] = field(default_factory=dict)
    outbox_backlog: float = 0.0
    http_errors: dict[tuple[str, ...], float] = field(default_factory=dict)

    @classmethod
    def of(cls, pages: Iterable[Samples]) -> Figures:
        merged: Samples = {}
        for page in pages:
            for name, values in page.items():
                into = merged.setdefault(name, {})
                for key, value in values.items():
                    into[key] = into.get(key, 0.0) + value
        turns = total(merged, PREFIX + "turns_total")
        asked = by_label(merged, PREFIX + "form_slots_asked_total", "form", "slot")
        filled = by_label(merged, PREFIX + "form_slots_filled_total", "form", "slot")
        return cls(
            turns=turns,
            turns_by_channel={key[0]: value for key, value in
                              by_label(merged, PREFIX + "turns_total", "channel").items()},
            fallback_rate=total(merged, PREFIX + "fallbacks_total") / turns if turns else 0.0,
            latency_p50=quantile(merged, PREFIX + "turn_seconds", 0.5),
            latency_p95=quantile(merged, PREFIX + "turn_seconds", 0.95),
            slots={key: (asked.get(key, 0.0), filled.get(key, 0.0),
                         asked.get(key, 0.0) - filled.get(key, 0.0))
                   for key in sorted(set(asked) | set(filled))},
            filings={key[0]: value for key, value in
                     by_label(merged, PREFIX + "filings_total", "outcome").items()},
            notice_attempts=dict(by_label(merged, PREFIX + "notice_attempts_total",
                                          "path", "outcome")),
            outbox_backlog=total(merged, PREFIX + "outbox_backlog"),
            http_errors={key: value for key, value in
                         by_label(merged, PREFIX + "http_responses_total", "route",
                                  "status").items() if key[1] in ("4xx", "5xx")},
        )


def urls(base_urls: Mapping[str, str]) -> dict[str, str]:
    """Each process's metrics page, by process name.

    >>> urls({"rasa": "http://127.0.0.1:5005/"})
    {'rasa': 'http://127.0.0.1:5005/metrics'}
    """
    return {name: base.rstrip("/") + PATH for name, base in base_urls.items()}
