"""Intent accuracy on the blind field test set (tests/nlu/field/), per language and category.

The field set was written by someone who never saw the training data, the way guardians type
on phones; each example carries its category (`voice_runon`, `typo`, `fullwidth`...). This
parses every message with the trained model, prints accuracy per language and per category
and the confusion pairs that remain, writes `<out>/field.json`, and exits 1 when a language's
accuracy is below `--min-accuracy`.

    python tools/nlu_field.py --model models/bot.tar.gz --field-dir tests/nlu/field \
        --out results/nlu --min-accuracy 0.95
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Example:
    language: str
    category: str
    intent: str
    text: str


def examples(field_dir: Path) -> list[Example]:
    """Every example of `<set>_<language>.yml` (field_en.yml, dev_zh.yml...), with its category
    from the metadata."""
    found = []
    for path in sorted(field_dir.glob("*_*.yml")):
        language = path.stem.rsplit("_", 1)[-1]
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            for item in block["examples"]:
                found.append(Example(language, item["metadata"]["category"], block["intent"],
                                     item["text"].strip()))
    if not found:
        raise SystemExit(f"no <set>_<language>.yml examples in {field_dir}")
    return found


def accuracy(rows: list[dict[str, Any]]) -> float:
    return round(sum(row["right"] for row in rows) / len(rows), 3) if rows else 0.0


async def predictions(model: Path, field: list[Example]) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    from bot.rasa import patches

    # Unconfigured, Rasa's structured log prints every parse, and so the blind set, at DEBUG.
    configure_structlog(logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
    patches.install()  # parse as the server parses
    agent = Agent.load(str(model))
    rows = []
    for number, example in enumerate(field, start=1):
        parsed = await agent.parse_message(example.text)
        predicted = parsed["intent"]["name"]
        rows.append({**asdict(example), "predicted": predicted,
                     "confidence": round(float(parsed["intent"]["confidence"]), 3),
                     "right": predicted == example.intent})
        if number % 100 == 0:
            print(f"field: {number}/{len(field)} parsed", file=sys.stderr)
    return rows


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_language: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_category: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_language[row["language"]].append(row)
        by_category[(row["language"], row["category"])].append(row)
    confusions = Counter((row["language"], row["intent"], row["predicted"])
                         for row in rows if not row["right"])
    return {
        "accuracy": {language: accuracy(part) for language, part in sorted(by_language.items())},
        "count": {language: len(part) for language, part in sorted(by_language.items())},
        "right": {language: sum(row["right"] for row in part)
                  for language, part in sorted(by_language.items())},
        "by_category": {f"{language}/{category}": {"accuracy": accuracy(part), "n": len(part)}
                        for (language, category), part in sorted(by_category.items())},
        "confusions": [{"language": language, "intent": intent, "predicted": predicted,
                        "count": count}
                       for (language, intent, predicted), count in confusions.most_common()],
        "wrong": [row for row in rows if not row["right"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--field-dir", type=Path, default=Path("tests/nlu/field"))
    parser.add_argument("--out", type=Path, default=Path("results/nlu"))
    parser.add_argument("--min-accuracy", type=float, default=0.95)
    args = parser.parse_args(argv)

    rows = asyncio.run(predictions(args.model, examples(args.field_dir)))
    result = report(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "field.json").write_text(json.dumps(result, ensure_ascii=False, indent=1),
                                         encoding="utf-8")
    for language, value in result["accuracy"].items():
        # The gate compares the figure as printed, to three places: say what it stands for.
        print(f"field {language}: intent accuracy {value:.3f} on {result['count'][language]} "
              f"({result['right'][language]} right)")
    for name, figures in result["by_category"].items():
        print(f"  {name:26} {figures['accuracy']:.3f}  (n={figures['n']})")
    print("confusions left (language, labelled -> predicted, count):")
    for pair in result["confusions"][:15]:
        print(f"  {pair['language']} {pair['intent']} -> {pair['predicted']}: {pair['count']}")
    low = {language: value for language, value in result["accuracy"].items()
           if value < args.min_accuracy}
    if low:
        print(f"field: below {args.min_accuracy} in {low}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
