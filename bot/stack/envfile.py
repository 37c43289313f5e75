"""The `.env` file: random secrets made on first run, read on every run."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from dotenv import dotenv_values

GENERATED_SECRETS = (
    "RASA_TOKEN",
    "CARD_SERVICE_TOKEN",
    "CARD_SERVICE_STAFF_TOKEN",
    "REDIS_PASSWORD",
    "DATA_ENCRYPTION_KEY",
)


def ensure_secrets(path: Path) -> list[str]:
    """Add every missing secret to `path` (created with mode 600); return the names added.

    Existing values are never rewritten: tokens already handed out and data already
    encrypted must keep working.
    """
    present = dotenv_values(path) if path.exists() else {}
    missing = [name for name in GENERATED_SECRETS if not present.get(name)]
    if missing:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
                out.write("\n")
            for name in missing:
                out.write(f"{name}={secrets.token_urlsafe(32)}\n")
    os.chmod(path, 0o600)
    return missing


def load(path: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with `.env` filled in underneath: a variable already set wins."""
    env = dict(os.environ if environ is None else environ)
    if path.exists():
        for name, value in dotenv_values(path).items():
            if value is not None:
                env.setdefault(name, value)
    return env
