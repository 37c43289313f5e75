"""Rasa's Redis tracker store, without blocking Rasa's event loop and without replays on save.

Rasa 3.6's `RedisTrackerStore` talks to Redis with the blocking client from inside Rasa's
one event loop: while Redis answers (and with `appendfsync always` a write waits for the
disk) no other conversation moves; 12% of the Rasa process's busy time in `make bench` was
that wait. Here every call goes through redis-py's asyncio client.

Its `save` also reads the stored tracker back, rebuilds it event by event, rebuilds the new
one up to the old one's last timestamp, compares them, and only then writes: three replays
of the whole conversation on every message. The stored form is the same JSON list of
events, so the same check is made on the events as JSON, without rebuilding any tracker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import redis.asyncio
from rasa.core import tracker_store as rasa_stores
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import (
    DialogueStateTracker,
    get_trackers_for_conversation_sessions,
)

from bot.fast_json import dumps

# A Redis that stops answering fails the turn (the channel says so) instead of hanging it.
SOCKET_TIMEOUT_SECONDS = 10.0


def merged_events(stored: list[str], current: list[str]) -> list[str]:
    """The events to keep, each as its JSON text, as Rasa's `_merge_trackers` keeps them.

    `current` usually continues `stored` and replaces it. When it holds only the latest
    conversation session (what `retrieve` hands out), the earlier sessions are kept in front.

    >>> merged_events(['"a"', '"b"'], ['"a"', '"b"', '"c"'])
    ['"a"', '"b"', '"c"']
    >>> merged_events(['"a"', '"b"', '"c"'], ['"c"', '"d"'])
    ['"a"', '"b"', '"c"', '"d"']
    """
    if current[: len(stored)] == stored:
        return current
    known = set(stored)
    return stored + [event for event in current if event not in known]


class RedisTrackerStore(rasa_stores.RedisTrackerStore):
    """Configured in endpoints.yml as `type: bot.tracker_store.RedisTrackerStore`."""

    def __init__(self, domain: Domain, host: str = "localhost", port: int = 6379, db: int = 0,
                 username: str | None = None, password: str | None = None,
                 use_ssl: bool = False, ssl_keyfile: str | None = None,
                 ssl_certfile: str | None = None, ssl_ca_certs: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(domain, host=host, port=port, db=db, username=username,
                         password=password, use_ssl=use_ssl, ssl_keyfile=ssl_keyfile,
                         ssl_certfile=ssl_certfile, ssl_ca_certs=ssl_ca_certs, **kwargs)
        self._connection: dict[str, Any] = dict(
            host=host, port=port, db=db, username=username, password=password, ssl=use_ssl,
            ssl_keyfile=ssl_keyfile, ssl_certfile=ssl_certfile, ssl_ca_certs=ssl_ca_certs,
            decode_responses=True, socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: redis.asyncio.Redis | None = None

    def _redis(self) -> redis.asyncio.Redis:
        # An asyncio connection belongs to the loop that opened it; a tool that runs the
        # store under several loops in turn gets a client for each.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = redis.asyncio.Redis(**self._connection)
            self._loop = loop
        return self._client

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        await self.stream_events(tracker)
        if not timeout and self.record_exp:
            timeout = self.record_exp
        key = self.key_prefix + tracker.sender_id
        dialogue = tracker.as_dialogue().as_dict()
        current = [dumps(event) for event in dialogue.pop("events")]
        client = self._redis()
        stored = await client.get(key)
        if stored is not None:
            # Re-dumping what json.loads read gives the same text for the same event.
            previous = [dumps(event) for event in json.loads(stored).get("events", [])]
            current = merged_events(previous, current)
        head = dumps(dialogue)[:-1]
        separator = "," if dialogue else ""
        await client.set(key, f'{head}{separator}"events":[{",".join(current)}]}}',
                         ex=int(timeout) if timeout else None)

    async def _retrieve(self, sender_id: str,
                        fetch_all_sessions: bool) -> DialogueStateTracker | None:
        stored = await self._redis().get(self.key_prefix + sender_id)
        if stored is None:
            return None
        tracker = self.deserialise_tracker(sender_id, stored)
        if fetch_all_sessions or tracker is None:
            return tracker
        sessions = get_trackers_for_conversation_sessions(tracker)
        return sessions[-1] if len(sessions) > 1 else tracker

    async def keys(self) -> Iterable[str]:
        return [key async for key in self._redis().scan_iter(match=self.key_prefix + "*")]
