"""The dashboard's queries and page without a Prometheus: every query reads metrics that
exist with labels they have (the integration test's history too), and the page escapes,
labels and draws what it is given."""

from __future__ import annotations

import datetime as dt
import re

from console import dashboard, pages
from tests.testkit.prometheus import KnownWeek
from tests.unit.test_metrics import FAMILIES

SUFFIX = re.compile(r"_(total|bucket|count|sum)$")


def test_every_query_reads_metrics_and_labels_that_exist() -> None:
    queries = [q for panel in dashboard.PANELS for q in panel.queries]
    for query in [*queries, *dashboard.NOW_QUERIES]:
        names = {SUFFIX.sub("", found) for found in re.findall(r"cardbot_\w+", query.expr)}
        assert names and names <= set(FAMILIES), query.expr
        for name in names:
            assert set(query.by) <= FAMILIES[name][1], (query.expr, name)
        grouped = re.findall(r"by \(([^)]*)\)", query.expr)
        assert {label.strip() for g in grouped for label in g.split(",")} - {"le"} == \
            set(query.by), query.expr
        assert query.expr.count("(") == query.expr.count(")"), query.expr
        assert ("{range}" in query.expr) == (query in queries), query.expr


def test_the_test_history_is_made_of_the_real_metrics() -> None:
    known = KnownWeek(1_796_000_000 // 240 * 240, 1_795_500_000)
    for family, series in known.history.series.items():
        kind, labels = FAMILIES[family]
        assert known.history.kinds[family] == kind, family
        for _sample, pairs in series:
            assert {name for name, _ in pairs} - {"le"} == labels, (family, pairs)


def week_of(rows: list[dashboard.Row], error: str = "") -> dashboard.Week:
    days = [dt.date(2026, 11, 29) + dt.timedelta(days=i) for i in range(7)]
    at = dt.datetime(2026, 12, 5, 9, 30, tzinfo=dashboard.CHINA)
    return dashboard.Week(days, at, "http://prometheus:9090",
                          panels=[dashboard.PanelFigures("server_errors", rows, error)],
                          now={"outbox_backlog": 3.0, "outbox_due": None})


def test_the_page_labels_every_figure_and_escapes_labels() -> None:
    rows = [dashboard.Row("total", (), dashboard.COUNT, [0, 1, 2, None, 4, 5, 6], 18.0),
            dashboard.Row("", ("<b>route</b>",), dashboard.COUNT, [0] * 6 + [9.0], 9.0)]
    page = pages.dashboard(pages.View("en", "/dashboard", "root", "admin"), week_of(rows))
    assert "<b>route</b>" not in page and "&lt;b&gt;route&lt;/b&gt;" in page
    assert '<th scope="col">12-05 today</th><th scope="col">7 days</th>' in page
    assert '<td data-label="12-02">–</td>' in page  # nothing recorded that day
    assert 'class="bar w10"' in page and 'class="bar w5"' in page  # 18 and 9 of 18
    assert "<dd>3</dd>" in page and "<dd>–</dd>" in page
    assert "today until 09:30), from Prometheus (http://prometheus:9090)" in page
    zh = pages.dashboard(pages.View("zh", "/dashboard", "root", "admin"), week_of(rows))
    assert "服务器错误（5xx）" in zh and "12-05 今天" in zh


def test_a_failed_panel_says_why_and_an_empty_one_says_nothing_happened() -> None:
    view = pages.View("en", "/dashboard", "root", "admin")
    failed = pages.dashboard(view, week_of([], "HTTP 422: query timed out"))
    assert "This panel could not be read: HTTP 422: query timed out" in failed
    assert "<table" not in failed
    empty = pages.dashboard(view, week_of([dashboard.Row("total", (), dashboard.COUNT)]))
    assert "Nothing recorded in these 7 days." in empty and "<table" not in empty
