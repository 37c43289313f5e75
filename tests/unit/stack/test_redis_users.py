"""`make run`'s Redis users: the embedded Redis's config (digests only, mode 600, var/ 0700)
and each process's own Redis URL, with one URL for all while no user has a password."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from bot import redis as bot_redis
from bot.settings import Settings
from bot.stack import redis_server
from bot.stack.launcher import (
    REDIS_USER_OF,
    process_environment,
    procfile_commands,
    stack_environment,
)

SECRETS = {"REDIS_PASSWORD": "admin-secret", "REDIS_RASA_PASSWORD": "rasa-secret",
           "REDIS_CARD_SERVICE_PASSWORD": "card-secret"}


def test_the_config_names_each_user_by_digest_and_turns_the_default_user_off(
        tmp_path: Path) -> None:
    settings = Settings.from_env({"DATA_DIR": str(tmp_path / "var"), **SECRETS})
    path = redis_server.write_configuration(settings, settings.redis_password)
    text = path.read_text()
    for secret in SECRETS.values():
        assert secret not in text
        assert f"#{hashlib.sha256(secret.encode()).hexdigest()}" in text
    assert "requirepass" not in text
    assert bot_redis.DEFAULT_USER_OFF in text.splitlines()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (tmp_path / "var", tmp_path / "var" / "redis"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_an_existing_data_directory_and_config_are_narrowed(tmp_path: Path) -> None:
    """var/ and redis.conf made readable by an older version are closed on the next start."""
    (tmp_path / "var" / "redis").mkdir(parents=True)
    (tmp_path / "var").chmod(0o755)
    (tmp_path / "var" / "redis").chmod(0o755)
    old = tmp_path / "var" / "redis" / "redis.conf"
    old.write_text('requirepass "old"\n')
    old.chmod(0o644)
    settings = Settings.from_env({"DATA_DIR": str(tmp_path / "var"), "REDIS_PASSWORD": "pw"})
    redis_server.write_configuration(settings, "pw")
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "var" / "redis").stat().st_mode) == 0o700
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


def test_each_process_connects_as_its_own_user(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), **SECRETS})
    assert settings.redis_url == "redis://admin:admin-secret@127.0.0.1:6390/0"
    env = stack_environment({"PATH": "/usr/bin", **SECRETS}, settings)
    rasa = process_environment(env, settings, "rasa")
    assert rasa["REDIS_URL"] == "redis://rasa:rasa-secret@127.0.0.1:6390/0"
    # endpoints.yml's stores read these.
    assert (rasa["REDIS_USERNAME"], rasa["REDIS_PASSWORD"]) == ("rasa", "rasa-secret")
    assert "REDIS_CARD_SERVICE_PASSWORD" not in rasa
    card = process_environment(env, settings, "card")
    assert card["REDIS_URL"] == "redis://card-service:card-secret@127.0.0.1:6390/0"
    assert "rasa-secret" not in card.values() and "admin-secret" not in card.values()
    actions = process_environment(env, settings, "actions")
    assert not [name for name in actions if name.startswith("REDIS_")]
    assert actions["PATH"].endswith("/usr/bin")
    # The embedded Redis itself gets every password: it writes the users.
    assert process_environment(env, settings, "redis")["REDIS_RASA_PASSWORD"] == "rasa-secret"


def test_without_user_passwords_every_process_shares_redis_url_as_before() -> None:
    settings = Settings.from_env({"REDIS_URL": "redis://:pw@redis.internal:6379/2"})
    assert settings.redis_user_passwords() == {}
    env = stack_environment({}, settings)
    for name in ("rasa", "card"):
        own = process_environment(env, settings, name)
        assert own["REDIS_URL"] == "redis://:pw@redis.internal:6379/2"
        assert (own["REDIS_HOST"], own["REDIS_DB"], own["REDIS_USERNAME"]) == (
            "redis.internal", "2", "")
    embedded = Settings.from_env({"REDIS_PASSWORD": "pw"})
    assert embedded.redis_url == "redis://:pw@127.0.0.1:6390/0"  # the default user
    text = redis_server.configuration(6390, Path("/tmp"), "pw",
                                      users=embedded.redis_user_passwords())
    assert 'requirepass "pw"' in text and "user " not in text


def test_users_need_an_admin_password() -> None:
    try:
        bot_redis.acl_lines({bot_redis.RASA_USER: "r"}, "")
    except ValueError as error:
        assert "REDIS_PASSWORD" in str(error)
    else:
        raise AssertionError("users without an admin password")


def test_every_procfile_process_but_redis_has_its_redis_user_said() -> None:
    """A new process must say which user it connects as, or it would inherit the admin's."""
    settings = Settings.from_env({"REDIS_PASSWORD": "pw"})
    names = set(procfile_commands(settings))
    assert names - {"redis"} == set(REDIS_USER_OF)
