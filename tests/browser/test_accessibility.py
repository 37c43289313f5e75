"""The chat page for everyone: axe-core finds nothing serious in either language, on a phone
and on a desktop, empty and mid-conversation; larger text for guardians who need it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Route, WebSocketRoute

from tests.browser.axe import describe, violations
from tests.browser.conftest import REPLY_TIMEOUT, ChatPage
from tests.testkit.stack import Stack

# name: (width, height, a phone?)
SCREENS = {"390x844": (390, 844, True), "1280x800": (1280, 800, False)}
LOCALES = ("zh-CN", "en-US")
# What a guardian types or picks, per language: a quick reply, then a sentence.
WORDS = {
    "zh": {"steps": "补办流程", "lost": "孩子的社保卡丢了", "bot": "你是机器人吗",
           "large": "大字"},
    "en": {"steps": "Reissue steps", "lost": "my child lost his social security card",
           "bot": "are you a bot?", "large": "Larger text"},
}
# Font sizes (px) of the conversation in ordinary and in larger text.
BUBBLE = "#chat .rw-response"
BUBBLE_TEXT = "#chat .rw-response .rw-markdown p"


def chat_page(browser: Browser, stack: Stack, screen: str, locale: str) -> Iterator[ChatPage]:
    width, height, phone = SCREENS[screen]
    context = browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=2 if phone else 1,
        is_mobile=phone, has_touch=phone, locale=locale)
    try:
        yield ChatPage(context.new_page(), stack, screen, locale[:2])
    finally:
        context.close()


@pytest.fixture(params=[(s, loc) for s in SCREENS for loc in LOCALES],
                ids=lambda p: f"{p[0]}-{p[1][:2]}")
def any_screen(request: pytest.FixtureRequest, browser: Browser,
               stack: Stack) -> Iterator[ChatPage]:
    """Each language on a phone and on a desktop, with its own storage."""
    yield from chat_page(browser, stack, *request.param)


@pytest.fixture(params=LOCALES, ids=lambda loc: loc[:2])
def phone(request: pytest.FixtureRequest, browser: Browser, stack: Stack) -> Iterator[ChatPage]:
    yield from chat_page(browser, stack, "390x844", request.param)


def show_conversation(chat: ChatPage) -> None:
    """Open the page; on a desktop, open the floating widget too."""
    chat.page.goto(chat.stack.settings.chat_page_url)
    if not SCREENS[chat.size][2]:
        chat.page.locator(".rw-launcher").click()
    chat.page.wait_for_selector(".rw-conversation-container", timeout=REPLY_TIMEOUT * 1000)


def assert_no_serious_violation(chat: ChatPage, state: str) -> None:
    found = violations(chat.page)
    if found:
        chat.screenshot(f"axe-{state}")
    assert not found, f"{chat.size} {chat.language} {state}:\n{describe(found)}"


def font_size(chat: ChatPage, selector: str) -> float:
    size = chat.page.eval_on_selector(selector, "e => getComputedStyle(e).fontSize")
    return float(size.removesuffix("px"))


def test_the_page_before_the_chat_connects_has_no_serious_violation(any_screen: ChatPage) -> None:
    """What a guardian on a bad connection sees: the intro and its buttons, no conversation
    (the widget stays hidden until its socket connects)."""
    chat = any_screen
    tries: list[str] = []

    def refuse(route: Route) -> None:
        tries.append(route.request.url)
        route.abort()

    def never_answer(socket: WebSocketRoute) -> None:
        """Not connected to the server: the socket opens and nothing ever comes."""
        tries.append(socket.url)

    chat.page.route("**/socket.io/**", refuse)
    chat.page.route_web_socket("**/socket.io/**", never_answer)
    chat.page.goto(chat.stack.settings.chat_page_url)
    chat.page.wait_for_selector("#chat > *", state="attached")
    chat.wait_until(lambda: bool(tries), "an attempt to connect")
    assert chat.page.locator(".rw-response, .rw-client").count() == 0
    assert chat.page.get_by_role("button", name=WORDS[chat.language]["large"]).is_visible()
    assert_no_serious_violation(chat, "not-connected")
    assert not chat.errors


def test_a_conversation_with_buttons_has_no_serious_violation(any_screen: ChatPage) -> None:
    chat, words = any_screen, WORDS[any_screen.language]
    show_conversation(chat)
    chat.wait_for_replies(1)
    assert chat.page.locator(".rw-reply").count() >= 3
    assert_no_serious_violation(chat, "greeting")
    # A quick reply is a button for the keyboard too: reached with Tab, chosen with Enter.
    choice = chat.page.get_by_role("button", name=words["steps"], exact=True)
    choice.focus()
    before = len(chat.replies())
    chat.page.keyboard.press("Enter")
    chat.wait_for_replies(before + 1)
    assert chat.user_messages()[-1] == words["steps"]
    # Then a sentence that is answered with yes / no buttons.
    chat.say(words["lost"])
    assert chat.page.locator(".rw-reply").count() >= 2
    assert len(chat.user_messages()) == 2
    assert_no_serious_violation(chat, "conversation")
    chat.screenshot("a11y-conversation")
    assert not chat.errors


def test_the_message_list_and_controls_are_named_for_screen_readers(phone: ChatPage) -> None:
    phone.open()
    page, zh = phone.page, phone.language == "zh"
    log = page.get_by_role("log", name="对话" if zh else "Conversation")
    assert log.count() == 1 and log.get_attribute("tabindex") == "0"
    assert page.get_by_role("button", name="发送" if zh else "Send").count() == 1
    assert page.get_by_role("textbox", name="输入消息" if zh else "Your message").count() == 1
    assert page.get_by_role("main").count() == 1 and page.get_by_role("banner").count() == 1
    assert page.evaluate("document.documentElement.lang") == ("zh-CN" if zh else "en")
    # A message in the other language says so, for the screen reader's pronunciation.
    other = "en" if zh else "zh"
    phone.say(WORDS[other]["bot"])
    assert page.locator(".rw-response").last.get_attribute("lang") == ("en" if zh else "zh-CN")
    assert page.locator(".rw-client").last.get_attribute("lang") == ("en" if zh else "zh-CN")


def test_larger_text_is_kept_across_reloads_and_can_be_turned_off(phone: ChatPage) -> None:
    chat, words = phone, WORDS[phone.language]
    page = chat.page
    # Whether the text is large when the body first appears: before anything can be drawn.
    page.add_init_script("""
        new MutationObserver(function (records, observer) {
          if (document.body) {
            window.largeAtFirstPaint = document.documentElement.classList.contains("large-text");
            observer.disconnect();
          }
        }).observe(document, { childList: true, subtree: true });
    """)
    chat.open()
    chat.say(words["bot"])
    toggle = page.get_by_role("button", name=words["large"], exact=True)
    assert toggle.get_attribute("aria-pressed") == "false"
    ordinary = {s: font_size(chat, s) for s in (BUBBLE, BUBBLE_TEXT, ".rw-client", ".rw-new-message")}
    assert ordinary[BUBBLE] >= 16

    # From the keyboard: the toggle is the first stop on the page, Space presses it.
    page.locator("h1").click()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "text-size"
    page.keyboard.press("Space")
    assert toggle.get_attribute("aria-pressed") == "true"
    large = {s: font_size(chat, s) for s in ordinary}
    for selector, size in ordinary.items():
        assert large[selector] >= 1.25 * size, (selector, size, large[selector])
    assert_fits_the_screen(chat)
    assert_no_serious_violation(chat, "large-text")

    # Kept across a reload, and applied before the first paint (no flash of small text).
    page.reload()
    chat.wait_until(lambda: len(chat.user_messages()) == 1, "history after reload")
    assert page.evaluate("window.largeAtFirstPaint") is True
    assert toggle.get_attribute("aria-pressed") == "true"
    assert font_size(chat, BUBBLE) == large[BUBBLE]
    chat.wait_for_replies(2)
    assert_fits_the_screen(chat)
    chat.screenshot("large-text")

    # Off again, with Enter this time, and still off after a reload.
    toggle.focus()
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-pressed") == "false"
    assert font_size(chat, BUBBLE) == ordinary[BUBBLE]
    page.reload()
    chat.wait_until(lambda: len(chat.user_messages()) == 1, "history after reload")
    assert page.evaluate("window.largeAtFirstPaint") is False
    assert toggle.get_attribute("aria-pressed") == "false"
    assert font_size(chat, BUBBLE) == ordinary[BUBBLE]
    assert not chat.errors


def assert_fits_the_screen(chat: ChatPage) -> None:
    """Nothing wider than the phone; the input at the bottom; most of the height for talk."""
    page = chat.page
    width, height, _ = SCREENS[chat.size]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for selector in (".rw-response", ".rw-client", ".rw-reply", "#text-size", "#clear-chat"):
        for box in (page.locator(selector).nth(i).bounding_box()
                    for i in range(page.locator(selector).count())):
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (selector, box)
    sender = chat.box(".rw-sender")
    assert abs(sender["y"] + sender["height"] - height) < 2
    assert chat.box(".rw-messages-container")["height"] >= 0.45 * height
    for selector in ("#text-size", "#clear-chat"):
        assert chat.box(selector)["height"] >= 44
