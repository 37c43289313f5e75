"""The registry of Rasa patches: every module listed once, each entry sound, the switch read
as RASA_PATCHES_OFF says."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.rasa import patches
from bot.rasa.patches import ALL, PATCHES, UnknownPatch, enabled
from bot.settings import ROOT, Settings

NAMES = [patch.name for patch in PATCHES]


def test_every_module_is_one_entry() -> None:
    modules = sorted(module.name for module in pkgutil.iter_modules(patches.__path__))
    assert sorted(NAMES) == modules
    assert len(set(NAMES)) == len(NAMES)


def test_entries_are_complete() -> None:
    for patch in PATCHES:
        assert patch.kind in ("speed", "behaviour"), patch
        assert patch.why and "\n" not in patch.why, patch
        assert patch.replaces and all(name.startswith("rasa.") for name in patch.replaces)
    assert PATCHES[0].name == "tf_threads"  # before TensorFlow starts


# Run apart: installing is for good, and behaviour patches would change later tests.
INSTALL_EVERY_PATCH = """
import importlib, json, sys
from bot.rasa.patches import PATCHES

def resolve(dotted):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            found = getattr(found, part)
        return found

report = {}
for patch in PATCHES:
    before = [resolve(name) for name in patch.replaces]
    patch.install()
    once = [resolve(name) for name in patch.replaces]
    patch.install()
    twice = [resolve(name) for name in patch.replaces]
    report[patch.name] = {"changed": [a is not b for a, b in zip(before, once)],
                          "idempotent": all(a is b for a, b in zip(once, twice))}
print(json.dumps(report))
"""


def test_each_entry_replaces_what_it_names_once() -> None:
    done = subprocess.run([sys.executable, "-c", INSTALL_EVERY_PATCH], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    assert sorted(report) == sorted(NAMES)
    for name, found in report.items():
        assert found["idempotent"], name
        # tf_threads changes the environment Rasa's setup reads (test_tf_threads.py).
        if name != "tf_threads":
            assert all(found["changed"]), name


def test_patches_off_read_from_the_environment() -> None:
    off = Settings.from_env({"RASA_PATCHES_OFF": " all , gc_freeze,,"}).rasa_patches_off
    assert off == (ALL, "gc_freeze")
    assert Settings.from_env({}).rasa_patches_off == ()


def test_all_leaves_behaviour_on() -> None:
    assert enabled(()) == list(PATCHES)
    assert [patch.name for patch in enabled([ALL])] == \
        [patch.name for patch in PATCHES if patch.kind == "behaviour"]
    assert "language_slot" not in [patch.name for patch in enabled([ALL, "language_slot"])]


def test_names_switch_off_those_alone_in_order() -> None:
    chosen = enabled(["gc_freeze", "message_limit"])
    assert [patch.name for patch in chosen] == \
        [name for name in NAMES if name not in ("gc_freeze", "message_limit")]


def test_an_unknown_name_fails_listing_the_known() -> None:
    with pytest.raises(UnknownPatch) as raised:
        enabled(["gc_freeze", "no_such_patch"])
    message = str(raised.value)
    assert "no_such_patch" in message and "gc_freeze" not in message.split(";")[0]
    assert all(name in message for name in NAMES)


def test_install_installs_nothing_when_a_name_is_unknown() -> None:
    with pytest.raises(UnknownPatch):
        patches.install(["tf_threads", "typo"])


def run_module(env_off: str | None, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "ENV_FILE": str(tmp_path / "none.env")}
    if env_off is not None:
        env["RASA_PATCHES_OFF"] = env_off
    return subprocess.run([sys.executable, "-m", "bot.rasa", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_list_patches_prints_every_entry(tmp_path: Path) -> None:
    for off, expected_off in ((None, set()), (ALL, {p.name for p in PATCHES
                                                    if p.kind == "speed"})):
        done = run_module(off, "--list-patches", tmp_path=tmp_path)
        assert done.returncode == 0, done.stderr
        rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:]
                if line and not line.startswith(" ")}
        assert sorted(rows) == sorted(NAMES)
        for patch in PATCHES:
            cells = rows[patch.name].split()
            assert cells[1] == patch.kind
            assert cells[2] == ("off" if patch.name in expected_off else "on")
            assert patch.replaces[0] in rows[patch.name] and patch.why in rows[patch.name]
        assert all(name in done.stdout for patch in PATCHES for name in patch.replaces)


def test_listing_imports_no_rasa() -> None:
    code = ("import sys; from bot.rasa import server; server.main(['--list-patches']); "
            "print(sorted(name for name in sys.modules if name.split('.')[0] == 'rasa'))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.splitlines()[-1] == "[]"


def test_an_unknown_name_stops_the_start(tmp_path: Path) -> None:
    done = run_module("gc-freeze", "run", tmp_path=tmp_path)
    assert done.returncode != 0
    assert "RASA_PATCHES_OFF: no patch named gc-freeze; known: tf_threads" in done.stderr
