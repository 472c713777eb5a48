"""The shipped calibration file: fitted, dated, physical; and the fit runs end to end."""
import statistics

import pytest

from stockpile.calibration.fit_training import BOUNDS, fit
from stockpile.perf.training import load_training_calibration


def test_shipped_calibration_is_dated_and_within_physical_bounds():
    cal = load_training_calibration()
    assert cal.meta["fitted"] and cal.meta["rows"] > 200 and cal.meta["file"]
    assert "leave_one_source_out" in cal.meta
    for scope in (cal.global_, *cal.families.values(), *cal.frameworks.values()):
        for name, value in scope.items():
            if name in BOUNDS:
                lo, hi = BOUNDS[name]
                assert lo * 0.999 <= value <= hi * 1.001, name
    # a few global, family and framework parameters, no per-row terms
    assert len(cal.global_) < 25 and set(cal.families) <= {"ampere", "hopper", "blackwell", "tpu", "ascend",
                                                           "gaudi", "amd"}


def test_fit_runs_on_a_subset(shipped_rows):
    rows = [r for r in shipped_rows if "llm-foundry" in r["source_url"]][:30]
    cal, report = fit(rows, rounds=1, max_nfev=3)
    assert report["rows"] == 30 and report["median_ape_after"] is not None
    assert cal.frameworks["mosaic"]["kernel_eff"] == pytest.approx(cal.frameworks["mosaic"]["kernel_eff"])


def test_a_framework_without_rows_takes_the_median_fitted_factor_off_the_bounds(shipped_rows):
    from stockpile.perf.training import UNMEASURED, TrainCalibration
    rows = [r for r in shipped_rows if "llm-foundry" in r["source_url"] or "torchtitan" in r["source_url"]][:60]
    cal, _ = fit(rows, rounds=1, max_nfev=3)
    lo, hi = BOUNDS["kernel_eff"]
    off_bound = sorted(v["kernel_eff"] for k, v in cal.frameworks.items()
                       if k != UNMEASURED and lo * 1.01 < v["kernel_eff"] < hi / 1.01)
    assert off_bound and cal.frameworks[UNMEASURED]["kernel_eff"] == pytest.approx(statistics.median(off_bound),
                                                                                rel=1e-3)
    # a fitted framework keeps its own factor; one the rows never measured (InternEvo here) takes the median
    assert cal.params("hopper", "mosaic").kernel_eff == pytest.approx(cal.frameworks["mosaic"]["kernel_eff"])
    assert cal.params("hopper", "internevo").kernel_eff == pytest.approx(cal.frameworks[UNMEASURED]["kernel_eff"])
    # a calibration written before the rule (no entry) keeps the prior
    assert TrainCalibration({}, {}, {}, {}).params("hopper", "internevo").kernel_eff == 1.0
    # the shipped fit has the entry, inside the framework factors' bounds
    shipped = load_training_calibration().frameworks[UNMEASURED]["kernel_eff"]
    assert lo < shipped < hi


def test_a_parameter_with_a_weaker_prior_takes_up_what_the_data_leave_open():
    """Two factors whose product alone is measured (a chip family's GEMM efficiency and a framework's kernel
    factor): the one with the weaker prior moves, the other stays near its default (fit_training gives the family
    FAMILY_PRIOR_WEIGHT, below PRIOR_WEIGHT)."""
    import numpy as np

    from stockpile.calibration.fit_training import FAMILY_PRIOR_WEIGHT, PRIOR_WEIGHT
    from stockpile.calibration.fitter import solve

    assert FAMILY_PRIOR_WEIGHT < PRIOR_WEIGHT
    zero = np.zeros(2)
    sol = solve(lambda th: np.full(20, np.exp(th.sum())), np.full(20, 1.5), zero, lo=zero - 3, hi=zero + 3,
                prior=zero, prior_weight=np.array([FAMILY_PRIOR_WEIGHT, PRIOR_WEIGHT]), losses=("linear",),
                f_scale=1.0, max_nfev=200, restarts=1)
    family, framework = sol.theta
    assert family + framework == pytest.approx(np.log(1.5), abs=0.01)
    assert family > 5 * framework > 0
