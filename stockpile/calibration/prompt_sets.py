"""Rows of one publication that ran the same prompts.

A benchmark write-up often names its dataset once (a ShareGPT run) and then varies a server flag over the same
prompts, with only the flag in the later runs' notes. Their mean lengths, computed from the client's printed
token totals, give them away: two runs whose prompts total the same number of tokens over the same request
count have the same mean input length to the last decimal, and a mean that is not a whole number is a mean
over prompts of different lengths. Such a row is read with the varied lengths its dataset has, not as a
fixed-length run (which changes how its requests finish together, and so its throughput and TTFT).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from stockpile.calibration.rows import InferenceCase


def _key(case: InferenceCase) -> tuple[str, float] | None:
    """(publication, mean input length) where that mean is not a whole number, else None."""
    if not case.publication or abs(case.isl - round(case.isl)) < 0.05:
        return None
    return case.publication, round(case.isl, 1)


def mark_shared_prompts(cases: Iterable[InferenceCase]) -> None:
    """Read a fixed-length row as varied where its publication has a varied-length row (its notes name the
    dataset) with the same non-integer mean input length: the same prompts."""
    cases = list(cases)
    varied = {k for c in cases if not c.fixed_lengths and (k := _key(c)) is not None}
    for c in cases:
        if c.fixed_lengths and c.length_spread == 0.0 and (k := _key(c)) in varied:
            c.fixed_lengths = False
            c.length_spread = math.inf
            c.notes_used.append(f"varied prompt lengths: the same prompts as this publication's dataset run "
                                f"(mean input {c.isl:g} tokens to the decimal)")
