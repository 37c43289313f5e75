"""Whole conversations over the REST channel against the running stack: real Rasa with the
trained model, real action server, real card service, real Redis."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import requests

from tests.testkit.people import child_id, guardian_id, id_number
from tests.testkit.stack import Stack, has_cjk, running_stack, texts

pytestmark = pytest.mark.integration
REFERENCE = re.compile(r"SC-[0-9A-Z]{4}-[0-9A-Z]{4}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("conversations")) as running:
        yield running


class Guardian:
    """One person typing into the chat, counting turns."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.sender = f"guardian-{uuid.uuid4().hex[:10]}"
        self.turns = 0

    def says(self, message: str) -> str:
        self.turns += 1
        return texts(self.stack.say(self.sender, message))

    def slot(self, name: str) -> object:
        return self.stack.tracker(self.sender)["slots"].get(name)


def staff(stack: Stack, method: str, path: str, body: dict | None = None) -> requests.Response:
    return requests.request(
        method, f"{stack.settings.card_service_url}{path}", json=body, timeout=10,
        headers={"Authorization": f"Bearer {stack.settings.staff_token}"})


def reports(stack: Stack) -> list[dict]:
    response = staff(stack, "GET", "/v1/loss-reports?limit=500")
    assert response.ok, response.text
    return list(response.json()["reports"])


def test_full_english_report_one_thing_at_a_time(stack: Stack) -> None:
    child, guardian = child_id(age=9, sequence=101), guardian_id(sequence=102)
    user = Guardian(stack)
    assert "lost" in user.says("hi").lower() or True
    offer = user.says("my son lost his social security card")
    assert "block" in offer.lower() and not has_cjk(offer)
    assert "name" in user.says("yes").lower()
    assert "ID number" in user.says("Li Ming")
    assert "your full name" in user.says(child).lower()
    assert "your own ID" in user.says("Li Qiang")
    assert "relationship" in user.says(guardian).lower()
    assert "mobile" in user.says("I'm his father").lower()
    assert "city" in user.says("13800138000").lower()
    summary = user.says("Beijing")
    assert f"{child[:4]}**********{child[-4:]}" in summary and child not in summary
    assert "13*******00" in summary and "13800138000" not in summary
    filed = user.says("yes")
    reference = REFERENCE.search(filed)
    assert reference, filed
    assert "10 days" in filed  # Beijing's temporary report validity
    assert user.slot("reference_number") == reference.group()
    assert user.slot("child_id_number") is None and user.slot("phone_number") is None
    known = {r["reference"] for r in reports(stack)}
    assert reference.group() in known
    print(f"\nturns, one thing at a time (en): {user.turns}")


def test_full_chinese_report_given_all_at_once(stack: Stack) -> None:
    child, guardian = child_id(age=6, sequence=111), guardian_id(sequence=112)
    user = Guardian(stack)
    offer = user.says(f"我女儿的社保卡在成都丢了，身份证号{child}，我的手机13912345678")
    assert has_cjk(offer) and "挂失" in offer
    assert "姓名" in user.says("好的")
    assert "您（监护人）的姓名" in user.says("王小红")
    assert "身份证号" in user.says("王建国")
    assert "关系" in user.says(guardian)
    summary = user.says("我是孩子爸爸")
    assert "成都" in summary and "13*******78" in summary
    filed = user.says("对，提交")
    reference = REFERENCE.search(filed)
    assert reference, filed
    assert "7天" in filed  # Chengdu
    print(f"\nturns, everything at once (zh): {user.turns}")
    assert user.turns <= 7


@pytest.mark.parametrize(("message", "yes", "summary_words", "filed_words"), [
    ("孩子李娜的社保卡丢了，要挂失。孩子身份证{child}，我是她妈妈王芳，身份证{guardian}，"
     "手机{phone}，在上海。", "好的", ("李娜", "王芳", "母亲", "上海"), "5天"),
    ("My daughter Li Na lost her social security card, please report it. Her ID is {child}. "
     "I'm her mum Wang Fang, my ID is {guardian}, phone {phone}, we live in Shanghai.",
     "yes", ("Li Na", "Wang Fang", "Mother", "Shanghai"), "5 days"),
])
def test_all_seven_details_in_one_message_reach_the_summary_with_no_question(
        stack: Stack, message: str, yes: str, summary_words: tuple[str, ...],
        filed_words: str) -> None:
    child, guardian = child_id(age=11, sequence=141), guardian_id(age=38, sequence=142)
    phone = "13912345678"
    user = Guardian(stack)
    user.says(message.format(child=child, guardian=guardian, phone=phone))
    summary = user.says(yes)
    assert all(word in summary for word in summary_words), summary
    assert f"{child[:4]}**********{child[-4:]}" in summary and child not in summary
    assert f"{guardian[:4]}**********{guardian[-4:]}" in summary and guardian not in summary
    assert "13*******78" in summary and phone not in summary
    filed = user.says(yes)
    assert REFERENCE.search(filed) and filed_words in filed, filed
    assert user.turns == 3
    print(f"\nturns to a filed report, everything in one message: {user.turns}")
    # At rest: sealed, and once filed no whole number or name in the record.
    raw = redis.Redis.from_url(stack.settings.redis_url, decode_responses=True).get(
        f"cardbot:tracker:{user.sender}")
    record = stack.settings.vault().decrypt(raw, f"tracker:{user.sender}")
    for whole in (child, guardian, phone, *summary_words[:2]):
        assert whole not in record and whole not in raw, whole


@pytest.mark.parametrize(("words", "city_word"), [
    (("孩子社保卡丢了", "好的", "李娜", "王芳", "母亲", "13912345678"), "上海"),
    (("my son lost his social security card", "yes", "Li Ming", "Li Qiang", "dad",
      "13912345678"), "Shanghai"),
])
def test_the_city_the_child_was_registered_in_is_one_tap_away(
        stack: Stack, words: tuple[str, ...], city_word: str) -> None:
    opener, yes, child_name, guardian_name, relationship, phone = words
    shanghai_child = id_number(dt.date(2014, 5, 6), region="310101", sequence=151)
    user = Guardian(stack)
    for said in (opener, yes, child_name, shanghai_child, guardian_name,
                 guardian_id(sequence=152), relationship):
        user.says(said)
    asked = stack.say(user.sender, phone)
    city_question = asked[-1]
    assert city_word in city_question["text"]
    first = city_question["buttons"][0]
    assert first["title"] == city_word
    summary = user.says(first["payload"])  # the tap
    assert city_word in summary and "13*******78" in summary  # straight to the summary
    assert user.slot("city") == "上海"


@pytest.mark.parametrize(("message", "steps_word"), [
    ("我自己的社保卡丢了，我是成年人，怎么补办", "本人身份证"),
    ("I lost my own social security card, I'm an adult, how do I replace it", "own ID card"),
])
def test_an_adult_who_lost_their_own_card_gets_the_adult_steps_and_nothing_is_filed(
        stack: Stack, message: str, steps_word: str) -> None:
    before = len(reports(stack))
    user = Guardian(stack)
    reply = user.says(message)
    assert steps_word in reply and "12333" in reply, reply
    assert user.slot("requested_slot") is None and user.slot("child_id_number") is None
    assert len(reports(stack)) == before


def test_status_then_card_found_then_card_ready_unasked(stack: Stack) -> None:
    child, guardian = child_id(age=10, sequence=121), guardian_id(sequence=122)
    user = Guardian(stack)
    user.says(f"my kid lost her card in Shanghai, her ID is {child}, my phone is 13800138000")
    user.says("yes")
    for answer in ("Chen Yu", "Chen Gang", guardian, "father"):
        user.says(answer)
    reference = REFERENCE.search(user.says("yes")).group()  # type: ignore[union-attr]

    assert "ID number" in user.says("check the progress of my report")
    status = user.says(guardian)
    assert reference in status and "temporary" in status.lower()

    assert staff(stack, "POST", f"/v1/loss-reports/{reference}/events",
                 {"status": "reported_written"}).status_code == 200
    user.says("we found the card")
    assert "child's ID number" in user.says(guardian)
    found = user.says(child)
    assert "cannot be withdrawn" in found

    for status_name in ("replacement_applied", "in_production", "ready_for_collection"):
        assert staff(stack, "POST", f"/v1/loss-reports/{reference}/events",
                     {"status": status_name}).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        bot_texts = [e.get("text") or "" for e in stack.tracker(user.sender)["events"]
                     if e.get("event") == "bot"]
        if any("ready to collect" in t and reference in t for t in bot_texts):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the card-ready message never reached the conversation")


def test_card_found_lifts_a_temporary_report_in_chinese(stack: Stack) -> None:
    child, guardian = child_id(age=4, sequence=131), guardian_id(sequence=132)
    user = Guardian(stack)
    user.says(f"孩子社保卡丢了，在北京，身份证{child}，手机13800138000")
    user.says("好")
    for answer in ("赵小雨", "赵刚", guardian, "妈妈"):
        user.says(answer)
    reference = REFERENCE.search(user.says("是的")).group()  # type: ignore[union-attr]
    user.says("卡找到了")
    assert "孩子的身份证号" in user.says(guardian)
    lifted = user.says(child)
    assert "解除" in lifted and reference in lifted
    by_reference = {r["reference"]: r for r in reports(stack)}
    assert by_reference[reference]["status"] == "cancelled"


def test_card_service_down_mid_conversation_then_up_files_once(stack: Stack) -> None:
    child, guardian = child_id(age=12, sequence=141), guardian_id(sequence=142)
    user = Guardian(stack)
    user.says(f"my son lost his card in Beijing, ID {child}, phone 13800138000")
    user.says("yes")
    for answer in ("Sun Hao", "Sun Li", guardian, "mother"):
        user.says(answer)
    card = stack.processes["card"]
    card.stop()
    try:
        failed = user.says("yes")
        assert "nothing has been filed" in failed.lower()
    finally:
        stack.start("card")
    before = len(reports(stack))
    filed = user.says("yes")
    reference = REFERENCE.search(filed)
    assert reference, filed
    user.says("yes")  # a repeated yes files nothing more
    assert len(reports(stack)) == before + 1


def test_stop_mid_form_clears_the_details(stack: Stack) -> None:
    user = Guardian(stack)
    user.says("我孩子的社保卡丢了")
    user.says("好的")
    user.says("李小明")
    stopped = user.says("不办了，停止")
    assert "没有提交" in stopped
    assert user.slot("child_name") is None and user.slot("requested_slot") is None


def test_a_wrong_id_says_why_and_asks_again(stack: Stack) -> None:
    user = Guardian(stack)
    user.says("my daughter lost her social security card")
    user.says("yes")
    user.says("Li Na")
    reply = user.says("110105201501010014")  # wrong check character
    assert "check character" in reply and "ID number" in reply


@pytest.mark.parametrize(("words", "relative", "guardian_word", "value", "next_question"), [
    (("我孩子社保卡丢了", "好的", "李娜", "王芳"), "舅舅", "母亲", "mother", "手机"),
    (("my daughter lost her social security card", "yes", "Li Na", "Wang Fang"), "uncle",
     "mum", "mother", "mobile"),
])
def test_relationship_answers_are_never_lost_to_the_nlu(
        stack: Stack, words: tuple[str, ...], relative: str, guardian_word: str, value: str,
        next_question: str) -> None:
    """`母亲`/`mum` were read as other intents and asked again for ever; `uncle` as stop,
    which ended the form and cleared every detail typed so far."""
    user = Guardian(stack)
    opener, yes, child_name, guardian_name = words
    user.says(opener)
    user.says(yes)
    user.says(child_name)
    user.says(child_id(age=8, sequence=131))
    user.says(guardian_name)
    user.says(guardian_id(sequence=132))
    assert user.slot("requested_slot") == "relationship"
    rule = user.says(relative)
    assert ("监护人" in rule) if has_cjk(opener) else ("guardian" in rule.lower())
    assert user.slot("requested_slot") == "relationship"  # the form is kept...
    assert user.slot("child_name") == child_name  # ...and nothing typed so far is lost
    assert next_question in user.says(guardian_word).lower()
    assert user.slot("relationship") == value


def test_the_card_services_token_reaches_its_conversation_only(stack: Stack) -> None:
    """The card-ready call carries a one-conversation token in a header, never the API token
    in the URL; with it, another conversation stays closed."""
    from card_service.outbox import Outbox

    headers = Outbox(None, None, stack.rasa_url,  # type: ignore[arg-type]
                     stack.settings.rasa_jwt_secret).authorization("guardian-own")
    url = f"{stack.rasa_url}/conversations/{{}}/tracker"
    assert requests.get(url.format("guardian-own"), headers=headers, timeout=10).status_code == 200
    assert requests.get(url.format("guardian-other"), headers=headers,
                        timeout=10).status_code == 403
    assert requests.get(url.format("guardian-own"), timeout=10).status_code == 401


def filed_in_one_message(user: Guardian, child: str, guardian: str, english: bool) -> str:
    """Files a report from a message with every detail; its reference."""
    message = (f"My daughter Li Na lost her social security card. Her ID is {child}. I'm her "
               f"mum Wang Fang, my ID is {guardian}, phone 13912345678, we live in Shanghai."
               if english else
               f"孩子李娜的社保卡丢了，要挂失。孩子身份证{child}，我是她妈妈王芳，"
               f"身份证{guardian}，手机13912345678，在上海。")
    user.says(message)
    user.says("yes" if english else "好的")
    reference = REFERENCE.search(user.says("yes" if english else "对，提交"))
    assert reference
    return reference.group()


def record_gone(stack: Stack, sender: str, wait: bool = True) -> bool:
    store = redis.Redis.from_url(stack.settings.redis_url)
    deadline = time.monotonic() + (10 if wait else 0)  # the reply comes before the save
    while store.exists(f"cardbot:tracker:{sender}") and time.monotonic() < deadline:
        time.sleep(0.1)
    return not store.exists(f"cardbot:tracker:{sender}")


def test_delete_my_data_deletes_the_conversation_and_keeps_an_active_report_until_it_ends(
        stack: Stack) -> None:
    user = Guardian(stack)
    reference = filed_in_one_message(user, child_id(age=7, sequence=171),
                                     guardian_id(sequence=172), english=True)
    assert "Shall I delete" in user.says("please delete my data")
    assert not record_gone(stack, user.sender, wait=False)
    reply = user.says("/delete_my_data")  # the button
    assert reference in reply and "still being handled" in reply, reply
    assert "record of this conversation is deleted" in reply
    assert record_gone(stack, user.sender)
    assert staff(stack, "GET", f"/v1/loss-reports/{reference}").json()["personal_data"] == "kept"
    # Next time the conversation starts afresh: nothing of before is known.
    user.says("hi")
    assert user.slot("reference_number") is None
    # The card is found after all: the report ends, and its personal data goes at once.
    assert staff(stack, "POST", f"/v1/loss-reports/{reference}/events",
                 {"status": "cancelled"}).ok
    shown = staff(stack, "GET", f"/v1/loss-reports/{reference}").json()
    assert shown["personal_data"] == "erased", shown


def test_delete_my_data_after_the_report_ended_erases_it_too(stack: Stack) -> None:
    user = Guardian(stack)
    reference = filed_in_one_message(user, child_id(age=8, sequence=181),
                                     guardian_id(sequence=182), english=False)
    assert staff(stack, "POST", f"/v1/loss-reports/{reference}/events",
                 {"status": "cancelled"}).ok
    assert "删除后无法恢复" in user.says("删除我的个人信息")
    reply = user.says("/delete_my_data")
    assert reference in reply and "已删除" in reply and "只保留编号" in reply, reply
    assert record_gone(stack, user.sender)
    shown = staff(stack, "GET", f"/v1/loss-reports/{reference}").json()
    assert shown["personal_data"] == "erased", shown

