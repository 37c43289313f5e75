"""Evaluate the NLU model on the held-out split, one report per language.

For every ``*.yml`` file in the held-out directory (``heldout_en.yml``,
``heldout_zh.yml``...) this runs Rasa's own NLU evaluation with the trained
model, prints the intent F1 per intent and the intent macro-F1, the entity F1
for our four entities (informational), and how confident the classifier was on
right and wrong predictions (the evidence for the FallbackClassifier
threshold). Everything is also written to ``<out>/nlu_eval.json``.

Exit status 1 when any language's intent macro-F1 is below ``--min-f1``.

    python tools/nlu_eval.py --model models/bot.tar.gz \
        --heldout-dir tests/nlu --out results/nlu --min-f1 0.95
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

ENTITIES = ("id_number", "phone_number", "reference_number", "city")
# Rasa writes one entity report per extractor that produced entities.
ENTITY_REPORT_SUFFIX = "_report.json"
NON_INTENT_KEYS = {"accuracy", "macro avg", "weighted avg", "micro avg"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained model (.tar.gz)")
    parser.add_argument(
        "--heldout-dir", default="tests/nlu", help="directory of held-out YAML files"
    )
    parser.add_argument("--out", default="results/nlu", help="output directory")
    parser.add_argument(
        "--min-f1",
        type=float,
        default=0.95,
        help="minimum intent macro-F1 per language (default 0.95)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="fallback threshold to report the confidence split against "
        "(default: read from the model's FallbackClassifier, else 0.55)",
    )
    return parser.parse_args(argv)


def language_of(path: Path) -> str:
    """`heldout_zh.yml` -> `zh`; any other name is used whole."""
    return path.stem.rsplit("_", 1)[-1]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def intent_scores(report: dict[str, Any]) -> dict[str, float]:
    return {
        name: float(values["f1-score"])
        for name, values in report.items()
        if name not in NON_INTENT_KEYS and isinstance(values, dict)
    }


def entity_scores(out_dir: Path) -> dict[str, dict[str, float | None]]:
    """F1 per extractor and entity from the extractor reports Rasa wrote."""
    scores: dict[str, dict[str, float | None]] = {}
    for report_path in sorted(out_dir.glob(f"*{ENTITY_REPORT_SUFFIX}")):
        extractor = report_path.name[: -len(ENTITY_REPORT_SUFFIX)]
        if extractor in {"intent", "response_selection"}:
            continue
        report = load_json(report_path) or {}
        scores[extractor] = {
            entity: (float(report[entity]["f1-score"]) if entity in report else None)
            for entity in ENTITIES
        }
    return scores


def confidence_split(out_dir: Path, threshold: float) -> dict[str, Any]:
    """Confidences of correct and wrong intent predictions (fallback undone)."""
    right = [
        float(item["intent_prediction"]["confidence"])
        for item in load_json(out_dir / "intent_successes.json") or []
    ]
    wrong = [
        {
            "text": item["text"],
            "intent": item["intent"],
            "predicted": item["intent_prediction"]["name"],
            "confidence": round(float(item["intent_prediction"]["confidence"]), 3),
        }
        for item in load_json(out_dir / "intent_errors.json") or []
    ]
    wrong_conf = [item["confidence"] for item in wrong]
    return {
        "threshold": threshold,
        "correct_n": len(right),
        "correct_min": round(min(right), 3) if right else None,
        "correct_median": round(statistics.median(right), 3) if right else None,
        "correct_below_threshold": sum(c < threshold for c in right),
        "wrong_n": len(wrong),
        "wrong_max": round(max(wrong_conf), 3) if wrong_conf else None,
        "wrong_at_or_above_threshold": sum(c >= threshold for c in wrong_conf),
        "errors": wrong,
    }


def model_fallback_threshold(agent: Any) -> float | None:
    for node in agent.processor.model_metadata.predict_schema.nodes.values():
        if node.uses.__name__ == "FallbackClassifier":
            return float(node.config.get("threshold", 0.3))
    return None


async def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from bot.rasa import patches

    # The model parses as the server parses it (RASA_PATCHES_OFF as for `python -m bot.rasa`).
    patches.install()
    from rasa.core.agent import Agent
    from rasa.nlu.test import run_evaluation
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # else every parse is printed at DEBUG
    files = sorted(Path(args.heldout_dir).glob("*.yml"))
    if not files:
        raise SystemExit(f"no held-out files in {args.heldout_dir}")
    agent = Agent.load(model_path=args.model)
    threshold = args.threshold
    if threshold is None:
        threshold = model_fallback_threshold(agent) or 0.55

    results: dict[str, Any] = {"model": args.model, "min_f1": args.min_f1}
    for path in files:
        lang = language_of(path)
        out_dir = Path(args.out) / lang
        out_dir.mkdir(parents=True, exist_ok=True)
        await run_evaluation(
            str(path),
            agent.processor,
            output_directory=str(out_dir),
            successes=True,
            errors=True,
            disable_plotting=True,
        )
        report = load_json(out_dir / "intent_report.json") or {}
        per_intent = intent_scores(report)
        results[lang] = {
            "file": str(path),
            "intent_f1": per_intent,
            "intent_macro_f1": float(report.get("macro avg", {}).get("f1-score", 0.0)),
            "intent_accuracy": float(report.get("accuracy", 0.0)),
            "entity_f1": entity_scores(out_dir),
            "confidence": confidence_split(out_dir, threshold),
        }
    return results


def print_summary(results: dict[str, Any]) -> list[str]:
    """Print the tables; return the languages below the bar."""
    failing = []
    languages = [key for key, value in results.items() if isinstance(value, dict)]
    for lang in languages:
        res = results[lang]
        print(f"\n== {lang} ({res['file']}) ==")
        for name, f1 in sorted(res["intent_f1"].items()):
            print(f"  {name:<24} {f1:.3f}")
        macro = res["intent_macro_f1"]
        print(f"  {'intent macro-F1':<24} {macro:.3f}  (accuracy {res['intent_accuracy']:.3f})")
        for extractor, scores in res["entity_f1"].items():
            shown = ", ".join(
                f"{entity} {'-' if f1 is None else f'{f1:.3f}'}"
                for entity, f1 in scores.items()
            )
            print(f"  entity F1 [{extractor}]: {shown}")
        conf = res["confidence"]
        print(
            f"  confidence: correct n={conf['correct_n']} min={conf['correct_min']} "
            f"median={conf['correct_median']} below {conf['threshold']}: "
            f"{conf['correct_below_threshold']}; wrong n={conf['wrong_n']} "
            f"max={conf['wrong_max']} at/above: {conf['wrong_at_or_above_threshold']}"
        )
        for err in conf["errors"]:
            print(
                f"    wrong: {err['text']!r} {err['intent']} -> "
                f"{err['predicted']} ({err['confidence']})"
            )
        if macro < results["min_f1"]:
            weakest = sorted(res["intent_f1"].items(), key=lambda item: item[1])[:3]
            names = ", ".join(f"{name} {f1:.3f}" for name, f1 in weakest)
            print(f"  FAIL: macro-F1 {macro:.3f} < {results['min_f1']}; weakest: {names}")
            failing.append(lang)
    return failing


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(evaluate(args))
    failing = print_summary(results)
    out_file = Path(args.out) / "nlu_eval.json"
    out_file.write_text(
        json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    print(f"\nresults written to {out_file}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
