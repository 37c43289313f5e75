"""A notice for a chat page that is closed: kept, shown once when the guardian opens the page
again (with an unread mark in the title until they look), and after another reload only
in the history. Driven through the notice route as the card service calls it."""

from __future__ import annotations

import uuid

import redis
import requests
from playwright.sync_api import Browser

from bot import notices
from bot.channels.webchat.presence import presence_key
from tests.browser.conftest import PHONES, REPLY_TIMEOUT, ChatPage
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
