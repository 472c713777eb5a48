"""The one fitter of the measured-data loop: robust least squares on log(predicted / measured).

Parameters live in log space between physical bounds, with a weak prior toward their defaults (so a parameter
the data cannot see stays where physics puts it). Rows may carry weights. The loss runs in stages (e.g. soft-L1
to find the basin, then Cauchy, which is redescending: rows the model cannot express stop pulling), each stage
restarted from its own optimum (a fresh trust region) while that still lowers the cost by more than 0.1 %.
Both the inference fit (fit_inference.py) and the training fit (fit_training.py) call :func:`solve`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

NOT_PREDICTED = 1.0      # log residual of a row the model cannot predict (does not fit, or not finite)


def log_residuals(pred: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """log(pred / measured) per row; NOT_PREDICTED where the prediction is missing or not positive."""
    pred = np.asarray(pred, dtype=float)
    ok = np.isfinite(pred) & (pred > 0)
    return np.where(ok, np.log(np.where(ok, pred, 1.0) / measured), NOT_PREDICTED)


@dataclass
class Fit:
    theta: np.ndarray         # log parameters at the optimum
    rows: np.ndarray          # unweighted log residual per row at the optimum
    rows_start: np.ndarray    # the same at the start
    nfev: int
    cost: float


def solve(predict: Callable[[np.ndarray], np.ndarray], measured: np.ndarray, theta0: np.ndarray, *,
          lo: np.ndarray, hi: np.ndarray, prior: np.ndarray | None = None, prior_weight: float | np.ndarray = 0.15,
          weights: np.ndarray | None = None, losses: Sequence[str] = ("soft_l1", "cauchy"), f_scale: float = 0.15,
          max_nfev: int = 150, diff_step: float = 1e-2, restarts: int = 4, touched: np.ndarray | None = None) -> Fit:
    """Minimise sum_i rho(w_i^1/2 log(pred_i(theta) / measured_i)) + prior_weight^2 |theta - prior|^2 over the log
    parameters theta in [lo, hi]; `predict(theta)` returns the predictions of every row. `prior_weight` may be one
    weight per parameter. `touched` (rows x parameters, bool: which rows each parameter can move, a superset of
    where it does) lets the Jacobian move together parameters that share no row (:func:`grouped_jacobian`): the
    same finite differences in a fraction of the evaluations."""
    measured = np.asarray(measured, dtype=float)
    sw = np.sqrt(np.ones(len(measured)) if weights is None else np.asarray(weights, dtype=float))
    prior = theta0 if prior is None else prior
    theta = np.clip(theta0, lo + 1e-9, hi - 1e-9)
    pw = np.broadcast_to(np.asarray(prior_weight, dtype=float), theta.shape)

    def residuals(th: np.ndarray) -> np.ndarray:
        return np.concatenate([log_residuals(predict(th), measured) * sw, prior_weight * (th - prior)])

    n = len(measured)
    start = residuals(theta)[:n] / sw
    jac: Callable[[np.ndarray], np.ndarray] | str = "2-point"
    if touched is not None:
        jac = grouped_jacobian(lambda th: residuals(th)[:n], touched, pw, lo, hi, diff_step)
    nfev, best = 0, None
    for loss in losses:
        stage = None
        for _ in range(max(restarts, 1)):
            sol = least_squares(residuals, theta, jac=jac, bounds=(lo, hi), loss=loss, f_scale=f_scale,
                                max_nfev=max_nfev, diff_step=diff_step, x_scale=1.0)
            nfev += int(sol.nfev)
            improved = stage is None or sol.cost < stage.cost * (1.0 - 1e-3)
            if stage is None or sol.cost < stage.cost:
                stage = sol
            if not improved:
                break
            theta = sol.x
        assert stage is not None
        best, theta = stage, stage.x
    assert best is not None
    return Fit(theta=best.x, rows=best.fun[:n] / sw, rows_start=start, nfev=nfev, cost=float(best.cost))


def column_groups(touched: np.ndarray) -> list[np.ndarray]:
    """Parameters in groups no two of which touch a common row (greedy, widest first): one evaluation per group
    gives every member's finite difference."""
    groups: list[list[int]] = []
    used: list[np.ndarray] = []
    for j in np.argsort(-touched.sum(axis=0), kind="stable"):
        for g, rows in zip(groups, used):
            if not np.any(rows & touched[:, j]):
                g.append(int(j))
                rows |= touched[:, j]
                break
        else:
            groups.append([int(j)])
            used.append(touched[:, j].copy())
    return [np.array(sorted(g)) for g in groups]


def grouped_jacobian(f: Callable[[np.ndarray], np.ndarray], touched: np.ndarray, prior_weight: np.ndarray,
                     lo: np.ndarray, hi: np.ndarray, rel_step: float) -> Callable[[np.ndarray], np.ndarray]:
    """The Jacobian of solve's residuals (rows of `f`, then the prior's diagonal) by forward differences with
    scipy's own steps (relative step, sign-flipped or shortened at a bound), the parameters of one column group
    moved in one evaluation; a row a parameter does not touch keeps a zero derivative."""
    groups = column_groups(touched)
    m = touched.shape[1]

    def jac(x: np.ndarray, *_: object) -> np.ndarray:
        f0 = f(x)
        sign = (x >= 0).astype(float) * 2 - 1
        h = rel_step * sign * np.abs(x)
        h = np.where((x + h) - x == 0, np.finfo(float).eps ** 0.5 * sign * np.maximum(1.0, np.abs(x)), h)
        lower, upper = x - lo, hi - x
        violated = ((x + h) < lo) | ((x + h) > hi)
        fitting = np.abs(h) <= np.maximum(lower, upper)
        h = np.where(violated & fitting, -h, h)
        h = np.where(~fitting & (upper >= lower), upper, h)
        h = np.where(~fitting & (upper < lower), -lower, h)
        dx = (x + h) - x
        J = np.zeros((len(f0) + m, m))
        for g in groups:
            xg = x.copy()
            xg[g] += h[g]
            df = f(xg) - f0
            for j in g:
                J[:len(f0), j] = np.where(touched[:, j], df, 0.0) / dx[j]
        J[len(f0) + np.arange(m), np.arange(m)] = prior_weight
        return J
    return jac


def values_on_bounds(scoped: list[tuple[str, dict[str, float]]], bounds: dict[str, tuple[float, float]],
                     rel: float = 0.01) -> list[tuple[str, float, float, str]]:
    """Fitted values within `rel` of an edge of their range: (parameter with its scope prefix, value, bound,
    "lower"/"upper"). `scoped`: (prefix, values) pairs, e.g. ("", globals), ("hopper.", a family's). A value the
    data push against its limit is a sign of missing physics, not a fitted value."""
    out: list[tuple[str, float, float, str]] = []
    for prefix, values in scoped:
        for name, v in values.items():
            if name not in bounds or v is None:
                continue
            lo, hi = bounds[name]
            if v <= lo * (1 + rel):
                out.append((prefix + name, float(v), lo, "lower"))
            elif v >= hi * (1 - rel):
                out.append((prefix + name, float(v), hi, "upper"))
    return out
