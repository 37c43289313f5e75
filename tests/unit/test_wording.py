"""Every word a guardian reads is data: the responses the actions name or build exist in both
languages, every status has its words, and no Python of actions/ or bot/rules/ holds a sentence.

The last check is a heuristic over string literals, docstrings, log lines, exception messages
and regular expressions aside: no Chinese character and no run of three English words.
What a guardian may *type* is matched in Chinese in a few places (TYPED_INPUT says where and
why); what the bot *says* lives in domain.yml, actions/replies.yml and bot/rules/statuses.yml.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from actions import replies
from actions.report_form import DETAILS
from bot.card_client import HistoryEntry
from bot.rules import free_text, identity, regions, statuses
from bot.settings import ROOT
from tests.testkit.people import child_id, guardian_id
from tests.testkit.trackers import DOMAIN

RESPONSES: dict[str, list[dict[str, Any]]] = DOMAIN["responses"]
ZH = [{"type": "slot", "name": "language", "value": "zh"}]
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# English variations that may hold Chinese: the document number the answer cites.
CITES_CHINESE = {"utter_card_info"}
PYTHON = sorted([*(ROOT / "actions").rglob("*.py"), *(ROOT / "bot" / "rules").rglob("*.py")])
# (module, top-level name) -> why its Chinese is not wording: what a guardian types.
TYPED_INPUT = {
    ("bot/rules/free_text.py", "RELATIONSHIPS"): "words a guardian may type for a relationship",
    ("bot/rules/free_text.py", "NOT_GUARDIANS"): "words for relatives who are not guardians",
    ("bot/rules/free_text.py", "STOP_WORDS"): "words a guardian types to stop the form",
    ("bot/rules/report_details.py", "_NOT_NAMES"): "words that stand where a name would",
    ("bot/rules/regions.py", "normalise"): "the 市 a guardian may type after a city's name",
    ("bot/rules/identity.py", "_CITY_CODES"): "how stdnum's place codes name a city",
    ("actions/report_form.py", "OTHER_CITY"): "words a guardian may type for 'no listed city'",
    ("actions/report_form.py", "NATIONAL"): "the city value of the national rules, a slot "
                                            "value and an alias in regions.yml",
}


def texts(name: str) -> dict[str, str]:
    """A response's text by language: the `language == zh` variation and the unconditioned one."""
    found: dict[str, str] = {}
    for variation in RESPONSES[name]:
        condition = variation.get("condition")
        language = "zh" if condition == ZH else "en" if not condition else repr(condition)
        assert language not in found, f"{name}: two {language} variations"
        found[language] = variation.get("text") or ""
    return found


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


# ---- domain.yml --------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_every_response_has_a_chinese_and_an_english_variation(name: str) -> None:
    said = texts(name)
    assert set(said) == {"zh", "en"} and said["zh"] and said["en"]
    assert CJK.search(said["zh"]), f"{name}: the zh variation has no Chinese"
    assert name in CITES_CHINESE or not CJK.search(said["en"]), f"{name}: Chinese in en"
    assert placeholders(said["zh"]) == placeholders(said["en"])


@pytest.mark.parametrize("name", sorted(replies.BUILT))
def test_every_name_replies_can_build_is_a_response(name: str) -> None:
    assert name in RESPONSES, f"actions/replies.py builds {name}, domain.yml lacks it"
    assert set(texts(name)) == {"zh", "en"}


def test_every_response_an_action_names_is_one_and_only_replies_builds_names() -> None:
    for path in (ROOT / "actions").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        built = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                 for part in node.values}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in built and re.fullmatch(r"utter_\w+", node.value)):
                assert node.value in RESPONSES, f"{path.name}: {node.value} is not in domain.yml"
            if isinstance(node, ast.JoinedStr) and path.name != "replies.py":
                head = node.values[0] if node.values else None
                assert not (isinstance(head, ast.Constant) and str(head.value).startswith(
                    "utter_")), f"{path.name} builds a response name; actions/replies.py does"


def test_the_id_checks_give_only_reasons_replies_knows() -> None:
    today = dt.date.today()
    given = {identity.check_id_number(typed).reason for typed in (
        "", "4405241880010100", "4405241880A1010014", "110105194912310021",
        "110105194913310021", "990105194912310023")}
    given.add(identity.check_child_id_number(guardian_id(age=30), today).reason)
    given.add(identity.check_guardian_id_number(child_id(age=9), today).reason)
    assert given == set(replies.ID_REASONS)


def test_the_city_answers_and_next_steps_get_every_placeholder_filled() -> None:
    filled = set(replies.region_words(regions.default(), "en"))
    for name in replies.ANSWERS.values():
        for text in texts(name).values():
            assert placeholders(text) <= filled, name
    for status in statuses.TABLE.values():
        for text in texts(replies.next_step(status.next_step)).values():
            assert placeholders(text) <= filled | {"valid_until"}, status.name


# ---- the words slotted in ----------------------------------------------------------------

@pytest.mark.parametrize("status", statuses.STATUSES)
def test_every_status_has_its_words_and_next_step(status: str) -> None:
    entry = statuses.TABLE[status]
    assert entry.label_zh and CJK.search(entry.label_zh)
    assert entry.label_en and not CJK.search(entry.label_en)
    assert set(texts(replies.next_step(entry.next_step))) == {"zh", "en"}


def test_statuses_yml_words_only_the_statuses_of_the_table() -> None:
    labels = yaml.safe_load((ROOT / "bot" / "rules" / "statuses.yml").read_text("utf-8"))
    assert list(labels) == list(statuses.STATUSES)


def _entries(tree: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, str]]]:
    """replies.yml's leaves: {"en": ..., "zh": ...}, each with its dotted path."""
    if set(tree) == {"en", "zh"}:
        return [(path, tree)]
    return [leaf for key, sub in tree.items() for leaf in _entries(sub, f"{path}.{key}")]


def test_every_entry_of_replies_yml_has_both_languages() -> None:
    entries = _entries(replies.words())
    assert entries
    for path, entry in entries:
        assert entry["en"] and entry["zh"], path
        assert not CJK.search(entry["en"]), path
        assert CJK.search(entry["zh"]) or not re.search(r"\w", entry["zh"]), path
        assert placeholders(entry["zh"]) <= placeholders(entry["en"]), path


def test_replies_yml_words_every_relationship_and_every_item() -> None:
    assert set(replies.words()["relationship"]) == set(free_text.RELATIONSHIPS)
    assert set(replies.words()["item"]) == set(DETAILS)


def test_the_slotted_words_read_as_before() -> None:
    beijing = regions.resolve("北京")
    assert replies.region_words(beijing, "zh")["processing"] == "当天至10个工作日"
    assert replies.region_words(regions.default(), "en")["processing"] == "5 to 15 working days"
    assert replies.region_words(regions.default(), "zh")["region_name"] == "全国一般情况"
    assert replies.city_name("全国", "en") == "national rules"
    assert replies.city_name("北京", "zh") == "北京"
    assert replies.known_cities("zh").startswith("北京、上海")
    assert replies.status_label("cancelled", "zh") == "已解除挂失"
    assert replies.history([HistoryEntry("reported_temporary", "2026-01-02T03:04:05Z")],
                          "en") == "· 2026-01-02 Loss reported (temporary block)"
    assert replies.refused_items([], "zh") == "填写的信息"
    assert replies.refused_items(["phone_number", "city"], "zh") == "手机号、城市"


# ---- no sentence in Python ---------------------------------------------------------------

def _not_wording(tree: ast.Module) -> set[int]:
    """ids of the literals that are not said to a guardian: docstrings, log lines, exception
    messages and regular expressions (these match what a guardian types)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        inside: list[ast.AST] = []
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            inside = [node.value]
        elif isinstance(node, ast.Raise):
            inside = [node]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Name)
              and node.func.value.id in {"logger", "logging", "re"}):
            inside = [*node.args, *node.keywords]
        skipped |= {id(sub) for part in inside for sub in ast.walk(part)}
    return skipped


def _literals(path: Path) -> list[tuple[str, int, str]]:
    """(top-level name, line, text) of each string literal that could be wording."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _not_wording(tree)
    found = []
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            owner = statement.name
        elif isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) \
                else [statement.target]
            owner = ",".join(t.id for t in targets if isinstance(t, ast.Name))
        else:
            owner = ""
        found += [(owner, node.lineno, node.value) for node in ast.walk(statement)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and id(node) not in skipped]
    return found


ENGLISH_SENTENCE = re.compile(r"[A-Za-z]{2,}(?: [A-Za-z']{2,}[,.!?]?){2,}")  # three words


def _sentences(path: Path, root: Path = ROOT) -> list[str]:
    module = str(path.relative_to(root))
    return [f"{module}:{line} {text!r}" for owner, line, text in _literals(path)
            if (module, owner) not in TYPED_INPUT
            and (CJK.search(text) or ENGLISH_SENTENCE.search(text))]


@pytest.mark.parametrize("path", PYTHON, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_python_module_holds_a_sentence_for_a_guardian(path: Path) -> None:
    assert _sentences(path) == []


def test_the_sentence_check_finds_sentences(tmp_path: Path) -> None:
    module = tmp_path / "actions" / "sample.py"
    module.parent.mkdir()
    module.write_text('''"""A docstring is not said: 卡丢了."""
import logging, re
logger = logging.getLogger(__name__)
SAID = "您的卡已挂失"
ALSO = f"Your card is {'blocked'}."
PATTERN = re.compile(r"孩子|小孩")
def run(): logger.info("a log line is not said"); raise ValueError("nor is this message")
''', encoding="utf-8")
    assert [found.split()[0] for found in _sentences(module, tmp_path)] == [
        "actions/sample.py:4", "actions/sample.py:5"]


def test_the_typed_input_allow_list_is_still_needed() -> None:
    used = {(str(path.relative_to(ROOT)), owner) for path in PYTHON
            for owner, _, text in _literals(path) if CJK.search(text)}
    assert set(TYPED_INPUT) <= used
