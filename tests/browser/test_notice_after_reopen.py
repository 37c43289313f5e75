"""A notice for a chat page that is closed: kept, shown once when the guardian opens the page
again (with an unread mark in the title until they look), and after another reload only
in the history. Driven through the notice route as the card service calls it."""

from __future__ import annotations

import time
import uuid

import redis
import requests
from playwright.sync_api import Browser

from bot import notices
from bot.channels.webchat.presence import presence_key
from bot.rules.statuses import MAIN_LINE, READY_FOR_COLLECTION
from tests.browser.conftest import PHONES, REPLY_TIMEOUT, ChatPage
from tests.testkit import people
from tests.testkit.processes import wait_for
from tests.testkit.stack import Stack

READY = "Good news: the new card of report SC-7K3F-9Q2M is ready for collection."
BRING = "Bring the receipt and the ID card of the guardian who reported it."


def deliver(stack: Stack, session: str, notice_id: str) -> str:
    conversation = f"webchat:{session}"
    token = notices.token_for(conversation, stack.settings.rasa_jwt_secret)
    answer = requests.post(
        f"{stack.rasa_url}/webhooks/webchat/notice",
        headers={"Authorization": f"Bearer {token}"},
        json={"id": notice_id, "conversation": conversation, "path": "page",
              "kind": "card_ready", "language": "en", "last": False,
              "messages": [{"recipient_id": conversation, "text": READY},
                           {"recipient_id": conversation, "text": BRING,
                            "buttons": [{"title": "Opening hours",
                                         "payload": "/ask_opening_hours"}]}],
              "variables": {"reference": "SC-7K3F-9Q2M"}},
        timeout=REPLY_TIMEOUT)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["outcome"])


def test_a_notice_for_a_closed_page_is_shown_once_when_it_is_opened_again(
        browser: Browser, stack: Stack) -> None:
    width, height = PHONES["390x844"]
    # One phone: its storage (the session and the history) outlives the page closed on it.
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=2, is_mobile=True, has_touch=True,
                                  locale="en-US")
    store = redis.Redis.from_url(stack.settings.redis_url)
    notice_id = f"SC-{uuid.uuid4().hex[:8]}:ready_for_collection"
    try:
        first = ChatPage(context.new_page(), stack, "390x844", "en").open()
        session, history = first.session_id(), first.replies()
        title = first.page.title()
        first.page.close()
        wait_for(lambda: not store.zcard(presence_key(f"webchat:{session}")), REPLY_TIMEOUT,
                 "the closed page's goodbye")
        assert deliver(stack, session, notice_id) == notices.QUEUED

        again = ChatPage(context.new_page(), stack, "390x844", "en")
        again.page.goto(stack.settings.chat_page_url)
        again.wait_until(lambda: any(BRING in text for text in again.replies()),
                         "the notice kept for the page")
        shown = again.wait_for_replies(len(history) + 2)
        assert again.session_id() == session
        assert shown[:len(history)] == history  # the conversation so far, then the notice
        assert [text for text in shown if READY in text] == [READY]
        assert again.page.title() == "(1 unread) " + title
        again.screenshot("notice-unread")
        # The guardian touches the page: they have seen it.
        again.page.locator(".intro h1").click()
        again.wait_until(lambda: again.page.title() == title, "the unread mark to go")
        assert deliver(stack, session, notice_id) == notices.SEEN

        # Reloaded: in the history once, not shown anew, no mark.
        again.reload()
        again.wait_until(lambda: again.replies() == shown, "the history after the reload")
        reply = " ".join(again.say("are you a bot?"))  # anything new comes before this
        assert "automated" in reply
        assert [text for text in again.replies() if READY in text] == [READY]
        assert again.page.title() == title
        assert not first.errors and not again.errors
    finally:
        store.close()
        context.close()


def test_card_ready_filed_then_page_closed_reaches_it_when_reopened_once(
        browser: Browser, stack: Stack) -> None:
    """The issue's own story, through the card service: file, close the page, the card is
    ready, reopen: shown once; reload: not again; the ledger says the page delivered it."""
    width, height = PHONES["390x844"]
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=2, is_mobile=True, has_touch=True,
                                  locale="zh-CN")
    store = redis.Redis.from_url(stack.settings.redis_url)
    card = stack.settings.card_service_url
    staff = {"Authorization": f"Bearer {stack.settings.staff_token}"}
    try:
        first = ChatPage(context.new_page(), stack, "390x844", "zh").open()
        session = first.session_id()
        filed = requests.post(f"{card}/v1/loss-reports", timeout=30, json=people.report_body(
            conversation_id=f"webchat:{session}"), headers={
            "Authorization": f"Bearer {stack.settings.card_service_token}",
            "Idempotency-Key": str(uuid.uuid4())})
        assert filed.status_code == 201, filed.text
        reference = filed.json()["reference"]
        first.page.close()
        wait_for(lambda: not store.zcard(presence_key(f"webchat:{session}")), REPLY_TIMEOUT,
                 "the closed page's goodbye")

        for status in MAIN_LINE[1:MAIN_LINE.index(READY_FOR_COLLECTION) + 1]:
            moved = requests.post(f"{card}/v1/loss-reports/{reference}/events", timeout=30,
                                  json={"status": status}, headers=staff)
            assert moved.status_code == 200, moved.text

        def notice() -> dict:
            found = requests.get(f"{card}/v1/loss-reports/{reference}/notices", timeout=30,
                                 headers=staff).json()["notices"]
            return found[0] if found else {}
        wait_for(lambda: notice().get("state") == "queued", REPLY_TIMEOUT, "kept for the page")

        again = ChatPage(context.new_page(), stack, "390x844", "zh")
        again.page.goto(stack.settings.chat_page_url)
        again.wait_until(lambda: any(reference in text for text in again.replies()),
                         "the card-ready notice kept for the page")
        assert again.page.title().startswith("（1 条未读）"), again.page.title()
        shown = again.replies()
        again.reload()
        again.wait_until(lambda: again.replies() == shown, "the history after the reload")
        time.sleep(1)
        assert sum(reference in text for text in again.replies()) == 1
        assert "未读" not in again.page.title()

        # The card service asks the page again at its next check: it was seen, by the page.
        process = stack.processes["card"]
        process.stop()
        process.env = {**process.env, "CARD_SERVICE_CLOCK_OFFSET_DAYS": "1"}
        stack.start("card")
        wait_for(lambda: notice().get("state") == "delivered", REPLY_TIMEOUT, "the ledger")
        assert notice()["delivered_path"] == "page"
        assert [a["outcome"] for a in notice()["attempts"]] == ["queued", "seen"]
        assert not first.errors and not again.errors
    finally:
        process = stack.processes["card"]
        if process.env.get("CARD_SERVICE_CLOCK_OFFSET_DAYS"):
            process.stop()
            process.env = {k: v for k, v in process.env.items()
                           if k != "CARD_SERVICE_CLOCK_OFFSET_DAYS"}
            stack.start("card")
        store.close()
        context.close()
