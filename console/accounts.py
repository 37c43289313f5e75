"""Staff accounts in Redis (prefix `cardstaff:`), passwords as argon2id hashes.

Keys: user:<name> (hash: role, hash, disabled, created_at, disabled_at) and users (set of
names). Roles and what each may do are one table, PERMISSIONS, read by the pages and tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import dataclass

import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.redis import CONSOLE as PREFIX

AGENT, AGENCY, BANK, ADMIN = "agent", "agency", "bank", "admin"
ROLES = (AGENT, AGENCY, BANK, ADMIN)
# What each role may do. Agents answer guardians (the handoff queue) and read reports;
# agency and bank clerks move reports on; only admins see accounts and the audit log.
# The dashboard (how the assistant does, week by week) is for those who run the service:
# the agency that owns it and admins; agents and bank clerks do not need it for their work.
PERMISSIONS: dict[str, frozenset[str]] = {
    "reports": frozenset(ROLES),
    "move": frozenset({AGENCY, BANK, ADMIN}),
    "reveal": frozenset({AGENCY, BANK, ADMIN}),
    "handoff": frozenset({AGENT, ADMIN}),
    "dashboard": frozenset({AGENCY, ADMIN}),
    "accounts": frozenset({ADMIN}),
    "audit": frozenset({ADMIN}),
}
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 256
# argon2id with argon2-cffi's defaults (RFC 9106's low-memory choice: 3 passes, 64 MiB).
HASHER = PasswordHasher()
# Checked when the name is unknown, so an unknown name and a wrong password take as long.
_DUMMY_HASH = HASHER.hash("not a password of anyone")


def may(role: str, action: str) -> bool:
    """Whether `role` may do `action` (a key of PERMISSIONS).

    >>> may("bank", "move"), may("agent", "move"), may("admin", "audit")
    (True, False, True)
    """
    return role in PERMISSIONS.get(action, frozenset())


def name_problem(name: str) -> str | None:
    """Why `name` cannot be an account's name, or None.

    >>> name_problem("li.wei"), name_problem("Li Wei") is not None
    (None, True)
    """
    if not NAME.match(name):
        return "2-32 characters: lower-case letters, digits, dot, dash, underscore"
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"at most {MAX_PASSWORD} characters"
    return None


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    disabled: bool
    created_at: str
    disabled_at: str = ""


class Accounts:
    def __init__(self, client: aioredis.Redis):
        self.redis = client

    @staticmethod
    def key(name: str) -> str:
        return f"{PREFIX}user:{name}"

    async def add(self, name: str, role: str, password: str, now: dt.datetime) -> Account:
        problem = name_problem(name) or (None if role in ROLES else f"role must be one of "
                                         f"{', '.join(ROLES)}") or password_problem(password)
        if problem:
            raise ValueError(problem)
        fields = {"role": role, "hash": await asyncio.to_thread(HASHER.hash, password),
                  "disabled": "0",
                  "created_at": now.isoformat(timespec="seconds")}
        # HSETNX on the role first: two `user add` of one name cannot both win.
        if not await self.redis.hsetnx(self.key(name), "role", role):
            raise ValueError(f"an account named {name} exists")
        await self.redis.hset(self.key(name), mapping=fields)
        await self.redis.sadd(f"{PREFIX}users", name)
        return Account(name, role, False, fields["created_at"])

    async def get(self, name: str) -> Account | None:
        raw = await self.redis.hgetall(self.key(name)) if NAME.match(name) else {}
        if not raw or b"hash" not in raw:
            return None
        text = {k.decode(): v.decode() for k, v in raw.items()}
        return Account(name, text["role"], text.get("disabled") == "1", text["created_at"],
                       text.get("disabled_at", ""))

    async def all(self) -> list[Account]:
        names = sorted(n.decode() for n in await self.redis.smembers(f"{PREFIX}users"))
        found = [await self.get(name) for name in names]
        return [account for account in found if account is not None]

    async def set_disabled(self, name: str, disabled: bool, now: dt.datetime) -> Account:
        if await self.get(name) is None:
            raise ValueError(f"no account named {name}")
        await self.redis.hset(self.key(name), mapping={
            "disabled": "1" if disabled else "0",
            "disabled_at": now.isoformat(timespec="seconds") if disabled else ""})
        account = await self.get(name)
        assert account is not None
        return account

    async def verify(self, name: str, password: str) -> Account | None:
        """The account if the password is right and the account enabled; else None, after
        the same work whether or not the name exists. The hashing (about 0.1 s of CPU)
        runs in a thread: the other staff's pages go on meanwhile."""
        stored = await self.redis.hget(self.key(name), "hash") if NAME.match(name) else None
        try:
            await asyncio.to_thread(HASHER.verify, stored.decode() if stored else _DUMMY_HASH,
                                    password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return None
        if stored is None:
            return None
        account = await self.get(name)
        if account is None or account.disabled:
            return None
        if HASHER.check_needs_rehash(stored.decode()):
            await self.redis.hset(self.key(name), "hash",
                                  await asyncio.to_thread(HASHER.hash, password))
        return account
