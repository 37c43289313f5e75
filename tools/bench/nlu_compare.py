"""Our NLU pipeline against Rasa's default, on the same data in the same run.

Each is trained from scratch (an empty Rasa cache, so nothing is reused) with nothing else
running, then both models are evaluated on the same held-out files (tests/nlu) by
tools/nlu_eval.py and on the blind field set (tests/nlu/field) by tools/nlu_field.py. Rasa's
default is the pipeline `rasa init` trains with (written out in tools/bench/baseline.py with a
fixed seed); its WhitespaceTokenizer needs `language: en`, which is what a Rasa user who does
not configure anything gets.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bot.settings import ROOT
from tools.bench import baseline

PIPELINES = ("ours", "default")


def default_config() -> str:
    """Rasa's default NLU pipeline: the baseline's config without its policies."""
    config = yaml.safe_load(baseline.CONFIG)
    config.pop("policies", None)
    config["assistant_id"] = "bench_default_nlu"
    return "# Rasa's default NLU pipeline, fixed seed (tools/bench/baseline.py).\n" + \
        yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train(name: str, config: Path, work: Path) -> dict[str, Any]:
    """`rasa train nlu` from scratch, as `make train` runs it (`python -m bot.rasa`, for both
    pipelines alike); wall and CPU seconds, and the model's path."""
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RASA_CACHE_DIRECTORY": str(out / "cache")}
    cpu_before, started = children_cpu_s(), time.monotonic()
    with open(out / "train.log", "wb") as log:
        subprocess.run(
            [sys.executable, "-m", "bot.rasa", "train", "nlu", "--config", str(config),
             "--nlu", str(ROOT / "data" / "nlu"), "--out", str(out),
             "--fixed-model-name", name],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return {"wall_s": round(time.monotonic() - started, 1),
            "cpu_s": round(children_cpu_s() - cpu_before, 1),
            "model": str(out / f"{name}.tar.gz")}


def evaluate(model: str, out: Path) -> dict[str, Any]:
    """tools/nlu_eval.py on the held-out files: per language, intents and entities."""
    with open(out / "eval.log", "wb") as log:
        subprocess.run(
            [sys.executable, str(ROOT / "tools" / "nlu_eval.py"), "--model", model,
             "--heldout-dir", str(ROOT / "tests" / "nlu"), "--out", str(out / "eval"),
             "--min-f1", "0"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    return dict(json.loads((out / "eval" / "nlu_eval.json").read_text(encoding="utf-8")))


def evaluate_field(model: str, out: Path) -> dict[str, Any]:
    """tools/nlu_field.py on the blind field set: accuracy per language and category."""
    with open(out / "field.log", "wb") as log:
        subprocess.run(
            [sys.executable, str(ROOT / "tools" / "nlu_field.py"), "--model", model,
             "--field-dir", str(ROOT / "tests" / "nlu" / "field"), "--out", str(out / "field"),
             "--min-accuracy", "0"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    found = json.loads((out / "field" / "field.json").read_text(encoding="utf-8"))
    # The messages themselves stay out of the report: only figures leave the field set.
    return {key: found[key] for key in ("accuracy", "count", "by_category", "confusions")}


def compare(work: Path, say: Any) -> dict[str, Any]:
    """{"ours"|"default": {"training": {...}, "eval": {...}}}, one after the other."""
    default = work / "default-config.yml"
    default.write_text(default_config(), encoding="utf-8")
    configs = {"ours": ROOT / "config.yml", "default": default}
    results: dict[str, Any] = {}
    for name in PIPELINES:
        say(f"nlu: training the {name} pipeline from scratch")
        training = train(name, configs[name], work / "nlu")
        say(f"nlu: {name} trained in {training['wall_s']} s ({training['cpu_s']} s of CPU); "
            "evaluating on the held-out files")
        results[name] = {"training": training,
                         "eval": evaluate(training["model"], work / "nlu" / name),
                         "field": evaluate_field(training["model"], work / "nlu" / name)}
    return results
