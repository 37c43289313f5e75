"""The console's dashboard against a real Prometheus holding a week the test wrote (known
counts per day, backfilled with promtool): the figures per day and for the week, read by
console/dashboard.py and shown on the page to an admin; a failing query marks its panel;
Prometheus unset or down is said plainly; roles without the dashboard get 403."""

from __future__ import annotations

import datetime as dt
import re
import socket
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from console import dashboard, pages
from console.words import word
from tests.testkit.console import ConsoleServer, console_stack
from tests.testkit.processes import free_port
from tests.testkit.prometheus import DAY, KnownWeek, PrometheusServer, serve

pytestmark = pytest.mark.integration

PASSWORD = "a dashboard test secret"
USERS = {"root": "admin", "ada": "agency", "ben": "bank", "amy": "agent"}


@pytest.fixture(scope="module")
def known() -> KnownWeek:
    return KnownWeek.lately()


@pytest.fixture(scope="module")
def prometheus(known: KnownWeek, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[PrometheusServer]:
    server = serve(known.history, tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def console(prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[ConsoleServer]:
    with console_stack(tmp_path_factory.mktemp("dashboard-console"), USERS, PASSWORD,
                       {"PROMETHEUS_URL": prometheus.url}) as (started, _card, _redis):
        yield started


def row_name(row: dashboard.Row) -> str:
    return " · ".join(row.labels) if row.labels else row.name


def figures_of(week: dashboard.Week) -> dict[str, dict[str, dashboard.Row]]:
    assert not week.problem, week.detail
    found: dict[str, dict[str, dashboard.Row]] = {}
    for panel in week.panels:
        assert not panel.error, f"{panel.key}: {panel.error}"
        found[panel.key] = {row_name(row): row for row in panel.rows}
    return found


def test_each_day_and_the_week_are_what_happened(prometheus: PrometheusServer,
                                                 known: KnownWeek) -> None:
    started = time.monotonic()
    week = dashboard.read_week(prometheus.url, known.at)
    took = time.monotonic() - started
    found = figures_of(week)
    assert week.days[0] == dt.datetime.fromtimestamp(known.first, dashboard.CHINA).date()
    assert len(week.days) == 7 and week.source == prometheus.url
    assert set(found) == {panel.key for panel in dashboard.PANELS}
    whole_week = known.week()
    for k, day in enumerate(known.expected):
        for panel, rows in day.items():
            assert set(found[panel]) == set(rows), panel
            for name, value in rows.items():
                assert found[panel][name].days[k] == pytest.approx(value, rel=1e-9), \
                    f"{panel} / {name} on day {k}"
    for panel, rows in whole_week.items():
        for name, value in rows.items():
            assert found[panel][name].week == pytest.approx(value, rel=1e-9), \
                f"{panel} / {name} over the week"
    # The restart on day 3 is no drop: webchat counted 10 + 3 * 3 that day.
    assert found["turns_by_channel"]["webchat"].days[3] == 19
    # A slot never filled still shows where guardians stopped.
    assert found["drop_off"]["card_found_form · found_where"].days == [0, 1, 2, 3, 4, 5, 6]
    # The largest week first.
    assert [row_name(r) for r in week.panels[0].rows] == ["total", "webchat", "wechat", "rest"]
    assert week.now == {"outbox_backlog": 4.0, "outbox_due": 1.0} and not week.now_error
    assert took < 5, f"{took:.1f} s for the week"


def test_a_failing_query_marks_its_own_panel(prometheus: PrometheusServer,
                                             known: KnownWeek) -> None:
    broken = dashboard.Panel("filings", (dashboard.Query(
        "", "sum by (outcome (increase(cardbot_filings_total[{range}]))", ("outcome",)),))
    week = dashboard.read_week(prometheus.url, known.at, (dashboard.PANELS[0], broken))
    assert not week.panels[0].error and week.panels[0].rows
    assert week.panels[1].key == "filings" and week.panels[1].rows == []
    assert week.panels[1].error.startswith("HTTP 400: ") and "parse error" in \
        week.panels[1].error
    html = pages.dashboard(pages.View("en", "/dashboard", "root", "admin"), week)
    assert re.search(r'aria-labelledby="p-filings"><h2 id="p-filings">Filings</h2>'
                     r'<p class="alert" role="alert">This panel could not be read: HTTP 400',
                     html)
    assert html.count("This panel could not be read") == 1


def test_prometheus_unset_or_down_is_said_plainly(known: KnownWeek) -> None:
    view = pages.View("en", "/dashboard", "root", "admin")
    unset = dashboard.read_week("", known.at)
    assert unset.problem == dashboard.UNSET and unset.panels == []
    assert "PROMETHEUS_URL is not set" in pages.dashboard(view, unset)
    nobody = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    down = dashboard.read_week(nobody, known.at)
    assert time.monotonic() - started < 5
    assert down.problem == dashboard.UNREACHABLE and down.panels == []
    page = pages.dashboard(view, down)
    assert f"Prometheus at {nobody} cannot be reached: cannot reach Prometheus" in page
    assert "PROMETHEUS_URL" in pages.dashboard(pages.View("zh", "/dashboard"), down)


def test_a_prometheus_that_never_answers_is_given_up_on(known: KnownWeek) -> None:
    """A port that takes the connection and says nothing: the read timeout ends it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        week = dashboard.read_week(url, known.at)
        took = time.monotonic() - started
    assert week.problem == dashboard.UNREACHABLE
    assert week.detail == f"no answer within {dashboard.TIMEOUT[1]:.0f} s"
    assert took < dashboard.TIMEOUT[1] + 2


class Tables(HTMLParser):
    """Each panel's table as {panel key: (column heads, {row head: [cell texts]})}."""

    def __init__(self) -> None:
        super().__init__()
        self.panels: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
        self.panel = ""
        self.text: list[str] | None = None
        self.row: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section" and (found.get("aria-labelledby") or "").startswith("p-"):
            self.panel = str(found["aria-labelledby"])[2:]
            self.panels[self.panel] = ([], {})
        elif tag == "tr":
            self.row = []
        elif tag in ("th", "td"):
            self.text = []

    def handle_data(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self.text is not None:
            self.row.append("".join(self.text).strip())
            self.text = None
        elif tag == "tr" and self.panel and self.row:
            heads, rows = self.panels[self.panel]
            if not heads:
                heads.extend(self.row)
            else:
                rows[self.row[0]] = self.row[1:]


def logged_in(console: ConsoleServer, name: str) -> requests.Session:
    browser = requests.Session()
    page = browser.get(console.url + "/login?lang=en", timeout=10).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf, page
    answer = browser.post(console.url + "/login", timeout=10, allow_redirects=False,
                          data={"csrf": csrf.group(1), "name": name, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return browser


def test_the_admin_reads_the_week_on_the_page(console: ConsoleServer, known: KnownWeek) -> None:
    page = logged_in(console, "root").get(console.url + "/dashboard?lang=en", timeout=30)
    assert page.status_code == 200, page.text
    tables = Tables()
    tables.feed(page.text)
    view = pages.View("en", "/dashboard")
    by_date = {dt.datetime.fromtimestamp(known.first + k * DAY, dashboard.CHINA)
               .strftime("%m-%d"): day for k, day in enumerate(known.expected)}
    units = {q.name: q.unit for panel in dashboard.PANELS for q in panel.queries}
    checked = 0
    for panel in dashboard.PANELS:
        heads, rows = tables.panels[panel.key]
        assert heads[-1] == "7 days" and heads[-2].endswith(" today"), heads
        # Whole days only: today's column is read as the console's clock says now, after
        # the last scrape, so Prometheus extrapolates it a little.
        for column, head in enumerate(heads[1:-2]):
            expected = by_date[head][panel.key]
            for name, value in expected.items():
                label = word("dash_" + name, "en") if name in units else name
                unit = units.get(name, dashboard.COUNT)
                assert rows[label][column] == pages.figure(view, value, unit), \
                    f"{panel.key} / {label} on {head}"
                checked += 1
    assert checked == 6 * sum(len(rows) for rows in known.expected[0].values())
    assert "Notices and erasures waiting in the outbox</dt><dd>4</dd>" in page.text, \
        page.text[page.text.index("p-now"):][:400]
    assert 'class="bar w10"' in page.text  # each panel's largest week gets a full bar
    assert "style=" not in page.text and "<script" not in page.text


@pytest.mark.parametrize(("name", "status"), [("ada", 200), ("ben", 403), ("amy", 403)])
def test_only_agency_and_admin_see_the_dashboard(console: ConsoleServer, name: str,
                                                 status: int) -> None:
    browser = logged_in(console, name)
    page = browser.get(console.url + "/dashboard?lang=en", timeout=30)
    assert page.status_code == status
    nav = browser.get(console.url + "/reports?lang=en", timeout=10).text
    assert ('href="/dashboard"' in nav) == (status == 200)


def test_the_console_with_prometheus_down_answers_503_and_says_so(
        console: ConsoleServer, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    other = ConsoleServer(console.env["REDIS_URL"], console.env["CARD_SERVICE_URL"],
                          console.env["CARD_SERVICE_CONSOLE_TOKEN"], tmp_path,
                          {"PROMETHEUS_URL": dead}).start()
    try:
        page = logged_in(other, "root").get(other.url + "/dashboard?lang=en", timeout=30)
    finally:
        other.stop()
    assert page.status_code == 503
    assert f"Prometheus at {dead} cannot be reached" in page.text
