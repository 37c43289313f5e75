"""The one card-service client the actions share, and a city's rules when it cannot answer."""

from __future__ import annotations

import functools
import logging

from bot.card_client import CardClient, CardServiceError, Region
from bot.rules import regions

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def client() -> CardClient:
    return CardClient.from_settings()


def local_region(city: str | None) -> Region:
    """The same rules from our own data file, for when the service cannot be asked."""
    return regions.resolve(city or "")


async def region_for(city: str | None) -> Region:
    """The city's rules as the card service states them (a city plugs in its own)."""
    if not city:
        return local_region(None)
    try:
        return await client().region_async(city)
    except CardServiceError as error:
        logger.warning("region look-up failed, using local rules: %s", error)
        return local_region(city)

