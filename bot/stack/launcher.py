"""`make run`: every process of the stack under one supervisor (honcho), health-waited."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

from honcho.environ import parse_procfile
from honcho.manager import Manager

from bot.settings import ROOT, Settings
from bot.stack import envfile, health

START_TIMEOUT = float(os.environ.get("START_TIMEOUT", "300"))
PR_SET_PDEATHSIG = 1


def procfile_commands(settings: Settings, procfile: Path = ROOT / "Procfile") -> dict[str, str]:
    commands = dict(parse_procfile(procfile.read_text(encoding="utf-8")).processes)
    if not settings.redis_embedded:
        commands.pop("redis", None)
    return commands


def stack_environment(base: dict[str, str], settings: Settings) -> dict[str, str]:
    env = dict(base)
    env.update(settings.child_env())
    # The children are this virtual environment's programs (rasa, python).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def die_with_parent() -> None:
    """Stop the stack when `make run` itself is killed, not only on Ctrl-C (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def main() -> None:
    die_with_parent()
    env_path = Path(os.environ.get("ENV_FILE", str(ROOT / ".env")))
    added = envfile.ensure_secrets(env_path)
    if added:
        say(f"launcher: wrote new secrets to {env_path} ({', '.join(added)})")
    base = envfile.load(env_path)
    try:
        settings = Settings.from_env(base)
    except ValueError as error:
        sys.exit(f"launcher: {error}")
    env = stack_environment(base, settings)
    commands = procfile_commands(settings)

    manager = Manager()
    for name, command in commands.items():
        manager.add_process(name, command, env=env, cwd=str(ROOT))

    parts = {name: check for name, check in health.checks(settings).items() if name in commands}

    def announce() -> None:
        started = time.monotonic()
        failing = health.wait_until(
            parts, START_TIMEOUT, lambda name, t: say(f"launcher: {name} is up ({t:.1f} s)")
        )
        if failing:
            names = ", ".join(failing)
            say(f"launcher: not healthy after {START_TIMEOUT:.0f} s: {names}; stopping")
            manager.terminate()
            return
        say(f"launcher: ready in {time.monotonic() - started:.1f} s")
        if env.get("BOT_ENV") != "production" or env.get("REST_TOKEN"):
            say(f"REST webhook: {settings.rasa_url}/webhooks/rest/webhook")
        say(f"Chat page: {settings.chat_page_url}")

    threading.Thread(target=announce, daemon=True).start()
    manager.loop()
    sys.exit(manager.returncode or 0)


if __name__ == "__main__":
    main()
