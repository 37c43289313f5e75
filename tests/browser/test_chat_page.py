"""The chat page on two phone sizes: replies, buttons, history, languages, markup, pushes."""

from __future__ import annotations

import json
import uuid

import requests

from bot.rules.statuses import MAIN_LINE, READY_FOR_COLLECTION, REPORTED_TEMPORARY
from tests.browser.conftest import ChatPage, staff_session
from tests.testkit import people
from tests.testkit.stack import Stack, has_cjk

MARKUP = "<img src=x onerror=alert(1)>"


def test_page_loads_full_screen_with_greeting_privacy_line_and_buttons(phone: ChatPage) -> None:
    phone.open()
    greeting = phone.replies()[0]
    assert "assistant" in greeting and not has_cjk(greeting)
    assert "only for the loss report" in phone.page.inner_text(".privacy")
    width = phone.page.viewport_size["width"]  # type: ignore[index]
    height = phone.page.viewport_size["height"]  # type: ignore[index]
    # Full screen: the conversation spans the width, the input sits at the bottom edge.
    assert phone.box(".rw-conversation-container")["width"] == width
    sender = phone.box(".rw-sender")
    assert abs(sender["y"] + sender["height"] - height) < 2
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= width
    # Tap targets: every quick reply, the send button and "clear chat" at least 44 px.
    buttons = phone.page.locator(".rw-reply")
    assert buttons.count() >= 3
    for i in range(buttons.count()):
        box = buttons.nth(i).bounding_box()
        assert box and box["height"] >= 44 and box["width"] >= 44, box
    for selector in (".rw-send", "#clear-chat"):
        assert phone.box(selector)["height"] >= 44
    font = phone.page.eval_on_selector(".rw-response", "e => getComputedStyle(e).fontSize")
    assert float(font.rstrip("px")) >= 16
    phone.screenshot("greeting")
    # Nothing came from elsewhere (no CDN, no web font), and nothing failed.
    origin = phone.stack.rasa_url
    assert all(url.startswith((origin, "data:")) for url in phone.requests), phone.requests
    assert not phone.errors


def test_keyboard_leaves_the_input_visible(phone: ChatPage) -> None:
    phone.open()
    viewport = phone.page.locator("meta[name=viewport]").get_attribute("content") or ""
    assert "interactive-widget=resizes-content" in viewport
    # An on-screen keyboard shrinks the visual viewport; the page follows it (dvh).
    width, height = phone.page.viewport_size.values()  # type: ignore[union-attr]
    phone.page.set_viewport_size({"width": width, "height": height - 300})
    phone.page.locator(".rw-new-message").focus()
    sender = phone.box(".rw-sender")
    assert sender["y"] >= 0 and sender["y"] + sender["height"] <= height - 300 + 1
    phone.screenshot("keyboard")


def test_a_message_gets_its_reply(phone: ChatPage) -> None:
    phone.open()
    reply = " ".join(phone.say("are you a bot?"))
    assert "automated" in reply and "12333" in reply
    assert phone.user_messages()[-1] == "are you a bot?"


def test_a_button_click_sends_its_choice(phone: ChatPage) -> None:
    phone.open()
    before = len(phone.replies())
    phone.page.locator(".rw-reply", has_text="Reissue steps").click()
    steps = " ".join(phone.wait_for_replies(before + 1)[before:])
    assert "12333" in steps and "Receipt" in steps
    assert phone.user_messages()[-1] == "Reissue steps"
    phone.screenshot("button")


def test_reload_keeps_the_history_and_the_conversation(phone: ChatPage) -> None:
    phone.open()
    phone.say("are you a bot?")
    session, shown = phone.session_id(), phone.replies()
    phone.reload()
    phone.wait_until(lambda: phone.replies() == shown, "history after reload")
    assert phone.user_messages() == ["are you a bot?"]
    assert phone.session_id() == session
    # Still the same conversation on the server, and the socket still gets replies.
    assert phone.say("thank you")
    tracker = phone.stack.tracker(f"webchat:{session}")
    assert [e["text"] for e in tracker["events"] if e["event"] == "user"][-2:] == [
        "are you a bot?", "thank you"]


def test_the_history_kept_on_the_phone_has_numbers_only_masked(phone: ChatPage) -> None:
    """Typed whole, stored and shown after a reload masked, like the replies show them."""
    phone.open()
    child = people.child_id(age=7, sequence=171)
    phone.say(f"my son lost his social security card, his ID is {child[:6]} {child[6:]}")
    phone.say("my phone is １３９１２３４５６７８")  # full width, as Chinese keyboards type it
    stored = phone.page.evaluate("window.localStorage.getItem('chat_session')")
    assert child not in stored.replace(" ", "") and "13912345678" not in stored
    assert f"{child[:4]}{'*' * 10}{child[-4:]}" in stored and "13*******78" in stored
    assert json.loads(stored)["session_id"] == phone.session_id()  # the rest intact
    phone.reload()
    phone.wait_until(lambda: len(phone.user_messages()) == 2, "history after reload")
    shown = " ".join(phone.user_messages())
    assert child not in shown.replace(" ", "") and "13*******78" in shown


def test_a_chinese_message_gets_a_chinese_reply(phone: ChatPage) -> None:
    phone.open()
    reply = " ".join(phone.say("你是机器人吗"))
    assert has_cjk(reply) and "12333" in reply
    phone.screenshot("chinese-reply")


def test_a_chinese_browser_is_greeted_in_chinese(chinese_phone: ChatPage) -> None:
    chinese_phone.open()
    assert has_cjk(chinese_phone.replies()[0])
    assert all(has_cjk(t) for t in chinese_phone.page.locator(".rw-reply").all_inner_texts())
    assert has_cjk(chinese_phone.page.inner_text(".privacy"))
    chinese_phone.screenshot("greeting")
    # The browser's language rides on every message as metadata.
    chinese_phone.say("12333")
    user_events = [e for e in chinese_phone.stack.tracker(f"webchat:{chinese_phone.session_id()}")["events"]
                   if e["event"] == "user"]
    assert user_events[-1]["metadata"]["language"] == "zh"


def test_markup_from_the_user_or_the_bot_is_shown_as_text(phone_without_csp: ChatPage) -> None:
    # Without the CSP: the widget's own rendering must keep markup inert.
    page = phone_without_csp
    page.open()
    page.say(MARKUP)
    assert page.user_messages()[-1] == MARKUP
    bot_markup = "Bot <img src=y onerror=alert(2)> <script>alert(3)</script> [link](javascript:alert(4))"
    before = len(page.replies())
    pushed = requests.post(
        f"{page.stack.rasa_url}/conversations/webchat:{page.session_id()}/tracker/events",
        params={"token": page.stack.settings.rasa_token, "output_channel": "latest",
                "execute_side_effects": "true"},
        json={"event": "bot", "text": bot_markup}, timeout=30)
    assert pushed.ok, pushed.text
    shown = page.wait_for_replies(before + 1)[-1]
    assert "<img src=y onerror=alert(2)>" in shown and "<script>alert(3)</script>" in shown
    assert page.page.locator("#chat img[src=x], #chat img[src=y], #chat script").count() == 0
    # The javascript: link does nothing, not even open a window for itself.
    page.page.locator("#chat a", has_text="link").click()
    page.page.wait_for_timeout(500)
    assert len(page.page.context.pages) == 1
    assert page.dialogs == [] and not page.errors
    page.screenshot("markup")


def test_the_page_forbids_inline_script_and_is_served_compressed(stack: Stack) -> None:
    page = requests.get(stack.settings.chat_page_url, timeout=10)
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split("script-src")[1]
    widget = requests.get(stack.settings.chat_page_url + "webchat.js", timeout=10)
    assert widget.headers["Content-Encoding"] == "gzip" and b"fonts.googleapis" not in widget.content
    again = requests.get(stack.settings.chat_page_url + "webchat.js", timeout=10,
                         headers={"If-None-Match": widget.headers["ETag"]})
    assert again.status_code == 304


def test_card_ready_reaches_the_open_page(phone: ChatPage) -> None:
    """A staff status change, then the card service's outbox, then Rasa, then the page."""
    phone.open()
    session = phone.session_id()
    card = phone.stack.settings.card_service_url
    filed = requests.post(
        f"{card}/v1/loss-reports", json=people.report_body(conversation_id=f"webchat:{session}"),
        headers={"Authorization": f"Bearer {phone.stack.settings.card_service_token}",
                 "Idempotency-Key": str(uuid.uuid4())}, timeout=30)
    assert filed.status_code == 201, filed.text
    reference = filed.json()["reference"]
    staff = staff_session(phone.stack)
    path = MAIN_LINE[MAIN_LINE.index(REPORTED_TEMPORARY) + 1:MAIN_LINE.index(READY_FOR_COLLECTION) + 1]
    before = len(phone.replies())
    for status in path:
        moved = staff.post(f"{card}/v1/loss-reports/{reference}/events",
                           json={"status": status}, timeout=30)
        assert moved.status_code == 200, moved.text
    shown = phone.wait_for_replies(before + 1)[before:]
    assert any(reference in text and "ready" in text for text in shown), shown
    phone.screenshot("card-ready")


def test_an_external_event_sent_to_rasa_reaches_the_open_page(phone: ChatPage) -> None:
    phone.open()
    before = len(phone.replies())
    triggered = requests.post(
        f"{phone.stack.rasa_url}/conversations/webchat:{phone.session_id()}/trigger_intent",
        params={"token": phone.stack.settings.rasa_token, "output_channel": "latest"},
        json={"name": "EXTERNAL_card_ready", "entities": {"reference_number": "SC-7K3F-9Q2M"}},
        timeout=30)
    assert triggered.ok, triggered.text
    shown = phone.wait_for_replies(before + 1)[before:]
    assert any("SC-7K3F-9Q2M" in text for text in shown), shown
