"""One HiGHS model kept alive across the fleet MILP's solves, so each re-solve starts from the last basis.

The plan's solve path (milp.py) is: the LP relaxation; the same LP with the training runs fixed at rounded values
(whose duals are the shadow prices); branch and bound over the runs the relaxation left fractional; and for the
stock-alone runway the same model again with procurement and rental closed. Through scipy each of those is a
cold solve of a matrix with up to a million columns. Here the model is passed to HiGHS once and only bounds and
integrality change between solves, so an LP re-solve is a dual simplex warm start from the previous basis
(seconds instead of tens of seconds at a million GPUs), and branch and bound gets the rounded plan as its start.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass

import highspy
import numpy as np
from scipy.sparse import csr_matrix

_INF = 1e30
_banner_done = False


@contextlib.contextmanager
def _quiet_stdout():
    """HiGHS prints a banner to C stdout when the first Highs object of a process is made; keep it off the
    CLI's output (a --json caller reads stdout)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _new_highs() -> highspy.Highs:
    global _banner_done
    if _banner_done:
        h = highspy.Highs()
    else:
        with _quiet_stdout():
            h = highspy.Highs()
        _banner_done = True
    h.setOptionValue("output_flag", False)
    return h


def _finite(v: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(v, dtype=np.float64), -_INF, _INF)


@dataclass
class Result:
    """One solve: status (0 optimal, 1 time limit with a solution, 2 infeasible, 4 no solution), x, objective,
    the MIP gap where branch and bound ran, and the row and column duals of an LP."""

    status: int
    x: np.ndarray | None
    fun: float
    gap: float | None = None
    row_dual: np.ndarray | None = None
    col_dual: np.ndarray | None = None
    seconds: float = 0.0
    label: str = ""


class Model:
    """min c x  s.t.  lo <= A x <= hi,  lb <= x <= ub,  x[integ > 0] integer (when asked for)."""

    def __init__(self, c: np.ndarray, A: csr_matrix, lo: np.ndarray, hi: np.ndarray, lb: np.ndarray,
                 ub: np.ndarray, integ: np.ndarray) -> None:
        self.n, self.m = len(c), A.shape[0]
        self.c, self.lb, self.ub = np.asarray(c, float), np.asarray(lb, float), np.asarray(ub, float)
        self.integ = np.asarray(integ) > 0
        self.int_idx = np.nonzero(self.integ)[0].astype(np.int32)
        self.h = _new_highs()
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.n, self.m
        lp.col_cost_ = self.c
        lp.col_lower_, lp.col_upper_ = _finite(lb), _finite(ub)
        lp.row_lower_, lp.row_upper_ = _finite(lo), _finite(hi)
        csc = A.tocsc()
        csc.sort_indices()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
        lp.a_matrix_.index_ = csc.indices.astype(np.int32)
        lp.a_matrix_.value_ = csc.data.astype(np.float64)
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = self.n, self.m
        self.h.passModel(lp)
        self.A, self.lo, self.hi = A, np.asarray(lo, float), np.asarray(hi, float)
        self._cur_lb, self._cur_ub = self.lb.copy(), self.ub.copy()
        self._is_mip = False
        self.log: list[Result] = []          # every solve, for the scale benchmark's timing table

    # ---------------------------------------------------------------- state changes
    def retarget(self, c: np.ndarray, A: csr_matrix, lo: np.ndarray, hi: np.ndarray, lb: np.ndarray,
                 ub: np.ndarray, integ: np.ndarray) -> bool:
        """Make this model another one with the same matrix (only costs and bounds differ), keeping HiGHS's basis
        so the next solve starts warm; False (nothing changed) when the matrix or integrality differ."""
        if A.shape != self.A.shape or A.nnz != self.A.nnz or (A != self.A).nnz or \
                not np.array_equal(np.asarray(integ) > 0, self.integ):
            return False
        dc = np.nonzero(np.asarray(c, float) != self.c)[0]
        if len(dc):
            self.h.changeColsCost(len(dc), dc.astype(np.int32), np.asarray(c, float)[dc])
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        dr = np.nonzero((lo != self.lo) | (hi != self.hi))[0]
        if len(dr):
            self.h.changeRowsBounds(len(dr), dr.astype(np.int32), _finite(lo[dr]),  # type: ignore[attr-defined]
                                    _finite(hi[dr]))
        self.c, self.lo, self.hi = np.asarray(c, float), lo, hi
        self.lb, self.ub = np.asarray(lb, float), np.asarray(ub, float)     # column bounds apply at the next solve
        self.log = []
        return True

    def set_bounds(self, lb: np.ndarray, ub: np.ndarray) -> None:
        """Change only the columns whose bounds differ from the model's current ones."""
        diff = np.nonzero((lb != self._cur_lb) | (ub != self._cur_ub))[0]
        if len(diff):
            self.h.changeColsBounds(len(diff), diff.astype(np.int32), _finite(lb[diff]), _finite(ub[diff]))
            self._cur_lb[diff], self._cur_ub[diff] = lb[diff], ub[diff]

    def _integrality(self, on: bool) -> None:
        if on == self._is_mip or not len(self.int_idx):
            return
        kind = highspy.HighsVarType.kInteger if on else highspy.HighsVarType.kContinuous
        self.h.changeColsIntegrality(len(self.int_idx), self.int_idx,
                                     np.array([kind] * len(self.int_idx)))
        self._is_mip = on

    # ---------------------------------------------------------------- solves
    def lp(self, lb: np.ndarray | None = None, ub: np.ndarray | None = None, *, time_limit_s: float = 60.0,
           duals: bool = False, label: str = "LP") -> Result:
        """The LP (integrality off) at the given bounds, warm-started from the last basis."""
        self._integrality(False)
        self.set_bounds(self.lb if lb is None else lb, self.ub if ub is None else ub)
        # the fleet LP is sparse and already reduced (no run or column that cannot be used is generated): HiGHS's
        # presolve costs more than it saves (100k-GPU benchmark: cold relaxation 1.5 s with it, 1.0 s without),
        # and warm re-solves start from the basis anyway
        self.h.setOptionValue("presolve", "off")
        return self._run(time_limit_s, None, None, duals, label)

    def mip(self, lb: np.ndarray, ub: np.ndarray, *, time_limit_s: float, gap: float,
            start: np.ndarray | None = None, label: str = "MIP") -> Result:
        """Branch and bound at the given bounds, from the plan `start` where given."""
        self._integrality(True)
        self.set_bounds(lb, ub)
        self.h.setOptionValue("presolve", "choose")
        return self._run(time_limit_s, gap, start, False, label)

    def _run(self, time_limit_s: float, gap: float | None, start: np.ndarray | None, duals: bool,
             label: str) -> Result:
        h = self.h
        h.setOptionValue("time_limit", float(max(0.1, time_limit_s)))
        if gap is not None:
            h.setOptionValue("mip_rel_gap", float(gap))
        if start is not None:
            sol = highspy.HighsSolution()
            sol.col_value = list(np.clip(start, self._cur_lb, self._cur_ub))
            sol.value_valid = True
            h.setSolution(sol)
        t0 = time.perf_counter()
        h.run()
        dt = time.perf_counter() - t0
        ms = h.getModelStatus()
        S = highspy.HighsModelStatus
        info = h.getInfo()
        has_x = info.primal_solution_status == 2            # feasible
        if ms == S.kOptimal:
            status = 0
        elif ms == S.kInfeasible:
            status = 2
        elif has_x and ms in (S.kTimeLimit, S.kIterationLimit, S.kInterrupt, S.kSolutionLimit):
            status = 1
        else:
            status = 4
        res = Result(status=status, x=None, fun=float("nan"), seconds=dt, label=label)
        if status in (0, 1) and has_x:
            sol = h.getSolution()
            res.x = np.asarray(sol.col_value, dtype=np.float64)
            res.fun = float(self.c @ res.x)
            if self._is_mip:
                res.gap = float(info.mip_gap)
            if duals and not self._is_mip and sol.dual_valid:
                res.row_dual = np.asarray(sol.row_dual, dtype=np.float64)
                res.col_dual = np.asarray(sol.col_dual, dtype=np.float64)
        self.log.append(res)
        return res
