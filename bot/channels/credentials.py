"""credentials.yml values for our channels, each falling back to an environment variable.

Rasa fails at start-up on a `${VAR}` that is not set, so credentials.yml lists every
channel with empty values and the secrets come from the environment (or `.env`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def setting(credentials: Mapping[str, Any] | None, key: str, env: Mapping[str, str],
            variable: str, default: str = "") -> str:
    """The credentials.yml value, else the environment's, else `default`; trimmed.

    >>> setting({"token": ""}, "token", {"BOT_TOKEN": " t "}, "BOT_TOKEN")
    't'
    """
    given = credentials or {}
    return str(given.get(key) or env.get(variable) or default).strip()
