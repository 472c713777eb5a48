"""Month arithmetic for the planner: months are 'YYYY-MM' strings outside and integer indices inside.

    month_index('2025-04') = 2025 * 12 + 3        (differences are month counts)
    month_name(month_index(m)) == m

Time inside a month is fluid: a run that ends at 7.25 ends a quarter into month 7 (index from the start).
"""
from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any

HOURS_PER_MONTH = 8766.0 / 12.0          # 365.25 days * 24 h / 12
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
MAX_SEARCH_MONTHS = 120                  # stock-alone runway and ladder are searched up to ten years out

_MONTH_RE = re.compile(r"^\s*(\d{4})-(\d{1,2})(?:-(\d{1,2}))?\s*$")


def parse_month(v: Any) -> str:
    """'2025-04', '2025-04-09', a YAML date or datetime -> '2025-04' (an event dated inside a month applies
    from that month on). Raises ValueError with the expected format."""
    if isinstance(v, (_dt.date, _dt.datetime)):
        return f"{v.year:04d}-{v.month:02d}"
    if isinstance(v, str):
        m = _MONTH_RE.match(v)
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise ValueError(f"'{v}' is not a month; write YYYY-MM, e.g. 2025-04")
        return f"{int(m.group(1)):04d}-{int(m.group(2)):02d}"
    raise ValueError(f"{v!r} is not a month; write YYYY-MM, e.g. 2025-04")


def month_index(m: str) -> int:
    """'YYYY-MM' -> months since year 0."""
    y, mo = m.split("-")
    return int(y) * 12 + int(mo) - 1


def month_name(i: int) -> str:
    """Months since year 0 -> 'YYYY-MM'."""
    return f"{i // 12:04d}-{i % 12 + 1:02d}"


def months_touched(start: float, end: float) -> range:
    """Whole months a span [start, end) touches: a run that holds chips for any part of a month holds them for
    that month (chips are booked by the month)."""
    return range(int(math.floor(start + 1e-9)), int(math.ceil(end - 1e-9)))


def month_of_fraction(t: float) -> int:
    """Index of the month in which a fractional month position falls (the end of a run)."""
    return max(0, math.ceil(t - 1e-9) - 1)
