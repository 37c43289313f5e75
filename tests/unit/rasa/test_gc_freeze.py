"""The loaded model is frozen out of the garbage collector once it is loaded."""

from __future__ import annotations

import pytest

from bot.rasa.patches import gc_freeze


def test_the_loaded_model_is_frozen_out_of_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import gc

    import rasa.core.run

    loaded = object()

    async def load_agent_on_start(*args: object) -> object:
        return loaded

    monkeypatch.setattr(rasa.core.run, "load_agent_on_start", load_agent_on_start)
    gc_freeze.install()
    gc_freeze.install()  # twice is once
    wrapped = rasa.core.run.load_agent_on_start
    assert wrapped.__wrapped__ is load_agent_on_start  # type: ignore[attr-defined]
    try:
        assert asyncio.run(wrapped("model", None, None, None, None)) is loaded
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
