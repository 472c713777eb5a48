"""Are the uncertainty bands honest on data the fit never saw? (issue 13)

    .venv/bin/python bench/band_heldout.py [FOLDS]

The publications of the shipped inference files are split into FOLDS groups (default 5; a publication's group
is the CRC-32 of its source URL, so the split is the same on every machine). Each group is predicted by the
shipped calibration refitted without it (the parameters the shipped calibration sets, from their values:
fit_inference.set_in; at most 30 evaluations per stage), and each held-out measurement is checked against the
p10-p90 band the tool states with its prediction (calibration/bands.py). Prints the share inside, overall, by
file and by metric kind, next to the same share under the shipped calibration (in sample). Target: 75-85 %.
About 15 minutes on 2 cores.
"""
from __future__ import annotations

import statistics
import time
import zlib
from collections import defaultdict

import numpy as np


def fold_of(publication: str, folds: int) -> int:
    return zlib.crc32(publication.encode()) % folds


def main() -> None:
    import argparse

    from stockpile.calibration.bands import band, load_kind, metric_kind
    from stockpile.calibration.fit_inference import default_files, fit, set_in
    from stockpile.calibration.inference import Batch, Prepared, prepare_file
    from stockpile.perf.calibration import load_calibration
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("folds", nargs="?", type=int, default=5, help="folds of publications (default 5)")
    folds = ap.parse_args().folds
    ship = load_calibration()
    preps: list[tuple[str, Prepared]] = []
    for path in default_files():
        _, _, ps = prepare_file(path)
        preps += [(path.name, p) for p in ps if isinstance(p, Prepared)]

    def inside(items: list[tuple[str, Prepared]], cal) -> list[tuple[str, str, bool, float]]:
        out = []
        for (name, p), v in zip(items, Batch([p for _, p in items]).run(cal)):
            if not (np.isfinite(v) and v > 0):
                continue
            c = p.case
            b = band(p.engine_key, p.chip.family, c.metric, load_kind(c.concurrency, c.request_rate, c.num_requests))
            if b is None:
                continue
            out.append((name, metric_kind(c.metric), b[0] * v <= c.measured <= b[1] * v, abs(v / c.measured - 1)))
        return out

    t0 = time.perf_counter()
    held: list[tuple[str, str, bool, float]] = []
    for k in range(folds):
        part = [(n, p) for n, p in preps if fold_of(p.case.publication, folds) == k]
        if not part:
            continue
        cal, _ = fit(default_files(), start=ship, free=set_in(ship), max_nfev=30,
                     exclude=lambda c, k=k: fold_of(c.publication, folds) == k)
        held += inside(part, cal)
        print(f"fold {k + 1}/{folds}: {len(part)} rows held out", flush=True)
    shipped = inside(preps, ship)

    def share(rs: list[tuple[str, str, bool, float]]) -> str:
        if not rs:
            return "-"
        return (f"{100 * statistics.fmean(r[2] for r in rs):.1f} % of {len(rs)} "
                f"(median error {100 * statistics.median(r[3] for r in rs):.1f} %)")

    print(f"\n{folds} folds of publications, {(time.perf_counter() - t0) / 60:.0f} min. Inside the stated p10-p90 band:")
    print("| rows | held out | in sample (shipped calibration) |\n|---|---:|---:|")
    print(f"| all | {share(held)} | {share(shipped)} |")
    for label, idx in (("file", 0), ("metric", 1)):
        groups: dict[str, list] = defaultdict(list)
        ship_g: dict[str, list] = defaultdict(list)
        for r in held:
            groups[r[idx]].append(r)
        for r in shipped:
            ship_g[r[idx]].append(r)
        for g in sorted(groups):
            print(f"| {label} {g} | {share(groups[g])} | {share(ship_g[g])} |")
    print(f"\nheld-out median |error| {100 * statistics.median(r[3] for r in held):.1f} % "
          f"(in sample {100 * statistics.median(r[3] for r in shipped):.1f} %)")


if __name__ == "__main__":
    main()
