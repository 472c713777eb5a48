"""One exception tree for the whole package.

    StockpileError                 base: the CLI and API catch this once and print one line
    ├── UnknownNameError           an unknown chip, model, engine or dtype (with close matches)
    ├── InputError                 a value outside its allowed range, with the field and the fix
    ├── DataError                  a shipped or user data file that does not validate
    ├── MissingFigureError         a catalog record lacks a figure the computation needs
    └── InfeasibleError            nothing satisfies the request (no layout fits, SLO unmet)
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class StockpileError(Exception):
    """Base of every error Stockpile raises on purpose."""


class InputError(StockpileError, ValueError):
    """A user-supplied value is out of range; the message names the field and the fix."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class UnknownNameError(InputError):
    """A name (chip, model, engine, dtype) that the catalog does not know."""

    def __init__(self, field: str, name: str, known: Iterable[str], *, hint: str = "", match: str | None = None):
        known = list(known)
        self.name = name
        # `match`: the part of the name to compare with the known ones (a device name without its vendor's words)
        self.suggestions = close_matches(match or name, known)
        text = f"unknown {field} '{name}'"
        if self.suggestions:
            text += "; did you mean " + ", ".join(self.suggestions) + "?"
        elif len(known) <= 12:
            text += "; known: " + ", ".join(known)
        if hint:
            text += f" ({hint})"
        super().__init__(field, text)


class DataError(StockpileError):
    """A data file (shipped catalog, scenario, measured CSV) is malformed."""


class MissingFigureError(StockpileError):
    """A catalog record lacks a figure that a computation needs; we never guess it."""


class InfeasibleError(StockpileError):
    """No configuration satisfies the request; the message says what came closest."""


def close_matches(name: str, known: list[str], n: int = 4) -> list[str]:
    """Closest known names to `name`: difflib ratio first, then substring hits."""
    low = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(low), n=n, cutoff=0.5)
    if len(hits) < n:
        key = name.lower().split("/")[-1]
        for k in low:
            if k not in hits and (key and (key in k or k.split("/")[-1] in key)):
                hits.append(k)
            if len(hits) >= n:
                break
    return [low[h] for h in hits]
