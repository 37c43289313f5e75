"""Conversation locks in Redis whose every change is one atomic script, for several Rasas.

Rasa 3.6's RedisLockStore keeps a conversation's tickets as one JSON value and changes it
by get, modify, set from each process. Two Rasa processes that take a message of the same
conversation at the same moment both read "no tickets", both issue ticket 0 and both
process at once: the later tracker save wins and a turn is lost. The same get-modify-set
in its release and in every waiter's once-a-second refresh can also drop a waiting
ticket, and that message then fails with a LockError.

Here a conversation's tickets are a sorted set (score: ticket number; member:
"number:expiry in ms") and a counter; issuing, checking, refreshing and releasing are each
one Lua script, so Redis runs them one after another. Expiry is Redis's clock, the same
for every process. A ticket lives `lock_lifetime` seconds past its holder's or waiter's
last sign of life (they refresh it while they wait and while they work), so a Rasa killed
mid-turn holds its conversations for no longer than that.

Rasa takes the lock on its event loop, so that path uses redis-py's asyncio client: a slow
Redis stalls no other conversation, and no thread hop waits for the loop's attention
under load. An uncontended turn costs two Redis calls: issue (which answers how many are
ahead) and release.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import redis
from rasa.core.lock import Ticket, TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, LockStore
from rasa.utils.endpoints import EndpointConfig

from bot import redis as bot_redis

log = logging.getLogger(__name__)

# Poll this often while another turn of the conversation runs (Rasa waits a whole second).
WAIT_SECONDS = 0.05
# Ticket numbers must not come round again while a waiter may still hold an old one.
COUNTER_SECONDS = 24 * 3600
RELEASE_RETRY_SECONDS = 0.5

# Shared by every script: Redis's time in ms, and dropping tickets whose time is up.
_PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function prune(key, now)
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if tonumber(string.match(member, ':(%d+)$')) <= now then
      redis.call('ZREM', key, member)
    end
  end
end
local function keep_for(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# KEYS: tickets, counter. ARGV: lifetime ms, counter ms. Returns the new ticket's number
# and how many tickets are ahead of it.
_ISSUE = _PRELUDE + """
local now = now_ms()
prune(KEYS[1], now)
local number = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], number, number .. ':' .. (now + tonumber(ARGV[1])))
keep_for(KEYS[1], tonumber(ARGV[1]))
return {number, redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. number)}
"""

# KEYS: tickets. ARGV: number, lifetime ms. Refreshes the ticket; returns how many tickets
# are ahead of it (0: its turn), or -1 when it is gone (expired or released).
_CHECK = _PRELUDE + """
local now = now_ms()
prune(KEYS[1], now)
local mine = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
if #mine == 0 then return -1 end
redis.call('ZREM', KEYS[1], mine[1])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ':' .. (now + tonumber(ARGV[2])))
keep_for(KEYS[1], tonumber(ARGV[2]))
return redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[1])
"""

# KEYS: tickets. ARGV: number. Returns how many tickets are left.
_RELEASE = _PRELUDE + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
prune(KEYS[1], now_ms())
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then redis.call('DEL', KEYS[1]) end
return left
"""

# KEYS: tickets. Drops expired tickets; returns how many are left.
_PRUNE = _PRELUDE + """
prune(KEYS[1], now_ms())
return redis.call('ZCARD', KEYS[1])
"""

_KNOWN_KEYS = frozenset({"port", "db", "username", "password", "use_ssl", "key_prefix",
                         "socket_timeout"})


class AtomicRedisLockStore(LockStore):
    """A drop-in for Rasa's RedisLockStore (same endpoint keys) with atomic tickets.

    endpoints.yml: `lock_store: {type: bot.rasa.lock_store.AtomicRedisLockStore, url: host,
    port, db, username, password, key_prefix, use_ssl}`.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int | str = 6379,
        db: int | str = 0,
        password: str | None = None,
        use_ssl: bool = False,
        key_prefix: str | None = None,
        socket_timeout: float | None = None,
        endpoint_config: EndpointConfig | None = None,
        username: str | None = None,
    ) -> None:
        if endpoint_config is not None:
            # How Rasa builds a lock store named by its module path.
            unknown = set(endpoint_config.kwargs) - _KNOWN_KEYS
            if unknown:
                raise ValueError(f"lock_store: unknown keys {sorted(unknown)}")
            settings = endpoint_config.kwargs
            host = endpoint_config.url or host
            port = settings.get("port", port)
            db = settings.get("db", db)
            username = settings.get("username", username)
            password = settings.get("password", password)
            use_ssl = str(settings.get("use_ssl", use_ssl)).lower() in ("true", "1", "yes")
            key_prefix = settings.get("key_prefix", key_prefix)
            socket_timeout = settings.get("socket_timeout", socket_timeout)
        self._url = bot_redis.endpoint_url(host, port, db, ssl=use_ssl)
        # Without a socket_timeout of its own, the "lock" role's.
        self._options: dict[str, Any] = {"username": username or None,
                                         "password": password or None}
        if socket_timeout is not None:
            self._options.update(socket_timeout=float(socket_timeout),
                                 socket_connect_timeout=float(socket_timeout))
        self.red = bot_redis.client(self._url, "lock", **self._options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, redis.commands.core.AsyncScript] = {}
        prefix = str(key_prefix) if key_prefix and str(key_prefix).isalnum() else ""
        if key_prefix and not prefix:
            log.warning("lock store: key prefix %r is not alphanumeric; not used", key_prefix)
        # Apart from Rasa's "lock:" keys, whose JSON values a running old version may hold.
        scope = f"{prefix}:" if prefix else ""
        self._tickets_prefix = scope + bot_redis.LOCK_TICKETS
        self._counter_prefix = scope + bot_redis.LOCK_COUNTER
        self._issue = self.red.register_script(_ISSUE)
        self._check = self.red.register_script(_CHECK)
        self._release = self.red.register_script(_RELEASE)
        self._prune = self.red.register_script(_PRUNE)
        self._retries: set[asyncio.Task[None]] = set()
        super().__init__()

    def _keys(self, conversation_id: str) -> list[str]:
        return [self._tickets_prefix + conversation_id, self._counter_prefix + conversation_id]

    def _async(self, script: str) -> redis.commands.core.AsyncScript:
        # An asyncio connection belongs to the loop that opened it; a tool that runs the
        # store under several loops in turn gets a client for each.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            client = bot_redis.async_client(self._url, "lock", **self._options)
            self._scripts = {name: client.register_script(source) for name, source in
                             (("issue", _ISSUE), ("check", _CHECK), ("release", _RELEASE))}
            self._loop = loop
        return self._scripts[script]

    # The ticket operations, each atomic ------------------------------------------------

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        try:
            number, _ = self._issue(keys=self._keys(conversation_id),
                                    args=[_ms(lock_lifetime), COUNTER_SECONDS * 1000])
            return int(number)
        except redis.RedisError as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def tickets_ahead(self, conversation_id: str, ticket: int,
                      lock_lifetime: float = LOCK_LIFETIME) -> int:
        """How many tickets are ahead of `ticket` (0: its turn; -1: it is gone), and
        `ticket` kept alive for another `lock_lifetime` seconds."""
        return int(self._check(keys=self._keys(conversation_id)[:1],
                               args=[ticket, _ms(lock_lifetime)]))

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self._release(keys=self._keys(conversation_id)[:1], args=[ticket_number])

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        # The release deletes the set when it empties, in the same step.
        self.finish_serving(conversation_id, ticket_number)

    def update_lock(self, conversation_id: str) -> None:
        self._prune(keys=self._keys(conversation_id)[:1])

    def is_someone_waiting(self, conversation_id: str) -> bool:
        return int(self._prune(keys=self._keys(conversation_id)[:1])) > 0

    # Rasa's TicketLock view, for callers of the base class's interface -----------------

    def get_lock(self, conversation_id: str) -> TicketLock | None:
        members = self.red.zrange(self._keys(conversation_id)[0], 0, -1)
        tickets = [Ticket(int(number), int(expires) / 1000) for number, expires in
                   (member.decode().split(":") for member in members)]
        live = deque(ticket for ticket in tickets if not ticket.has_expired())
        return TicketLock(conversation_id, live) if live else None

    def save_lock(self, lock: TicketLock) -> None:
        key = self._keys(lock.conversation_id)[0]
        with self.red.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            for ticket in lock.tickets:
                pipe.zadd(key, {f"{ticket.number}:{_ms(ticket.expires)}": ticket.number})
            pipe.execute()

    def delete_lock(self, conversation_id: str) -> None:
        self.red.delete(*self._keys(conversation_id))

    # The lock as Rasa's agent and HTTP API take it -------------------------------------

    @contextlib.asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = WAIT_SECONDS,
    ) -> AsyncIterator[TicketLock]:
        """Waits for this conversation's earlier turns, then holds it while the body runs."""
        try:
            number, ahead = await self._async("issue")(
                keys=self._keys(conversation_id),
                args=[_ms(lock_lifetime), COUNTER_SECONDS * 1000])
        except redis.RedisError as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error
        ticket = int(number)
        try:
            if int(ahead):
                await self._wait_for_turn(conversation_id, ticket, lock_lifetime,
                                          wait_time_in_seconds)
            heartbeat = asyncio.create_task(
                self._keep_alive(conversation_id, ticket, lock_lifetime))
            try:
                expires = time.time() + lock_lifetime
                yield TicketLock(conversation_id, deque([Ticket(ticket, expires)]))
            finally:
                heartbeat.cancel()
        finally:
            await self._release_soon(conversation_id, ticket, lock_lifetime)

    async def _tickets_ahead_async(self, conversation_id: str, ticket: int, lifetime: float) -> int:
        return int(await self._async("check")(keys=self._keys(conversation_id)[:1],
                                              args=[ticket, _ms(lifetime)]))

    async def _release_async(self, conversation_id: str, ticket: int) -> None:
        # The release deletes the set when it empties, in the same step.
        await self._async("release")(keys=self._keys(conversation_id)[:1], args=[ticket])

    async def _wait_for_turn(self, conversation_id: str, ticket: int, lifetime: float,
                             wait_seconds: float) -> None:
        while True:
            await asyncio.sleep(wait_seconds)
            try:
                ahead = await self._tickets_ahead_async(conversation_id, ticket, lifetime)
            except redis.RedisError as error:
                raise LockError(f"Could not acquire lock for a conversation: {error}") \
                    from error
            if ahead == 0:
                return
            if ahead < 0:
                raise LockError("Could not acquire lock for a conversation: ticket expired")

    async def _release_soon(self, conversation_id: str, ticket: int, lifetime: float) -> None:
        """Releases the ticket; while Redis is away, keeps trying in the background so the
        conversation's next turn need not wait for the ticket to expire."""
        try:
            await self._release_async(conversation_id, ticket)
            return
        except redis.RedisError as error:
            log.warning("lock store: ticket not released yet (%s)", type(error).__name__)

        async def retry() -> None:
            deadline = time.monotonic() + lifetime
            while time.monotonic() < deadline:
                await asyncio.sleep(RELEASE_RETRY_SECONDS)
                with contextlib.suppress(redis.RedisError):
                    await self._release_async(conversation_id, ticket)
                    return

        task = asyncio.create_task(retry())
        self._retries.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._retries.discard)

    async def _keep_alive(self, conversation_id: str, ticket: int, lifetime: float) -> None:
        """Refreshes a held ticket: a long turn keeps its lock, a killed process loses it."""
        while True:
            await asyncio.sleep(lifetime / 3)
            try:
                await self._tickets_ahead_async(conversation_id, ticket, lifetime)
            except redis.RedisError as error:
                log.warning("lock store: ticket not refreshed (%s)", type(error).__name__)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)

