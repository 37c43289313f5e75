"""The web chat's notice path, "page": a notice is shown on the guardian's page if one is
open now, else kept (unread) and shown once when a page of the conversation comes back.

Every notice goes through the unread queue, even for an open page: the queue's atomic
take is what keeps a notice from being shown twice when it arrives while a page opens,
or on two pages or two Rasa processes at once. A page acknowledges what it is shown
(socket.io's ack, sent by the page's script); only then is the notice out of the queue
and marked shown for good. One no page acknowledged stays queued, so a socket that died
without a goodbye (or a process that dies while showing it) costs a delay, not the
notice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import redis

from bot import notices
from bot.channels.webchat.presence import Presence
from bot.channels.webchat.unread import (
    GONE,
    KEPT,
    SHOWING,
    SHOWN,
    WAITING,
    WITHDRAWN,
    Taken,
    UnreadNotices,
)

log = logging.getLogger(__name__)

# Shows notices on the given sockets, `unread` telling the page they waited for it; True
# when at least one socket acknowledged them.
Show = Callable[[list[str], list[Taken], bool], Awaitable[bool]]


class NoticeDelivery:
    def __init__(self, presence: Presence, unread: UnreadNotices, show: Show) -> None:
        self.presence = presence
        self.unread = unread
        self._show = show

    async def deliver(self, conversation: str, notice: notices.Notice) -> notices.Outcome:
        """Path "page": seen (a page showed it, now or before), queued (kept for the page's
        return, or being shown on a page opening now), or fallback (asked again while still
        unread, and a later path exists)."""
        if await self.unread.state(notice.id) == SHOWN:
            return notices.Outcome(notices.SEEN, detail="shown before")
        kept = await self.unread.keep(conversation, notice.id, list(notice.messages))
        if kept in (KEPT, WAITING):
            sockets = await self.presence.sockets(conversation)
            taken = await self.unread.take(conversation) if sockets else []
            if taken and await self._shown(conversation, sockets, taken, False) and \
                    any(each.id == notice.id for each in taken):
                return notices.Outcome(notices.SEEN, detail="shown on an open page")
            kept = await self.unread.state(notice.id) or kept  # a page opening now has it
        if kept in (KEPT, WAITING) and (not self.unread.days
                                        or (kept == WAITING and not notice.last)):
            # Nothing is kept, or still unread when asked again: a later path can reach the
            # guardian sooner than their return to the page.
            kept = await self.unread.withdraw(conversation, notice.id)
            if kept in (WITHDRAWN, GONE):
                return notices.Outcome(notices.FALLBACK, detail=f"no page opened since ({kept})")
        if kept == SHOWN:
            return notices.Outcome(notices.SEEN, detail="shown on a page")
        if kept == SHOWING:
            return notices.Outcome(notices.QUEUED, detail="being shown on a page opening now")
        return notices.Outcome(notices.QUEUED, detail="kept until a page opens")

    async def page_arrived(self, sid: str, conversation: str) -> None:
        """A page's session is confirmed: it counts as open, and what waited for it is shown
        on it, oldest first, as unread. Redis failing costs the page nothing but that."""
        try:
            await self.presence.arrive(sid, conversation)
            taken = await self.unread.take(conversation)
            if taken:
                await self._shown(conversation, [sid], taken, True)
        except redis.RedisError as error:
            log.warning("webchat: unread notices not checked (%s)", type(error).__name__)
        except Exception:
            log.exception("webchat: unread notices not shown")

    async def page_left(self, sid: str) -> None:
        try:
            await self.presence.leave(sid)
        except redis.RedisError as error:
            log.warning("webchat: a closed page still counts as open until its TTL (%s)",
                        type(error).__name__)

    async def _shown(self, conversation: str, sockets: list[str], taken: list[Taken],
                     unread: bool) -> bool:
        """Shows what was taken: shown for good once a page acknowledged it, else released
        for the next page."""
        try:
            shown = await self._show(sockets, taken, unread)
        except BaseException:
            await self.unread.release(taken)
            raise
        if shown:
            await self.unread.confirm(conversation, taken)
            log.info("webchat: %d notice(s) shown %s", len(taken),
                     "as unread" if unread else "on an open page")
        else:
            await self.unread.release(taken)
        return shown
