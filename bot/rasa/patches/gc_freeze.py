"""The loaded model frozen out of the garbage collector's sight.

A full collection walked every object of the loaded model: 0.5-1 s with the event loop
stopped, twice per 1,000 turns in `make bench`. Frozen once it is loaded, a full collection
takes a few milliseconds. Nothing the model holds is ever garbage while the server runs.
"""

from __future__ import annotations

import functools
import gc
from typing import Any


def install() -> None:
    """`rasa.core.run.load_agent_on_start` freezes what it loaded (once per process)."""
    import rasa.core.run

    original = rasa.core.run.load_agent_on_start
    if getattr(original, "__wrapped__", None) is not None:
        return

    @functools.wraps(original)
    async def load_agent_on_start(*args: Any, **kwargs: Any) -> Any:
        agent = await original(*args, **kwargs)
        gc.collect()
        gc.freeze()
        return agent

    rasa.core.run.load_agent_on_start = load_agent_on_start
