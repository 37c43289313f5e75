"""Browser tests: Debian's Chromium, driven by Playwright, against the real stack.

Playwright's own browser download is not used (`playwright install` is never run):
the tests launch the system Chromium (`apt-get install chromium`), headless.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

from bot.settings import ROOT
from tests.testkit.stack import Stack, running_stack

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
PHONES = {"390x844": (390, 844), "360x740": (360, 740)}
REPLY_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A quick outbox retry so a "card ready" that meets a busy Rasa arrives within the test.
    with running_stack(tmp_path_factory.mktemp("browser-stack"),
                       {"CARD_SERVICE_OUTBOX_MAX_DELAY": "2"}) as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `apt-get install chromium` (Debian), "
                    "or set CHROMIUM to its path")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class ChatPage:
    """The chat page on one phone: what a guardian sees and does, plus what went wrong."""

    def __init__(self, page: Page, stack: Stack, size: str, language: str):
        self.page = page
        self.stack = stack
        self.size = size
        self.language = language
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))

    def _dialog(self, dialog) -> None:  # type: ignore[no-untyped-def]
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self) -> ChatPage:
        self.page.goto(self.stack.settings.chat_page_url)
        self.wait_for_replies(1)
        return self

    def reload(self) -> None:
        self.page.reload()
        self.page.wait_for_selector(".rw-response", timeout=REPLY_TIMEOUT * 1000)

    def send(self, text: str) -> None:
        field = self.page.locator(".rw-new-message")
        field.fill(text)
        field.press("Enter")

    def replies(self) -> list[str]:
        return [t.strip() for t in self.page.locator(".rw-response").all_inner_texts()]

    def user_messages(self) -> list[str]:
        return [t.strip() for t in self.page.locator(".rw-client").all_inner_texts()]

    def wait_for_replies(self, count: int) -> list[str]:
        """Wait until at least `count` bot messages are shown (and the last one settled)."""
        self.wait_until(lambda: len(self.replies()) >= count, f"{count} bot messages")
        time.sleep(0.5)  # a reply of several messages arrives as several events
        return self.replies()

    def say(self, text: str) -> list[str]:
        """Send `text` and return the bot messages that came back for it."""
        before = len(self.replies())
        self.send(text)
        return self.wait_for_replies(before + 1)[before:]

    def wait_until(self, condition: Callable[[], bool], what: str,
                   timeout: float = REPLY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            self.page.wait_for_timeout(200)
        self.screenshot("timeout")
        raise AssertionError(f"{self.size}: no {what} after {timeout:.0f} s; "
                             f"shown: {self.replies()}")

    def session_id(self) -> str:
        """The conversation id: rasa-webchat keeps it in localStorage (params storage "local")."""
        stored = self.page.evaluate("window.localStorage.getItem('chat_session')")
        return str(json.loads(stored)["session_id"])

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.size}-{self.language}-{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def box(self, selector: str) -> dict[str, float]:
        box = self.page.locator(selector).first.bounding_box()
        assert box is not None, f"{selector} is not shown"
        return dict(box)


def make_chat_page(browser: Browser, stack: Stack, size: str, locale: str,
                   bypass_csp: bool = False) -> Iterator[ChatPage]:
    width, height = PHONES[size]
    context = browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=2,
        is_mobile=True, has_touch=True, locale=locale, bypass_csp=bypass_csp,
    )
    try:
        yield ChatPage(context.new_page(), stack, size, locale[:2])
    finally:
        context.close()


@pytest.fixture(params=list(PHONES))
def phone(request: pytest.FixtureRequest, browser: Browser, stack: Stack) -> Iterator[ChatPage]:
    """A fresh phone (its own storage, so its own conversation) with an English browser."""
    yield from make_chat_page(browser, stack, request.param, "en-US")


@pytest.fixture(params=list(PHONES))
def chinese_phone(request: pytest.FixtureRequest, browser: Browser,
                  stack: Stack) -> Iterator[ChatPage]:
    yield from make_chat_page(browser, stack, request.param, "zh-CN")


@pytest.fixture(params=list(PHONES))
def phone_without_csp(request: pytest.FixtureRequest, browser: Browser,
                      stack: Stack) -> Iterator[ChatPage]:
    """The page with its Content-Security-Policy ignored: what the widget itself renders."""
    yield from make_chat_page(browser, stack, request.param, "en-US", bypass_csp=True)


def staff_session(stack: Stack) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {stack.settings.staff_token}"
    return session
