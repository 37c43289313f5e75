"""`rasa` as the stack runs it: Rasa's own command line, with three changes to its server.

- Action-server replies are checked by a schema compiled once. Rasa 3.6 calls
  `jsonschema.validate()`, which re-checks its large events schema against the
  meta-schema and builds a new validator on every reply: 45% of the Rasa process's busy
  time in `make bench`. Same verdict, a fraction of the cost.
- Every channel's messages are cleaned and cut to one length (bot/message_limit.py).
- Tracker-store failures fail the turn instead of answering from memory
  (bot/strict_tracker_store.py).

    python -m bot.rasa_server run --model models/bot.tar.gz ...   # any `rasa` arguments
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction


@functools.lru_cache(maxsize=1)
def _reply_validator() -> Any:
    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    if _reply_validator().is_valid(result):
        return True
    # A bad reply is rare: Rasa's own check then raises its own error, with its wording.
    original = RemoteAction._validate_action_result.__wrapped__  # type: ignore[attr-defined]
    return bool(original(self, result))


def install() -> None:
    """Replace Rasa's per-call schema compilation with the compiled validator."""
    if getattr(RemoteAction._validate_action_result, "__wrapped__", None) is not None:
        return
    original = RemoteAction._validate_action_result
    patched = functools.wraps(original)(_validate_action_result)
    RemoteAction._validate_action_result = patched  # type: ignore[method-assign]


def main() -> None:
    install()
    from bot import message_limit, strict_tracker_store

    message_limit.install()
    strict_tracker_store.install()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    sys.argv[0] = "rasa"
    main()

