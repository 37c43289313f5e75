"""The generated training files are what tools/augment_nlu.py makes from today's data."""

from __future__ import annotations

import random

from tools import augment_nlu


def test_the_committed_generated_files_are_current() -> None:
    assert augment_nlu.main(["--check"]) == 0, "run `make augment` and commit the files"


def test_pinyin_by_word_and_by_syllable() -> None:
    assert augment_nlu.pinyin("孩子的社保卡丢了", by_word=False) == "hai zi de she bao ka diu le"
    assert augment_nlu.pinyin("孩子的社保卡丢了", by_word=True).startswith("haizi de")


def test_a_slip_changes_one_word_by_one_keystroke() -> None:
    rng = random.Random(3)
    slips = [augment_nlu.slipped("replacement", rng) for _ in range(50)]
    assert all(abs(len(slip) - len("replacement")) <= 1 for slip in slips)
    assert all(slip[0] == "r" and slip[-1] == "t" for slip in slips)  # first and last kept
    # A doubled "ee" swapped stays the same word; nearly every other slip changes it.
    assert sum(slip != "replacement" for slip in slips) >= 45
