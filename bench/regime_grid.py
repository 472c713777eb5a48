"""One regime parameter on a grid: the error of its fitted rows and of the never-fitted rows it also governs.

    .venv/bin/python bench/regime_grid.py ascend/vllm eager_layer_s 0.3e-3 0.5e-3 0.94e-3 1.3e-3

For each value, the shipped calibration with `regimes[REGIME][PARAM]` set to it predicts every row of the shipped
measured files and of `inference_unseen.csv` whose chip family and engine fall in the regime; the median absolute
error of each group is printed, beside the shipped value's. A value fitted on one publication that also suits the
rows of publications no fit has seen is evidence for the term, not for the fit (docs/validation.md, twentieth
session: vLLM on Ascend). Seconds on 2 cores.
"""
from __future__ import annotations

import argparse
import copy
import statistics
from importlib import resources
from pathlib import Path

import numpy as np

from stockpile.calibration.fit_inference import default_files
from stockpile.calibration.inference import Batch, Prepared, prepare_file
from stockpile.perf.calibration import Calibration, load_calibration, regime_key


def rows_in(regime: str, paths: list[Path]) -> list[Prepared]:
    out: list[Prepared] = []
    for path in paths:
        _, _, prepared = prepare_file(path)
        out += [p for p in prepared if isinstance(p, Prepared)
                and regime_key(p.chip.family, p.engine) == regime]
    return out


def median_ape(preps: list[Prepared], cal: Calibration) -> float:
    pred = np.asarray(Batch(preps).run(cal), dtype=float)
    meas = np.array([p.case.measured for p in preps])
    return float(statistics.median(np.abs(pred / meas - 1.0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("regime", help="chip family group / engine, e.g. ascend/vllm")
    ap.add_argument("param", help="a Params field, e.g. eager_layer_s")
    ap.add_argument("values", nargs="+", type=float)
    args = ap.parse_args()
    unseen = Path(str(resources.files("stockpile") / "data" / "measurements" / "inference_unseen.csv"))
    groups = {"fitted files": rows_in(args.regime, default_files()), "inference_unseen.csv": rows_in(args.regime, [unseen])}
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        raise SystemExit(f"no row falls in regime {args.regime}")
    shipped = load_calibration()
    print(f"{args.regime} {args.param}: shipped {getattr(shipped.params(*args.regime.split('/')), args.param):.4g}; "
          + ", ".join(f"{k} {len(v)} rows" for k, v in groups.items()))
    print("value".ljust(12) + "".join(k.rjust(24) for k in groups))
    for label, value in [("shipped", None)] + [(f"{v:.4g}", v) for v in args.values]:
        cal = shipped
        if value is not None:
            cal = Calibration.from_dict(copy.deepcopy(shipped.to_dict()))
            cal.regimes.setdefault(args.regime, {})[args.param] = value
        print(label.ljust(12) + "".join(f"{100 * median_ape(p, cal):23.1f}%" for p in groups.values()))


if __name__ == "__main__":
    main()
