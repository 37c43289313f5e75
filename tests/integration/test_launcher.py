"""`make run`'s launcher as a user runs it: secrets, health waits, the ready line, clean stop."""

from __future__ import annotations

import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
from dotenv import dotenv_values

from bot.settings import GENERATED_SECRETS, ROOT
from tests.testkit.processes import free_port

pytestmark = pytest.mark.integration


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """Lines the process printed up to the one starting with `marker` (read in a thread,
    since a buffered pipe and select() do not mix)."""
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if line.startswith(marker):
            return seen
    raise AssertionError(f"no {marker!r} line within {timeout} s:\n" + "\n".join(seen[-40:]))


def test_launcher_starts_everything_answers_and_stops_without_orphans(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    rasa_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RASA_", "REDIS_"))},
        "ENV_FILE": str(env_file),
        "DATA_DIR": str(tmp_path / "var"),
        "RASA_PORT": str(rasa_port),
        "ACTIONS_PORT": str(free_port()),
        "CARD_SERVICE_PORT": str(free_port()),
        "STAFF_CONSOLE_PORT": str(console_port := free_port()),
        "REDIS_EMBEDDED_PORT": str(free_port()),
    }
    launcher = subprocess.Popen(
        [sys.executable, "-m", "bot.stack.launcher"],
        cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        # The staff console's line is printed after the chat page's.
        lines = read_until(launcher, "Staff console: ", timeout=180)
        assert lines[-1] == f"Staff console: http://127.0.0.1:{console_port}"
        page_url = next(line for line in lines if line.startswith("Chat page: ")).split(
            "Chat page: ", 1)[1]
        assert page_url == f"http://127.0.0.1:{rasa_port}/webhooks/webchat/chat/"

        secrets = dotenv_values(env_file)
        assert all(secrets.get(name) for name in GENERATED_SECRETS)
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert (tmp_path / "var" / "redis" / "appendonlydir").exists() or any(
            p.name.startswith("appendonly") for p in (tmp_path / "var" / "redis").iterdir()
        )

        reply = requests.post(
            f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook",
            json={"sender": "launcher-test", "message": "你好"}, timeout=30,
        ).json()
        assert "社保卡" in reply[0]["text"]
        # The API is protected by the generated token.
        status = requests.get(
            f"http://127.0.0.1:{rasa_port}/status",
            params={"token": secrets["RASA_TOKEN"]}, timeout=10,
        )
        assert status.status_code == 200

        children = psutil.Process(launcher.pid).children(recursive=True)
        assert len(children) >= 3
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(60) is not None
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"orphans left: {[p.cmdline() for p in alive]}"
    finally:
        if launcher.poll() is None:
            # Let honcho stop its children first; then nothing may survive the test.
            tree = psutil.Process(launcher.pid).children(recursive=True)
            launcher.terminate()
            try:
                launcher.wait(30)
            except subprocess.TimeoutExpired:
                launcher.kill()
            for child in tree:
                if child.is_running():
                    child.kill()


def test_a_second_start_keeps_the_secrets(tmp_path: Path) -> None:
    from bot.settings import ensure_secrets

    env_file = tmp_path / ".env"
    assert set(ensure_secrets(env_file)) == set(GENERATED_SECRETS)
    first = dotenv_values(env_file)
    assert ensure_secrets(env_file) == []
    assert dotenv_values(env_file) == first
