"""The uncertainty an estimate states: per headline metric, the p10-p90 band of the validation residuals of its regime
(calibration/bands.py), widened where the validation does not reach (a chip family without rows, a chip whose speed
figures are estimates), and the ratios a chip's estimated figures at the ends of their ranges move a prediction by."""
from __future__ import annotations

from typing import Any

import numpy as np

from stockpile.catalog.chips import Chip
from stockpile.perf.calibration import engine_key

# headline metric -> the steady-state field it comes from
BAND_FIELDS = {"ttft_ms": "ttft_s", "tpot_ms": "tpot_s", "e2e_latency_s": "e2e_s",
                "output_tokens_per_s": "output_tokens_per_s", "output_tokens_per_s_per_gpu": "output_tokens_per_s",
                "requests_per_s": "requests_per_s"}


def edge_ratios(base: dict[str, Any], ends: list[dict[str, Any]], i: int = 0,
                metrics: tuple[str, ...] = tuple(BAND_FIELDS)) -> dict[str, tuple[float, float]]:
    """Per headline metric, (slow end / base, fast end / base) of configuration `i` of evaluate() outputs."""
    out = {}
    for metric in metrics:
        f = BAND_FIELDS[metric]
        b, ends_v = float(np.asarray(base[f]).reshape(-1)[i]), [float(np.asarray(e[f]).reshape(-1)[i]) for e in ends]
        if b > 0 and np.isfinite(b) and all(np.isfinite(v) and v > 0 for v in ends_v):
            out[metric] = (ends_v[0] / b, ends_v[1] / b)
    return out


def estimate_bands(engine: str, engine_version: str | None, chip: Chip, r: dict[str, Any], concurrency: float | None,
           request_rate: float | None, num_requests: float | None, gpus: int,
           edges: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """The validated p10-p90 band of each headline metric (calibration/bands.py), widened where the validation
    does not reach (a chip family without rows, estimated chip figures: `edges`), and a sentence for TPOT."""
    from stockpile.calibration.bands import band, describe, load_kind, widened
    key = engine_key(engine, engine_version)
    load = load_kind(concurrency, request_rate, num_requests)
    values = {m: float(r[f]) * (1e3 if m.endswith("_ms") else 1.0) / (gpus if m.endswith("_per_gpu") else 1)
              for m, f in BAND_FIELDS.items()}
    out: dict[str, list[float]] = {}
    note = None
    for metric, v in values.items():
        b = band(key, chip.family, metric, load)
        if b is None or not np.isfinite(v):
            continue
        lo, hi, why = widened(b, chip.family, edges.get(metric, (1.0, 1.0)))
        out[metric] = [round(v * lo, 4), round(v * hi, 4)]
        if metric == "tpot_ms":
            note = f"TPOT {describe(*b, family=chip.family)}"
            if why:
                note += f"; here {100 * (lo - 1):+.0f} %..{100 * (hi - 1):+.0f} %: {'; '.join(why)}"
    return {"band": out or None, "band_note": note}
