"""The SMS path over HTTP against a local Aliyun SMS that checks what Aliyun checks: the
signature, the clock, the nonce, the registered sign name and templates, the number and the
flow control per number. Each answer becomes the outcome the card service acts on, and no
log line holds the phone number whole."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bot import notices
from bot.settings import Settings
from card_service import sms
from tests.testkit.processes import free_port
from tests.testkit.sms_server import AliyunSmsServer

pytestmark = pytest.mark.integration

CARD_READY_CODE, LAPSE_CODE = "SMS_480110001", "SMS_480110002"
PHONE = "+86 138 0013 8000"  # as the guardian gave it, and as the card service stores it
NUMBER = "13800138000"
VARIABLES = {"reference": "SC-7K3F-9Q2M", "city": "上海", "ready_on": "2026-12-05",
             "lapses_on": "2026-12-10"}
OUT_ID = "SC-7K3F-9Q2M:ready_for_collection"


@pytest.fixture
def server() -> Iterator[AliyunSmsServer]:
    """Aliyun as a deployer leaves it: the sign name and our two templates approved."""
    local = AliyunSmsServer(templates={CARD_READY_CODE: sms.PROPOSED_TEMPLATES["card_ready"],
                                       LAPSE_CODE: sms.PROPOSED_TEMPLATES["lapse_reminder"]})
    local.start()
    yield local
    local.stop()


@pytest.fixture
def plain_records() -> Iterator[None]:
    """Log records as made before bot/logs.py masks them: what our code itself writes."""
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    yield
    logging.setLogRecordFactory(factory)


def adapter(server: AliyunSmsServer, **env: str) -> sms.AliyunSms:
    """The adapter as the card service makes it, from its settings."""
    variables = {**server.env(card_ready=CARD_READY_CODE, lapse_reminder=LAPSE_CODE), **env}
    made = sms.make_sms(Settings.from_env(variables))
    assert made is not None
    return made


def send(sender: sms.AliyunSms, phone: str = PHONE, kind: str = "card_ready",
         **changed: str) -> notices.Outcome:
    return asyncio.run(sender.send(phone, kind, {**VARIABLES, **changed}, OUT_ID))


def test_an_accepted_message_is_seen_and_reads_as_registered(server: AliyunSmsServer) -> None:
    outcome = send(adapter(server))
    assert outcome.outcome == notices.SEEN and outcome.code == ""
    assert "BizId" in outcome.detail
    [sent] = server.sent_to(NUMBER)
    assert (sent.template_code, sent.out_id) == (CARD_READY_CODE, OUT_ID)
    assert sent.params == {"reference": "SC7K3F9Q2M", "city": "上海", "ready_on": "2026-12-05"}
    assert sent.text.startswith("【社保卡服务】您为孩子补办的社保卡已制好（受理编号SC7K3F9Q2M，")
    assert "请到上海原开卡的合作银行网点领取" in sent.text
    # A form body over POST: nothing personal in a URL that proxies log.
    [(method, body)] = server.requests
    assert method == "POST" and b"PhoneNumbers=13800138000" in body


def test_the_lapse_reminder_names_the_place_in_chinese(server: AliyunSmsServer) -> None:
    outcome = send(adapter(server), kind="lapse_reminder", city="Beijing")
    assert outcome.outcome == notices.SEEN
    [sent] = server.sent_to(NUMBER)
    assert sent.template_code == LAPSE_CODE
    assert "有效期至2026-12-10。" in sent.text and "到北京的社保卡服务网点" in sent.text


def test_a_wrong_secret_is_refused_and_told_to_the_operator(
        server: AliyunSmsServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="card_service.sms"):
        outcome = send(adapter(server, SMS_ACCESS_KEY_SECRET="not-the-secret"))
    assert (outcome.outcome, outcome.code) == (notices.FALLBACK, "SignatureDoesNotMatch")
    assert "SMS_ACCESS_KEY_SECRET" in outcome.detail
    assert server.sent == [] and server.refused == ["SignatureDoesNotMatch"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "SignatureDoesNotMatch" in errors[0].getMessage()


def test_an_unknown_access_key_is_refused(server: AliyunSmsServer) -> None:
    outcome = send(adapter(server, SMS_ACCESS_KEY_ID="LTAI-nobody"))
    assert (outcome.outcome, outcome.code) == (notices.FALLBACK, "InvalidAccessKeyId.NotFound")


def test_a_replayed_request_is_refused_and_a_changed_one_fails_its_signature(
        server: AliyunSmsServer) -> None:
    assert send(adapter(server)).outcome == notices.SEEN
    [(_, body)] = server.requests
    url = server.url + "/"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    replayed = requests.post(url, data=body, headers=headers, timeout=5)
    assert (replayed.status_code, replayed.json()["Code"]) == (400, "SignatureNonceUsed")
    changed = body.replace(b"13800138000", b"13900139000").replace(b"SignatureNonce=",
                                                                   b"SignatureNonce=x")
    forged = requests.post(url, data=changed, headers=headers, timeout=5)
    assert (forged.status_code, forged.json()["Code"]) == (400, "SignatureDoesNotMatch")
    assert len(server.sent) == 1


def test_our_own_nonce_reused_is_worth_a_retry(server: AliyunSmsServer) -> None:
    config = adapter(server).config
    fixed = sms.AliyunSms(config, nonce=lambda: "the-same-nonce")
    assert send(fixed).outcome == notices.SEEN
    again = send(fixed, phone="13900139000")
    assert (again.outcome, again.code) == (notices.RETRY, "SignatureNonceUsed")


def test_a_clock_more_than_fifteen_minutes_off_is_refused(server: AliyunSmsServer) -> None:
    sender = adapter(server)
    server.advance(14 * 60)
    assert send(sender).outcome == notices.SEEN
    server.advance(2 * 60)
    outcome = send(sender, phone="13900139000")
    assert (outcome.outcome, outcome.code) == (notices.FALLBACK, "InvalidTimeStamp.Expired")
    assert "clock" in outcome.detail


def test_the_limit_per_number_is_a_retry_after_a_minute(server: AliyunSmsServer) -> None:
    sender = adapter(server)
    assert send(sender).outcome == notices.SEEN
    limited = send(sender, kind="lapse_reminder")
    assert (limited.outcome, limited.code) == (notices.RETRY, "isv.BUSINESS_LIMIT_CONTROL")
    assert limited.retry_after == 60.0
    assert send(sender, phone="13900139000").outcome == notices.SEEN  # another number is free
    server.advance(61)
    assert send(sender, kind="lapse_reminder").outcome == notices.SEEN
    assert [s.template_code for s in server.sent_to(NUMBER)] == [CARD_READY_CODE, LAPSE_CODE]


def test_a_number_that_is_no_mobile_is_unreachable_without_a_request(
        server: AliyunSmsServer) -> None:
    outcome = send(adapter(server), phone="010 1234 5678")
    assert (outcome.outcome, outcome.code) == (notices.UNREACHABLE, "invalid_number")
    assert server.requests == []


def test_the_servers_own_number_check_and_its_code(server: AliyunSmsServer) -> None:
    body = signed_body(server, PhoneNumbers="12345")
    answer = requests.post(server.url + "/", data=body, timeout=5)
    assert (answer.status_code, answer.json()["Code"]) == (200, "isv.MOBILE_NUMBER_ILLEGAL")
    # An illegal number Aliyun finds (one our check let through) reads the same.
    server.fail_next(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
    assert send(adapter(server)).outcome == notices.UNREACHABLE


@pytest.mark.parametrize(("env", "registered", "code"), [
    ({"SMS_TEMPLATE_CARD_READY": "SMS_000000"}, None, "isv.SMS_TEMPLATE_ILLEGAL"),
    ({"SMS_SIGN_NAME": "别人的签名"}, None, "isv.SMS_SIGNATURE_ILLEGAL"),
    ({}, "受理编号${reference}的卡已可在${city}领取，${name}请带证件。",
     "isv.TEMPLATE_MISSING_PARAMETERS"),
])
def test_what_the_deployer_registered_wrong_is_an_operator_problem(
        server: AliyunSmsServer, caplog: pytest.LogCaptureFixture, env: dict[str, str],
        registered: str | None, code: str) -> None:
    if registered:
        server.templates[CARD_READY_CODE] = registered
    with caplog.at_level(logging.INFO, logger="card_service.sms"):
        outcome = send(adapter(server, **env))
    assert (outcome.outcome, outcome.code) == (notices.FALLBACK, code)
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert server.sent == []


def test_an_empty_balance_is_an_operator_problem(server: AliyunSmsServer) -> None:
    server.balance = 0
    outcome = send(adapter(server))
    assert (outcome.outcome, outcome.code) == (notices.FALLBACK, "isv.AMOUNT_NOT_ENOUGH")


def test_a_kind_without_a_template_is_not_sent(server: AliyunSmsServer) -> None:
    sender = adapter(server, SMS_TEMPLATE_LAPSE_REMINDER="")
    outcome = send(sender, kind="lapse_reminder")
    assert (outcome.outcome, outcome.code) == (notices.FALLBACK, "template_not_configured")
    assert server.requests == []


@pytest.mark.parametrize(("status", "code"), [(503, "ServiceUnavailable"),
                                              (400, "Throttling.User"), (500, "isp.SYSTEM_ERROR")])
def test_server_trouble_and_throttling_are_retried(server: AliyunSmsServer, status: int,
                                                   code: str) -> None:
    server.fail_next(status, code)
    sender = adapter(server)
    assert (send(sender).outcome, server.refused) == (notices.RETRY, [code])
    assert send(sender).outcome == notices.SEEN


def test_no_answer_and_no_server_are_retried() -> None:
    closed = sms.SmsConfig("aliyun", "AK", "s", "社保卡服务", {"card_ready": "SMS_1"},
                           api_base=f"http://127.0.0.1:{free_port()}")
    refused = send(sms.AliyunSms(closed))
    assert (refused.outcome, refused.code) == (notices.RETRY, "network")
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        mute = sms.SmsConfig("aliyun", "AK", "s", "社保卡服务", {"card_ready": "SMS_1"},
                             api_base=f"http://127.0.0.1:{port}", timeout=0.5)
        waited = send(sms.AliyunSms(mute))
    assert (waited.outcome, waited.code) == (notices.RETRY, "timeout")


def test_no_log_line_or_outcome_holds_the_number_whole(
        server: AliyunSmsServer, caplog: pytest.LogCaptureFixture, plain_records: None) -> None:
    outcomes = []
    with caplog.at_level(logging.DEBUG):
        outcomes.append(send(adapter(server)))  # accepted
        outcomes.append(send(adapter(server)))  # flow control
        outcomes.append(send(adapter(server, SMS_ACCESS_KEY_SECRET="wrong")))
        outcomes.append(send(adapter(server), phone="+86 139 0013 9000", reference="bad"))
        outcomes.append(send(adapter(server), phone="010 1234 5678"))
        server.fail_next(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号 13800138000")
        outcomes.append(send(adapter(server), phone="13800138000", kind="lapse_reminder"))
    assert [o.outcome for o in outcomes] == [
        notices.SEEN, notices.RETRY, notices.FALLBACK, notices.FALLBACK, notices.UNREACHABLE,
        notices.UNREACHABLE]
    lines = [record.getMessage() for record in caplog.records]
    assert any("13*******00" in line for line in lines)
    written = " ".join([*lines, *(o.detail for o in outcomes)])
    digits_only = "".join(ch for ch in written if ch.isdigit() or ch == " ")
    for whole in ("13800138000", "13900139000", "01012345678"):
        assert whole not in written.replace(" ", "").replace("-", "")
        assert whole not in digits_only.replace(" ", "")


def signed_body(server: AliyunSmsServer, **action: str) -> dict[str, Any]:
    """A SendSms request signed as Aliyun documents it, with the server's own key."""
    from tests.testkit.sms_server import aliyun_signature

    params = {"AccessKeyId": server.access_key_id, "Action": "SendSms", "Format": "JSON",
              "RegionId": "cn-hangzhou", "SignatureMethod": "HMAC-SHA1",
              "SignatureNonce": "nonce-for-a-direct-call", "SignatureVersion": "1.0",
              "Timestamp": server.now().strftime("%Y-%m-%dT%H:%M:%SZ"), "Version": "2017-05-25",
              "SignName": server.sign_names[0], "TemplateCode": CARD_READY_CODE,
              "TemplateParam": '{"reference":"SC7K3F9Q2M","city":"上海","ready_on":"2026-12-05"}',
              **action}
    params["Signature"] = aliyun_signature(server.access_key_secret, "POST", params)
    return params
