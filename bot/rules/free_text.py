"""Pulling a value out of what a guardian typed: "她的身份证是 1101 0520 1501 0100 13"."""

from __future__ import annotations

import re
from collections.abc import Callable

import phonenumbers

from bot.rules import regions

_ID_RUN = re.compile(r"[0-9][0-9\s-]{4,}[0-9Xx]?")
_NAME_LEAD_INS = re.compile(
    r"^(?:(?:my|his|her|the)\s+)?(?:(?:child'?s?|son'?s?|daughter'?s?|kid'?s?)\s+)?"
    r"(?:full\s+)?(?:name\s+is|name's|name:|i\s+am|i'm|it'?s|this\s+is|call(?:ed)?)\s*"
    r"|^(?:孩子|他|她|我|本人)?(?:的)?(?:名字|姓名)?(?:叫|是|为|：|:)\s*",
    re.IGNORECASE,
)
_NAME_CHARS = re.compile(r"^[^\W\d_]+(?:[\s.'·•-][^\W\d_]+)*$")

# What a guardian may type for each relationship (the words said back are in actions/replies.yml).
RELATIONSHIPS = {
    "mother": ("mother", "mom", "mum", "mama", "mommy", "mummy", "adoptive mother", "母亲", "妈妈",
               "妈", "孩子妈", "孩子妈妈", "养母"),
    "father": ("father", "dad", "daddy", "papa", "adoptive father", "父亲", "爸爸", "爸", "孩子爸",
               "孩子爸爸", "养父"),
    "grandparent": ("grandparent", "grandmother", "grandfather", "grandma", "grandpa",
                    "granny", "祖父母", "祖父", "祖母", "爷爷", "奶奶", "外公", "外婆",
                    "姥姥", "姥爷", "外祖父", "外祖母"),
    "guardian": ("guardian", "other guardian", "legal guardian", "other", "监护人",
                 "其他监护人", "法定监护人", "其他", "stepfather", "stepmother", "step-father",
                 "step-mother", "stepdad", "stepmom", "stepmum", "继父", "继母", "后妈", "后爸"),
}

# Relatives and others who are not a child's guardian by being so: they hear who may report.
NOT_GUARDIANS = ("uncle", "aunt", "auntie", "aunty", "brother", "sister", "cousin", "teacher",
                 "neighbour", "neighbor", "friend", "nanny", "babysitter", "舅舅", "舅妈",
                 "姑姑", "姑父", "阿姨", "姨妈", "小姨", "叔叔", "婶婶", "伯伯", "伯母", "哥哥",
                 "姐姐", "表哥", "表姐", "堂哥", "堂姐", "老师", "邻居", "朋友", "保姆")


# What a guardian types to stop the form; any other message is never read as stop mid-form.
STOP_WORDS = ("stop", "cancel", "cancle", "quit", "exit", "abort", "forget it", "never mind",
              "nevermind", "leave it", "drop it", "enough", "changed my mind", "don't want",
              "do not want", "don't file", "don't report", "停", "取消", "算了", "不办", "不弄",
              "退出", "不填", "不想", "别问", "不要", "中止", "结束", "改主意", "暂停", "不挂",
              "不登记", "别提交", "不用了")
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_LIKE = re.compile(r"(?<![0-9])[0-9]{14,17}[0-9Xx](?![0-9])")


def _relationship_answer(text: str) -> bool:
    # Short and not a question: "我有其他问题" is not "其他".
    short = len(text.split()) <= 6 if text.isascii() else len(text) <= 12
    return short and "?" not in text and "？" not in text \
        and (relationship_in(text) or not_guardian_in(text)) is not None


_ANSWERS: dict[str, Callable[[str], bool]] = {
    "relationship": _relationship_answer,
    "child_id_number": lambda text: _ID_LIKE.search(text) is not None,
    "guardian_id_number": lambda text: _ID_LIKE.search(text) is not None,
    "phone_number": lambda text: _MOBILE.search(text) is not None,
    "city": lambda text: regions.lookup(text.strip()) is not None,
}


def sounds_like_stop(text: str) -> bool:
    """Whether the message says stop in words a guardian would use.

    >>> sounds_like_stop("算了不办了"), sounds_like_stop("Stop please"), sounds_like_stop("uncle")
    (True, True, False)
    """
    lowered = (text or "").casefold()
    return any((re.search(rf"\b{re.escape(word)}\b", lowered) if word.isascii()
                else word in lowered) for word in STOP_WORDS)


def answers(slot: str, text: str) -> bool:
    """Whether the (normalised) text plainly answers the form's question for `slot`: an ID
    number, a mobile number, a relationship word, a city we know.

    >>> answers("relationship", "母亲"), answers("relationship", "uncle")
    (True, True)
    >>> answers("phone_number", "13812345678"), answers("child_id_number", "110101201503073329")
    (True, True)
    >>> answers("relationship", "how much does it cost"), answers("relationship", "有其他问题吗？")
    (False, False)
    """
    recognise = _ANSWERS.get(slot)
    return recognise is not None and recognise(text or "")


def id_number_in(text: str) -> str:
    """The ID-number-like run of the text (spaces and dashes dropped), else the text.

    >>> id_number_in("她的身份证是 1101 0520 1501 0100 13")
    '110105201501010013'
    >>> id_number_in("ID: 11010519491231002x")
    '11010519491231002x'
    >>> id_number_in("don't know")
    "don't know"
    """
    runs = [re.sub(r"[\s-]", "", match) for match in _ID_RUN.findall(text or "")]
    return max(runs, key=len) if runs else (text or "").strip()


def phone_in(text: str) -> str:
    """The first phone number phonenumbers finds in the text, else the text.

    >>> phone_in("call me on +86 138-0013-8000 please")
    '+86 138-0013-8000'
    """
    for match in phonenumbers.PhoneNumberMatcher(text or "", "CN"):
        return str(match.raw_string)
    return (text or "").strip()


def name_in(text: str) -> str | None:
    """A person's name from an answer to "what is the name?", or None if it is not one.

    >>> name_in("Her name is Li Na")
    'Li Na'
    >>> name_in("她叫王小明")
    '王小明'
    >>> name_in("13800138000") is None
    True
    """
    name = _NAME_LEAD_INS.sub("", (text or "").strip()).strip(" .。!！,，")
    if not 1 <= len(name) <= 40 or not _NAME_CHARS.match(name):
        return None
    return name


_CAPITALISED = re.compile(r"[A-Z][a-z]{0,9}")
_LETTERS = re.compile(r"[A-Za-z]{1,10}")
# Replies a guardian types that are shaped like a name but are none.
_REPLY_WORDS = frozenset((
    "yes", "yeah", "yep", "ok", "okay", "sure", "no", "nope", "not", "hi", "hello", "hey",
    "thanks", "thank", "you", "bye", "goodbye", "good", "help", "stop", "cancel", "agent",
    "human", "person", "please", "what", "why", "how", "where", "when", "who", "which", "i",
    "my", "me", "it", "is", "the", "a", "card", "lost", "found", "status", "cost", "fee",
    "wait", "sorry", "again", "back", "done", "ready", "menu", "start", "over", "never",
    "mind", "later", "now", "see", "ya", "cheers", "great", "fine", "right", "alright",
    "nothing", "else", "all", "that", "this", "there", "here", "too", "also", "just", "one",
    "more", "question", "talk", "call", "hotline", "bot", "robot", "real", "anyone",
    "someone", "do", "does", "can", "will", "not", "don't", "dont", "idk", "know"))


def written_as_a_name(text: str) -> bool:
    """Two or three words of letters, the first capitalised, none a word of a reply: how a
    name is typed in letters ("Sun Hao", "Zhou yutong"), which the classifier may still read
    as "yes", "bye" or "found".

    >>> written_as_a_name("Sun Hao"), written_as_a_name("Zhou yutong")
    (True, True)
    >>> written_as_a_name("Thank you"), written_as_a_name("sun hao"), written_as_a_name("Stop")
    (False, False, False)
    >>> written_as_a_name("How Much Is It"), written_as_a_name("Never mind")
    (False, False)
    """
    words = (text or "").split()
    return 2 <= len(words) <= 3 and _CAPITALISED.fullmatch(words[0]) is not None and all(
        _LETTERS.fullmatch(word) and word.lower() not in _REPLY_WORDS for word in words)


def relationship_in(text: str) -> str | None:
    """The guardian's relationship to the child as one of RELATIONSHIPS' keys.

    >>> [relationship_in(text) for text in ("I'm her mum", "我是孩子爷爷", "neighbour")]
    ['mother', 'grandparent', None]
    """
    return _longest_word(text, RELATIONSHIPS)


def not_guardian_in(text: str) -> str | None:
    """A relative or other person named in the text who is not a guardian by being so, when
    no guardian word says more.

    >>> not_guardian_in("I'm his uncle"), not_guardian_in("舅舅")
    ('uncle', '舅舅')
    >>> not_guardian_in("我是孩子妈妈") is None
    True
    """
    found = _longest_word(text, {word: (word,) for word in NOT_GUARDIANS})
    return found if found is not None and relationship_in(text) is None else None


def _longest_word(text: str, table: dict[str, tuple[str, ...]]) -> str | None:
    lowered = (text or "").strip().casefold()
    best: tuple[int, str] | None = None
    for key, words in table.items():
        for word in words:
            found = re.search(rf"\b{re.escape(word)}\b", lowered) if word.isascii() \
                else (re.search(re.escape(word), lowered))
            if found and (best is None or len(word) > best[0]):
                best = (len(word), key)
    return best[1] if best else None


# An adult's card ("my own card", "我自己的社保卡", a spouse's): explained, never filed. Three
# parts must agree: whose card, that it is lost, and that no child is meant ("不是孩子的" is
# not a child). A card that is not a social security card (ID, bank, bus) stays generic.
_ADULTS_CARD = re.compile(
    r"\bmy own\b|\bmyself\b|\bi(?:'m| am) an adult\b|\bmy (?:social security |ss )?card\b"
    r"|\bmy sscard\b|\badult'?s?\b|\b(?:my )?(?:husband|wife|spouse|partner)'?s?\b"
    r"|\bmy (?:mum|mom|mother|dad|father|parents?)'?s? (?:own )?(?:social security |ss )?card\b"
    r"|我自己|自己的|我本人|本人|我的\S{0,3}卡|成年|大人的|老公|老婆|爱人|丈夫|妻子|我妈的|我爸的"
    r"|wo ?ziji|wo de she ?bao ?ka", re.IGNORECASE)
_LOST = re.compile(
    r"lost|lose|losing|missing|stolen|can'?t find|cannot find|replace|reissue|new card|gone"
    r"|丢|掉了|不见|找不到|找不着|遗失|被偷|补办|补卡|补一张|挂失|diu", re.IGNORECASE)
_NOT_A_CHILD = re.compile(
    r"(?:不是|并非|not (?:for )?(?:my |our |the )?)(?:孩子|小孩|儿子|女儿|kid|child|son|daughter)"
    r"(?:'s)?", re.IGNORECASE)
_A_CHILD = re.compile(
    r"child|kid|\bson\b|daughter|grand(?:son|daughter|child)|baby|boy|girl|孩子|小孩|儿子|女儿|孙"
    r"|娃|宝宝|闺女|小朋友|学生", re.IGNORECASE)
_OTHER_CARD = re.compile(
    r"\bid card\b|\bidentity card\b|bank ?card|credit card|bus card|metro card|transit|passport"
    r"|身份证丢|身份证掉|身份证不见|银行卡|信用卡|公交卡|交通卡|地铁卡|护照|驾照|饭卡",
    re.IGNORECASE)
_OURS = re.compile(r"social security|ss ?card|社保|社宝|社报|设保|sbk|shebao", re.IGNORECASE)


# Another card or document lost (an ID card, a bank card, the household book...): not ours,
# unless the social security card is named too.
_OTHER_LOST = re.compile(
    r"(?:身份证|银行卡|信用卡|储蓄卡|公交卡|交通卡|地铁卡|学生证|学生卡|饭卡|校园卡|护照|户口本|户口簿|驾照|驾驶证)"
    r"[^，。,.!?？！]{0,6}(?:丢|掉|不见|找不到|找不着|遗失|被偷|补办|补一张)"
    r"|(?:丢|掉|不见|找不到|遗失|被偷)了?[^，。,.!?？！]{0,6}(?:身份证|银行卡|信用卡|公交卡|学生证|学生卡|护照"
    r"|户口本|户口簿|驾照)"
    r"|\b(?:lost|lose|losing|missing|stolen|replace|reissue|can'?t find)\b[^,.!?]{0,25}"
    r"\b(?:id card|identity card|bank ?card|credit card|debit card|bus card|metro card|transit card"
    r"|student card|student id|school card|passport|hukou|household (?:register|registration)?"
    r" ?(?:book|booklet)|driving licen[cs]e|driver'?s licen[cs]e)\b"
    r"|\b(?:id card|identity card|bank ?card|credit card|debit card|bus card|student card"
    r"|passport|hukou(?: booklet| book)?)\b[^,.!?]{0,15}\b(?:lost|missing|stolen|gone)\b",
    re.IGNORECASE)


def other_card_lost_in(text: str) -> bool:
    """A card or document other than the social security card is what was lost.

    >>> other_card_lost_in("my daughter lost her bank card"), other_card_lost_in("女儿的银行卡丢了")
    (True, True)
    >>> other_card_lost_in("孩子的社保卡和银行卡一起丢了")
    False
    >>> other_card_lost_in("my son lost his card, I only have his hukou booklet")
    False
    """
    return bool(_OTHER_LOST.search(text or "")) and not _OURS.search(text or "")


def loss_with_details(text: str) -> bool:
    """A child's card said to be lost, in a message that carries details too: a loss report
    however much of it is details (the classifier splits it between a report and `inform`).

    >>> loss_with_details("My son lost his social security card. His ID is 11010520170101205X")
    True
    >>> loss_with_details("孩子的社保卡丢了，身份证号11010520170101205X")
    True
    >>> loss_with_details("Li Ming")
    False
    """
    text = text or ""
    return bool(_LOST.search(text) and (_A_CHILD.search(text) or _OURS.search(text))) \
        and not outside_scope(text)


def outside_scope(text: str) -> bool:
    """A lost card the assistant does not file for: an adult's own, or another kind."""
    return own_card_in(text) or other_card_lost_in(text)


def own_card_in(text: str) -> bool:
    """An adult speaks of losing their own (or another adult's) social security card.

    >>> own_card_in("我自己的社保卡丢了，怎么补"), own_card_in("I lost my own card")
    (True, True)
    >>> own_card_in("不是孩子的，是我自己的社保卡丢了"), own_card_in("本人社保卡丢了要补办")
    (True, True)
    >>> own_card_in("我自己去给孩子挂失"), own_card_in("my son lost his card")
    (False, False)
    >>> own_card_in("how do I check my pension on my social security card")
    False
    >>> own_card_in("where do i go to replace my own id card")
    False
    """
    text = text or ""
    if not (_ADULTS_CARD.search(text) and _LOST.search(text)):
        return False
    if _OTHER_CARD.search(text) and not _OURS.search(text):
        return False
    return not _A_CHILD.search(_NOT_A_CHILD.sub(" ", text))


_CHILD = re.compile(r"child|kid|son|daughter|孩子|小孩|儿子|女儿", re.IGNORECASE)
_GUARDIAN = re.compile(r"guardian|parent|\bmy\b|\bmine\b|监护人|家长|我", re.IGNORECASE)
_ID = re.compile(r"\bid\b|identity|身份证|证件", re.IGNORECASE)
_NAME = re.compile(r"name|姓名|名字", re.IGNORECASE)
_PHONE = re.compile(r"phone|mobile|cell|手机|电话", re.IGNORECASE)
_CITY = re.compile(r"city|town|城市|地区", re.IGNORECASE)
_RELATION = re.compile(r"relation|关系", re.IGNORECASE)


def item_in(text: str) -> str | None:
    """Which item of the loss report the guardian wants to change, as its slot name.

    >>> item_in("child's ID number")
    'child_id_number'
    >>> item_in("我的名字")
    'guardian_name'
    >>> item_in("手机号")
    'phone_number'
    >>> item_in("everything") is None
    True
    """
    text = text or ""
    if _PHONE.search(text):
        return "phone_number"
    if _CITY.search(text):
        return "city"
    if _RELATION.search(text):
        return "relationship"
    whose = "child" if _CHILD.search(text) else "guardian" if _GUARDIAN.search(text) else None
    what = "id_number" if _ID.search(text) else "name" if _NAME.search(text) else None
    if whose and what:
        return f"{whose}_{what}"
    return None


# Everything but letters, digits, spaces, apostrophes, hyphens and the middle dot of names.
_NOT_QUOTABLE = re.compile(r"[^\w\s'·-]|_")


def quotable(text: str, limit: int = 40) -> str:
    """What of a guardian's words a reply may quote back: no markup of any channel (HTML,
    Markdown, WeChat's <a> links, bare URLs), no control or invisible characters.

    >>> quotable('<img src=x onerror=alert(1)> [12333](https://evil.example)')
    'img srcx onerroralert1 12333httpsevilexa'
    >>> quotable("Xi'an"), quotable("乌鲁木齐")
    ("Xi'an", '乌鲁木齐')
    """
    return " ".join(_NOT_QUOTABLE.sub("", text or "").split())[:limit]


_ERASE = re.compile(
    r"\b(?:delete|erase|remove|wipe|clear|forget|destroy)\b.{0,40}?"
    r"\b(?:data|information|info|my details|our details|records?|history|conversation"
    r"|chat|everything)\b"
    r"|(?:删除|删掉|删了|清除|清空|抹掉|销毁|注销|不要保存|不要保留|别保存|别保留).{0,12}?"
    r"(?:数据|信息|资料|记录|聊天|对话)"
    r"|(?:数据|信息|资料|记录|聊天记录).{0,8}?(?:删除|删掉|删了|清除|清空|抹掉|销毁)",
    re.IGNORECASE)


def asks_erasure(text: str) -> bool:
    """The guardian asks, in so many words, that what they told us be deleted.

    >>> asks_erasure("please delete my data"), asks_erasure("删除我的个人信息")
    (True, True)
    >>> asks_erasure("我的聊天记录请帮我清除"), asks_erasure("Forget everything I told you")
    (True, True)
    >>> asks_erasure("I typed the wrong phone number"), asks_erasure("取消挂失")
    (False, False)
    >>> asks_erasure("can I delete the wrong number I typed"), asks_erasure("把刚才的号码删掉")
    (False, False)
    """
    return bool(_ERASE.search(text or ""))
