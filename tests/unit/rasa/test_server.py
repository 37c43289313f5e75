"""`python -m bot.rasa`: the enabled patches installed in order, then Rasa's command line."""

from __future__ import annotations

import sys

import pytest
import rasa.__main__

from bot.rasa import patches, server
from bot.rasa.patches import PATCHES
from bot.settings import Settings


def test_every_command_runs_with_the_enabled_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[object] = []
    monkeypatch.setattr(patches.Patch, "install", lambda patch: done.append(patch.name))
    monkeypatch.setattr(rasa.__main__, "main", lambda: done.append(list(sys.argv)))
    monkeypatch.setattr(server, "settings",
                        lambda: Settings.from_env({"RASA_PATCHES_OFF": "all"}))
    monkeypatch.setattr(sys, "argv", ["python -m bot.rasa"])
    server.main(["test", "--stories", "tests/stories"])
    behaviour = [patch.name for patch in PATCHES if patch.kind == "behaviour"]
    assert done == [*behaviour, ["rasa", "test", "--stories", "tests/stories"]]


def test_listing_installs_nothing(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(patches.Patch, "install", lambda patch: pytest.fail("installed"))
    monkeypatch.setattr(server, "settings",
                        lambda: Settings.from_env({"RASA_PATCHES_OFF": "gc_freeze"}))
    server.main([server.LIST])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "kind", "on/off", "replaces", "why"]
    gc_row = next(line for line in lines if line.startswith("gc_freeze "))
    assert gc_row.split()[1:3] == ["speed", "off"]


def test_an_unknown_name_exits_before_rasa(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patches.Patch, "install", lambda patch: pytest.fail("installed"))
    monkeypatch.setattr(server, "settings",
                        lambda: Settings.from_env({"RASA_PATCHES_OFF": "nope"}))
    with pytest.raises(SystemExit, match="RASA_PATCHES_OFF: no patch named nope; known: "):
        server.main(["run"])


def test_run_takes_its_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not from the command line, where `ps` shows them: the Procfile passes none."""
    seen: list[list[str]] = []
    monkeypatch.setattr(patches.Patch, "install", lambda patch: None)
    monkeypatch.setattr(rasa.__main__, "main", lambda: seen.append(list(sys.argv)))
    monkeypatch.setattr(server, "settings", lambda: Settings.from_env(
        {"RASA_TOKEN": "api-token", "RASA_JWT_SECRET": "jwt-secret"}))
    server.main(["run", "--enable-api"])
    assert seen[-1] == ["rasa", "run", "--enable-api", "--auth-token", "api-token",
                        "--jwt-secret", "jwt-secret"]
    server.main(["test", "core"])  # other commands get nothing
    assert seen[-1] == ["rasa", "test", "core"]
