"""The .env file: made once with mode 600, never rewritten, below the real environment."""

from __future__ import annotations

import stat
from pathlib import Path

from dotenv import dotenv_values

from bot.stack import envfile


def test_first_run_writes_every_secret_private(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    added = envfile.ensure_secrets(path)
    assert set(added) == set(envfile.GENERATED_SECRETS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = dotenv_values(path)
    assert len({values[name] for name in envfile.GENERATED_SECRETS}) == len(added)
    assert all(len(values[name] or "") >= 40 for name in added)


def test_existing_values_are_kept_and_only_missing_ones_added(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("RASA_TOKEN=mine\nOTHER=1")
    added = envfile.ensure_secrets(path)
    assert "RASA_TOKEN" not in added
    values = dotenv_values(path)
    assert values["RASA_TOKEN"] == "mine" and values["OTHER"] == "1"
    assert all(values.get(name) for name in envfile.GENERATED_SECRETS)


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("RASA_TOKEN=from-file\nCARD_SERVICE_TOKEN=file\n")
    env = envfile.load(path, {"RASA_TOKEN": "from-env"})
    assert env["RASA_TOKEN"] == "from-env"
    assert env["CARD_SERVICE_TOKEN"] == "file"
