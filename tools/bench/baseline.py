"""The bare Rasa bot of `rasa init` (moodbot), trained with a fixed seed, served alone.

The project is Rasa's own template (what `rasa init --no-prompt` writes); its config is
Rasa's default pipeline and policies written out, plus `random_seed`, so two runs train
the same model. A trained model is reused while the config and data are unchanged.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rasa.cli.scaffold import scaffold_path

DIRECTORY = Path(tempfile.gettempdir()) / "bench-baseline"
MODEL_NAME = "baseline"

CONFIG = """\
# Rasa's default pipeline and policies (what `rasa init` trains with), with a fixed seed.
recipe: default.v1
assistant_id: bench_baseline
language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: RegexFeaturizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 100
    random_seed: 42
  - name: EntitySynonymMapper
  - name: ResponseSelector
    epochs: 100
    random_seed: 42
  - name: FallbackClassifier
    threshold: 0.3
    ambiguity_threshold: 0.1
policies:
  - name: MemoizationPolicy
  - name: RulePolicy
  - name: TEDPolicy
    max_history: 5
    epochs: 100
    random_seed: 42
"""

# REST and Rasa's own socket.io channel, set up as our web chat is.
CREDENTIALS = """\
rest:
socketio:
  user_message_evt: user_uttered
  bot_message_evt: bot_uttered
  session_persistence: true
"""


def rasa_bin() -> str:
    return str(Path(sys.executable).parent / "rasa")


def prepare(directory: Path = DIRECTORY) -> Path:
    """The project on disk with our config and credentials; returns its directory."""
    if not (directory / "domain.yml").exists():
        shutil.copytree(scaffold_path(), directory, dirs_exist_ok=True)
    (directory / "config.yml").write_text(CONFIG, encoding="utf-8")
    (directory / "credentials.yml").write_text(CREDENTIALS, encoding="utf-8")
    (directory / "endpoints.yml").write_text("# in-memory tracker store, no actions\n",
                                             encoding="utf-8")
    return directory


def inputs_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted([directory / "config.yml", directory / "domain.yml",
                        *(directory / "data").rglob("*.yml")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_path(directory: Path = DIRECTORY) -> Path:
    return directory / "models" / f"{MODEL_NAME}.tar.gz"


def start_training(directory: Path, log: Path) -> subprocess.Popen[bytes] | None:
    """Start `rasa train` unless a model of these inputs is there; None when reused."""
    stamp = directory / "models" / f"{MODEL_NAME}.inputs"
    digest = inputs_digest(directory)
    if model_path(directory).exists() and stamp.exists() and stamp.read_text() == digest:
        return None
    stamp.unlink(missing_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [rasa_bin(), "train", "--fixed-model-name", MODEL_NAME, "--out", "models"],
            cwd=directory, stdout=out, stderr=subprocess.STDOUT)


def finish_training(directory: Path, process: subprocess.Popen[bytes] | None,
                    started: float) -> float | None:
    """Wait for the training; seconds it took (None when the model was reused)."""
    if process is None:
        return None
    if process.wait() != 0:
        raise RuntimeError(f"baseline training failed, see the log in {directory}")
    (directory / "models" / f"{MODEL_NAME}.inputs").write_text(inputs_digest(directory))
    return time.monotonic() - started


def server_command(port: int, directory: Path = DIRECTORY) -> list[str]:
    return [rasa_bin(), "run", "--model", str(model_path(directory)), "--port", str(port),
            "--interface", "127.0.0.1", "--enable-api", "--auth-token", "bench-baseline",
            "--credentials", str(directory / "credentials.yml"),
            "--endpoints", str(directory / "endpoints.yml")]
