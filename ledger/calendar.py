"""Billing periods: deterministic interval arithmetic anchored on the subscription's start."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from enum import StrEnum


class IntervalUnit(StrEnum):
    """Unit of a billing interval."""

    DAY = "DAY"
    MONTH = "MONTH"
    YEAR = "YEAR"


def period_boundary(anchor: datetime, unit: IntervalUnit, count: int, cycles: int) -> datetime:
    """The start of billing cycle number `cycles` (0 is the anchor itself).

    Months are counted from the anchor, not from the previous boundary, and a day that the
    target month lacks is clamped to its last day: a subscription anchored on 31 January
    renews on 28 (or 29) February, then on 31 March again.
    """
    steps = count * cycles
    if unit is IntervalUnit.DAY:
        return anchor + timedelta(days=steps)
    months = steps if unit is IntervalUnit.MONTH else 12 * steps
    month_index = anchor.month - 1 + months
    year = anchor.year + month_index // 12
    month = month_index % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)
