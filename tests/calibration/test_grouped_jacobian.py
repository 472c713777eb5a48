"""The fitter's grouped Jacobian: the same forward differences scipy takes, in one evaluation per column group."""
from collections.abc import Callable

import numpy as np
from scipy.optimize import least_squares
from scipy.optimize._numdiff import approx_derivative

from stockpile.calibration.fitter import column_groups, grouped_jacobian, log_residuals, solve


def touched_rows(f: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 step: float = 0.3) -> np.ndarray:
    """Which rows each parameter moves here (rows x parameters, bool): each log parameter in turn moved `step` up
    and down (inside its bounds); a row is touched where either move changes its residual at all. Where a term
    is a max() of two, a parameter of the inactive one touches nothing here and may elsewhere: this is a lower
    bound of the pattern solve needs, to check one stated from the model's structure against."""
    f0 = f(theta)
    touched = np.zeros((len(f0), len(theta)), dtype=bool)
    for j in range(len(theta)):
        for d in (step, -step):
            x = theta.copy()
            x[j] = np.clip(x[j] + d, lo[j], hi[j])
            if x[j] != theta[j]:
                touched[:, j] |= f(x) != f0
    return touched


def block_model(theta: np.ndarray) -> np.ndarray:
    """Twelve rows: two 'global' parameters move (almost) every row, four 'family' parameters three rows each, one of them
    only through a max() that is active on one of its rows."""
    g0, g1, a, b, c, d = np.exp(theta)
    rows = np.arange(12, dtype=float)
    fam = np.repeat([a, b, c, d], 3)
    out = g0 * (1.0 + rows) / fam + g1 * np.sqrt(1.0 + rows)
    out[9] = g0 * np.maximum(d * 40.0, 1.0 + rows[9])      # d's max() term active here
    out[10] = g0 * np.maximum(d * 0.1, 1.0 + rows[10])    # and not here
    return out


def residuals(theta: np.ndarray) -> np.ndarray:
    return np.log(block_model(theta) / 3.0)


LO, HI = np.full(6, -2.0), np.full(6, 2.0)
# what the model's structure says each parameter can move: the globals every row, a family its three rows
STRUCTURE = np.column_stack([np.ones((12, 2), dtype=bool), np.repeat(np.eye(4, dtype=bool), 3, axis=0)])


def test_touched_rows_finds_the_blocks_and_an_inactive_branch_stays_untouched():
    theta = np.zeros(6)
    touched = touched_rows(residuals, theta, LO, HI)
    assert touched[:, 0].all()                             # a global moves every row
    assert touched[:, 1].sum() == 10                       # the other every row but the two max() rows
    for k in range(4):                                     # a family parameter moves its own three rows
        own = np.zeros(12, dtype=bool)
        own[3 * k:3 * k + 3] = True
        if k == 3:
            own[10] = False                                # max(0.1 d, 11) ignores d even at d * e^0.3
        assert (touched[:, 2 + k] == own).all()


def test_groups_never_share_a_row_and_merge_the_disjoint_parameters():
    touched = touched_rows(residuals, np.zeros(6), LO, HI)
    groups = column_groups(touched)
    assert sorted(j for g in groups for j in g) == list(range(6))
    for g in groups:
        assert (touched[:, g].sum(axis=1) <= 1).all()
    assert len(groups) == 3                                # two globals alone, the four families together
    assert not (touched & ~STRUCTURE).any()                # the structure covers what the probe finds
    assert len(column_groups(STRUCTURE)) == 3


def test_grouped_jacobian_equals_scipy_forward_differences_also_at_a_bound():
    theta = np.array([0.3, -0.2, 0.1, -0.5, 0.7, 2.0 - 1e-12])       # the last one on its upper bound
    prior_weight = np.full(6, 0.1)
    J = grouped_jacobian(residuals, STRUCTURE, prior_weight, LO, HI, 1e-2)(theta)
    dense = approx_derivative(lambda th: np.concatenate([residuals(th), prior_weight * th]), theta,
                              method="2-point", rel_step=1e-2, bounds=(LO, HI))
    np.testing.assert_allclose(J, dense, rtol=1e-9, atol=1e-12)


def test_solve_reaches_the_same_optimum_grouped_or_dense():
    rng = np.random.default_rng(7)
    truth = np.array([0.2, -0.4, 0.3, -0.1, 0.5, 0.0])
    measured = block_model(truth) * np.exp(rng.normal(0.0, 0.02, 12))
    common = dict(lo=LO, hi=HI, prior=np.zeros(6), prior_weight=0.01, losses=("soft_l1",), max_nfev=200,
                  restarts=1)
    dense = solve(block_model, measured, np.zeros(6), **common)
    grouped = solve(block_model, measured, np.zeros(6), touched=STRUCTURE, **common)
    np.testing.assert_allclose(grouped.theta, dense.theta, atol=1e-6)
    assert abs(grouped.cost - dense.cost) <= 1e-9 * max(dense.cost, 1.0)
    # and both are the least-squares optimum scipy finds on its own
    ref = least_squares(lambda th: np.concatenate([np.log(block_model(th) / measured), 0.01 * th]), np.zeros(6),
                        bounds=(LO, HI), loss="soft_l1", f_scale=0.15, diff_step=1e-2, x_scale=1.0, max_nfev=200)
    np.testing.assert_allclose(dense.theta, ref.x, atol=1e-6)


def test_the_inference_fit_states_every_row_a_parameter_moves():
    """fit_inference.reads (from Calibration.params' lookup) covers every row that moving a parameter moves, on a
    shipped file whose rows span chip families, engines and their releases."""
    from importlib import resources
    from pathlib import Path

    from stockpile.calibration import fit_inference as fi
    from stockpile.calibration.inference import Batch, Prepared, prepare_file
    from stockpile.perf.calibration import load_calibration
    path = Path(str(resources.files("stockpile") / "data" / "measurements" / "inference_added.csv"))
    preps = [p for p in prepare_file(path)[2] if isinstance(p, Prepared)]
    spec = fi._parameters(preps)
    structure = fi.reads(preps, spec)
    assert structure.shape == (len(preps), len(spec)) and not structure.all()
    start = load_calibration()
    base = fi.Calibration(global_={}, families={}, engines={}, meta={})
    batch = Batch(preps, simulate=False, simulate_bursts=False)
    lo = np.log([fi.BOUNDS[n][0] for _, _, n in spec])
    hi = np.log([fi.BOUNDS[n][1] for _, _, n in spec])
    x0 = np.clip(np.log([fi._value(start, s, k, n) for s, k, n in spec]), lo + 1e-9, hi - 1e-9)
    ones = np.ones(len(preps))
    probed = touched_rows(lambda th: log_residuals(np.array(batch.run(fi._build(th, spec, base))), ones), x0, lo, hi)
    assert probed.any(axis=0).sum() >= len(spec) // 2
    assert not (probed & ~structure).any()
    assert len(column_groups(structure)) < len(spec)
