"""A real Prometheus (Debian's /usr/bin/prometheus) holding a history the test wrote: series
with timestamps as OpenMetrics text, turned into TSDB blocks by `promtool tsdb
create-blocks-from openmetrics`, then served by a Prometheus that scrapes nothing."""

from __future__ import annotations

import bisect
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.testkit.processes import HttpProcess

PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
PROMTOOL = os.environ.get("PROMTOOL", "/usr/bin/promtool")
INSTALL = "apt-get install prometheus (Debian), or set PROMETHEUS and PROMTOOL to their paths"
Labels = tuple[tuple[str, str], ...]
Key = tuple[str, Labels]  # sample name, labels


def programs() -> tuple[str, str]:
    """The two programs, or an error saying how to get them."""
    for path in (PROMETHEUS, PROMTOOL):
        if not shutil.which(path):
            raise FileNotFoundError(f"{path} not found: {INSTALL}")
    return PROMETHEUS, PROMTOOL


class History:
    """Counters, gauges and histograms sampled every `step` seconds from `start` to `end`
    (both included), as a scrape every `step` would have seen them."""

    def __init__(self, start: int, end: int, step: int = 900):
        self.times = list(range(start, end + 1, step))
        self.kinds: dict[str, str] = {}  # family -> counter, gauge or histogram
        self.series: dict[str, dict[Key, list[float]]] = {}

    def _values(self, family: str, kind: str, sample: str, labels: Mapping[str, str]
                ) -> list[float]:
        if self.kinds.setdefault(family, kind) != kind:
            raise ValueError(f"{family} is a {self.kinds[family]}")
        key = (sample, tuple(sorted(labels.items())))
        return self.series.setdefault(family, {}).setdefault(key, [0.0] * len(self.times))

    def _from(self, at: float) -> int:
        return bisect.bisect_left(self.times, at)

    def add(self, family: str, labels: Mapping[str, str], at: float, amount: float = 1) -> None:
        """A counter grows by `amount` at time `at` (seen from the next sample on)."""
        values = self._values(family, "counter", family + "_total", labels)
        for i in range(self._from(at), len(values)):
            values[i] += amount

    def restart(self, family: str, labels: Mapping[str, str], at: float) -> None:
        """The process counting `family` restarted at `at`: its counter starts again at 0."""
        values = self._values(family, "counter", family + "_total", labels)
        first = self._from(at)
        if first < len(values):
            drop = values[first]
            for i in range(first, len(values)):
                values[i] -= drop

    def set(self, family: str, labels: Mapping[str, str], at: float, value: float) -> None:
        """A gauge reads `value` from `at` on."""
        values = self._values(family, "gauge", family, labels)
        for i in range(self._from(at), len(values)):
            values[i] = value

    def observe(self, family: str, at: float, seconds: float, buckets: Sequence[float]) -> None:
        """A histogram (no labels of its own) observes `seconds` at `at`; every bucket
        is a series from then on, as prometheus_client serves them, empty ones too."""
        first = self._from(at)
        for bound in [*buckets, float("inf")]:
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            self._grow(family, family + "_bucket", {"le": le}, first, int(seconds <= bound))
        self._grow(family, family + "_count", {}, first, 1)
        self._grow(family, family + "_sum", {}, first, seconds)

    def _grow(self, family: str, sample: str, labels: Mapping[str, str], first: int,
              amount: float) -> None:
        values = self._values(family, "histogram", sample, labels)
        for i in range(first, len(values)):
            values[i] += amount

    def touch(self, family: str, labels: Mapping[str, str]) -> None:
        """A counter series that exists at 0 from the start (a process serves it)."""
        self._values(family, "counter", family + "_total", labels)

    def openmetrics(self) -> str:
        """OpenMetrics text: each family's lines together, each series' points in time
        order, `# EOF` last."""
        lines: list[str] = []
        for family, series in self.series.items():
            lines.append(f"# TYPE {family} {self.kinds[family]}")
            if self.kinds[family] == "histogram":
                # Every bucket of the histogram at every time, whole: complete points only.
                ordered = sorted(series, key=_histogram_order)
                for i, at in enumerate(self.times):
                    lines.extend(_line(key, series[key][i], at) for key in ordered)
                continue
            for key, values in series.items():
                lines.extend(_line(key, value, at) for value, at in zip(values, self.times, strict=True))
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


def _histogram_order(key: Key) -> tuple[int, float]:
    sample, labels = key
    if sample.endswith("_bucket"):
        le = dict(labels)["le"]
        return 0, float("inf") if le == "+Inf" else float(le)
    return (1, 0.0) if sample.endswith("_count") else (2, 0.0)


def _line(key: Key, value: float, at: int) -> str:
    sample, labels = key
    pairs = ",".join(f'{name}="{text}"' for name, text in labels)
    return f"{sample}{{{pairs}}} {value!r} {at}" if pairs else f"{sample} {value!r} {at}"


def backfill(history: History, data_dir: Path, work_dir: Path) -> None:
    """Writes `history` into TSDB blocks under `data_dir` with promtool."""
    _, promtool = programs()
    source = work_dir / "history.om.txt"
    source.write_text(history.openmetrics(), encoding="utf-8")
    data_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                           str(source), str(data_dir)],
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"promtool could not backfill:\n{done.stderr[-2000:]}")


class PrometheusServer(HttpProcess):
    """`prometheus` on a free loopback port over `data_dir`, scraping nothing."""

    label = "prometheus"
    ready_path = "/-/ready"
    ready_within_s = 60.0

    def __init__(self, data_dir: Path, log_dir: Path):
        super().__init__()
        prometheus, _ = programs()
        config = log_dir / f"prometheus-{self.port}.yml"
        config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n",
                          encoding="utf-8")
        self._child([prometheus, f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
                     f"--web.listen-address=127.0.0.1:{self.port}",
                     # The history is days old: time retention counts from the newest
                     # sample anyway.
                     "--storage.tsdb.retention.time=30d"],
                    {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, log_dir)


def serve(history: History, work_dir: Path) -> PrometheusServer:
    """A started Prometheus holding `history`."""
    data_dir = work_dir / "tsdb"
    backfill(history, data_dir, work_dir)
    return PrometheusServer(data_dir, work_dir).start()


# ---- a known week of the assistant's metrics -------------------------------------------
DAY = 86400
# Under Prometheus's 5-minute look-back, so a gauge read at any moment finds a sample; a
# whole number of steps to a day, so every day starts and ends on a sample.
STEP = 240
HANDOFF_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


def quantile(q: float, observations: Sequence[float], buckets: Sequence[float]) -> float:
    """What PromQL's histogram_quantile answers for these observations: linear inside
    the bucket the rank falls in (the rank never in +Inf here)."""
    rank = q * len(observations)
    lower, below = 0.0, 0
    for bound in buckets:
        count = sum(1 for seen in observations if seen <= bound)
        if count >= rank:
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = float(bound), count
    raise ValueError("the rank falls in the +Inf bucket")


class KnownWeek:
    """Seven China days of the metrics' history, each day's counts known in advance, as
    the dashboard's rows name them: {panel key: {row: value}}, a row being a words key
    (`total`) or the label values joined by " · ". Day k's counts all happen between
    00:20 and 00:40 of the day (China time), so `at` one hour or more into the last day
    sees the whole of it; samples from a day before the first to a day
    after `at`, every STEP seconds."""

    def __init__(self, at: int, first_day_start: int):
        self.at, self.first = at, first_day_start
        self.history = History(first_day_start - DAY, at + DAY, STEP)
        self.expected: list[dict[str, dict[str, float | None]]] = []
        self.waits: list[list[float]] = []
        for k in range(7):
            self._day(k, first_day_start + k * DAY)
        h = self.history
        h.set("cardbot_outbox_backlog", {}, at - 7200, 9)
        h.set("cardbot_outbox_backlog", {}, at - 1800, 4)
        h.set("cardbot_outbox_due", {}, at - 1800, 1)

    @classmethod
    def lately(cls) -> KnownWeek:
        """The week up to a sample at or before now and an hour or more into its China
        day (so the day's counts are all in): two hours earlier just after midnight."""
        from console.dashboard import days_before

        at = int(time.time()) // STEP * STEP
        _, today = days_before(at)
        if at - today < 3600:
            at -= 7200
            _, today = days_before(at)
        return cls(at, int(today) - 6 * DAY)

    def _day(self, k: int, start: int) -> None:
        h, t = self.history, start + 1200
        turns = {("webchat", "zh"): 10 + k, ("webchat", "en"): 2 * k, ("wechat", "zh"): 5,
                 ("rest", "other"): k % 2}
        for (channel, language), n in turns.items():
            labels = {"channel": channel, "language": language}
            if (channel, language) == ("webchat", "zh") and k == 3:
                # Rasa restarts mid-count: 4 counted before (and scraped), the rest after.
                h.add("cardbot_turns", labels, t, 4)
                h.restart("cardbot_turns", labels, start + 2000)
                h.add("cardbot_turns", labels, start + 2100, n - 4)
            else:
                h.add("cardbot_turns", labels, t, n)
        fallbacks = {"nlu_fallback": k + 1, "out_of_scope": 1 if k % 2 == 0 else 0}
        for intent, n in fallbacks.items():
            h.add("cardbot_fallbacks", {"intent": intent}, t, n)
        filings = {"created": 3 + k, "existing": 1, "rejected": k % 3}
        for outcome, n in filings.items():
            h.add("cardbot_filings", {"outcome": outcome}, t, n)
        asked = {("loss_report_form", "child_id_number"): 6 + k,
                 ("loss_report_form", "guardian_phone"): 4, ("card_found_form", "found_where"): k}
        filled = {("loss_report_form", "child_id_number"): 4 + k,
                  ("loss_report_form", "guardian_phone"): 4}  # found_where never filled
        for (form, slot), n in asked.items():
            h.add("cardbot_form_slots_asked", {"form": form, "slot": slot}, t, n)
        for (form, slot), n in filled.items():
            h.add("cardbot_form_slots_filled", {"form": form, "slot": slot}, t, n)
        notices = {("webchat", "delivered"): 2 + k, ("sms", "delivered"): 1,
                   ("wechat", "failed"): k % 2}
        for (path, outcome), n in notices.items():
            h.add("cardbot_notice_attempts", {"path": path, "outcome": outcome}, t, n)
        waits = [40.0] * (k + 1) + [200.0, 200.0]
        for seconds in waits:
            h.observe("cardbot_handoff_wait_seconds", start + 1300, seconds, HANDOFF_BUCKETS)
        errors = {"v1/loss-reports": k % 3, "webhooks/rest/webhook": 1 if k == 5 else 0}
        for route, n in errors.items():
            h.add("cardbot_http_responses", {"route": route, "status": "5xx"}, t, n)
        h.add("cardbot_http_responses", {"route": "v1/loss-reports", "status": "2xx"}, t, 50)
        h.add("cardbot_http_responses", {"route": "v1/loss-reports", "status": "4xx"}, t, 3)

        total = sum(turns.values())
        by_channel: dict[str, float | None] = {"total": total}
        for (channel, _), n in turns.items():
            by_channel[channel] = (by_channel.get(channel) or 0) + n
        by_language: dict[str, float | None] = {}
        for (_, language), n in turns.items():
            by_language[language] = (by_language.get(language) or 0) + n
        fallen = sum(fallbacks.values())
        self.waits.append(waits)
        self.expected.append({
            "turns_by_channel": by_channel,
            "turns_by_language": by_language,
            "fallbacks": {"fallback_count": fallen, "fallback_rate": fallen / total},
            "filings": dict(filings),
            "drop_off": {f"{form} · {slot}": n - filled.get((form, slot), 0)
                         for (form, slot), n in asked.items()},
            "notices": {f"{path} · {outcome}": n for (path, outcome), n in notices.items()},
            "handoff_wait": {"handoffs_taken": len(waits),
                             "median": quantile(0.5, waits, HANDOFF_BUCKETS),
                             "p90": quantile(0.9, waits, HANDOFF_BUCKETS)},
            "server_errors": {"total": sum(errors.values()),
                              **{route: n for route, n in errors.items()}},
        })

    def week(self) -> dict[str, dict[str, float | None]]:
        """The seven days together, as the dashboard's week column."""
        out: dict[str, dict[str, float | None]] = {}
        for panel in self.expected[0]:
            out[panel] = {}
            for row in self.expected[0][panel]:
                values = [day[panel][row] or 0.0 for day in self.expected]
                out[panel][row] = sum(values)
        turns = out["turns_by_channel"]["total"] or 1.0
        out["fallbacks"]["fallback_rate"] = (out["fallbacks"]["fallback_count"] or 0.0) / turns
        waits = [seconds for day in self.waits for seconds in day]
        out["handoff_wait"]["median"] = quantile(0.5, waits, HANDOFF_BUCKETS)
        out["handoff_wait"]["p90"] = quantile(0.9, waits, HANDOFF_BUCKETS)
        return out
