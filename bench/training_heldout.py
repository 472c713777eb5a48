"""Held-out training error, summarised so that a change is judged on more than one row (issue 13: held-out training
median <= 8 %, p90 <= 30 %).

    .venv/bin/python bench/training_heldout.py                 # about 25 s on 2 cores
    .venv/bin/python bench/training_heldout.py --perturb       # plus the fit's soft-L1 scale at x0.95 and x1.05

Each source of the shipped training file is held out in turn (fit_training.leave_one_source_out: fit without it,
predict its rows), and the rows of training_unseen.csv, which no fit uses, are predicted with the shipped fit. Printed:
the pooled median, 75th and 90th percentile of |error|, the mean |log error| and the 10-90 % trimmed mean of the
held-out values, the median of the per-source medians, and the same pooled with the unseen rows.

Why more than the median: about a third of llm-foundry's held-out values sit between 7 and 10 %, so the pooled
median moves by a few tenths of a point with any change to the fit. `--perturb` shows how far: it refits with the
loss's soft-L1 scale 5 % lower and higher (a setting nothing in the data pins) and prints the same figures.
"""
from __future__ import annotations

import argparse
import statistics
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np


def summary(errors: list[float]) -> dict[str, float]:
    """Median, p75, p90 of |error|, mean |log(1 + error)|, 10-90 % trimmed mean of |error| (errors are signed
    relative errors, predicted / measured - 1)."""
    a = np.abs(np.asarray(errors, dtype=float))
    s = np.sort(a)
    lo, hi = int(0.1 * len(s)), int(0.9 * len(s))
    return {"n": float(len(a)), "median": float(np.median(a)), "p75": float(np.quantile(a, 0.75)),
            "p90": float(np.quantile(a, 0.9)), "mean_abs_log": float(np.mean(np.abs(np.log1p(errors)))),
            "trimmed_mean": float(np.mean(s[lo:hi])) if hi > lo else float("nan")}


def held_out(rows: list[dict[str, str]]) -> tuple[list[float], dict[str, float], list[str]]:
    """Signed errors of every row held out one source at a time, each source's median |error|, and the source of
    each error."""
    from stockpile.calibration.fit_training import leave_one_source_out
    out = leave_one_source_out(rows)
    errors = [pred / meas - 1.0 for v in out.values() for _, _, meas, pred in v["rows"]]
    sources = [k for k, v in out.items() for _ in v["rows"]]
    return errors, {k: v["median_ape"] for k, v in out.items()}, sources


def weighted_quantiles(errors: list[float], sources: list[str], qs: tuple[float, ...] = (0.5, 0.9)) -> list[float]:
    """Quantiles of |error| with each value weighing as the fit weighs rows (fit_training.source_weights): one
    source's long table counts as sqrt(n) rows, not n."""
    from stockpile.calibration.fit_training import source_weights
    a = np.abs(np.asarray(errors, dtype=float))
    w = source_weights(sources)
    order = np.argsort(a)
    cum = np.cumsum(w[order]) / w.sum()
    return [float(a[order][np.searchsorted(cum, q)]) for q in qs]


def unseen_errors(path: Path) -> list[float]:
    """Signed errors of a never-fitted file under the shipped fit (what `validate` reports for it)."""
    from stockpile.calibration.fit_training import predict_training_rows, read_training_rows
    return [r["error"] for r in predict_training_rows(read_training_rows(path)) if r["status"] == "ok"]


def report(label: str, rows: list[dict[str, str]], unseen: Path | None) -> None:
    errors, per_source, sources = held_out(rows)
    s = summary(errors)
    wm, w90 = weighted_quantiles(errors, sources)
    print(f"{label}: {int(s['n'])} held-out values: median {100 * s['median']:.2f} %, p75 {100 * s['p75']:.1f} %, "
          f"p90 {100 * s['p90']:.1f} %, mean |log| {s['mean_abs_log']:.4f}, trimmed mean "
          f"{100 * s['trimmed_mean']:.2f} %; median of the {len(per_source)} source medians "
          f"{100 * statistics.median(per_source.values()):.2f} %; each value weighing n^-0.5 (n: its source's "
          f"values): median {100 * wm:.2f} %, p90 {100 * w90:.1f} %")
    for src, n in Counter(sources).most_common():
        if n >= 0.15 * len(sources):
            rest = summary([e for e, x in zip(errors, sources) if x != src])
            print(f"  without {src}'s {n} values: median {100 * rest['median']:.2f} %, p90 {100 * rest['p90']:.1f} %")
    if unseen is not None and unseen.is_file():
        u = unseen_errors(unseen)
        su, sp = summary(u), summary(errors + u)
        print(f"  {unseen.name} ({len(u)} rows, never fitted): median {100 * su['median']:.1f} %, p90 "
              f"{100 * su['p90']:.1f} %; pooled with the held-out sources: median {100 * sp['median']:.2f} %, "
              f"p90 {100 * sp['p90']:.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--perturb", action="store_true", help="also refit with the soft-L1 scale x0.95 and x1.05")
    args = ap.parse_args()
    from stockpile.calibration import fit_training
    from stockpile.calibration.fit_training import default_rows
    rows = default_rows()
    unseen = Path(str(resources.files("stockpile") / "data" / "measurements" / "training_unseen.csv"))
    report("shipped fit settings", rows, unseen)
    if args.perturb:
        base = fit_training.F_SCALE
        try:
            for k in (0.95, 1.05):
                fit_training.F_SCALE = base * k
                report(f"soft-L1 scale x{k:g}", rows, None)
        finally:
            fit_training.F_SCALE = base


if __name__ == "__main__":
    main()
