"""Redis clients from one factory; every key prefix listed once, used, and written nowhere else."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot import redis as bot_redis
from bot.settings import ROOT

# Where our Redis keys are written (tests and tools may spell keys out to check them).
PACKAGES = ("bot", "card_service", "console")
FACTORY = ROOT / "bot" / "redis.py"


def test_a_client_has_its_roles_timeouts_and_the_callers_options() -> None:
    options = bot_redis.async_client("redis://127.0.0.1:6390/2", "store",
                                     decode_responses=True).connection_pool.connection_kwargs
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (5.0, 5.0)
    assert (options["decode_responses"], options["db"]) == (True, 2)
    options = bot_redis.client("redis://127.0.0.1:6390/0", "lock",
                               socket_timeout=3.0).connection_pool.connection_kwargs
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (3.0, 10.0)


def test_an_unknown_role_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown Redis role 'cache'"):
        bot_redis.client("redis://127.0.0.1:6390/0", "cache")


def test_an_endpoint_password_is_not_put_in_the_url() -> None:
    client = bot_redis.client(bot_redis.endpoint_url("127.0.0.1", "6390", "1"), "tracker",
                              password="p@ss:/")
    assert client.connection_pool.connection_kwargs["password"] == "p@ss:/"


def constants() -> dict[str, str]:
    """Each prefix's constant name in bot.redis."""
    found = {value: name for name, value in vars(bot_redis).items()
             if name.isupper() and isinstance(value, str) and value in bot_redis.PREFIXES}
    assert set(found) == set(bot_redis.PREFIXES), "every prefix has its constant"
    return found


def sources() -> Iterator[tuple[Path, str]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path != FACTORY:
                yield path, path.read_text(encoding="utf-8")


def test_both_stores_use_the_tracker_prefix() -> None:
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8"))
    helm = (ROOT / "deploy" / "helm" / "rasa-values.yaml").read_text(encoding="utf-8")
    assert endpoints["tracker_store"]["key_prefix"] == bot_redis.TRACKER
    assert endpoints["lock_store"]["key_prefix"] == bot_redis.TRACKER
    assert re.findall(r"key_prefix: (\S+)", helm) == [bot_redis.TRACKER] * 2


def test_every_prefix_is_in_use() -> None:
    text = "\n".join(source for _, source in sources())
    unused = [name for name in constants().values()
              if name != "TRACKER"  # used through endpoints.yml: see the test above
              and not re.search(rf"\b{name}\b", text)]
    assert unused == []


def literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """String constants, parts of f-strings included, but not docstrings."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            yield node.lineno, node.value


def names_a_key(literal: str, prefix: str) -> bool:
    """Whether `literal` spells a key under `prefix`: the prefix with its ":" and then a
    name or nothing. "wechat: unreadable message" is a log line, "whatsapp:+86..." an
    address; a bare "whatsapp" is also the channel's name, so it cannot be told apart.

    >>> names_a_key("cardsvc:reports", "cardsvc:"), names_a_key("cardbot:", "cardbot")
    (True, True)
    >>> names_a_key("wechat: new token", "wechat:"), names_a_key("whatsapp", "whatsapp")
    (False, False)
    """
    stem = prefix if prefix.endswith(":") else prefix + ":"
    if literal == prefix and ":" in prefix:
        return True
    rest = literal[len(stem):] if literal.startswith(stem) else None
    return rest is not None and (rest == "" or bool(re.match(r"[\w{]", rest)))


def test_no_prefix_is_written_out_elsewhere() -> None:
    written = [f"{path.relative_to(ROOT)}:{line}: {literal!r} ({name})"
               for path, source in sources()
               for line, literal in literals(ast.parse(source))
               for prefix, name in constants().items() if names_a_key(literal, prefix)]
    assert written == [], "use the constants of bot.redis"
