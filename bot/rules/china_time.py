"""China's clock (UTC+8 all year, no daylight saving): what guardians and staff read times in."""

from __future__ import annotations

import datetime as dt

CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


def minute(moment: str | float | dt.datetime | None) -> str:
    """A stored moment (ISO text, epoch seconds or datetime) as China's wall-clock minute;
    text that is not a moment comes back as it is.

    >>> minute("2026-12-04T23:44:29Z"), minute(1_800_000_000), minute(None), minute("soon")
    ('2026-12-05 07:44', '2027-01-15 16:00', '', 'soon')
    """
    if moment is None or moment == "":
        return ""
    if isinstance(moment, dt.datetime):
        at = moment
    elif isinstance(moment, (int, float)):
        at = dt.datetime.fromtimestamp(moment, dt.timezone.utc)
    else:
        try:
            at = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return moment
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    return at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
