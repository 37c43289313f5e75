"""The embedded Redis configuration: loopback only, every write fsynced, password in a file."""

from __future__ import annotations

import stat
from pathlib import Path

import redis

from bot.settings import Settings
from bot.stack import redis_server
from tests.testkit.processes import Process, free_port, wait_for


def test_configuration_promises_durability_and_loopback(tmp_path: Path) -> None:
    text = redis_server.configuration(6390, tmp_path, "pw")
    assert "appendonly yes" in text and "appendfsync always" in text
    assert "bind 127.0.0.1" in text
    assert 'requirepass "pw"' in text


def test_the_embedded_server_starts_with_the_password(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), "REDIS_EMBEDDED_PORT": str(port),
                                  "REDIS_PASSWORD": "pw", "REDIS_MAXMEMORY": "64mb"})
    config = redis_server.write_configuration(settings, "pw")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700  # the data directory too
    process = Process("redis", [redis_server.binary(), str(config)], {}, tmp_path).start()
    try:
        client = redis.Redis.from_url(settings.redis_url)
        wait_for(lambda: _pings(client), 10, "redis")
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        # Nothing is ever evicted: at the ceiling a write fails with an error instead.
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
        anonymous = redis.Redis(port=port)
        try:
            anonymous.ping()
            raise AssertionError("redis answered without the password")
        except redis.AuthenticationError:
            pass
    finally:
        process.stop()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
