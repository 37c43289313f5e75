"""TensorFlow at one thread per pool for `rasa run` alone, an operator's value first."""

from __future__ import annotations

import os
import sys

import pytest

from bot.rasa.patches import tf_threads


@pytest.mark.parametrize("argv", [["rasa", "run"], ["rasa", "train"], ["rasa", "test"],
                                  ["rasa"]])
def test_one_thread_only_for_run(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    for name in tf_threads.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", argv)
    tf_threads.install()
    tf_threads.install()  # twice is once
    expected = "1" if argv[1:] == ["run"] else None
    assert [os.environ.get(name) for name in tf_threads.VARIABLES] == [expected, expected]


def test_an_operators_value_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_INTRA_OP_PARALLELISM_THREADS", "4")
    monkeypatch.delenv("TF_INTER_OP_PARALLELISM_THREADS", raising=False)
    monkeypatch.setattr(sys, "argv", ["rasa", "run", "--port", "5005"])
    tf_threads.install()
    assert os.environ["TF_INTRA_OP_PARALLELISM_THREADS"] == "4"
    assert os.environ["TF_INTER_OP_PARALLELISM_THREADS"] == "1"
