"""Training examples the way phones garble them, made from our own training examples.

Guardians type pinyin when the input method is not at hand ("haizi de shebaoka diule") and
thumbs swap, drop and double letters ("socail securtiy"). Writing such variants by hand covers
a few words; this makes them for every intent from the examples in data/nlu, with a fixed
seed, into two files that are committed and read like any other training data:

    data/nlu/generated_pinyin_zh.yml   Chinese examples in pinyin, by word or by syllable
    data/nlu/generated_typos_en.yml    English examples with one or two slips of the thumb

Examples with entity annotations, form answers (`inform`) and the generated files themselves
are not used. `make augment` rewrites the files; tests/unit/test_augment.py checks that the
committed files are what this makes.

    python tools/augment_nlu.py [--check]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

import jieba
import yaml
from pypinyin import lazy_pinyin

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "nlu"
PINYIN = DATA / "generated_pinyin_zh.yml"
TYPOS = DATA / "generated_typos_en.yml"
PER_INTENT = 15
SEED = 16
SKIPPED_INTENTS = frozenset({"inform"})
_CJK = re.compile(r"[\u4e00-\u9fff]")
_ANNOTATED = re.compile(r"\[[^\]]+\][({]")
_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours() -> dict[str, str]:
    found: dict[str, str] = {}
    for row in _KEYBOARD:
        for index, char in enumerate(row):
            found[char] = row[max(index - 1, 0):index] + row[index + 1:index + 2]
    return found


NEIGHBOURS = _neighbours()


def training_examples() -> dict[str, list[str]]:
    """intent -> its examples from data/nlu, generated files and annotated examples left out."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(DATA.glob("*.yml")):
        if path.name.startswith("generated_"):
            continue
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu") or []:
            if "intent" not in block or block["intent"] in SKIPPED_INTENTS:
                continue
            for line in str(block.get("examples") or "").splitlines():
                text = line.strip().removeprefix("- ").strip()
                if text and not _ANNOTATED.search(text):
                    found[block["intent"]].append(text)
    return found


def pinyin(text: str, by_word: bool) -> str:
    """"孩子的卡丢了" as "haizi de ka diule" (by word) or "hai zi de ka diu le"."""
    plain = re.sub(r"[^\w\s]", " ", text)
    if by_word:
        words = ["".join(lazy_pinyin(word)) for word in jieba.lcut(plain) if word.strip()]
    else:
        words = [syllable for syllable in lazy_pinyin(plain) if syllable.strip()]
    return " ".join(" ".join(words).split())


def slipped(word: str, rng: random.Random) -> str:
    """One slip of the thumb: two letters swapped, one dropped, doubled or its neighbour hit."""
    index = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("swap", "drop", "double", "neighbour"))
    if kind == "swap":
        return word[:index] + word[index + 1] + word[index] + word[index + 2:]
    if kind == "drop":
        return word[:index] + word[index + 1:]
    if kind == "double":
        return word[:index] + word[index] + word[index:]
    near = NEIGHBOURS.get(word[index].lower())
    return word[:index] + rng.choice(near) + word[index + 1:] if near else word


def with_typos(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    long_words = [i for i, word in enumerate(words) if len(word) >= 4 and word.isalpha()]
    for index in rng.sample(long_words, min(len(long_words), rng.choice((1, 2)))):
        words[index] = slipped(words[index], rng)
    return " ".join(words)


def generated() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    examples = training_examples()
    seen = {" ".join(text.casefold().split()) for texts in examples.values() for text in texts}
    rng = random.Random(SEED)
    pinyin_made: dict[str, list[str]] = {}
    typos_made: dict[str, list[str]] = {}
    for intent in sorted(examples):
        chinese = [t for t in examples[intent] if _CJK.search(t) and len(t) <= 20]
        english = [t for t in examples[intent] if t.isascii() and len(t.split()) >= 2]
        for source, made, change in (
                (chinese, pinyin_made, lambda t, n: pinyin(t, by_word=n % 2 == 0)),
                (english, typos_made, lambda t, n: with_typos(t, rng))):
            chosen = rng.sample(source, min(len(source), PER_INTENT))
            for number, text in enumerate(chosen):
                variant = change(text, number)
                key = " ".join(variant.casefold().split())
                if variant and key not in seen and not _CJK.search(variant):
                    seen.add(key)
                    made.setdefault(intent, []).append(variant)
    return pinyin_made, typos_made


def rendered(made: dict[str, list[str]], what: str) -> str:
    lines = [f"# Generated by tools/augment_nlu.py ({what}) from the examples in data/nlu;",
             "# do not edit: `make augment` rewrites it.", 'version: "3.1"', "nlu:"]
    for intent, texts in made.items():
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in texts]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the committed files differ from what this makes")
    args = parser.parse_args(argv)
    jieba.setLogLevel(60)
    pinyin_made, typos_made = generated()
    outputs = {PINYIN: rendered(pinyin_made, "Chinese examples in pinyin"),
               TYPOS: rendered(typos_made, "English examples with typing slips")}
    stale = [path for path, text in outputs.items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"augment: {path.relative_to(ROOT)} is out of date: run `make augment`",
                  file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
        count = text.count("\n    - ")
        print(f"augment: {path.relative_to(ROOT)}: {count} examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
