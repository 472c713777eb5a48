"""Request traces (JSONL) for `estimate --trace`: one request per line, arrivals non-decreasing.

    {"arrival_s": 0.0, "input_len": 812, "output_len": 190, "prefix_group": "sys-3", "prefix_len": 100}

`prefix_group` / `prefix_len` are optional: the first request of a group prefills its whole prompt; later
ones find the group's first `prefix_len` tokens in the prefix cache (shared/CONTRACTS.md)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from stockpile.errors import InputError
from stockpile.perf.simulate import Requests

MAX_TRACE_REQUESTS = 1_000_000


def _number(obj: dict, key: str, line: int, *, integer: bool, required: bool = True) -> float | None:
    if key not in obj or obj[key] is None:
        if required:
            raise InputError("trace", f"line {line}: missing \"{key}\"")
        return None
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InputError("trace", f"line {line}: \"{key}\" must be a finite number, got {v!r}")
    if integer and float(v) != int(v):
        raise InputError("trace", f"line {line}: \"{key}\" must be a whole number of tokens, got {v!r}")
    return float(v)


def read_trace(path: str | Path) -> Requests:
    """Parse and check a JSONL trace; every error names the line and the field."""
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("trace", f"cannot read {p}: {exc}") from None
    arrival, isl, osl, cached = [], [], [], []
    seen: set[str] = set()
    last = -math.inf
    for k, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError("trace", f"line {k}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise InputError("trace", f"line {k}: each line must be a JSON object")
        t = _number(obj, "arrival_s", k, integer=False)
        i = _number(obj, "input_len", k, integer=True)
        o = _number(obj, "output_len", k, integer=True)
        assert t is not None and i is not None and o is not None
        if t < 0:
            raise InputError("trace", f"line {k}: \"arrival_s\" must be >= 0, got {t:g}")
        if t < last:
            raise InputError("trace", f"line {k}: arrival_s {t:g} is before the previous line's {last:g}; "
                                      "sort the trace by arrival time")
        if i < 1 or o < 1:
            raise InputError("trace", f"line {k}: \"input_len\" and \"output_len\" must be >= 1")
        plen = _number(obj, "prefix_len", k, integer=True, required=False) or 0.0
        if plen < 0:
            raise InputError("trace", f"line {k}: \"prefix_len\" must be >= 0")
        group = obj.get("prefix_group")
        hit = 0
        if group is not None:
            g = str(group)
            if g in seen:
                hit = int(min(plen, i - 1))
            seen.add(g)
        last = t
        arrival.append(t)
        isl.append(int(i))
        osl.append(int(o))
        cached.append(hit)
        if len(arrival) > MAX_TRACE_REQUESTS:
            raise InputError("trace", f"more than {MAX_TRACE_REQUESTS:,} requests; split the trace")
    if not arrival:
        raise InputError("trace", f"{p.name} holds no requests")
    return Requests(arrival=np.array(arrival) - arrival[0], isl=np.array(isl, dtype=np.int64),
                    osl=np.array(osl, dtype=np.int64), cached=np.array(cached, dtype=np.int64))
