"""Rasa's Redis tracker store, without blocking Rasa's event loop and without replays on save.

Rasa 3.6's `RedisTrackerStore` talks to Redis with the blocking client from inside Rasa's
one event loop: while Redis answers (and with `appendfsync always` a write waits for the
disk) no other conversation moves; 12% of the Rasa process's busy time in `make bench` was
that wait. Here every call goes through redis-py's asyncio client.

Its `save` also reads the stored tracker back, rebuilds it event by event, rebuilds the new
one up to the old one's last timestamp, compares them, and only then writes: three replays
of the whole conversation on every message. The stored form is the same JSON list of
events, so the same check is made on the events as JSON, without rebuilding any tracker.
And on a turn's save, when Redis still holds the text this process read at the turn's start
and the tracker goes on from what that read gave, only the turn's new events are encoded
and put after it: no re-reading, no re-encoding of the conversation so far (5% of Rasa's
busy time in `make bench`, growing with the conversation).

What is stored keeps no personal data in clear: typed ID and mobile numbers are masked in
every user message, every value the form held is masked once the form has ended
(bot/rasa/scrub.py), and the whole record is sealed with AES-GCM under the key id of
DATA_ENCRYPTION_KEY (bot/crypto.py), the conversation id bound in. A record written before
sealing (JSON in clear) is still read, and sealed on its next save. A turn in which the
guardian had the conversation deleted, or in which it forgot a report whose retention ran
out (`actions/erasure.py`, ending in `restart`), deletes the record instead of saving it,
and with it any handoff case of the conversation (bot/handoff.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, NamedTuple

import redis.asyncio
from rasa.core import tracker_store as rasa_stores
from rasa.shared.core.conversation import Dialogue
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import (
    DialogueStateTracker,
    get_trackers_for_conversation_sessions,
)

from bot import handoff
from bot import redis as bot_redis
from bot.rasa import scrub
from bot.rasa.fast_json import dumps, loads
from bot.settings import settings

# Conversations whose last read is remembered for the save that ends their turn: more than
# one Rasa process has turns in flight at once; an entry pushed out only costs a full save.
REMEMBERED_READS = 256
# The actions that erase a conversation (actions/erasure.py): each ends with a restart when
# the erasure is to be carried out (the guardian's request; a report's retention run out).
ERASE_ACTIONS = ("action_delete_my_data", "action_forget_conversation")


def erases(new_events: list[dict[str, Any]]) -> bool:
    """The turn's events erase the conversation: an erasing action, then a restart.

    >>> erases([{"event": "action", "name": "action_delete_my_data"}, {"event": "restart"}])
    True
    >>> erases([{"event": "action", "name": "action_forget_conversation"},
    ...         {"event": "bot", "text": "sure?"}])
    False
    """
    names = [event.get("name") if event.get("event") == "action" else event.get("event")
             for event in new_events]
    starts = [n for n, name in enumerate(names) if name in ERASE_ACTIONS]
    return bool(starts) and "restart" in names[starts[0]:]


class Read(NamedTuple):
    """What a retrieve read from Redis and what it handed out."""

    sealed: str  # as stored
    text: str  # opened
    length: int  # events of the tracker handed out
    last: Any  # its last event object, or None


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
    """Configured in endpoints.yml as `type: bot.rasa.tracker_store.RedisTrackerStore`."""

    def __init__(self, domain: Domain, host: str = "localhost", port: int = 6379, db: int = 0,
                 username: str | None = None, password: str | None = None,
                 use_ssl: bool = False, ssl_keyfile: str | None = None,
                 ssl_certfile: str | None = None, ssl_ca_certs: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(domain, host=host, port=port, db=db, username=username,
                         password=password, use_ssl=use_ssl, ssl_keyfile=ssl_keyfile,
                         ssl_certfile=ssl_certfile, ssl_ca_certs=ssl_ca_certs, **kwargs)
        self._url = bot_redis.endpoint_url(host, port, db, ssl=use_ssl)
        self._options: dict[str, Any] = dict(username=username, password=password,
                                             decode_responses=True)
        if use_ssl:
            self._options.update(ssl_keyfile=ssl_keyfile, ssl_certfile=ssl_certfile,
                                 ssl_ca_certs=ssl_ca_certs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: redis.asyncio.Redis | None = None
        self._reads: OrderedDict[str, Read] = OrderedDict()
        self._vault = settings().vault()

    def _seal(self, sender_id: str, text: str) -> str:
        return self._vault.encrypt(text, f"tracker:{sender_id}")

    def _open(self, sender_id: str, stored: str) -> str:
        return stored if stored.startswith("{") else \
            self._vault.decrypt(stored, f"tracker:{sender_id}")

    def _redis(self) -> redis.asyncio.Redis:
        # An asyncio connection belongs to the loop that opened it; a tool that runs the
        # store under several loops in turn gets a client for each.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = bot_redis.async_client(self._url, "tracker", **self._options)
            self._loop = loop
        return self._client

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        await self.stream_events(tracker)
        if not timeout and self.record_exp:
            timeout = self.record_exp
        sender_id = tracker.sender_id
        key = self.key_prefix + sender_id
        client = self._redis()
        read = self._reads.pop(sender_id, None)
        sealed = await client.get(key)
        new = [event.as_dict() for event in
               itertools.islice(tracker.events, read.length if read else 0, None)]
        if erases(new):
            await client.delete(key)
            await handoff.forget(client, sender_id)  # a queued case holds its transcript
            return
        closed = scrub.closes(new, tracker.current_slot_values())
        value = None
        if read is not None and not closed and sealed == read.sealed:
            value = self._appended(tracker, read.text, read, new)
        if value is None:
            stored = self._open(sender_id, sealed) if sealed is not None else None
            value = self._merged(tracker, stored, closed)
        await client.set(key, self._seal(sender_id, value), ex=int(timeout) if timeout else None)

    @staticmethod
    def _appended(tracker: DialogueStateTracker, stored: str | None, read: Read,
                  added: list[dict[str, Any]]) -> str | None:
        """The stored text with the turn's new events after it, when that is all it takes.

        Only when Redis still holds what this process read, in this store's layout, and the
        tracker is the one that read handed out (its event objects, each one the same), with
        events added since: trackers only ever gain events.
        """
        events = tracker.events
        if stored != read.text or len(events) < read.length \
                or (read.length and events[read.length - 1] is not read.last):
            return None
        head = dumps({"name": tracker.sender_id})[:-1] + ',"events":['
        if not stored.startswith(head) or not stored.endswith("]}"):
            return None
        new = [dumps(event) for event in scrub.scrubbed(added)]
        if not new:
            return stored
        separator = "" if stored.endswith("[]}") else ","
        return f"{stored[:-2]}{separator}{','.join(new)}]}}"

    @staticmethod
    def _merged(tracker: DialogueStateTracker, stored: str | None, closed: bool) -> str:
        dialogue = tracker.as_dialogue().as_dict()
        events = dialogue.pop("events")
        previous_events = loads(stored).get("events", []) if stored is not None else []
        # Once the form has ended, every value it held is masked in the whole record.
        known = scrub.personal_values([*previous_events, *events]) if closed else {}
        current = [dumps(event) for event in scrub.scrubbed(events, known)]
        if stored is not None:
            # Re-dumping what was read gives the same text for the same event.
            previous = [dumps(event) for event in scrub.scrubbed(previous_events, known)]
            current = merged_events(previous, current)
        head = dumps(dialogue)[:-1]
        separator = "," if dialogue else ""
        return f'{head}{separator}"events":[{",".join(current)}]}}'

    def deserialise_tracker(self, sender_id: str,
                            serialised_tracker: str | bytes) -> DialogueStateTracker | None:
        """Rasa's, reading the JSON with ujson (bot/rasa/fast_json.py)."""
        if isinstance(serialised_tracker, bytes):
            return super().deserialise_tracker(sender_id, serialised_tracker)
        tracker = self.init_tracker(sender_id)
        tracker.recreate_from_dialogue(Dialogue.from_parameters(loads(serialised_tracker)))
        return tracker

    async def _retrieve(self, sender_id: str,
                        fetch_all_sessions: bool) -> DialogueStateTracker | None:
        sealed = await self._redis().get(self.key_prefix + sender_id)
        if sealed is None:
            return None
        stored = self._open(sender_id, sealed)
        tracker = self.deserialise_tracker(sender_id, stored)
        if tracker is None:
            return None
        if not fetch_all_sessions:
            sessions = get_trackers_for_conversation_sessions(tracker)
            tracker = sessions[-1] if len(sessions) > 1 else tracker
        events = tracker.events
        self._reads[sender_id] = Read(sealed, stored, len(events), events[-1] if events else None)
        self._reads.move_to_end(sender_id)
        while len(self._reads) > REMEMBERED_READS:
            self._reads.popitem(last=False)
        return tracker

    async def keys(self) -> Iterable[str]:
        return [key async for key in self._redis().scan_iter(match=self.key_prefix + "*")]
