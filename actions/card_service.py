"""The one card-service client the actions share, and the region words they need."""

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


def region_words(region: Region, language: str) -> dict[str, str]:
    """Template variables of the answers that depend on the city."""
    zh = language == "zh"
    low, high = region.processing_days_min, region.processing_days_max
    if zh:
        processing = f"当天至{high}个工作日" if low == 0 else f"{low}至{high}个工作日"
    else:
        processing = (f"same day to {high} working days" if low == 0
                      else f"{low} to {high} working days")
    if region.known:
        name = region.name_zh if zh else region.name_en
    else:
        name = "全国一般情况" if zh else "most cities"
    return {
        "region_name": name,
        "validity_days": str(region.temporary_report_days),
        "fee": str(region.fee_yuan),
        "processing": processing,
        "hotline": region.hotline,
        "written_report_place": region.written_report_zh if zh else region.written_report_en,
        "bank_place": region.bank_zh if zh else region.bank_en,
    }
