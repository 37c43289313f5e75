"""The metrics' names and labels, and what one turn of a real Rasa tracker adds to them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY
from rasa.shared.core.events import ActionExecuted, ActiveLoop, BotUttered, SlotSet, UserUttered
from rasa.shared.core.slots import AnySlot, TextSlot
from rasa.shared.core.trackers import DialogueStateTracker

from bot import metrics
from bot.rasa.patches import metrics as rasa_metrics
from bot.settings import Settings
from card_service import metrics as card_metrics

# Every family a dashboard or the console reads, with its labels (the contract of the page).
FAMILIES = {
    "cardbot_turns": ("counter", {"channel", "language"}),
    "cardbot_turn_seconds": ("histogram", {"channel"}),
    "cardbot_intents": ("counter", {"intent"}),
    "cardbot_fallbacks": ("counter", {"intent"}),
    "cardbot_form_slots_asked": ("counter", {"form", "slot"}),
    "cardbot_form_slots_filled": ("counter", {"form", "slot"}),
    "cardbot_handoff_wait_seconds": ("histogram", set()),
    "cardbot_http_responses": ("counter", {"route", "status"}),
    "cardbot_action_calls": ("counter", {"action"}),
    "cardbot_filings": ("counter", {"outcome"}),
    "cardbot_notice_attempts": ("counter", {"path", "outcome"}),
    "cardbot_notices_settled": ("counter", {"kind", "state", "path"}),
    "cardbot_outbox_backlog": ("gauge", set()),
    "cardbot_outbox_due": ("gauge", set()),
}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_family_has_its_name_type_and_labels() -> None:
    found = {family.name: family for family in REGISTRY.collect()
             if family.name.startswith(metrics.PREFIX)}
    assert set(found) == set(FAMILIES)
    for name, (kind, labels) in FAMILIES.items():
        collector = REGISTRY._names_to_collectors[  # type: ignore[attr-defined]
            name + ("_total" if kind == "counter" else "_count" if kind == "histogram"
                    else "")]
        assert found[name].type == kind, name
        assert set(collector._labelnames) == labels, name  # type: ignore[attr-defined]


def test_the_page_is_prometheus_text_without_created_series() -> None:
    metrics.TURNS.labels("rest", "en").inc()
    page = metrics.exposition().decode()
    assert "# TYPE cardbot_turns_total counter" in page or "# TYPE cardbot_turns counter" in page
    assert 'cardbot_turns_total{channel="rest",language="en"}' in page
    assert "_created" not in page
    parsed = metrics.parse(page)
    assert metrics.total(parsed, "cardbot_turns_total", channel="rest") >= 1


def test_handoff_wait_is_observed_and_never_negative() -> None:
    count, total = value("cardbot_handoff_wait_seconds_count"), \
        value("cardbot_handoff_wait_seconds_sum")
    metrics.observe_handoff_wait(42.5)
    metrics.observe_handoff_wait(-3)  # a clock step back is a zero wait, not a negative one
    assert value("cardbot_handoff_wait_seconds_count") == count + 2
    assert value("cardbot_handoff_wait_seconds_sum") == pytest.approx(total + 42.5)
    assert value("cardbot_handoff_wait_seconds_bucket", le="60.0") >= 1


def test_fallback_intents_count_twice_others_once() -> None:
    before = {name: value("cardbot_intents_total", intent=name)
              for name in ("nlu_fallback", "out_of_scope", "greet")}
    fallbacks = value("cardbot_fallbacks_total", intent="nlu_fallback")
    for name in before:
        metrics.count_intent(name)
    assert all(value("cardbot_intents_total", intent=name) == count + 1
               for name, count in before.items())
    assert value("cardbot_fallbacks_total", intent="nlu_fallback") == fallbacks + 1
    assert value("cardbot_fallbacks_total", intent="greet") == 0


@pytest.mark.parametrize("token,client,header,expected", [
    ("", "127.0.0.1", None, True),
    ("", "::1", None, True),
    ("", "192.0.2.7", None, False),
    ("", "192.0.2.7", "Bearer anything", False),
    ("t0k", "192.0.2.7", "Bearer t0k", True),
    ("t0k", "192.0.2.7", "bearer t0k", True),
    ("t0k", "127.0.0.1", None, False),  # once a token is set, loopback needs it too
    ("t0k", "127.0.0.1", "Bearer t0", False),
    ("t0k", "127.0.0.1", "Basic t0k", False),
])
def test_who_may_read(token: str, client: str, header: str | None, expected: bool) -> None:
    assert metrics.allowed(token, client, header) is expected


def test_the_switch_and_token_come_from_settings() -> None:
    assert Settings.from_env({}).metrics_enabled is True
    off = Settings.from_env({"METRICS": "off", "METRICS_TOKEN": " scrape-secret-7 "})
    assert off.metrics_enabled is False and off.metrics_token == "scrape-secret-7"
    assert "scrape-secret-7" not in repr(off)
    with pytest.raises(ValueError, match="METRICS must be on or off"):
        Settings.from_env({"METRICS": "yes"})


# Form progress, on Rasa's own events.
def test_a_form_walked_through_asks_and_fills_each_slot_once() -> None:
    values = {"child_name": "李娜", "child_id_number": None}
    turns = [
        # "I lost my child's card": the form opens and asks the name.
        (None, None, [ActiveLoop("loss_report_form"), SlotSet("requested_slot", "child_name")]),
        # The name: filled, the ID number asked.
        ("loss_report_form", "child_name",
         [SlotSet("child_name", "李娜"), SlotSet("requested_slot", "child_id_number")]),
        # A bad ID number: asked again, not counted again.
        ("loss_report_form", "child_id_number",
         [SlotSet("child_id_number", None), SlotSet("requested_slot", "child_id_number")]),
        # "stop": the form closes with the ID number never given.
        ("loss_report_form", "child_id_number",
         [ActiveLoop(None), SlotSet("requested_slot", None)]),
    ]
    asked: list[tuple[str, str]] = []
    filled: list[tuple[str, str]] = []
    for form, requested, events in turns:
        more_asked, more_filled = rasa_metrics.form_progress(events, form, requested,
                                                             values.get)
        asked += more_asked
        filled += more_filled
    assert asked == [("loss_report_form", "child_name"),
                     ("loss_report_form", "child_id_number")]
    assert filled == [("loss_report_form", "child_name")]


def test_a_completed_form_fills_its_last_slot() -> None:
    asked, filled = rasa_metrics.form_progress(
        [SlotSet("city", "北京"), SlotSet("requested_slot", None), ActiveLoop(None)],
        "loss_report_form", "city", {"city": "北京"}.get)
    assert asked == [] and filled == [("loss_report_form", "city")]


def test_slots_given_unasked_count_neither() -> None:
    asked, filled = rasa_metrics.form_progress(
        [SlotSet("child_name", "李娜"), SlotSet("phone_number", "13800138000"),
         SlotSet("requested_slot", "child_id_number")],
        "loss_report_form", None, {"child_name": "李娜"}.get)
    assert asked == [("loss_report_form", "child_id_number")] and filled == []


# One whole turn: what `finish` adds, from a real tracker.
def tracker_after(events: list[Any]) -> DialogueStateTracker:
    slots = [TextSlot("language", mappings=[]), AnySlot("requested_slot", mappings=[]),
             TextSlot("child_name", mappings=[])]
    return DialogueStateTracker.from_events("guardian-1", events, slots=slots)


def test_finish_counts_the_turn_its_intent_and_its_form_steps() -> None:
    history = [ActionExecuted("action_listen"),
               UserUttered("我的孩子社保卡丢了", {"name": "report_lost_card"}),
               ActiveLoop("loss_report_form"), SlotSet("requested_slot", "child_name"),
               SlotSet("language", "zh"), ActionExecuted("action_listen")]
    tracker = tracker_after([*history, UserUttered("李娜", {"name": "inform"})])
    turn = rasa_metrics.Turn(tracker, len(tracker.events), "loss_report_form", "child_name")
    for event in (SlotSet("child_name", "李娜"), SlotSet("requested_slot", "child_id_number"),
                  BotUttered("孩子的身份证号码是多少？"), ActionExecuted("action_listen")):
        tracker.update(event)
    keys = {
        "turns": ("cardbot_turns_total", {"channel": "webchat", "language": "zh"}),
        "inform": ("cardbot_intents_total", {"intent": "inform"}),
        "asked": ("cardbot_form_slots_asked_total",
                  {"form": "loss_report_form", "slot": "child_id_number"}),
        "filled": ("cardbot_form_slots_filled_total",
                   {"form": "loss_report_form", "slot": "child_name"}),
        "name_asked": ("cardbot_form_slots_asked_total",
                       {"form": "loss_report_form", "slot": "child_name"}),
        "latency": ("cardbot_turn_seconds_count", {"channel": "webchat"}),
        "fast": ("cardbot_turn_seconds_bucket", {"channel": "webchat", "le": "0.2"}),
    }
    before = {key: value(name, **labels) for key, (name, labels) in keys.items()}
    rasa_metrics.finish(SimpleNamespace(input_channel="webchat"), turn, 0.12)
    moved = {key: value(name, **labels) - before[key] for key, (name, labels) in keys.items()}
    assert moved == {"turns": 1, "inform": 1, "asked": 1, "filled": 1, "name_asked": 0,
                     "latency": 1, "fast": 1}


def test_a_turn_that_failed_before_its_tracker_still_counts() -> None:
    before = value("cardbot_turns_total", channel="rest", language="other")
    rasa_metrics.finish(SimpleNamespace(input_channel="rest"), rasa_metrics.Turn(), 0.01)
    assert value("cardbot_turns_total", channel="rest", language="other") == before + 1


def test_turn_events_are_those_after_the_mark() -> None:
    tracker = tracker_after([ActionExecuted("action_listen"), UserUttered("hi")])
    mark = len(tracker.events)
    tracker.update(SlotSet("language", "en"))
    assert [event.type_name for event in rasa_metrics.turn_events(tracker, mark)] == ["slot"]


# The card service's counts from its own answers.
@pytest.mark.parametrize("status,outcome", [(201, "created"), (200, "existing"),
                                            (422, "rejected"), (400, "rejected"),
                                            (401, None), (503, None)])
def test_filing_outcomes_follow_the_contract_s_statuses(status: int,
                                                        outcome: str | None) -> None:
    request = SimpleNamespace(method="POST", route=SimpleNamespace(path="v1/loss-reports"))
    names = ("created", "existing", "rejected")
    before = {name: value("cardbot_filings_total", outcome=name) for name in names}
    asyncio.run(card_metrics.count_filing(request, SimpleNamespace(status=status)))
    moved = {name for name in names if value("cardbot_filings_total", outcome=name)
             != before[name]}
    assert moved == ({outcome} if outcome else set())


def test_a_lookup_is_no_filing() -> None:
    before = metrics.total(metrics.parse(metrics.exposition().decode()), "cardbot_filings_total")
    request = SimpleNamespace(method="POST",
                              route=SimpleNamespace(path="v1/loss-reports/<reference:str>/lookup"))
    asyncio.run(card_metrics.count_filing(request, SimpleNamespace(status=200)))
    assert metrics.total(metrics.parse(metrics.exposition().decode()),
                         "cardbot_filings_total") == before


def test_notice_helpers_count_by_path_and_outcome() -> None:
    before = value("cardbot_notice_attempts_total", path="page", outcome="queued")
    card_metrics.notice_attempt("page", "queued")
    assert value("cardbot_notice_attempts_total", path="page", outcome="queued") == before + 1
    settled = value("cardbot_notices_settled_total", kind="card_ready", state="undeliverable",
                    path="none")
    card_metrics.notice_settled("card_ready", "undeliverable")
    assert value("cardbot_notices_settled_total", kind="card_ready", state="undeliverable",
                 path="none") == settled + 1


# Reading pages back (the console and the tests read them so).
PAGE = """\
cardbot_turns_total{channel="rest",language="en"} 6
cardbot_turns_total{channel="webchat",language="zh"} 4
cardbot_fallbacks_total{intent="nlu_fallback"} 1
cardbot_form_slots_asked_total{form="f",slot="child_name"} 5
cardbot_form_slots_filled_total{form="f",slot="child_name"} 3
cardbot_turn_seconds_bucket{channel="rest",le="0.1"} 5
cardbot_turn_seconds_bucket{channel="rest",le="0.2"} 9
cardbot_turn_seconds_bucket{channel="rest",le="+Inf"} 10
cardbot_turn_seconds_count{channel="rest"} 10
cardbot_http_responses_total{route="webhooks/rest/webhook",status="2xx"} 9
cardbot_http_responses_total{route="webhooks/rest/webhook",status="5xx"} 1
"""


def test_figures_of_two_processes_add_up() -> None:
    page = metrics.parse(PAGE)
    figures = metrics.Figures.of([page, page])
    assert figures.turns == 20 and figures.turns_by_channel == {"rest": 12, "webchat": 8}
    assert figures.fallback_rate == pytest.approx(0.1)
    assert figures.slots == {("f", "child_name"): (10, 6, 4)}
    assert figures.http_errors == {("webhooks/rest/webhook", "5xx"): 2}
    # 10 of 20 below 0.1 s: the median is the bucket's top; 95 % falls in (0.2, +Inf).
    assert figures.latency_p50 == pytest.approx(0.1)
    assert figures.latency_p95 == pytest.approx(0.2)


def test_no_observation_no_quantile() -> None:
    assert metrics.quantile({}, "cardbot_turn_seconds", 0.5) is None


# deploy/: what Prometheus scrapes and what the dashboard reads.
def test_prometheus_scrapes_every_process_of_compose_with_the_token() -> None:
    import yaml

    from bot.settings import ROOT

    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text(
        encoding="utf-8"))
    targets = {target for job in config["scrape_configs"]
               for group in job["static_configs"] for target in group["targets"]}
    ports = {"rasa": 5005, "actions": 5055, "card-service": 8080}

    def kind(service: str) -> str:  # rasa-1 -> rasa
        return service if service in ports else service.rsplit("-", 1)[0]

    expected = {f"{name}:{ports[kind(name)]}" for name in compose["services"]
                if kind(name) in ports}
    assert len(expected) == 5
    assert targets == expected
    for job in config["scrape_configs"]:
        assert job["metrics_path"] == metrics.PATH
        assert job["authorization"]["credentials_file"]  # the token from a file, never inline
    for name in expected:
        service = compose["services"][name.split(":")[0]]
        assert "METRICS_TOKEN" in service["environment"], name


def test_the_dashboard_reads_only_metrics_that_exist() -> None:
    import json
    import re

    from bot.settings import ROOT

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "cardbot.json").read_text(
        encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {re.sub(r"_(total|bucket|count|sum)$", "", name)
            for expr in exprs for name in re.findall(r"cardbot_\w+", expr)}
    assert used == set(FAMILIES)
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for words in ("turns", "p50", "p95", "fallback", "drop-off", "filings", "notice",
                  "handoff", "backlog", "4xx"):
        assert words in titles, words


INSTALL = """
import rasa.core.run
from rasa.core.processor import MessageProcessor
before = (rasa.core.run.configure_app, MessageProcessor.handle_message,
          MessageProcessor.run_action_extract_slots)
from bot.rasa.patches import metrics
metrics.install()
after = (rasa.core.run.configure_app, MessageProcessor.handle_message,
         MessageProcessor.run_action_extract_slots)
print(sum(a is not b for a, b in zip(before, after)))
"""


@pytest.mark.parametrize("switch,changed", [("on", 3), ("off", 0)])
def test_metrics_off_leaves_rasa_as_it_is(switch: str, changed: int, tmp_path: Any) -> None:
    import subprocess
    import sys

    from bot.settings import ROOT

    done = subprocess.run([sys.executable, "-c", INSTALL], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True,
                          env={"PATH": "/usr/bin:/bin", "METRICS": switch,
                               "ENV_FILE": str(tmp_path / "none.env")})
    assert done.stdout.split()[-1] == str(changed)
