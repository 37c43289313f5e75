"""Notices through WhatsApp (Twilio), Messenger and Telegram: each provider's answer read as
the card service's outcome, and each path tried against the local provider servers, which
keep the providers' reply windows on a clock the test moves."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import requests

import bot.settings
from bot import notices
from bot.channels import whatsapp
from bot.channels.facebook import CheckedFacebookInput, FacebookConfig, graph_outcome
from bot.channels.telegram import SecretTelegramInput, TelegramConfig, telegram_outcome
from bot.channels.whatsapp import SignedTwilioInput, TwilioConfig, twilio_outcome
from bot.settings import Settings
from tests.testkit.messaging_servers import (
    GraphServer,
    TelegramServer,
    TwilioServer,
    form_body,
    twilio_signature,
    whatsapp_form,
)
from tests.testkit.processes import free_port

T = TypeVar("T")
NUMBER = "whatsapp:+8613912345678"
OURS = "whatsapp:+14155238886"
URL = "https://bot.example.com/webhooks/whatsapp/webhook"
CARD_READY_ZH, CARD_READY_EN = "HX" + "a1" * 16, "HX" + "b2" * 16
REFERENCE = "SC-7K3F-9Q2M"
VARIABLES = {"reference": REFERENCE, "city": "北京", "place": "工商银行各网点",
             "lapses_on": "2026-12-24", "written_report_place": "社保经办机构",
             "ready_on": "2026-12-04"}
MESSAGES = ({"recipient_id": "x", "text": f"好消息！受理编号 {REFERENCE} 的新社保卡已可以领取。"},)


def notice(path: str, kind: str = "card_ready", language: str = "zh",
           messages: tuple[dict[str, Any], ...] = MESSAGES,
           variables: dict[str, str] | None = None) -> notices.Notice:
    return notices.Notice(id=f"{REFERENCE}:{kind}", conversation="x", path=path, kind=kind,
                          language=language, messages=messages,
                          variables=VARIABLES if variables is None else variables)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


# The providers' answers -----------------------------------------------------------------


def twilio_error(code: int, status: int = 400) -> str:
    return json.dumps({"code": code, "message": "whatever Twilio says",
                       "more_info": f"https://www.twilio.com/docs/errors/{code}",
                       "status": status})


@pytest.mark.parametrize(("status", "body", "header", "expected"), [
    (201, '{"sid": "SM1", "status": "queued"}', None, ("seen", "", None)),
    (400, twilio_error(63016), None, ("fallback", "63016", None)),
    (400, twilio_error(21211), None, ("unreachable", "21211", None)),
    (400, twilio_error(21610), None, ("unreachable", "21610", None)),
    (400, twilio_error(63003), None, ("unreachable", "63003", None)),
    (400, twilio_error(63024), None, ("unreachable", "63024", None)),
    (429, twilio_error(20429, 429), "7", ("retry", "20429", 7.0)),
    (429, twilio_error(20429, 429), None, ("retry", "20429", None)),
    (401, twilio_error(20003, 401), None, ("retry", "20003", None)),
    (503, twilio_error(20503, 503), None, ("retry", "20503", None)),
    (502, "<html>Bad Gateway</html>", None, ("retry", "502", None)),
    (400, twilio_error(21655), None, ("fallback", "21655", None)),
    (400, twilio_error(21656), None, ("fallback", "21656", None)),
    (400, twilio_error(63028), None, ("fallback", "63028", None)),
])
def test_twilio_answers(status: int, body: str, header: str | None,
                        expected: tuple[str, str, float | None]) -> None:
    outcome = twilio_outcome(status, body, header)
    assert (outcome.outcome, outcome.code, outcome.retry_after) == expected
    assert "whatever Twilio says" not in outcome.detail  # Twilio's text can hold the number


def graph_error(code: int, subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": "(#x) ...", "type": "OAuthException", "code": code}
    if subcode:
        error["error_subcode"] = subcode
    return {"error": error}


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, {"recipient_id": "1", "message_id": "m_1"}, ("seen", "")),
    (400, graph_error(10, 2018278), ("fallback", "10/2018278")),
    (400, graph_error(10, 1893063), ("retry", "10/1893063")),
    (400, graph_error(551, 1545041), ("unreachable", "551/1545041")),
    (400, graph_error(551), ("unreachable", "551")),
    (400, graph_error(200, 1545041), ("unreachable", "200/1545041")),
    (400, graph_error(100, 2018001), ("unreachable", "100/2018001")),
    (400, graph_error(100), ("fallback", "100")),  # a retired tag, a template that is not
    (400, graph_error(200, 2018028), ("fallback", "200/2018028")),
    (400, graph_error(2), ("retry", "2")),
    (400, graph_error(4), ("retry", "4")),
    (400, graph_error(613), ("retry", "613")),
    (400, graph_error(190), ("retry", "190")),
    (503, None, ("retry", "503")),
    (500, graph_error(1), ("retry", "1")),
])
def test_messenger_answers(status: int, body: Any, expected: tuple[str, str]) -> None:
    outcome = graph_outcome(status, body)
    assert (outcome.outcome, outcome.code) == expected


def bot_api_error(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    return {**body, "parameters": parameters} if parameters else body


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, {"ok": True, "result": {"message_id": 1}}, ("seen", "", None)),
    (403, bot_api_error(403, "Forbidden: bot was blocked by the user"),
     ("unreachable", "403", None)),
    (403, bot_api_error(403, "Forbidden: user is deactivated"), ("unreachable", "403", None)),
    (403, bot_api_error(403, "Forbidden: bot can't initiate conversation with a user"),
     ("unreachable", "403", None)),
    (400, bot_api_error(400, "Bad Request: chat not found"), ("unreachable", "400", None)),
    (429, bot_api_error(429, "Too Many Requests: retry after 17", retry_after=17),
     ("retry", "429", 17.0)),
    (401, bot_api_error(401, "Unauthorized"), ("retry", "401", None)),
    (502, bot_api_error(502, "Bad Gateway"), ("retry", "502", None)),
    (504, None, ("retry", "504", None)),
    (400, bot_api_error(400, "Bad Request: message is too long"), ("fallback", "400", None)),
    (400, bot_api_error(400, "Bad Request: BUTTON_DATA_INVALID"), ("fallback", "400", None)),
])
def test_telegram_answers(status: int, body: Any,
                          expected: tuple[str, str, float | None]) -> None:
    outcome = telegram_outcome(status, body)
    assert (outcome.outcome, outcome.code, outcome.retry_after) == expected


def test_template_settings_per_language() -> None:
    settings = Settings.from_env({
        "TWILIO_CONTENT_SID_CARD_READY": f" zh:{CARD_READY_ZH},en:{CARD_READY_EN} ",
        "FACEBOOK_UTILITY_TEMPLATE_CARD_READY": "card_ready_notice"})
    twilio = TwilioConfig.from_credentials({}, settings)
    assert twilio.content_sid("card_ready", "en") == CARD_READY_EN
    assert twilio.content_sid("card_ready", "zh") == CARD_READY_ZH
    assert twilio.content_sid("lapse_reminder", "zh") is None
    graph = FacebookConfig.from_credentials({}, settings)
    assert graph.utility_template("card_ready") == "card_ready_notice"
    assert graph.utility_template("lapse_reminder") == ""


# WhatsApp through Twilio ------------------------------------------------------------------


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    server = TwilioServer(windows=True).start()
    server.register_content(CARD_READY_ZH, 2)
    yield server
    server.stop()


def whatsapp_channel(monkeypatch: pytest.MonkeyPatch, redis_url: str, server: TwilioServer,
                     **env: str) -> SignedTwilioInput:
    settings = Settings.from_env({
        **server.env(OURS, URL), "REDIS_URL": redis_url,
        "DATA_ENCRYPTION_KEY": "notice-test-data-encryption-key",
        "TWILIO_CONTENT_SID_CARD_READY": f"zh:{CARD_READY_ZH}", **env})
    monkeypatch.setattr(bot.settings, "settings", lambda: settings)
    return SignedTwilioInput(TwilioConfig.from_credentials({}))


async def user_writes(channel: SignedTwilioInput, server: TwilioServer,
                      number: str = NUMBER) -> str:
    """A user's message through the webhook, Twilio's window opening with it; the user's
    pseudonym (what a notice is addressed to)."""
    server.user_wrote(number)
    fields = whatsapp_form(number, "你好", OURS)
    reached: list[Any] = []

    async def on_new_message(message: Any) -> None:
        reached.append(message)

    status, _ = await channel.receive(
        URL, {"X-Twilio-Signature": twilio_signature(server.auth_token, URL, fields)},
        form_body(fields), on_new_message)
    assert status == 200 and len(reached) == 1
    channel_name, _, user = reached[0].sender_id.partition(":")
    assert channel_name == "whatsapp" and user.startswith("u") and "139" not in user
    return str(user)


async def closed(channel: SignedTwilioInput) -> None:
    await channel.http().close()
    await channel.buttons.close()


def test_whatsapp_free_form_inside_the_window_then_the_template_outside_it(
        monkeypatch: pytest.MonkeyPatch, redis_url: str, twilio: TwilioServer) -> None:
    channel = whatsapp_channel(monkeypatch, redis_url, twilio)

    async def scenario() -> list[notices.Outcome]:
        try:
            user = await user_writes(channel, twilio)
            inside = await channel.deliver_notice(user, notice("session"))
            twilio.advance(hours=25)
            return [inside, await channel.deliver_notice(user, notice("session")),
                    await channel.deliver_notice(user, notice("template"))]
        finally:
            await closed(channel)

    inside, outside, template = run(scenario)
    assert inside.outcome == "seen"
    assert (outside.outcome, outside.code) == ("fallback", "63016")
    assert template.outcome == "seen"
    [free_form] = twilio.accepted(NUMBER, "body")
    assert REFERENCE in free_form.fields["Body"] and free_form.fields["From"] == OURS
    [sent] = twilio.accepted(NUMBER, "template")
    assert sent.fields["ContentSid"] == CARD_READY_ZH and "Body" not in sent.fields
    assert json.loads(sent.fields["ContentVariables"]) == {"1": REFERENCE, "2": "工商银行各网点"}
    assert len(twilio.accepted(NUMBER)) == 2


def test_whatsapp_free_form_not_tried_near_the_end_of_the_window(
        monkeypatch: pytest.MonkeyPatch, redis_url: str, twilio: TwilioServer) -> None:
    # Twilio may take a free-form message and report 63016 later, to a status callback:
    # the channel's own record of the user's last message decides first.
    channel = whatsapp_channel(monkeypatch, redis_url, twilio)

    async def scenario() -> notices.Outcome:
        try:
            user = await user_writes(channel, twilio)
            wrote = channel.pseudonyms.clock()
            channel.pseudonyms.clock = lambda: wrote + whatsapp.WINDOW_SECONDS - 5 * 60
            return await channel.deliver_notice(user, notice("session"))
        finally:
            await closed(channel)

    outcome = run(scenario)
    assert (outcome.outcome, outcome.code) == ("fallback", "")
    assert "24-hour" in outcome.detail and twilio.calls_to("Messages") == []


def test_whatsapp_buttons_are_a_numbered_list_the_answer_maps_back(
        monkeypatch: pytest.MonkeyPatch, redis_url: str, twilio: TwilioServer) -> None:
    channel = whatsapp_channel(monkeypatch, redis_url, twilio)
    with_buttons = ({"text": "新卡已可领取。", "buttons": [
        {"title": "领取地点", "payload": "/ask_pickup_place"},
        {"title": "要带什么", "payload": "/ask_required_documents"}]},)

    async def scenario() -> tuple[notices.Outcome, str]:
        try:
            user = await user_writes(channel, twilio)
            outcome = await channel.deliver_notice(user, notice("session", messages=with_buttons))
            return outcome, await channel.buttons.answered(NUMBER, "2")
        finally:
            await closed(channel)

    outcome, answer = run(scenario)
    assert outcome.outcome == "seen" and answer == "/ask_required_documents"
    [sent] = twilio.accepted(NUMBER)
    assert sent.fields["Body"] == "新卡已可领取。\n\n1. 领取地点\n2. 要带什么"


@pytest.mark.parametrize(("kind", "language", "variables", "detail"), [
    ("lapse_reminder", "zh", VARIABLES, "no WhatsApp template configured for lapse_reminder"),
    ("card_ready", "en", VARIABLES, "no WhatsApp template configured for card_ready (en)"),
    ("card_ready", "zh", {"reference": REFERENCE}, "variables.place"),
])
def test_whatsapp_template_not_sent_without_one_that_fits(
        monkeypatch: pytest.MonkeyPatch, redis_url: str, twilio: TwilioServer, kind: str,
        language: str, variables: dict[str, str], detail: str) -> None:
    channel = whatsapp_channel(monkeypatch, redis_url, twilio)

    async def scenario() -> notices.Outcome:
        try:
            user = await user_writes(channel, twilio)
            return await channel.deliver_notice(user, notice(
                "template", kind=kind, language=language, variables=variables))
        finally:
            await closed(channel)

    outcome = run(scenario)
    assert outcome.outcome == "fallback" and detail in outcome.detail
    assert twilio.calls_to("Messages") == [] and twilio.calls_to("Messages:refused") == []


def test_whatsapp_refusals(monkeypatch: pytest.MonkeyPatch, redis_url: str,
                           twilio: TwilioServer) -> None:
    unknown_sid = "HX" + "c3" * 16  # never registered with Twilio
    channel = whatsapp_channel(monkeypatch, redis_url, twilio,
                               TWILIO_CONTENT_SID_CARD_READY=unknown_sid)
    opted_out, no_whatsapp = "whatsapp:+8613900000001", "whatsapp:+8613900000002"
    twilio.opt_out(opted_out)
    twilio.not_on_whatsapp(no_whatsapp)

    async def scenario() -> dict[str, notices.Outcome]:
        try:
            user = await user_writes(channel, twilio)
            outcomes = {"template": await channel.deliver_notice(user, notice("template"))}
            twilio.fail_next("Messages", 429, {"code": 20429, "message": "Too Many Requests",
                                               "status": 429}, headers={"Retry-After": "7"})
            outcomes["busy"] = await channel.deliver_notice(user, notice("session"))
            for number in (opted_out, no_whatsapp):
                outcomes[number] = await channel.deliver_notice(
                    await user_writes(channel, twilio, number), notice("session"))
            outcomes["gone"] = await channel.deliver_notice("u" + "0" * 32, notice("session"))
            return outcomes
        finally:
            await closed(channel)

    outcomes = {key: (o.outcome, o.code, o.retry_after) for key, o in run(scenario).items()}
    assert outcomes == {"template": ("fallback", "21655", None),
                        "busy": ("retry", "20429", 7.0),
                        opted_out: ("unreachable", "21610", None),
                        no_whatsapp: ("unreachable", "63003", None),
                        "gone": ("unreachable", "", None)}
    assert twilio.calls_to("Messages") == []


def test_whatsapp_twilio_out_of_reach_is_tried_again(
        monkeypatch: pytest.MonkeyPatch, redis_url: str, twilio: TwilioServer) -> None:
    channel = whatsapp_channel(monkeypatch, redis_url, twilio,
                               TWILIO_API_BASE=f"http://127.0.0.1:{free_port()}")

    async def scenario() -> notices.Outcome:
        try:
            return await channel.deliver_notice(await user_writes(channel, twilio),
                                                notice("session"))
        finally:
            await closed(channel)

    outcome = run(scenario)
    assert outcome.outcome == "retry" and outcome.detail.startswith("Client")


def test_twilio_client_keeps_its_timeout() -> None:
    # A Twilio that takes the connection and never answers: the client gives up on time,
    # for replies too (the library's own calls pass no timeout).
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)

    async def scenario() -> float:
        client = whatsapp.TimedTwilioHttpClient(timeout=0.5)
        started = time.monotonic()
        try:
            with pytest.raises(asyncio.TimeoutError):
                await client.request("POST", f"http://127.0.0.1:{silent.getsockname()[1]}/",
                                     data={"Body": "hi"})
            return time.monotonic() - started
        finally:
            await client.close()

    try:
        assert run(scenario) < 3
    finally:
        silent.close()


def test_the_twilio_stand_in_keeps_whatsapps_rules(twilio: TwilioServer) -> None:
    def send(**fields: str) -> tuple[int, int]:
        answer = requests.post(
            f"{twilio.url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json",
            data={"To": NUMBER, "From": OURS, **fields},
            auth=(twilio.account_sid, twilio.auth_token), timeout=10)
        return answer.status_code, int(answer.json().get("code") or 0)

    assert send(Body="hi") == (400, 63016)  # the user never wrote
    twilio.user_wrote(NUMBER)
    assert send(Body="hi")[0] == 201
    assert send(ContentVariables='{"1": "x"}') == (400, 21654)
    assert send(ContentSid=CARD_READY_ZH, ContentVariables="not json") == (400, 21656)
    assert send(ContentSid=CARD_READY_ZH, ContentVariables='{"1": "a", "2": ""}') == (400, 21656)
    assert send(ContentSid=CARD_READY_ZH, ContentVariables='{"1": "a"}') == (400, 63028)
    twilio.advance(hours=24)
    assert send(Body="hi") == (400, 63016)
    assert send(ContentSid=CARD_READY_ZH, ContentVariables='{"1": "a", "2": "b"}')[0] == 201
    assert [c.how for c in twilio.accepted(NUMBER)] == ["body", "template"]


# Telegram ---------------------------------------------------------------------------------


@pytest.fixture
def bot_api() -> Iterator[TelegramServer]:
    server = TelegramServer().start()
    yield server
    server.stop()


def telegram_channel(server: TelegramServer, base_url: str = "") -> SecretTelegramInput:
    return SecretTelegramInput(TelegramConfig(access_token=server.token, secret_token="s" * 32,
                                              base_url=base_url or server.url))


def deliver_all(channel: SecretTelegramInput, *pairs: tuple[str, notices.Notice]
                ) -> list[notices.Outcome]:
    async def scenario() -> list[notices.Outcome]:
        try:
            return [await channel.deliver_notice(user, each) for user, each in pairs]
        finally:
            await channel.output().session.close()

    return run(scenario)


def test_telegram_notice_with_its_buttons(bot_api: TelegramServer) -> None:
    with_buttons = ({"text": f"Report {REFERENCE}: the card is ready.", "buttons": [
        {"title": "Where to collect", "payload": "/ask_pickup_place"}]},)
    [outcome] = deliver_all(telegram_channel(bot_api),
                            ("42", notice("message", messages=with_buttons)))
    assert outcome.outcome == "seen"
    [sent] = bot_api.calls_to("sendMessage")
    assert sent.how == "inline_keyboard" and sent.fields["chat_id"] == "42"
    assert sent.fields["reply_markup"] == {"inline_keyboard": [
        [{"text": "Where to collect", "callback_data": "/ask_pickup_place"}]]}


def test_telegram_refusals(bot_api: TelegramServer) -> None:
    bot_api.block(1)
    bot_api.deactivate(2)
    bot_api.forget(3)
    channel = telegram_channel(bot_api)
    outcomes = deliver_all(channel, *((str(chat), notice("message")) for chat in (1, 2, 3)))
    assert [(o.outcome, o.code) for o in outcomes] == [("unreachable", "403")] * 2 + [
        ("unreachable", "400")]
    assert outcomes[0].detail == "Forbidden: bot was blocked by the user"
    bot_api.flood(retry_after=17)
    busy, then = deliver_all(telegram_channel(bot_api), ("4", notice("message")),
                             ("4", notice("message")))
    assert (busy.outcome, busy.retry_after, then.outcome) == ("retry", 17.0, "seen")
    assert [c.fields["chat_id"] for c in bot_api.calls_to("sendMessage")] == ["4"]


def test_telegram_long_notice_in_parts_and_api_out_of_reach(bot_api: TelegramServer) -> None:
    long = ({"text": "a" * 5000},)
    [outcome] = deliver_all(telegram_channel(bot_api), ("5", notice("message", messages=long)))
    assert outcome.outcome == "seen"
    assert [len(t) for t in bot_api.messages_to(5)] == [4096, 904]
    [away] = deliver_all(telegram_channel(bot_api, f"http://127.0.0.1:{free_port()}"),
                         ("5", notice("message")))
    assert away.outcome == "retry"
    [empty] = deliver_all(telegram_channel(bot_api), ("5", notice("message", messages=())))
    assert empty.outcome == "fallback" and len(bot_api.messages_to(5)) == 2


# Facebook Messenger -------------------------------------------------------------------------


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    server = GraphServer(windows=True).start()
    server.register_utility_template("card_ready_notice", "zh_CN", 2)
    yield server
    server.stop()


def messenger(server: GraphServer, base_url: str = "") -> CheckedFacebookInput:
    return CheckedFacebookInput(FacebookConfig(
        verify="verify", secret="app-secret", page_access_token=server.page_access_token,
        base_url=base_url or server.url, utility_template_card_ready="card_ready_notice"))


def deliver(channel: CheckedFacebookInput, psid: str, each: notices.Notice) -> notices.Outcome:
    return run(lambda: channel.deliver_notice(psid, each))


def test_messenger_standard_inside_the_window_then_utility_outside_it(
        graph: GraphServer) -> None:
    channel = messenger(graph)
    graph.user_wrote("1001")
    inside = deliver(channel, "1001", notice("standard"))
    graph.advance(hours=24)
    outside = deliver(channel, "1001", notice("standard"))
    utility = deliver(channel, "1001", notice("utility"))
    assert inside.outcome == "seen" and utility.outcome == "seen"
    assert (outside.outcome, outside.code) == ("fallback", "10/2018278")
    [update] = graph.accepted("1001", "UPDATE")
    assert REFERENCE in update.fields["message"]["text"]
    # The Page token goes in a header, never in the URL.
    assert "access_token" not in update.query
    assert update.authorization == f"Bearer {graph.page_access_token}"
    [sent] = graph.accepted("1001", "UTILITY")
    assert sent.fields["message"]["template"] == {
        "name": "card_ready_notice", "language": {"code": "zh_CN"},
        "components": [{"type": "body", "parameters": [
            {"type": "text", "text": REFERENCE}, {"type": "text", "text": "工商银行各网点"}]}]}
    assert len(graph.accepted("1001")) == 2


def test_messenger_refusals(graph: GraphServer) -> None:
    channel = messenger(graph)
    graph.unavailable("1002")
    gone = deliver(channel, "1002", notice("standard"))
    no_template = deliver(channel, "1003", notice("utility", kind="lapse_reminder"))
    no_english = deliver(channel, "1003", notice("utility", language="en"))
    away = deliver(messenger(graph, f"http://127.0.0.1:{free_port()}"), "1003",
                   notice("utility"))
    assert (gone.outcome, gone.code) == ("unreachable", "551/1545041")
    assert no_template.outcome == "fallback" and "lapse_reminder" in no_template.detail
    assert (no_english.outcome, no_english.code) == ("fallback", "100")
    assert away.outcome == "retry"
    assert graph.calls_to("messages") == []
    assert len(graph.calls_to("messages:refused")) == 2  # no call without a template


def test_the_graph_stand_in_refuses_the_retired_tags(graph: GraphServer) -> None:
    graph.user_wrote("1004")
    for tag, code in (("ACCOUNT_UPDATE", 100), ("POST_PURCHASE_UPDATE", 100),
                      ("CONFIRMED_EVENT_UPDATE", 100)):
        answer = requests.post(f"{graph.url}/v25.0/me/messages", timeout=10, json={
            "recipient": {"id": "1004"}, "messaging_type": "MESSAGE_TAG", "tag": tag,
            "message": {"text": "ready"}}, params={"access_token": graph.page_access_token})
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, code), tag
    assert graph.accepted("1004") == []
