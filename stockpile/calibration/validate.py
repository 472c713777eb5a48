"""`stockpile validate FILE.csv`: every row predicted, its error, and a summary (CONTRACTS.md: the JSON)."""
from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from stockpile.calibration.rows import read_rows
from stockpile.calibration.status import OK
from stockpile.perf.calibration import Calibration


def validate_file(path: str | Path, calibration: Calibration | None = None) -> dict[str, Any]:
    """The `validate --json` document for one CSV (inference or training rows, told apart by columns)."""
    kind, rows = read_rows(path)
    doc: dict[str, Any] = {"file": Path(path).name, "kind": kind}
    if kind == "training":
        from stockpile.calibration.training import predict_training_rows
        out_rows = predict_training_rows(rows)
    else:
        from stockpile.calibration.inference import validate_rows
        from stockpile.perf.calibration import load_calibration
        cal = calibration or load_calibration()
        out_rows = validate_rows(rows, cal)
        doc["calibration"] = cal.meta.get("fitted")
    doc["rows"], doc["summary"] = out_rows, summarize(out_rows)
    return {k: doc[k] for k in ("file", "kind", "rows", "summary", "calibration") if k in doc}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    apes = [abs(r["error"]) for r in rows if r["status"] == OK]
    s: dict[str, Any] = {"n": len(rows), "n_predicted": len(apes),
                         "median_ape": round(statistics.median(apes), 4) if apes else None,
                         "mape": round(statistics.fmean(apes), 4) if apes else None,
                         "p90_ape": round(sorted(apes)[int(0.9 * (len(apes) - 1))], 4) if apes else None}
    banded = [r for r in rows if r["status"] == OK and r.get("predicted_p10") is not None]
    if banded:
        inside = sum(r["predicted_p10"] <= r["measured"] <= r["predicted_p90"] for r in banded)
        s["band_coverage"] = round(inside / len(banded), 4)
    by: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r["metric"]] += 1
        if r["status"] == OK:
            by[r["metric"]].append(abs(r["error"]))
    s["by_metric"] = {m: {"n": counts[m], "n_predicted": len(by[m]),
                          "median_ape": round(statistics.median(by[m]), 4) if by[m] else None}
                      for m in sorted(counts)}
    return s
