"""ujson writes the same JSON as the standard library."""

from __future__ import annotations

import doctest
import json
from typing import Any

import pytest

from bot.rasa import fast_json

TRACKER: dict[str, Any] = {
    "sender_id": "web-1",
    "slots": {"city": "上海", "language": "zh", "child_name": None},
    "latest_message": {"text": "我孩子的社保卡丢了 </script>", "intent": {"name": "report_lost_card",
                       "confidence": 0.9873}, "entities": []},
    "events": [{"event": "user", "timestamp": 1764690000.123456, "text": "hi / 你好",
                "parse_data": {"intent_ranking": [{"confidence": 1e-05}]}}],
}


def test_doctests() -> None:
    assert doctest.testmod(fast_json).failed == 0


def test_same_value_as_the_standard_library() -> None:
    assert json.loads(fast_json.dumps(TRACKER)) == json.loads(json.dumps(TRACKER)) == TRACKER


def test_reads_what_the_standard_library_reads() -> None:
    text = json.dumps(TRACKER)
    assert fast_json.loads(text) == json.loads(text) == TRACKER
    # What ujson refuses still reads as the standard library reads it.
    for odd in ('{"text": "\\ud83d"}', '{"n": 123456789012345678901234567890}'):
        assert fast_json.loads(odd) == json.loads(odd)
    with pytest.raises(ValueError):
        fast_json.loads('{"broken": ')
