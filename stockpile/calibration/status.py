"""One vocabulary for a measured row's outcome, for inference and training alike (CONTRACTS.md, `validate`).

    ok           predicted; `error` = (predicted - measured) / measured
    invalid      the row itself is wrong for the tool: a missing or non-numeric cell, an impossible value, a
                 metric or dtype the schema does not know, a chip or model name the catalog does not know (the
                 reason names the closest ones). Fix the row (or add the chip or model).
    unsupported  the row is well formed but the tool cannot express it: a chip figure the catalog lacks, a
                 layout that does not fit in memory under the model's assumptions, a setup the model does not
                 cover. Extend the catalog or the model.
"""
from __future__ import annotations

from stockpile.errors import DataError, InputError

OK, INVALID, UNSUPPORTED = "ok", "invalid", "unsupported"


def status_of(exc: Exception) -> str:
    """The status of a row whose preparation or prediction raised `exc` (see the module docstring)."""
    return INVALID if isinstance(exc, (InputError, DataError)) else UNSUPPORTED
