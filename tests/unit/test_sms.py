"""The SMS adapter's parts that need no network: Aliyun's RPC signature (the documented
vectors, and properties against an implementation written apart from ours), what each
answer means for a notice, and the values shaped to the templates' rules."""

from __future__ import annotations

import datetime as dt
import re
import string
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import notices
from bot.rules import regions
from bot.settings import Settings
from card_service import sms
from tests.testkit.sms_server import aliyun_signature

# Aliyun SMS's signature document (help.aliyun.com/document_detail/101343 and 56189): a
# SendSms request by GET, AccessKey testId / testSecret.
SMS_DOC_PARAMS = {
    "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
    "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0", "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}', "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
# The RPC signature document's example (DescribeRegions of ECS, AccessKey testid/testsecret).
RPC_DOC_PARAMS = {
    "TimeStamp": "2016-02-23T12:46:24Z", "Format": "XML", "AccessKeyId": "testid",
    "Action": "DescribeRegions", "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "Version": "2014-05-26",
    "SignatureVersion": "1.0",
}
VARIABLES = {"reference": "SC-7K3F-9Q2M", "city": "上海", "ready_on": "2026-12-05",
             "lapses_on": "2026-12-10"}
# Letters, digits, CJK, and every character the encoding treats specially.
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


# The signature --------------------------------------------------------------------------


def test_the_sms_documents_signature_example() -> None:
    to_sign = sms.string_to_sign("GET", SMS_DOC_PARAMS)
    assert to_sign.startswith("GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML")
    assert "SignName%3D%25E9%2598%25BF" in to_sign  # UTF-8, encoded twice
    assert "Timestamp%3D2017-07-12T02%253A42%253A19Z" in to_sign
    assert sms.signature("testSecret", "GET", SMS_DOC_PARAMS) == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_the_rpc_documents_signature_example() -> None:
    assert sms.signature("testsecret", "GET", RPC_DOC_PARAMS) == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_the_signature_param_itself_is_not_signed() -> None:
    with_one = {**SMS_DOC_PARAMS, "Signature": "anything"}
    assert sms.signature("testSecret", "GET", with_one) == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


@given(TEXT)
def test_percent_encoding_keeps_only_the_unreserved_and_round_trips(text: str) -> None:
    encoded = sms.percent_encode(text)
    assert re.fullmatch(r"(?:[A-Za-z0-9\-_.~]|%[0-9A-F]{2})*", encoded)
    assert "+" not in encoded and unquote(encoded) == text


@given(st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=12), TEXT,
                       min_size=1, max_size=8), st.sampled_from(["GET", "POST"]))
def test_our_signature_agrees_with_one_written_apart(params: dict[str, str], method: str) -> None:
    ours = sms.signature("s3cret/+*~ 社", method, params)
    assert ours == aliyun_signature("s3cret/+*~ 社", method, params)


@given(st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=12), TEXT,
                       min_size=1, max_size=8))
@settings(max_examples=50)
def test_order_does_not_matter_and_every_part_does(params: dict[str, str]) -> None:
    reordered = dict(reversed(list(params.items())))
    base = sms.signature("k", "POST", params)
    assert sms.signature("k", "POST", reordered) == base
    assert sms.signature("k2", "POST", params) != base
    assert sms.signature("k", "GET", params) != base
    name = next(iter(params))
    assert sms.signature("k", "POST", {**params, name: params[name] + "x"}) != base


def test_a_signed_request_carries_every_common_parameter() -> None:
    config = sms.SmsConfig("aliyun", "AKID", "secret", "社保卡服务", {"card_ready": "SMS_1"})
    moment = dt.datetime(2026, 12, 5, 9, 30, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    params = sms.signed(config, "POST", {"PhoneNumbers": "13800138000"}, moment, "n-1")
    assert params["Timestamp"] == "2026-12-05T01:30:01Z"
    assert {name: params[name] for name in ("AccessKeyId", "Action", "Format", "RegionId",
            "SignatureMethod", "SignatureNonce", "SignatureVersion", "Version")} == {
        "AccessKeyId": "AKID", "Action": "SendSms", "Format": "JSON", "RegionId": "cn-hangzhou",
        "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "n-1", "SignatureVersion": "1.0",
        "Version": "2017-05-25"}
    assert params["Signature"] == aliyun_signature("secret", "POST", params)


# What an answer means --------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code", "outcome"), [
    (200, "OK", notices.SEEN),
    (200, "isv.BUSINESS_LIMIT_CONTROL", notices.RETRY),
    (400, "Throttling.User", notices.RETRY),
    (400, "SignatureNonceUsed", notices.RETRY),
    (500, "InternalError", notices.RETRY),
    (503, "", notices.RETRY),
    (429, "", notices.RETRY),
    (200, "isv.MOBILE_NUMBER_ILLEGAL", notices.UNREACHABLE),
    (200, "isv.SMS_TEMPLATE_ILLEGAL", notices.FALLBACK),
    (200, "isv.SMS_SIGNATURE_ILLEGAL", notices.FALLBACK),
    (200, "isv.TEMPLATE_MISSING_PARAMETERS", notices.FALLBACK),
    (200, "isv.AMOUNT_NOT_ENOUGH", notices.FALLBACK),
    (400, "SignatureDoesNotMatch", notices.FALLBACK),
    (400, "InvalidTimeStamp.Expired", notices.FALLBACK),
    (404, "InvalidAccessKeyId.NotFound", notices.FALLBACK),
    (200, "isv.SOMETHING_NEW", notices.FALLBACK),
    (403, "", notices.FALLBACK),
])
def test_each_answer_is_classified(status: int, code: str, outcome: str) -> None:
    found = sms.classify(status, {"Code": code, "Message": "m", "BizId": "1^0"})
    assert found.outcome == outcome
    assert found.code == ("" if outcome == notices.SEEN else code or f"http_{status}")


def test_problems_only_an_operator_can_fix_are_told_apart() -> None:
    for code in ("isv.SMS_TEMPLATE_ILLEGAL", "SignatureDoesNotMatch", "isv.AMOUNT_NOT_ENOUGH",
                 "isv.DAY_LIMIT_CONTROL", "isv.SOMETHING_NEW"):
        assert sms.operator_problem(sms.classify(200, {"Code": code})), code
    for code in ("OK", "isv.BUSINESS_LIMIT_CONTROL", "isv.MOBILE_NUMBER_ILLEGAL", "Throttling"):
        assert not sms.operator_problem(sms.classify(200, {"Code": code})), code
    assert "SMS_ACCESS_KEY_SECRET" in sms.classify(400, {"Code": "SignatureDoesNotMatch"}).detail


def test_waits_come_from_the_provider_else_from_its_rules() -> None:
    assert sms.classify(200, {"Code": "isv.BUSINESS_LIMIT_CONTROL"}).retry_after == 60.0
    assert sms.classify(503, {"Code": "ServiceUnavailable"}, retry_after=7).retry_after == 7
    assert sms.classify(502, {}).retry_after is None


def test_a_number_in_the_providers_message_is_not_passed_on() -> None:
    found = sms.classify(200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL",
                               "Message": "非法手机号 13800138000"})
    assert "13800138000" not in found.detail and "13*******00" in found.detail


# What is sent ----------------------------------------------------------------------------


def test_the_proposed_templates_use_exactly_the_variables_sent() -> None:
    for kind, text in sms.PROPOSED_TEMPLATES.items():
        used = re.findall(r"\$\{(\w+)\}", text)
        assert sorted(used) == sorted(sms.TEMPLATE_VARIABLES[kind])  # each once
        assert not set("【】[]") & set(text)  # brackets belong to the sign name


def test_values_are_shaped_to_the_variable_rules() -> None:
    card = sms.template_param("card_ready", {**VARIABLES, "city": "Shanghai"})
    assert card == {"reference": "SC7K3F9Q2M", "city": "上海", "ready_on": "2026-12-05"}
    lapse = sms.template_param("lapse_reminder", {**VARIABLES, "city": "China (national default)"})
    assert lapse == {"reference": "SC7K3F9Q2M", "city": "当地", "lapses_on": "2026-12-10"}
    # card_service/notices.py sends no city for the national default.
    assert sms.template_param("card_ready", {**VARIABLES, "city": ""})["city"] == "当地"
    odd = sms.template_param("card_ready", {**VARIABLES, "city": "某某自治州https://x.cn/长名" * 3})
    assert len(odd["city"]) == sms.MAX_VARIABLE_CHARS and "." not in odd["city"]


def test_each_message_costs_two_segments_for_every_city_we_know() -> None:
    """A long SMS is billed per 67 characters, the sign name's 【】 included; a sign name of
    up to 8 characters keeps both messages to two."""
    for kind, text in sms.PROPOSED_TEMPLATES.items():
        for region in regions.all_regions().values():
            values = sms.template_param(kind, {**VARIABLES, "city": region.name_en})
            shown = "【八个字的签名名称】" + text
            for name, value in values.items():
                shown = shown.replace("${" + name + "}", value)
            assert 70 < len(shown) <= 2 * 67, (kind, region.key, len(shown))


def test_every_city_we_know_fits_in_both_languages() -> None:
    for region in regions.all_regions().values():
        for name in (region.name_zh, region.name_en):
            city = sms.template_param("card_ready", {**VARIABLES, "city": name})["city"]
            assert 1 <= len(city) <= sms.MAX_VARIABLE_CHARS
            assert city == (region.name_zh if region.known else sms.LOCAL_PLACE)


@pytest.mark.parametrize(("changed", "message"), [
    ({"reference": ""}, "reference: required"),
    ({"reference": "SC-7K3F"}, "reference: not a reference (length)"),
    ({"ready_on": "5 December"}, "ready_on: not a date as YYYY-MM-DD: '5 December'"),
])
def test_a_value_that_cannot_be_sent_is_named(changed: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        sms.template_param("card_ready", {**VARIABLES, **changed})
    with pytest.raises(ValueError, match="kind: 'birthday'"):
        sms.template_param("birthday", VARIABLES)


@pytest.mark.parametrize("stored", ["13800138000", "+8613800138000", "+86 138-0013-8000",
                                    "008613800138000"])
def test_the_stored_number_is_sent_as_eleven_digits(stored: str) -> None:
    assert sms.mainland_number(stored) == "13800138000"
    assert sms.masked_phone(stored) == "13*******00"


@pytest.mark.parametrize("stored", ["", "010 12345678", "+44 7700 900123", "1380013800"])
def test_a_number_that_is_not_a_mainland_mobile_is_refused(stored: str) -> None:
    assert sms.mainland_number(stored) is None


# Settings --------------------------------------------------------------------------------


def test_sms_is_off_unless_a_provider_is_chosen() -> None:
    assert sms.make_sms(Settings.from_env({})) is None
    assert Settings.from_env({}).sms.api_base == "https://dysmsapi.aliyuncs.com"


def test_a_chosen_provider_must_be_set_up_and_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="SMS_ACCESS_KEY_SECRET, SMS_SIGN_NAME"):
        sms.make_sms(Settings.from_env({"SMS_PROVIDER": "aliyun", "SMS_ACCESS_KEY_ID": "AK",
                                        "SMS_TEMPLATE_CARD_READY": "SMS_1"}))
    with pytest.raises(ValueError, match="SMS_PROVIDER must be empty"):
        Settings.from_env({"SMS_PROVIDER": "tencent"})


def test_a_configured_provider_reads_every_variable_and_keeps_the_secret_out_of_reprs() -> None:
    settings_ = Settings.from_env({
        "SMS_PROVIDER": "aliyun", "SMS_ACCESS_KEY_ID": " AK ", "SMS_ACCESS_KEY_SECRET": "s3cr3t",
        "SMS_SIGN_NAME": "社保卡服务", "SMS_TEMPLATE_CARD_READY": "SMS_1",
        "SMS_TEMPLATE_LAPSE_REMINDER": "SMS_2", "SMS_API_BASE": "http://127.0.0.1:9/"})
    adapter = sms.make_sms(settings_)
    assert adapter is not None and adapter.config.configured
    assert adapter.config.templates == {"card_ready": "SMS_1", "lapse_reminder": "SMS_2"}
    assert (adapter.config.access_key_id, adapter.config.api_base) == ("AK", "http://127.0.0.1:9")
    for text in (repr(settings_), repr(adapter.config), repr(adapter)):
        assert "s3cr3t" not in text
