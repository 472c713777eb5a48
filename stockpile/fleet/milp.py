"""The fleet plan as a mixed-integer programme, solved with HiGHS through ``scipy.optimize.milp``.

Monthly periods t; pools p = (chip type, cluster). Decision variables (docs/fleet-model.md, section 2):

    x[w,p,t] >= 0   chips of pool p serving workload w in month t
    r[w,j,t] >= 0   rented GPUs of rental offer j serving w
    b[o,t]   >= 0   chips ordered through option o in month t (a fraction f_o arrives in t + L_o + delay_o)
    y[q] in {0,1}   training run q = (generation, pool, start, chips) is chosen
    m[g] in [0,1]   generation g is not trained in the horizon
    u[w,t]   >= 0   unmet demand of w, output tokens/s

Constraints: chips used <= chips on hand (stock after attrition + deliveries, times policy usability);
served tokens + unmet >= demand; facility power per cluster; rental caps; each generation picks one run or is
missed; a generation starts after the one it follows ends; procurement caps and budget.
Objective (USD): energy of busy chips + amortised procurement + rental + penalties for unmet tokens, late
and missed generations. Unmet demand has a penalty, so the programme is always feasible: an impossible
programme is answered with its best partial plan and the unmet demand, never a solver error.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix, csr_matrix

from stockpile.fleet.problem import SECONDS_PER_MONTH, Problem

SCALE = 1e-6          # objective in millions of USD for conditioning
TOK = 1e3             # demand rows and unmet variables in thousands of tokens/s for conditioning
EARLY = 1e-3          # preference for early finishes, as a fraction of the late penalty per month


class _Builder:
    """Variables as blocks of columns; constraints as COO triplets with row bounds and a kind tag."""

    def __init__(self) -> None:
        self.n = 0
        self.cost: list[np.ndarray] = []
        self.lb: list[np.ndarray] = []
        self.ub: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.row_lo: list[np.ndarray] = []
        self.row_hi: list[np.ndarray] = []
        self.kinds: dict[str, tuple[int, tuple[int, ...]]] = {}
        self.m = 0

    def var(self, shape: tuple[int, ...], cost=0.0, lb=0.0, ub=np.inf, integer=False) -> np.ndarray:
        size = int(np.prod(shape)) if shape else 1
        idx = np.arange(self.n, self.n + size).reshape(shape)
        self.n += size
        self.cost.append(np.broadcast_to(np.asarray(cost, float), shape).ravel())
        self.lb.append(np.broadcast_to(np.asarray(lb, float), shape).ravel())
        self.ub.append(np.broadcast_to(np.asarray(ub, float), shape).ravel())
        self.integer.append(np.full(size, 1 if integer else 0))
        return idx

    def rows(self, kind: str, shape: tuple[int, ...], lo=-np.inf, hi=np.inf) -> np.ndarray:
        size = int(np.prod(shape))
        idx = np.arange(self.m, self.m + size).reshape(shape)
        self.kinds[kind] = (self.m, shape)
        self.m += size
        self.row_lo.append(np.broadcast_to(np.asarray(lo, float), shape).ravel())
        self.row_hi.append(np.broadcast_to(np.asarray(hi, float), shape).ravel())
        return idx

    def add(self, rows, cols, vals) -> None:
        rows, cols, vals = np.broadcast_arrays(np.asarray(rows), np.asarray(cols), np.asarray(vals, float))
        keep = vals != 0
        self.r.append(rows[keep].ravel())
        self.c.append(cols[keep].ravel())
        self.v.append(vals[keep].ravel())

    def matrix(self) -> csr_matrix:
        def cat(xs, dt):
            return np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)
        return coo_matrix((cat(self.v, float), (cat(self.r, int), cat(self.c, int))), shape=(self.m, self.n)).tocsr()

    def vec(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0)


@dataclass
class Solution:
    """Raw MILP solution, variable blocks already reshaped."""

    status: str
    message: str
    success: bool
    objective_usd: float
    mip_gap: float | None
    seconds: float
    x: np.ndarray                # (pairs, T)
    pairs: np.ndarray            # (pairs, 2) = (w, p)
    rent: np.ndarray             # (rent pairs, T)
    rent_pairs: np.ndarray       # (rent pairs, 2) = (w, j)
    buy: np.ndarray              # (O, T)
    y: np.ndarray                # (Q,)
    miss: np.ndarray             # (G,)
    unmet: np.ndarray            # (W, T)
    duals: dict[str, np.ndarray] = field(default_factory=dict)
    bound_duals: dict[str, np.ndarray] = field(default_factory=dict)


def build(pb: Problem) -> tuple[_Builder, dict[str, np.ndarray]]:
    """The MILP of the module docstring, as a builder plus the index arrays of each variable block."""
    s, T, P, W = pb.scenario, pb.T, pb.P, len(pb.workloads)
    B = _Builder()
    pc = pb.pool_chip
    pairs = np.array([(w, p) for w in range(W) for p in range(P) if pb.rate[w, pc[p]] > 0], int).reshape(-1, 2)
    rent_pairs = np.array([(w, j) for w in range(W) for j in range(len(pb.rent_chip))
                           if pb.rate[w, pb.rent_chip[j]] > 0 and pb.rent_max[j] > 0], int).reshape(-1, 2)
    O, pat, G = len(pb.opt_pool), pb.patterns, len(pb.gens)
    life = s.costs.depreciation_years * 12.0
    tt = np.arange(T)

    X = B.var((len(pairs), T), cost=(pb.energy_usd[pairs[:, 1]] * SCALE)[:, None] if len(pairs) else 0.0)
    R = B.var((len(rent_pairs), T), cost=(pb.rent_usd_month[rent_pairs[:, 1]] * SCALE)[:, None]
              if len(rent_pairs) else 0.0)
    months_held = np.maximum(0, T - (tt[None, :] + pb.opt_lead[:, None])) if O else np.zeros((0, T))
    paid = pb.opt_price * pb.opt_fill if O else np.zeros(0)      # USD per chip ordered (paid on delivery)
    Bv = B.var((O, T), cost=paid[:, None] * months_held / life * SCALE if O else 0.0,
               ub=np.where(pb.order_ok, pb.opt_max_month[:, None], 0.0) if O else 0.0)
    occ_energy = np.zeros(pat.n)
    np.add.at(occ_energy, pat.occ_rows, pat.occ_val * pb.energy_usd[pat.pool[pat.occ_rows]])
    late_pen = np.array([pb.gens[g].late_penalty for g in pat.gen]) if pat.n else np.zeros(0)
    # a late run pays per month late; every run pays EARLY x late penalty per month of its end, so that among
    # equally cheap plans the earliest finish wins (slack before the deadline absorbs delays)
    Y = B.var((pat.n,), cost=(occ_energy + late_pen * (pat.late + EARLY * pat.end)) * SCALE, ub=1.0, integer=True)
    M = B.var((G,), cost=np.array([g.miss_penalty for g in pb.gens]) * SCALE, ub=1.0)
    unmet_cost = s.costs.unmet_penalty_usd_per_mtok * SECONDS_PER_MONTH / 1e6 * SCALE
    U = B.var((W, T), cost=unmet_cost * TOK)
    reserve = s.serving_reserve * pb.demand / TOK
    Ur = B.var((W, T), cost=0.1 * unmet_cost * TOK, ub=reserve)

    # 1. chips used <= chips on hand, per pool and month
    cap = B.rows("stock", (P, T), hi=pb.stock * pb.usable[pc])
    if len(pairs):
        B.add(cap[pairs[:, 1]], X, 1.0)
    if pat.n:
        B.add(cap[pat.pool[pat.occ_rows], pat.occ_t], Y[pat.occ_rows], pat.occ_val)
    for o in range(O):
        coef = pb.arrival_coef(o)                     # (tau, t)
        tau, t = np.nonzero(coef * pb.order_ok[o][:, None])
        B.add(cap[pb.opt_pool[o], t], Bv[o, tau], -coef[tau, t])
    # 2. served + unmet + reserve shortfall >= demand * (1 + reserve)
    dem = B.rows("demand", (W, T), lo=pb.demand / TOK + reserve)
    if len(pairs):
        B.add(dem[pairs[:, 0]], X, pb.rate[pairs[:, 0], pc[pairs[:, 1]]][:, None] / TOK)
    if len(rent_pairs):
        B.add(dem[rent_pairs[:, 0]], R, pb.rate[rent_pairs[:, 0], pb.rent_chip[rent_pairs[:, 1]]][:, None] / TOK)
    B.add(dem, U, 1.0)
    B.add(dem, Ur, 1.0)
    # 3. facility power per cluster (finite limits only)
    limited = np.nonzero(np.isfinite(pb.cluster_cap_kw))[0]
    if len(limited):
        pw = B.rows("power", (len(limited), T), hi=pb.cluster_cap_kw[limited][:, None])
        row_of = {int(k): i for i, k in enumerate(limited)}
        for i, (_w, p) in enumerate(pairs):
            k = int(pb.pool_cluster[p])
            if k in row_of:
                B.add(pw[row_of[k]], X[i], pb.power_kw[p])
        if pat.n:
            kq = pb.pool_cluster[pat.pool[pat.occ_rows]]
            sel = np.isin(kq, limited)
            ridx = np.array([row_of.get(int(k), 0) for k in kq[sel]], int)
            B.add(pw[ridx, pat.occ_t[sel]], Y[pat.occ_rows[sel]],
                  pat.occ_val[sel] * pb.power_kw[pat.pool[pat.occ_rows[sel]]])
    # 4. rental caps
    if len(rent_pairs):
        rc = B.rows("rental", (len(pb.rent_chip), T), hi=pb.rent_max[:, None])
        B.add(rc[rent_pairs[:, 1]], R, 1.0)
    # 5. one run per generation, or missed
    if G:
        gr = B.rows("generation", (G,), lo=1.0, hi=1.0)
        B.add(gr[pat.gen], Y, 1.0)
        B.add(gr, M, 1.0)
    # 6. sequencing: g starts in month s only if its predecessor ended by then
    for gi, g in enumerate(pb.gens):
        if g.after is None:
            continue
        sq = B.rows(f"after:{gi}", (T,), hi=0.0)
        mine = np.nonzero(pat.gen == gi)[0]
        B.add(sq[pat.start[mine]], Y[mine], 1.0)
        prev = np.nonzero(pat.gen == g.after)[0]
        ends = np.ceil(pat.end[prev] - 1e-9).astype(int)
        for q, e in zip(prev, ends):
            if e < T:
                B.add(sq[e:], Y[q], -1.0)
    # 7. procurement totals and budget
    fin = np.nonzero(np.isfinite(pb.opt_max_total))[0] if O else np.zeros(0, int)
    if len(fin):
        tot = B.rows("procurement_total", (len(fin),), hi=pb.opt_max_total[fin])
        B.add(tot[:, None], Bv[fin], 1.0)
    if s.costs.capex_budget_usd is not None and O:
        bud = B.rows("capex_budget", (1,), hi=s.costs.capex_budget_usd)
        B.add(bud[0], Bv, paid[:, None])
    return B, {"x": X, "rent": R, "buy": Bv, "y": Y, "miss": M, "unmet": U, "pairs": pairs,
               "rent_pairs": rent_pairs}


_STATUS = {0: "optimal", 1: "time_limit", 2: "infeasible", 3: "unbounded", 4: "solver_error"}


def solve(pb: Problem, *, time_limit_s: float = 60.0, mip_rel_gap: float = 1e-3, duals: bool = True) -> Solution:
    """Build and solve the MILP; optionally re-solve the LP with the runs fixed for shadow prices."""
    t_start = time.perf_counter()
    B, ix = build(pb)
    A = B.matrix()
    c, lb, ub = B.vec(B.cost), B.vec(B.lb), B.vec(B.ub)
    integ = np.concatenate(B.integer) if B.integer else np.zeros(0, int)
    lo, hi = B.vec(B.row_lo), B.vec(B.row_hi)
    res = milp(c, integrality=integ, bounds=Bounds(lb, ub), constraints=LinearConstraint(A, lo, hi),
               options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "presolve": True})
    status = _STATUS.get(res.status, "solver_error")
    W, T = len(pb.workloads), pb.T
    if res.x is None:
        # No incumbent (should not happen: all-unmet is always feasible). Answer with the empty plan.
        z = np.zeros(B.n)
        z[ix["unmet"].ravel()] = pb.demand.ravel() / TOK
        z[ix["miss"]] = 1.0
        sol_x, ok = z, False
    else:
        sol_x, ok = res.x, True
    sol = Solution(
        status=status, message=str(res.message), success=ok and res.status in (0, 1),
        objective_usd=float(c @ sol_x) / SCALE, mip_gap=getattr(res, "mip_gap", None),
        seconds=0.0, x=sol_x[ix["x"]], pairs=ix["pairs"], rent=sol_x[ix["rent"]], rent_pairs=ix["rent_pairs"],
        buy=sol_x[ix["buy"]], y=np.round(sol_x[ix["y"]]), miss=sol_x[ix["miss"]], unmet=sol_x[ix["unmet"]])
    sol.unmet = np.maximum(sol.unmet, 0.0).reshape(W, T) * TOK
    if duals and ok:
        _shadow_prices(B, A, c, lb, ub, integ, lo, hi, sol_x, sol)
        if "upper" in sol.bound_duals:
            sol.bound_duals["buy"] = sol.bound_duals.pop("upper")[ix["buy"]]
    sol.seconds = time.perf_counter() - t_start
    return sol


def _shadow_prices(B: _Builder, A: csr_matrix, c, lb, ub, integ, lo, hi, x, sol: Solution) -> None:
    """LP with the chosen training runs fixed: row and bound duals in USD per unit (binding constraints)."""
    lb2, ub2 = lb.copy(), ub.copy()
    fixed = integ > 0
    lb2[fixed] = ub2[fixed] = np.round(x[fixed])
    eq = np.isfinite(lo) & np.isfinite(hi) & (lo == hi)
    up = np.isfinite(hi) & ~eq
    dn = np.isfinite(lo) & ~eq
    from scipy.sparse import vstack
    A_ub = vstack([A[up], -A[dn]]).tocsr()
    b_ub = np.concatenate([hi[up], -lo[dn]])
    try:
        res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A[eq] if eq.any() else None, b_eq=hi[eq] if eq.any() else None,
                      bounds=np.column_stack([lb2, ub2]), method="highs")
    except (ValueError, MemoryError):
        return
    if res.status != 0:
        return
    marg = np.zeros(B.m)
    n_up = int(up.sum())
    marg[np.nonzero(up)[0]] = res.ineqlin.marginals[:n_up]
    marg[np.nonzero(dn)[0]] += -res.ineqlin.marginals[n_up:]
    if eq.any():
        marg[np.nonzero(eq)[0]] = res.eqlin.marginals
    for kind, (start, shape) in B.kinds.items():
        size = int(np.prod(shape))
        sol.duals[kind] = marg[start:start + size].reshape(shape) / SCALE / (TOK if kind == "demand" else 1.0)
    sol.bound_duals["upper"] = res.upper.marginals / SCALE


def month_of_fraction(t: float) -> int:
    """Index of the month in which a fractional month position falls (end of a run)."""
    return max(0, math.ceil(t - 1e-9) - 1)
