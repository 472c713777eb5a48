"""Parsing of human quantities (token counts with K/M/B/T suffixes) and display helpers."""
from __future__ import annotations

import re

from stockpile.errors import InputError

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_NUM = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*$", re.IGNORECASE)


def parse_count(text: str | float | int, *, field: str = "value") -> float:
    """'15.6T', '15.6e12', '4k', '1500' -> float. Raises InputError naming `field`."""
    if isinstance(text, (int, float)):
        return float(text)
    m = _NUM.match(str(text))
    if not m:
        if str(text).strip().startswith("-") and _NUM.match(str(text).strip()[1:]):
            raise InputError(field, f"'{text}' is negative; give a positive count (e.g. 4000, 4k or 15.6T)")
        raise InputError(field, f"'{text}' is not a number (use e.g. 4000, 4k, 15.6e12 or 15.6T)")
    return float(m.group(1)) * _SUFFIX[m.group(2).lower()]


def fmt_count(x: float) -> str:
    """1.23e12 -> '1.23T'."""
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"
