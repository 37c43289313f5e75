"""tools/find-python.sh: finds CPython 3.10, or says how to get it, never falls back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.settings import ROOT

SCRIPT = ROOT / "tools" / "find-python.sh"


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          check=False)


def test_finds_the_python_running_these_tests() -> None:
    result = run({"PATH": "/usr/bin:/bin", "PYTHON310": sys.executable, "HOME": "/nonexistent"})
    assert result.returncode == 0
    assert result.stdout.strip() == sys.executable


def test_without_310_it_fails_with_instructions(tmp_path: Path) -> None:
    # A PATH where python3.10 is really a 3.11: it must be refused, not used.
    fake = tmp_path / "python3.10"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    result = run({"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)})
    if result.returncode == 0 and result.stdout.strip().startswith("/usr"):
        # The machine has a system python3.10; that is a correct answer.
        return
    assert result.returncode == 1
    assert "uv python install 3.10" in result.stderr
    assert result.stdout == ""
