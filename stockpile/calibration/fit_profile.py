"""A user's profile from their own runs: refit only the regimes (chip family x engine) those runs cover.

The shipped calibration is the start and the prior: each covered regime gets its own values of the chip
family's and the engine's parameters (``Calibration.regimes``), pulled toward the shipped ones, while every
other regime and every global parameter stays as shipped. The runs are split by load point: every
``HOLDOUT_EVERY``-th load point is held out, the fit is made on the rest, and the held-out error before and
after is reported. Where the refit does not improve the held-out part, a stronger pull toward the shipped
values is tried, and failing that the regime keeps the shipped values, so the held-out error after is never
worse than before. The profile written is then fitted on every run with the pull that passed.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from stockpile.calibration.fit_inference import BOUNDS, F_SCALE, PRIOR_WEIGHT, reads, validate_factors
from stockpile.calibration.fitter import solve
from stockpile.calibration.inference import Batch, Prepared, prepare_file
from stockpile.errors import DataError
from stockpile.perf.calibration import (
    ENGINE_DEFAULTS,
    FAMILY_DEFAULTS,
    Calibration,
    regime_key,
)

REGIME_PARAMS = (*FAMILY_DEFAULTS, *ENGINE_DEFAULTS)   # a chip family's and an engine's own parameters
HOLDOUT_EVERY = 4            # every 4th load point is held out (at least one when there are two or more)
PRIOR_STEPS = (1.0, 4.0, 16.0)   # multiples of the shipped fit's prior weight tried until held-out error improves


def _load_point(p: Prepared) -> tuple[Any, ...]:
    """Rows of one measured run share a load point: same model, chip, layout, lengths and load."""
    c = p.case
    return (c.model, c.chip, c.gpus, p.engine_key, c.isl, c.osl, c.concurrency, c.request_rate,
            c.tp, c.pp, c.ep, c.dp, c.weight_dtype, c.kv_dtype)


def _prepared(paths: list[Path]) -> tuple[list[Prepared], int]:
    preps: list[Prepared] = []
    skipped = 0
    for path in paths:
        _, _, prepared = prepare_file(path)
        for pr in prepared:
            if isinstance(pr, Prepared):
                preps.append(pr)
            else:
                skipped += 1
    if not preps:
        raise DataError("files: no predictable inference rows in the runs (check them with `stockpile validate`)")
    return preps, skipped


def _median_ape(pred: np.ndarray, meas: np.ndarray) -> float:
    return float(np.median(np.abs(pred / meas - 1.0)))


def _with(start: Calibration, spec: list[tuple[str, str]], theta: np.ndarray) -> Calibration:
    regimes = {k: dict(v) for k, v in start.regimes.items()}
    for (key, name), v in zip(spec, np.exp(theta)):
        regimes.setdefault(key, {})[name] = float(v)
    return Calibration(global_=dict(start.global_), families={k: dict(v) for k, v in start.families.items()},
                       engines={k: dict(v) for k, v in start.engines.items()}, meta=dict(start.meta),
                       regimes=regimes)


def _fit(preps: list[Prepared], start: Calibration, prior_weight: float,
         max_nfev: int) -> tuple[Calibration, list[tuple[str, str]], np.ndarray]:
    keys = sorted({(p.chip.family, p.engine_key) for p in preps})
    spec = [(regime_key(fam, eng), name) for fam, eng in keys for name in REGIME_PARAMS]
    start_vals = {regime_key(fam, eng): start.params(fam, eng) for fam, eng in keys}
    x0 = np.log([getattr(start_vals[k], n) for k, n in spec])
    lo = np.log([BOUNDS[n][0] for _, n in spec])
    hi = np.log([BOUNDS[n][1] for _, n in spec])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    batch = Batch(preps, simulate=True, simulate_bursts=False)
    # the runs the fast batch keeps in the steady state but validate simulates (vLLM V1 bursts) enter as the steady
    # state times validate's factor at the start, as in the shipped fit (fit_inference.validate_factors)
    batch.scale = validate_factors(preps, start, batch)
    meas = np.array([p.case.measured for p in preps])
    sol = solve(lambda th: np.array(batch.run(_with(start, spec, th))), meas, x0, lo=lo, hi=hi, prior=x0.copy(),
                prior_weight=prior_weight, losses=("soft_l1",), f_scale=F_SCALE, max_nfev=max_nfev, restarts=1,
                touched=reads(preps, [("regimes", key, name) for key, name in spec]))
    return _with(start, spec, sol.theta), spec, sol.theta


def fit_profile(paths: list[Path], start: Calibration, *, max_nfev: int = 60) -> tuple[Calibration, dict[str, Any]]:
    """Refit the regimes the runs in ``paths`` cover (see the module docstring); returns the profile's
    calibration and a report with the held-out error before and after."""
    preps, skipped = _prepared(paths)
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, p in enumerate(preps):
        groups[_load_point(p)].append(i)
    order = list(groups.values())
    held = {i for k, idx in enumerate(order) if len(order) >= 2 and k % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
            or (len(order) in (2, 3) and k == len(order) - 1) for i in idx}
    train = [p for i, p in enumerate(preps) if i not in held]
    test = [p for i, p in enumerate(preps) if i in held]
    regimes = sorted({regime_key(p.chip.family, p.engine_key) for p in preps})

    def err(ps: list[Prepared], cal: Calibration) -> float:
        return _median_ape(np.array(Batch(ps, simulate=True).run(cal)), np.array([p.case.measured for p in ps]))

    chosen: float | None = PRIOR_STEPS[0]
    report: dict[str, Any] = {"rows": len(preps), "skipped_rows": skipped, "regimes": regimes,
                              "load_points": len(order), "held_out_load_points": sum(
                                  1 for idx in order if idx[0] in held)}
    if test:
        before = err(test, start)
        tried = []
        for step in PRIOR_STEPS:
            cal, _, _ = _fit(train, start, PRIOR_WEIGHT * step, max_nfev)
            after = err(test, cal)
            tried.append({"prior_weight": PRIOR_WEIGHT * step, "held_out_median_ape": round(after, 4)})
            if after <= before:
                chosen = step
                break
        else:
            chosen, after = None, before
        report.update(held_out_median_ape_before=round(before, 4), held_out_median_ape_after=round(after, 4),
                      held_out_rows=len(test), tried=tried)
    else:
        report["note"] = "one load point only: nothing to hold out; the error reported is on the fitted rows"
    if chosen is None:
        final = Calibration(global_=dict(start.global_), families=dict(start.families), engines=dict(start.engines),
                            meta=dict(start.meta), regimes=dict(start.regimes))
        report["kept_shipped"] = ("no refit improved the held-out runs, so the profile keeps the starting values "
                                  f"for {', '.join(regimes)}")
    else:
        final, _, _ = _fit(preps, start, PRIOR_WEIGHT * chosen, max_nfev)
    report["median_ape_before"] = round(err(preps, start), 4)
    report["median_ape_after"] = round(err(preps, final), 4)
    report["parameters"] = {k: {n: round(v, 6) for n, v in final.regimes.get(k, {}).items()} for k in regimes}
    final.meta = {**start.meta, "profile": {
        "fitted": dt.date.today().isoformat(), "files": [Path(p).name for p in paths], "rows": len(preps),
        # the runs' publications are in sample for the profile only where it was refitted on them
        "publications": sorted({p.case.publication for p in preps if p.case.publication} if chosen is not None else ()),
        "regimes": regimes, "held_out": {k: report[k] for k in ("held_out_median_ape_before",
                                                                 "held_out_median_ape_after") if k in report}}}
    return final, report
