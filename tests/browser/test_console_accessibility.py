"""The staff console for everyone: axe-core finds nothing serious or critical on its pages
(login, reports, a report, the dashboard over a real Prometheus, accounts, audit) in
Chinese and English, at 390 and 1280 px; the dashboard never scrolls sideways and is
photographed for the README."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.axe import describe, violations
from tests.browser.conftest import SCREENSHOTS
from tests.integration.conftest import CardService
from tests.testkit import people
from tests.testkit.console import ConsoleServer, console_stack
from tests.testkit.prometheus import KnownWeek, serve

pytestmark = pytest.mark.integration

PASSWORD = "an accessible console secret"
# name: (width, height, a phone?)
SCREENS = {"390": (390, 844, True), "1280": (1280, 900, False)}
LOCALES = ("zh-CN", "en-US")


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsoleServer, str]]:
    """An admin on a console whose dashboard reads a real Prometheus, and one report."""
    directory = tmp_path_factory.mktemp("console-axe")
    prometheus = serve(KnownWeek.lately().history, directory)
    try:
        with console_stack(directory, {"root": "admin"}, PASSWORD,
                           {"PROMETHEUS_URL": prometheus.url}) as (console, card, _redis):
            yield console, file_report(card)
    finally:
        prometheus.stop()


def file_report(card: CardService) -> str:
    body = people.report_body(f"conv-{uuid.uuid4()}", "上海", phone="+86 139 1234 5678")
    response = card.post("/v1/loss-reports", body, **{"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 201, response.text
    return str(response.json()["reference"])


@pytest.fixture(params=[(s, loc) for s in SCREENS for loc in LOCALES],
                ids=lambda p: f"{p[0]}-{p[1][:2]}")
def screen(request: pytest.FixtureRequest, browser: Browser) -> Iterator[tuple[Page, str, str]]:
    width, height, phone = SCREENS[request.param[0]]
    context = browser.new_context(viewport={"width": width, "height": height},
                                  locale=request.param[1], device_scale_factor=2 if phone else 1,
                                  is_mobile=phone, has_touch=phone)
    try:
        yield context.new_page(), request.param[0], request.param[1][:2]
    finally:
        context.close()


def test_console_pages_have_no_serious_violation(screen: tuple[Page, str, str],
                                                 parts: tuple[ConsoleServer, str]) -> None:
    page, width, language = screen
    console, reference = parts
    found: list[str] = []

    def check(name: str, path: str) -> None:
        answer = page.goto(console.url + path)
        assert answer is not None and answer.status == 200, f"{path}: {answer and answer.status}"
        serious = violations(page)
        if serious:
            page.screenshot(path=str(SCREENSHOTS / f"console-{width}-{language}-axe-{name}.png"),
                            full_page=True)
            found.append(f"{name} ({path}):\n{describe(serious)}")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    check("login", f"/login?lang={language}")
    page.fill("#name", "root")
    page.fill("#password", PASSWORD)
    page.click("form.card button")
    page.wait_for_url("**/reports")
    check("reports", "/reports")
    check("report", f"/reports/{reference}")
    check("dashboard", "/dashboard")
    check("accounts", "/accounts")
    check("audit", "/audit")
    assert not found, f"{width} px, {language}:\n" + "\n".join(found)


def test_the_dashboard_fits_the_screen(screen: tuple[Page, str, str],
                                       parts: tuple[ConsoleServer, str]) -> None:
    page, width, language = screen
    console, _ = parts
    page.goto(f"{console.url}/login?lang={language}")
    page.fill("#name", "root")
    page.fill("#password", PASSWORD)
    page.click("form.card button")
    page.wait_for_url("**/reports")
    page.goto(console.url + "/dashboard")
    assert page.locator("section.panel table.week").count() == 8
    assert page.locator("[role=alert]").count() == 0
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the dashboard scrolls sideways at {width} px"
    # A phone shows each row as a card: the day is named beside each figure.
    label = page.eval_on_selector("table.week td", "e => getComputedStyle(e, '::before').content")
    assert (label not in ("none", "normal", "")) == SCREENS[width][2], label
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"console-{width}-{language}-dashboard.png"),
                    full_page=width == "1280")
