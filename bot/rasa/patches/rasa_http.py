"""Rasa's HTTP client for the action server (and NLG, model server): ujson bodies, kept-alive
connections.

Rasa 3.6 opens a new `aiohttp.ClientSession`, with a connector of its own, for every
request and closes it after: each of the two or three action calls of a turn pays for a
new TCP connection on both sides. Here every session of an event loop shares one
connector, which keeps connections open between requests, and bodies are encoded with
ujson (bot/rasa/fast_json.py).
"""

from __future__ import annotations

import asyncio
import functools
import weakref

import aiohttp

from bot.rasa.fast_json import dumps

# Shorter than the action server's (Sanic: 5 s), so this side always closes an idle
# connection first and never sends a request on one the server is closing.
KEEPALIVE_SECONDS = 2.0

_connectors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.TCPConnector] = \
    weakref.WeakKeyDictionary()


def _connector() -> aiohttp.TCPConnector:
    loop = asyncio.get_running_loop()
    connector = _connectors.get(loop)
    if connector is None or connector.closed:
        # No limit, as with a connector per request.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_SECONDS)
        _connectors[loop] = connector
    return connector


async def close() -> None:
    """Closes this event loop's connections (for a loop that ends before the process)."""
    connector = _connectors.pop(asyncio.get_running_loop(), None)
    if connector is not None:
        await connector.close()


def install() -> None:
    """Rasa's `EndpointConfig.session` on the shared connector, with ujson bodies."""
    from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT, EndpointConfig

    if getattr(EndpointConfig.session, "__wrapped__", None) is not None:
        return
    original = EndpointConfig.session

    @functools.wraps(original)
    def session(self: EndpointConfig) -> aiohttp.ClientSession:
        # Rasa's session, with the connector and the encoder it leaves at the default.
        auth = (aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"])
                if self.basic_auth else None)
        return aiohttp.ClientSession(
            headers=self.headers, auth=auth,
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT), json_serialize=dumps,
            connector=_connector(), connector_owner=False)

    EndpointConfig.session = session  # type: ignore[method-assign]
