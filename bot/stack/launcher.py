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

from bot import redis as bot_redis
from bot import settings as bot_settings
from bot.settings import ROOT, Settings, redis_env
from bot.stack import health
from bot.stack.redis_server import private_directory

PR_SET_PDEATHSIG = 1
# The Redis user each Procfile process connects as (bot/redis.py ACL_USERS); the action
# server uses no Redis and gets no Redis variable. Any other process (the embedded Redis)
# keeps them all.
REDIS_USER_OF: dict[str, str | None] = {
    "rasa": bot_redis.RASA_USER,
    "card": bot_redis.CARD_SERVICE_USER,
    "console": bot_redis.CONSOLE_USER,
    "actions": None,
}


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


def process_environment(env: dict[str, str], settings: Settings, name: str) -> dict[str, str]:
    """`env` for the Procfile process `name`: the Redis URL and REDIS_* variables of its own
    user (REDIS_URL for all while the users' passwords are unset)."""
    if name not in REDIS_USER_OF:
        return env
    own = {key: value for key, value in env.items() if not key.startswith("REDIS_")}
    user = REDIS_USER_OF[name]
    return own if user is None else {**own, **redis_env(settings.redis_url_for(user))}


def metrics_lines(settings: Settings, commands: dict[str, str]) -> list[str]:
    """One `Metrics:` line per process serving GET /metrics (bot/metrics.py): each keeps
    its own counts, and Prometheus, not a page here, adds them up (deploy/prometheus.yml).

    >>> s = Settings.from_env({})
    >>> metrics_lines(s, {"rasa": "", "actions": "", "card": "", "redis": ""})[0]
    'Metrics: http://127.0.0.1:5005/metrics (rasa)'
    >>> metrics_lines(Settings.from_env({"METRICS": "off"}), {"rasa": ""})
    []
    """
    if not settings.metrics_enabled:
        return []
    bases = {"rasa": settings.rasa_url, "actions": settings.actions_url,
             "card": settings.card_service_url}
    return [f"Metrics: {base}/metrics ({name})" for name, base in bases.items()
            if name in commands]


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
    # The secrets go into `.env` before the settings are read from it.
    env_path = bot_settings.env_file()
    added = bot_settings.ensure_secrets(env_path)
    if added:
        say(f"launcher: wrote new secrets to {env_path} ({', '.join(added)})")
    try:
        stack = bot_settings.settings()
    except ValueError as error:
        sys.exit(f"launcher: {error}")
    private_directory(stack.data_dir)
    env = stack_environment(bot_settings.environment(stack.env_file), stack)
    commands = procfile_commands(stack)

    manager = Manager()
    for name, command in commands.items():
        manager.add_process(name, command, env=process_environment(env, stack, name),
                            cwd=str(ROOT))

    parts = {name: check for name, check in health.checks(stack).items() if name in commands}

    def announce() -> None:
        started = time.monotonic()
        failing = health.wait_until(
            parts, stack.start_timeout, lambda name, t: say(f"launcher: {name} is up ({t:.1f} s)")
        )
        if failing:
            names = ", ".join(failing)
            say(f"launcher: not healthy after {stack.start_timeout:.0f} s: {names}; stopping")
            manager.terminate()
            return
        say(f"launcher: ready in {time.monotonic() - started:.1f} s")
        if stack.bot_env != "production" or stack.rest_token:
            say(f"REST webhook: {stack.rasa_url}/webhooks/rest/webhook")
        say(f"Chat page: {stack.chat_page_url}")
        for line in metrics_lines(stack, commands):
            say(line)
        if "console" in commands:
            say(f"Staff console: {stack.staff_console_url}")

    threading.Thread(target=announce, daemon=True).start()
    manager.loop()
    sys.exit(manager.returncode or 0)


if __name__ == "__main__":
    main()
