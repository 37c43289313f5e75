"""Data at rest: AES-GCM for ID numbers and phones, keyed hashes to check a guardian's ID.

Both keys are derived (HKDF) from the one secret DATA_ENCRYPTION_KEY in `.env`, so the
hash key is never the encryption key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_LENGTH = 16
_VERSION = "v1"


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"cardbot card-service " + purpose).derive(secret.encode("utf-8"))


class Vault:
    def __init__(self, secret: str):
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError("DATA_ENCRYPTION_KEY is not set (or shorter than "
                             f"{MIN_SECRET_LENGTH} characters); `make run` writes one to .env")
        self._aead = AESGCM(_derive(secret, b"encryption v1"))
        self._hash_key = _derive(secret, b"keyed hash v1")

    def encrypt(self, plaintext: str, context: str) -> str:
        """`context` (the record and field) is bound in, so a value cannot be moved elsewhere."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return f"{_VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, context: str) -> str:
        version, _, body = token.partition(":")
        if version != _VERSION:
            raise ValueError(f"unknown ciphertext version {version!r}")
        raw = base64.urlsafe_b64decode(body)
        return self._aead.decrypt(raw[:12], raw[12:], context.encode("utf-8")).decode("utf-8")

    def keyed_hash(self, value: str) -> str:
        return hmac.new(self._hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def matches(self, value: str, expected_hash: str) -> bool:
        """Constant-time: the time taken says nothing about how much of the hash matched."""
        return hmac.compare_digest(self.keyed_hash(value).encode(), expected_hash.encode())
