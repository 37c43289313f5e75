"""Live handoff in headless Chromium on the real stack (Redis, card service, action server,
Rasa, and the console the Procfile starts): a guardian on the chat page asks for a person,
an agent takes the conversation in the console and they talk, each page updating by itself;
the agent hands back and the assistant greets the guardian again. Also: the clerks' roles
are kept out, a take without its CSRF token is refused, and the take is audited."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page

from bot.settings import ROOT
from tests.browser.conftest import SCREENSHOTS, ChatPage
from tests.testkit.processes import wait_for
from tests.testkit.stack import Stack, running_stack

pytestmark = pytest.mark.integration

TOKEN = "console-handoff-token-" + "k" * 16
ALWAYS = "Mon-Sun 00:00-24:00"  # staffed whenever the test runs
PASSWORD = "a handoff test secret"
USERS = {"amy": "agent", "ada": "agency", "ben": "bank", "root": "admin"}
JOINED_EN, BACK_EN = "A staff member has joined", "I'm the assistant again"
ROUND_TRIPS = 10
TIMEOUT_S = 30


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("console-handoff")
    with running_stack(directory, {"HANDOFF_TOKEN": TOKEN, "STAFFED_HOURS": ALWAYS}) as running:
        for name, role in USERS.items():
            done = subprocess.run([sys.executable, "-m", "console", "user", "add", name,
                                   "--role", role], input=PASSWORD + "\n", text=True,
                                  capture_output=True, env=running.env, cwd=str(ROOT),
                                  timeout=60, check=False)
            assert done.returncode == 0, done.stderr
        yield running


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    made: list[BrowserContext] = []
    yield made
    for context in made:
        context.close()


def guardian_page(browser: Browser, stack: Stack, contexts: list[BrowserContext]) -> ChatPage:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US",
                                  is_mobile=True, has_touch=True)
    contexts.append(context)
    return ChatPage(context.new_page(), stack, "390x844", "en").open()


class Staff:
    """One person's browser on the console, noting page errors and blocked requests."""

    def __init__(self, browser: Browser, stack: Stack, contexts: list[BrowserContext],
                 name: str):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
        contexts.append(context)
        self.url = stack.settings.staff_console_url
        self.page: Page = context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.on("console", lambda message: self.problems.append(message.text)
                     if message.type == "error" else None)
        self.goto("/login?lang=en")
        self.page.fill("#name", name)
        self.page.fill("#password", PASSWORD)
        self.page.click("form.card button")
        self.page.wait_for_url("**/reports")

    def goto(self, path: str) -> int:
        response = self.page.goto(self.url + path)
        assert response is not None
        return response.status

    def waits_for_in_queue(self, conversation: str) -> None:
        def listed() -> bool:
            self.goto("/handoff")
            return self.page.locator("table.queue a", has_text=conversation).count() == 1
        wait_for(listed, TIMEOUT_S, f"{conversation} in the console's queue", interval=0.5)


def conversation_path(conversation: str) -> str:
    return "/handoff/" + quote(conversation, safe="")


def api(stack: Stack, path: str) -> requests.Response:
    return requests.get(f"{stack.rasa_url}/webhooks/handoff{path}", timeout=TIMEOUT_S,
                        headers={"Authorization": f"Bearer {TOKEN}", "X-Agent": "checker"})


def test_an_agent_and_a_guardian_talk_live_then_the_assistant_is_back(
        browser: Browser, stack: Stack, contexts: list[BrowserContext],
        record_testsuite_property: Any) -> None:
    guardian = guardian_page(browser, stack, contexts)
    guardian.say("hello")  # in English: the language of the case and of what it is told
    assert any("staff member" in t for t in guardian.say("/request_human"))
    conversation = f"webchat:{guardian.session_id()}"

    agent = Staff(browser, stack, contexts, "amy")
    agent.waits_for_in_queue(conversation)
    row = agent.page.locator("table.queue tr", has_text=conversation)
    assert "English" in row.inner_text() and "webchat" in row.inner_text()
    assert "asked for a person" in row.inner_text()
    row.locator("button", has_text="Take").click()
    agent.page.wait_for_url(f"**{conversation_path(conversation)}")
    assert "You are answering this conversation." in agent.page.inner_text("dl.facts")
    said = agent.page.locator("ol.transcript li.from-guardian p").all_inner_texts()
    assert "hello" in said and "Chose: request_human" in said, said
    guardian.wait_until(lambda: any(JOINED_EN in t for t in guardian.replies()),
                        "'a staff member has joined'")

    # The agent's reply reaches the chat page; the page of the agent is never reloaded.
    agent.page.evaluate("window.notReloaded = true")
    agent.page.fill("#reply-text", "Hello, this is Amy from the card office.")
    agent.page.click("#reply button")
    guardian.wait_until(lambda: any("this is Amy from the card office" in t
                                    for t in guardian.replies()), "the agent's reply")
    replies_before = len(guardian.replies())
    guardian.send("are you a real person?")
    agent.page.locator("#live li.from-guardian", has_text="are you a real person?").wait_for(
        timeout=TIMEOUT_S * 1000)
    assert agent.page.evaluate("window.notReloaded === true")
    assert agent.page.locator("#live li.from-agent", has_text="this is Amy").count() == 1
    time.sleep(1)
    assert len(guardian.replies()) == replies_before  # the assistant stayed silent

    times = []
    for n in range(ROUND_TRIPS):
        text = f"Round trip {n} from Amy"
        agent.page.fill("#reply-text", text)
        start = time.perf_counter()
        agent.page.click("#reply button")
        guardian.page.wait_for_function(
            "text => [...document.querySelectorAll('.rw-response')]"
            ".some(node => node.innerText.includes(text))", arg=text, polling=5,
            timeout=TIMEOUT_S * 1000)
        times.append(time.perf_counter() - start)
        agent.page.wait_for_function(  # the form is free again for the next one
            "() => !document.querySelector('#reply button').disabled")
    shown = [int(found.group(1)) for t in guardian.replies()
             if (found := re.search(r"Round trip (\d+) from Amy", t))]
    assert shown == list(range(ROUND_TRIPS))  # each once, in order
    median_ms = statistics.median(times) * 1000
    # Shown, not received: the chat page holds each bot message 300 ms before showing it
    # (web/chat.js customMessageDelay), and that pause is part of what the guardian sees.
    print(f"\nhandoff round trip, console click to chat page (web chat): median "
          f"{median_ms:.0f} ms of {ROUND_TRIPS}, fastest {min(times) * 1000:.0f}, "
          f"slowest {max(times) * 1000:.0f}")
    record_testsuite_property("console_to_chat_page_round_trip_median_ms", round(median_ms))
    assert median_ms < 5000
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    agent.page.screenshot(path=str(SCREENSHOTS / "console-1280-en-handoff-case.png"),
                          full_page=True)

    agent.page.click("text=Hand back to the assistant")
    agent.page.wait_for_url("**/handoff?done=handed_back")
    assert "Handed back to the assistant." in agent.page.inner_text("main")
    guardian.wait_until(lambda: any(BACK_EN in t for t in guardian.replies()),
                        "the assistant's greeting")
    assert api(stack, f"/conversations/{conversation}").status_code == 404
    assert agent.problems == [] and guardian.errors == []

    admin = Staff(browser, stack, contexts, "root")
    assert admin.goto(f"/audit?reference={quote(conversation)}") == 200
    rows = admin.page.locator("table.audit tbody tr").all_inner_texts()
    assert any("amy (agent)" in row and "handoff_take" in row for row in rows), rows
    assert sum("handoff_reply" in row for row in rows) == ROUND_TRIPS + 1
    assert any("handoff_hand_back" in row for row in rows)
    assert "from Amy" not in admin.page.content() and "real person" not in admin.page.content()


@pytest.mark.parametrize("name", ["ada", "ben"])
def test_agency_and_bank_clerks_get_403_on_the_handoff_pages(
        browser: Browser, stack: Stack, contexts: list[BrowserContext], name: str) -> None:
    clerk = Staff(browser, stack, contexts, name)
    assert "Handoff" not in clerk.page.inner_text("nav")
    for path in ("/handoff", "/handoff/rest-x", "/handoff/rest-x/messages?after=0"):
        assert clerk.goto(path) == 403
        assert "Your role may not open this page." in clerk.page.inner_text("main")


def test_a_take_without_its_csrf_token_is_refused(
        browser: Browser, stack: Stack, contexts: list[BrowserContext]) -> None:
    sender = "rest-" + uuid.uuid4().hex[:12]
    assert "staff member" in " ".join(r.get("text", "") for r in
                                      stack.say(sender, "/request_human"))
    agent = Staff(browser, stack, contexts, "amy")
    agent.waits_for_in_queue(sender)
    row = agent.page.locator("table.queue tr", has_text=sender)
    row.locator("input[name=csrf]").evaluate("field => field.remove()")
    with agent.page.expect_response(f"**{conversation_path(sender)}/take") as answer:
        row.locator("button", has_text="Take").click()
    assert answer.value.status == 403
    assert "The form expired or is not valid" in agent.page.inner_text("main")
    case = api(stack, f"/conversations/{sender}").json()
    assert (case["state"], case["agent"]) == ("waiting", None)
