"""Leave-one-regime-out validation of the inference model (issue 12): fit without a load regime, predict it.

    .venv/bin/python bench/regime_out.py                  # two full refits: 20-30 minutes on 2 cores
    .venv/bin/python bench/regime_out.py --engines-only   # refit only the engine parameters: a few minutes

Regimes, from each row's load: *request-rate* (open loop: a `request_rate` is given), *burst* (all prompts at
once: offline rows with a known prompt count, or a closed loop whose concurrency covers every prompt), and
*closed loop* (a concurrency below the prompt count). For each of request-rate and burst: fit on every other
row (all shipped files), then predict that regime's rows; next to it, the same rows under the fit on all rows.
Then the full fit's TTFT error on bursts and on closed loops alone. Results go to stdout (and
bench/results/regime_out.txt by hand).
"""
from __future__ import annotations

import statistics
import time

import numpy as np


def regime(case) -> str:
    if case.request_rate:
        return "request-rate"
    n = case.num_requests
    if n and (not case.concurrency or case.concurrency >= n):
        return "burst"
    if case.concurrency:
        return "closed-loop"
    return "offline"


def errors(cal, keep) -> dict[str, list[float]]:
    from stockpile.calibration.fit_inference import default_files
    from stockpile.calibration.inference import Batch, Prepared, prepare_file
    out: dict[str, list[float]] = {}
    for path in default_files():
        _, _, preps = prepare_file(path)
        ps = [p for p in preps if isinstance(p, Prepared) and keep(p.case)]
        if not ps:
            continue
        pred = Batch(ps).run(cal)
        for p, v in zip(ps, pred):
            if np.isfinite(v):
                key = p.case.metric if p.case.metric in ("ttft_ms", "tpot_ms") else "throughput/e2e"
                out.setdefault("all", []).append(abs(v / p.case.measured - 1))
                out.setdefault(key, []).append(abs(v / p.case.measured - 1))
    return out


def med(xs: list[float]) -> str:
    return f"{100 * statistics.median(xs):5.1f}% (n={len(xs)})" if xs else "-"


def main() -> None:
    import argparse

    from stockpile.calibration.fit_inference import default_files, fit
    from stockpile.perf.calibration import load_calibration
    full = load_calibration()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--engines-only", action="store_true", help="refit engine parameters only (the rest as shipped)")
    free = (lambda scope, key, name: scope == "engines") if ap.parse_args().engines_only else None
    print("refit: " + ("engine parameters only (the rest as shipped)" if free else "every parameter"))
    print("regime          held out of the fit: median |error| (all / TTFT / TPOT)      with the full fit")
    for name in ("request-rate", "burst"):
        t = time.perf_counter()
        cal, _ = fit(default_files(), start=full, exclude=lambda c, n=name: regime(c) == n, free=free)
        held = errors(cal, lambda c, n=name: regime(c) == n)
        base = errors(full, lambda c, n=name: regime(c) == n)
        print(f"{name:15} {med(held.get('all', []))} / {med(held.get('ttft_ms', []))} / "
              f"{med(held.get('tpot_ms', []))}    {med(base.get('all', []))} / {med(base.get('ttft_ms', []))}"
              f"   [{time.perf_counter() - t:.0f} s]")
    for name in ("burst", "closed-loop", "request-rate"):
        e = errors(full, lambda c, n=name: regime(c) == n)
        print(f"TTFT alone, {name:12} (full fit): {med(e.get('ttft_ms', []))}")


if __name__ == "__main__":
    main()
