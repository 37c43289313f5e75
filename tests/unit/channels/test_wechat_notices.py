"""WeChat's notice paths as the channel reads them: errcodes classified, templates' data
within WeChat's rules, the subscription page and its link, the subscription events and
the acceptances they leave in Redis."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import re
import time

import pytest
import redis

from bot import notices
from bot.channels.wechat import (
    ERRCODES,
    PAGE_TOKEN_SECONDS,
    PERMANENT_ERRORS,
    SUBSCRIPTION_DAYS,
    Inbound,
    WeChatConfig,
    WeChatInput,
    classified,
    js_signature,
    offer_text,
    page_kind,
    page_token,
    parse_xml,
    shaped,
    subscribe_page,
    subscriber,
    template_data,
    template_keys,
)
from bot.settings import WeChatSettings
from tests.testkit.processes import free_port
from tests.testkit.wechat_server import (
    SafeModeAccount,
    data_refusal,
    event_xml,
    new_aes_key,
    subscription_event_xml,
    text_xml,
)

TOKEN = "notice-unit-token"
OPENID = "oN0t1ce-Unit-Openid-0123456"
TEMPLATE = "subscribe-Template_ID-1"
KEYS = ("character_string1", "thing2", "thing3", "date4")
NOWHERE = f"http://127.0.0.1:{free_port()}"  # nothing listens: a call would be a retry


def config(**overrides: str) -> WeChatConfig:
    values = {"token": TOKEN, "app_id": "wx-unit", "app_secret": "unit-secret",
              "base_url": NOWHERE, "redis_url": "redis://127.0.0.1:1/0",
              "subscribe_template_id": TEMPLATE,
              "subscribe_template_keys": WeChatSettings().subscribe_template_keys,
              "template_keys": WeChatSettings().template_keys,
              "public_url": "https://bot.example.cn/", **overrides}
    return WeChatConfig(**values)


def notice(path: str = "subscription", kind: str = "card_ready", language: str = "zh",
           **variables: str) -> notices.Notice:
    given = {"reference": "SC-7K2P-Q9XM", "city": "上海", "ready_on": "2025-03-21", **variables}
    return notices.Notice(id="SC-7K2P-Q9XM:ready_for_collection", conversation=f"wechat:{OPENID}",
                          path=path, kind=kind, language=language,
                          messages=({"text": "您的新社保卡已可领取"},),
                          variables={k: v for k, v in given.items() if v})


# Errcodes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("errcode", "outcome"), [
    (45015, "fallback"), (45047, "fallback"), (43101, "fallback"), (47003, "fallback"),
    (40037, "fallback"), (43004, "unreachable"), (40003, "unreachable"),
    (40001, "retry"), (42001, "retry"), (40014, "retry"), (45009, "retry"), (-1, "retry"),
    (99999, "retry"),
])
def test_each_errcode_has_its_outcome(errcode: int, outcome: str) -> None:
    classified_as = classified(errcode)
    assert classified_as.outcome == outcome
    assert classified_as.code == str(errcode)  # the ledger keeps WeChat's own code
    assert classified_as.detail


def test_the_daily_quota_waits_for_midnight_in_china() -> None:
    # 23:59:00 in Beijing is 15:59:00 UTC: a minute to go.
    moment = datetime.datetime(2025, 3, 21, 15, 59, tzinfo=datetime.timezone.utc).timestamp()
    assert classified(45009, now=moment).retry_after == 60
    assert classified(-1).retry_after is None


def test_the_chat_gives_up_on_what_the_notices_give_up() -> None:
    # The replies in a user's turn and the notices read the same table.
    assert PERMANENT_ERRORS == {code for code, (outcome, _) in ERRCODES.items()
                                if outcome in ("fallback", "unreachable")}
    assert {45015, 45047, 43004, 40003} <= PERMANENT_ERRORS
    assert not PERMANENT_ERRORS & {-1, 40001, 42001, 45009}


# Templates' data ------------------------------------------------------------------------


def test_the_default_keys_read() -> None:
    assert template_keys(WeChatSettings().subscribe_template_keys) == (
        ("character_string1", "reference"), ("thing2", "status"), ("thing3", "city"),
        ("date4", "date"))
    assert template_keys(WeChatSettings().template_keys) == template_keys(
        WeChatSettings().subscribe_template_keys)


@pytest.mark.parametrize(("spec", "named"), [
    ("thing2=town", "thing2=town"), ("2thing=city", "2thing=city"), ("", "no keys"),
    ("amount3=reference", "amount3"), ("thing2", "thing2"),
])
def test_a_wrong_keys_setting_names_its_part(spec: str, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        template_keys(spec)


def test_card_ready_data_within_the_rules() -> None:
    data = template_data(WeChatSettings().subscribe_template_keys, notice())
    assert data == {"character_string1": {"value": "SC-7K2P-Q9XM"},
                    "thing2": {"value": "新社保卡已可领取"}, "thing3": {"value": "上海"},
                    "date4": {"value": "2025年3月21日"}}
    # The local WeChat server's rules, written apart from the channel's, agree.
    assert data_refusal(KEYS, data) == ""


def test_long_values_cut_deliberately() -> None:
    city = "新疆维吾尔自治区伊犁哈萨克自治州奎屯市社会保险事业管理局"
    data = template_data("thing3=city,character_string1=reference",
                         notice(city=city, reference="SC-" + "X" * 40 + " 补办"))
    assert data["thing3"]["value"] == city[:19] + "…"
    assert len(data["thing3"]["value"]) == 20
    assert data["character_string1"]["value"] == "SC-" + "X" * 29  # 32, ASCII only
    assert data_refusal(("thing3", "character_string1"), data) == ""
    assert data_refusal(("thing3",), {"thing3": {"value": city}}) != ""  # uncut: 47003


def test_english_and_the_lapse_reminder() -> None:
    english = template_data("thing2=status", notice(language="en"))
    assert english == {"thing2": {"value": "New card ready"}}
    lapse = template_data("thing2=status,date4=date",
                          notice(kind="lapse_reminder", lapses_on="2025-04-02"))
    assert lapse == {"thing2": {"value": "临时挂失即将失效"}, "date4": {"value": "2025年4月2日"}}
    assert all(len(value["value"]) <= 20 for value in (*english.values(), *lapse.values()))


def test_missing_values() -> None:
    # A card is ready the day its notice goes out, if the card service did not say.
    today = datetime.date(2025, 5, 6)
    assert template_data("date4=date", notice(ready_on=""), today) == {
        "date4": {"value": "2025年5月6日"}}
    # A lapse date is never guessed.
    with pytest.raises(ValueError, match="date4"):
        template_data("date4=date", notice(kind="lapse_reminder"))
    with pytest.raises(ValueError, match="thing3"):
        template_data("thing3=city", notice(city=""))
    with pytest.raises(ValueError, match="kind"):
        template_data("thing2=status", notice(kind="birthday"))


def test_shaping_by_type() -> None:
    assert shaped("phrase5", "已可领取 ready") == "已可领取"
    assert shaped("thing9", "line one\nline two") == "line one line two"
    with pytest.raises(ValueError):
        shaped("date4", "21/03/2025")
    with pytest.raises(ValueError):
        shaped("character_string1", "补办")  # nothing of it is allowed


# The subscription page and its link ------------------------------------------------------


def test_js_sdk_signature_leaves_the_fragment_out() -> None:
    assert js_signature("t", "n", "1", "https://a.cn/p?x=1#top") == \
        js_signature("t", "n", "1", "https://a.cn/p?x=1")
    assert js_signature("t", "n", "1", "https://a.cn/p?x=1") != \
        js_signature("t", "n", "1", "https://a.cn/p?x=2")


def test_the_page_token_names_the_user_without_their_openid() -> None:
    token = page_token(config(), OPENID, "card_ready")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert OPENID not in token and OPENID not in json.dumps(claims)
    assert claims["sub"] == subscriber(config(), OPENID) != subscriber(config(), OPENID + "x")
    assert page_kind(config(), token) == "card_ready"
    # Another account's secret, an edited token, one a day old: none opens the page.
    assert page_kind(config(app_secret="another"), token) is None
    assert page_kind(config(), token[:-2] + ("AA" if token[-2:] != "AA" else "BB")) is None
    old = page_token(config(), OPENID, "card_ready", now=time.time() - PAGE_TOKEN_SECONDS - 1)
    assert page_kind(config(), old) is None


def test_the_offer_links_to_the_page() -> None:
    offer = {"reference": "SC-7K2P-Q9XM", "kind": "card_ready"}
    text = offer_text(config(), OPENID, offer)
    assert text is not None and "允许" in text and OPENID not in text
    link = re.search(r'<a href="([^"]+)">', text)
    assert link and link.group(1).startswith("https://bot.example.cn/webhooks/wechat/subscribe?t=")
    assert page_kind(config(), link.group(1).split("?t=")[1]) == "card_ready"
    assert "allow" in (offer_text(config(), OPENID, {**offer, "language": "en"}) or "")
    # Nothing to subscribe to, or no address to reach the page at: no offer.
    assert offer_text(config(subscribe_template_id=""), OPENID, offer) is None
    assert offer_text(config(public_url=""), OPENID, offer) is None


def test_the_page_is_signed_for_its_own_address() -> None:
    url = "https://bot.example.cn/webhooks/wechat/subscribe?t=abc"
    status, page, headers = subscribe_page(config(), "card_ready", "TICKET", url, now=1_700_000_000)
    assert status == 200
    assert f'<wx-open-subscribe template="{TEMPLATE}"' in page
    assert "https://res.wx.qq.com/open/js/jweixin-1.6.0.js" in page
    assert "社保卡" in page and "card" in page  # both languages
    found = re.search(r"var page = (\{.*?\});\n", page)
    assert found
    wx = json.loads(found.group(1))
    assert wx["appId"] == "wx-unit" and wx["timestamp"] == 1_700_000_000
    assert wx["signature"] == js_signature("TICKET", wx["nonceStr"], "1700000000", url)
    assert headers["Referrer-Policy"] == "no-referrer"  # the token stays here
    nonce = re.search(r"'nonce-([^']+)'", headers["Content-Security-Policy"])
    assert nonce and page.count(f'nonce="{nonce.group(1)}"') == 3


def test_the_page_refuses_or_asks_to_wait() -> None:
    url = "https://bot.example.cn/webhooks/wechat/subscribe?t=x"
    expired = subscribe_page(config(), None, "TICKET", url)
    busy = subscribe_page(config(), "card_ready", None, url)
    assert (expired[0], busy[0]) == (403, 503)
    for _, page, _ in (expired, busy):
        assert "wx-open-subscribe" not in page and "wx.config" not in page


def test_a_template_id_cannot_break_out_of_the_page() -> None:
    status, page, _ = subscribe_page(config(subscribe_template_id='x"><script>alert(1)</script>'),
                                     "card_ready", "T", "https://a.cn/")
    assert status == 200 and "<script>alert(1)" not in page


# Subscription events ---------------------------------------------------------------------


def test_a_popup_event_is_choices_never_a_message() -> None:
    xml = subscription_event_xml(OPENID, [(TEMPLATE, "accept"), ("other", "reject")])
    items: list[dict[str, str]] = []
    message = Inbound.from_fields(parse_xml(xml, items), items)
    assert message.text is None and message.event == "subscribe_msg_popup_event"
    assert message.choices == ((TEMPLATE, "accept"), ("other", "reject"))
    # Messages and other events carry no choices, whatever they contain.
    for other in (text_xml(OPENID, "<List><TemplateId>x</TemplateId></List>"),
                  event_xml(OPENID)):
        found: list[dict[str, str]] = []
        assert Inbound.from_fields(parse_xml(other, found), found).choices == ()


def test_acceptances_counted_one_send_each(redis_url: str) -> None:
    account = SafeModeAccount(TOKEN, new_aes_key(), "wx-unit")
    channel = WeChatInput(config(redis_url=redis_url, encoding_aes_key=account.aes_key))
    key = f"wechat:wx-unit:subscribed:{subscriber(channel.config, OPENID)}"

    async def never_called(_: object) -> None:
        raise AssertionError("an event must not reach Rasa")

    async def push(xml: bytes) -> tuple[int, str]:
        return await channel.receive(*account.push(xml), never_called)

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {"answers": [
            await push(subscription_event_xml(OPENID, [(TEMPLATE, "accept")], create_time=1)),
            await push(subscription_event_xml(OPENID, [(TEMPLATE, "accept"), ("other", "accept")],
                                              create_time=2)),
            await push(subscription_event_xml(OPENID, [(TEMPLATE, "reject")], create_time=3))]}
        seen["count"] = await channel.api.acceptances(OPENID)
        seen["ttl"] = redis.Redis.from_url(redis_url).ttl(key)
        seen["taken"] = [await channel.api.take_acceptance(OPENID) for _ in range(3)]
        await channel.api.accepted(OPENID)
        await push(subscription_event_xml(OPENID, [(TEMPLATE, "reject")],
                                          event="subscribe_msg_change_event", create_time=4))
        seen["after turning off"] = await channel.api.acceptances(OPENID)
        await channel.api.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen["answers"] == [(200, "success")] * 3
    assert seen["count"] == 2  # two acceptances of ours; the other template's and a refusal not
    assert SUBSCRIPTION_DAYS * 86400 - 60 < int(str(seen["ttl"])) <= SUBSCRIPTION_DAYS * 86400
    assert seen["taken"] == [True, True, False]
    assert seen["after turning off"] == 0  # turned off in WeChat's settings: none left
    assert OPENID.encode() not in b"".join(redis.Redis.from_url(redis_url).keys("*"))


# Paths that need nothing of WeChat's -----------------------------------------------------


@pytest.mark.parametrize(("path", "overrides", "detail"), [
    ("subscription", {"subscribe_template_id": ""}, "WECHAT_SUBSCRIBE_TEMPLATE_ID"),
    ("template", {"template_id": ""}, "WECHAT_TEMPLATE_ID"),
    ("template", {"template_id": "t", "template_keys": "thing2=town"}, "template data"),
])
def test_not_configured_falls_back_without_a_call(path: str, overrides: dict[str, str],
                                                  detail: str) -> None:
    # base_url and Redis answer nowhere: any call would come back as "retry".
    outcome = asyncio.run(WeChatInput(config(**overrides)).deliver_notice(OPENID, notice(path)))
    assert outcome.outcome == "fallback" and detail in outcome.detail, outcome


def test_a_lapse_without_its_date_falls_back_without_a_call() -> None:
    outcome = asyncio.run(WeChatInput(config()).deliver_notice(
        OPENID, notice("subscription", kind="lapse_reminder")))
    assert outcome.outcome == "fallback" and "date4" in outcome.detail


def test_wechat_unreachable_is_a_retry() -> None:
    outcome = asyncio.run(WeChatInput(config()).deliver_notice(OPENID, notice("customer_service")))
    assert outcome.outcome == "retry"


def test_the_paths_in_order() -> None:
    assert WeChatInput.NOTICE_PATHS == ("customer_service", "subscription", "template")
