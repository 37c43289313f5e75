"""Data at rest: AES-GCM under a key id, keyed hashes to check a guardian's ID.

Every key is derived (HKDF) from a secret in the environment: `DATA_ENCRYPTION_KEY` seals,
and the secrets in `DATA_ENCRYPTION_KEYS_RETIRED` still open what they sealed, so a key can be
changed and the data re-sealed at leisure (`python -m bot.crypto rotate`). A sealed value
names its key: `v2:<key id>:<nonce, ciphertext and tag>`; `v1:` values, sealed before key ids
existed, open with any known key. The hash key is never an encryption key; a hash made under
a retired secret still matches until the rotation re-hashes it from the sealed value.

>>> vault = Vault("a-secret-of-sixteen-or-more")
>>> token = vault.encrypt("11010519491231002X", "report:SC-1:child_id")
>>> token.startswith("v2:" + vault.key_id + ":"), vault.decrypt(token, "report:SC-1:child_id")
(True, '11010519491231002X')
>>> Vault("a-new-secret-of-sixteen", retired=["a-secret-of-sixteen-or-more"]).decrypt(
...     token, "report:SC-1:child_id")
'11010519491231002X'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_LENGTH = 16
_VERSION = "v2"
_LEGACY = "v1"


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"cardbot card-service " + purpose).derive(secret.encode("utf-8"))


def key_id(secret: str) -> str:
    """Eight hex characters naming a secret's encryption key, not revealing it."""
    return hmac.new(_derive(secret, b"key id v1"), b"key id", hashlib.sha256).hexdigest()[:8]


class Vault:
    def __init__(self, secret: str, retired: Iterable[str] = ()):
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError("DATA_ENCRYPTION_KEY is not set (or shorter than "
                             f"{MIN_SECRET_LENGTH} characters); `make run` writes one to .env")
        self.key_id = key_id(secret)
        self._keys = {self.key_id: AESGCM(_derive(secret, b"encryption v1"))}
        self._hash_keys = [_derive(secret, b"keyed hash v1")]
        for old in retired:
            if old and old != secret and key_id(old) not in self._keys:
                self._keys[key_id(old)] = AESGCM(_derive(old, b"encryption v1"))
                self._hash_keys.append(_derive(old, b"keyed hash v1"))

    def encrypt(self, plaintext: str, context: str) -> str:
        """`context` (the record and field) is bound in, so a value cannot be moved elsewhere."""
        nonce = os.urandom(12)
        sealed = self._keys[self.key_id].encrypt(nonce, plaintext.encode("utf-8"),
                                                 context.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{_VERSION}:{self.key_id}:{body}"

    def decrypt(self, token: str, context: str) -> str:
        version, _, rest = token.partition(":")
        if version == _VERSION:
            kid, _, body = rest.partition(":")
            if kid not in self._keys:
                raise ValueError(f"sealed under key {kid!r}, which is neither "
                                 "DATA_ENCRYPTION_KEY nor in DATA_ENCRYPTION_KEYS_RETIRED")
            candidates = [self._keys[kid]]
        elif version == _LEGACY:
            body, candidates = rest, list(self._keys.values())
        else:
            raise ValueError(f"unknown ciphertext version {version!r}")
        raw = base64.urlsafe_b64decode(body)
        for key in candidates:
            try:
                return key.decrypt(raw[:12], raw[12:], context.encode("utf-8")).decode("utf-8")
            except InvalidTag:
                continue
        raise ValueError("the value does not open with any known key (or was moved)")

    def is_current(self, token: str) -> bool:
        """Sealed under DATA_ENCRYPTION_KEY: a rotation leaves it alone."""
        return token.startswith(f"{_VERSION}:{self.key_id}:")

    def keyed_hash(self, value: str) -> str:
        return self._hash(self._hash_keys[0], value)

    def matches(self, value: str, expected_hash: str) -> bool:
        """Constant-time: the time taken says nothing about how much of the hash matched.
        Every known key is tried, so the number of tries says nothing either."""
        found = [hmac.compare_digest(self._hash(key, value).encode(), expected_hash.encode())
                 for key in self._hash_keys]
        return any(found)

    def hash_is_current(self, value: str, expected_hash: str) -> bool:
        return hmac.compare_digest(self.keyed_hash(value).encode(), expected_hash.encode())

    @staticmethod
    def _hash(key: bytes, value: str) -> str:
        return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


# ---- rotation ------------------------------------------------------------------------------

# Sealed fields of a report (card_service/app.py), each bound to "<reference>:<field>".
REPORT_FIELDS = ("child_name", "child_id", "guardian_name", "guardian_id", "phone")
# Keyed hashes a report keeps for verification, each of one sealed field (added when missing).
REPORT_HASHES = {"guardian_hash": "guardian_id", "child_hash": "child_id"}


def rotate(redis_url: str, vault: Vault, say: Callable[[str], object] = print) -> dict[str, int]:
    """Re-seal every conversation record, handoff case and message and report field not
    sealed under the current key, and re-hash guardian IDs, so retired keys can be dropped.
    Safe while the stack runs: each record is rewritten only if it has not changed since it
    was read (WATCH)."""
    import redis as redis_lib

    from bot import redis as bot_redis

    client = bot_redis.client(redis_url, "tool", decode_responses=True)
    counts = {"conversations": 0, "reports": 0, "handoffs": 0, "current": 0}
    tracker_prefix = f"{bot_redis.TRACKER}:tracker:"
    for key in client.scan_iter(match=tracker_prefix + "*", count=500):
        context = f"tracker:{key[len(tracker_prefix):]}"
        with client.pipeline() as pipe:
            try:
                pipe.watch(key)
                sealed, ttl = pipe.get(key), pipe.ttl(key)
                if sealed is None or vault.is_current(sealed):
                    counts["current"] += sealed is not None
                    continue
                text = sealed if sealed.startswith("{") else vault.decrypt(sealed, context)
                pipe.multi()
                pipe.set(key, vault.encrypt(text, context), ex=ttl if ttl > 0 else None)
                pipe.execute()
                counts["conversations"] += 1
            except redis_lib.WatchError:
                say(f"rotate: {key} changed while read; its next save seals it anew")
    # Handoff cases (a string) and their messages (lists), each value bound to its key
    # (bot/handoff.py).
    for key in client.scan_iter(match=f"{bot_redis.HANDOFF}*", count=500):
        kind = key[len(bot_redis.HANDOFF):].partition(":")[0]
        if kind not in ("case", "messages", "pending"):
            continue
        with client.pipeline() as pipe:
            try:
                pipe.watch(key)
                ttl = pipe.ttl(key)
                values = [pipe.get(key)] if kind == "case" else pipe.lrange(key, 0, -1)
                values = [value for value in values if value is not None]
                if all(vault.is_current(value) for value in values):
                    counts["current"] += bool(values)
                    continue
                fresh = [vault.encrypt(value if value.startswith("{")
                                       else vault.decrypt(value, key), key) for value in values]
                pipe.multi()
                if kind == "case":
                    pipe.set(key, fresh[0], ex=ttl if ttl > 0 else None)
                else:
                    pipe.delete(key)
                    pipe.rpush(key, *fresh)
                    if ttl > 0:
                        pipe.expire(key, ttl)
                pipe.execute()
                counts["handoffs"] += 1
            except redis_lib.WatchError:
                say(f"rotate: {key} changed while read; run the rotation again")
    report_prefix = f"{bot_redis.CARD_SERVICE}report:"
    for key in client.scan_iter(match=report_prefix + "*", count=500):
        reference = key[len(report_prefix):]
        if ":" in reference:  # report:<ref>:history
            continue
        with client.pipeline() as pipe:
            try:
                pipe.watch(key)
                fields = pipe.hgetall(key)
                stale = {name: fields[name] for name in REPORT_FIELDS
                         if fields.get(name) and not vault.is_current(fields[name])}
                opened = {name: vault.decrypt(fields[sealed], f"{reference}:{sealed}")
                          for name, sealed in REPORT_HASHES.items() if fields.get(sealed)}
                rehash = {name: vault.keyed_hash(value) for name, value in opened.items()
                          if not vault.hash_is_current(value, fields.get(name, ""))}
                if not stale and not rehash:
                    counts["current"] += 1
                    continue
                update = {name: vault.encrypt(vault.decrypt(token, f"{reference}:{name}"),
                                              f"{reference}:{name}")
                          for name, token in stale.items()}
                update.update(rehash)
                pipe.multi()
                pipe.hset(key, mapping=update)
                pipe.execute()
                counts["reports"] += 1
            except redis_lib.WatchError:
                say(f"rotate: {key} changed while read; run the rotation again")
    return counts


def main(argv: list[str] | None = None) -> int:
    import argparse

    from bot.settings import settings

    parser = argparse.ArgumentParser(
        prog="python -m bot.crypto",
        description="Keys for personal data at rest. `rotate`: after DATA_ENCRYPTION_KEY is "
                    "changed and the old one put in DATA_ENCRYPTION_KEYS_RETIRED, re-seal "
                    "every conversation and report under the new key.")
    parser.add_argument("command", choices=["rotate", "key-id"])
    args = parser.parse_args(argv)
    config = settings()
    try:
        vault = config.vault()
    except ValueError as error:
        print(f"crypto: {error}")
        return 2
    if args.command == "key-id":
        print(vault.key_id)
        return 0
    print(f"rotate: sealing under key {vault.key_id}")
    counts = rotate(config.redis_url, vault)
    print(f"rotate: {counts['conversations']} conversations, {counts['handoffs']} handoff "
          f"records and {counts['reports']} reports re-sealed, {counts['current']} already "
          "current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
