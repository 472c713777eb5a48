"""The fleet plan as a multi-stage stochastic MILP over the scenario tree, solved with HiGHS through
highspy (one model kept across the solves; fleet/highs.py).

Monthly periods t; pools p = (chip type, cluster); nodes n of the scenario tree (problem.Worlds: one node per
month when no event is uncertain). Variables live on nodes, so worlds that cannot yet be told apart share them
(non-anticipativity by construction). Per node n in month t (docs/fleet-model.md, section 2):

    x[n,w,p] >= 0   chips of pool p serving workload w
    u[n,k]   >= 0   GPUs serving through chip pair k (prefill on one pool, decode on another; fleet/pairs.py)
    r[n,w,j] >= 0   rented GPUs of rental offer j serving w (a column per offer even where its cap is 0, so
                    that the stock-alone variant has the plan's matrix)
    b[n,o]   >= 0   chips ordered through option o (a fraction f_o arrives in t + L_o, if deliveries are allowed)
    y[n,q] in {0,1} training run q (starting in month t) is chosen
    z[n,w,k] >= 0   demand level segment k of workload w that is served (the day's load levels, filled bottom-up)
    v[n,w] in [0, rho D]  serving reserve not kept
    m[l,g] in [0,1] generation g is not trained in the horizon (per leaf l)

Objective: the expected cost over worlds (each node's variables weighted by its probability): energy of busy
chips + amortised procurement (paid on delivery) + rental + penalties for unmet tokens (integrated over the
day), a missing serving reserve, late and missed generations. Tie-breaks are lexicographic: among plans of
equal cost (to the solver's tolerance), a second solve picks the earliest training finishes; no weight of the
first objective buys an earlier finish. Unmet demand has a penalty, so the programme is always feasible.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix, vstack

from stockpile.fleet import highs as hs
from stockpile.fleet.heuristics import dive, round_runs
from stockpile.fleet.months import SECONDS_PER_MONTH
from stockpile.fleet.problem import Problem
from stockpile.fleet.solution import Solution

SCALE = 1e-6          # objective in millions of USD for conditioning
TOK = 1e3             # demand rows and unmet variables in thousands of tokens/s for conditioning
DAY_S = SECONDS_PER_MONTH / 24.0   # seconds of one hour of the day summed over a month (3600 x days/month)
RESERVE_WEIGHT = 0.1  # a missing serving reserve costs this share of unmet demand
TIE_BREAK_BNB_MAX_RUNS = 3000   # the tie-break falls back to branch and bound only below this many run variables
TIE_BREAK_MAX_VARS = 60_000     # above this the second solve (its cost row is dense) costs more than the plan


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


def build(pb: Problem) -> tuple[_Builder, dict[str, np.ndarray]]:
    """The MILP of the module docstring, as a builder plus the index arrays of each variable block."""
    s, T, P, W = pb.scenario, pb.T, pb.P, len(pb.workloads)
    wd = pb.worlds
    NM, nt, rep, prob = wd.NM, wd.node_t, wd.node_rep, wd.node_prob
    B = _Builder()
    pc = pb.pool_chip
    pairs = np.array([(w, p) for w in range(W) for p in range(P) if pb.rate[w, pc[p]] > 0], int).reshape(-1, 2)
    rent_pairs = np.array([(w, j) for w in range(W) for j in range(len(pb.rent_chip))
                           if pb.rate[w, pb.rent_chip[j]] > 0], int).reshape(-1, 2)
    O, pat, G = len(pb.opt_pool), pb.patterns, len(pb.gens)
    life = s.costs.depreciation_years * 12.0
    usable_n = pb.usable_w[rep][:, :, :]                  # (NM, C, T) masks seen from each node's world
    usable_nt = usable_n[np.arange(NM), :, nt]            # (NM, C) usability in the node's own month

    # costs.objective tco: an idle usable chip forgoes its market rental, so each busy chip-month saves it, and a
    # delivered chip adds it for every month it is held (the stock's own idle cost and depreciation are constants)
    tco = s.costs.objective == "tco"
    market = np.nan_to_num(pb.market_usd_month[pc]) if tco else np.zeros(P)       # (P,) USD per chip-month
    X = B.var((NM, len(pairs)), cost=(prob[:, None] * (pb.energy_usd - market)[pairs[:, 1]][None, :] * SCALE)
              if len(pairs) else 0.0)
    du = pb.duos
    du_coef = du.pool_coef(P)                                                     # (K, P) chips per pair GPU
    XD = B.var((NM, du.n), cost=(prob[:, None] * (du_coef @ (pb.energy_usd - market))[None, :] * SCALE)
               if du.n else 0.0)
    R = B.var((NM, len(rent_pairs)), cost=(prob[:, None] * pb.rent_usd_month[rent_pairs[:, 1]][None, :] * SCALE)
              if len(rent_pairs) else 0.0)
    # orders: allowed where some world of the node can receive them; paid on delivery (expected over the worlds)
    buy_ub = np.zeros((NM, O))
    buy_cost = np.zeros((NM, O))
    for o in range(O):
        ok_w = np.stack([pb.order_ok(o, w) for w in range(wd.n)])              # (Omega, T)
        held = np.maximum(0, T - (np.arange(T) + pb.opt_lead[o]))
        for n in range(NM):
            worlds = np.nonzero(wd.node_of[:, nt[n]] == n)[0]
            okw = ok_w[worlds, nt[n]]
            if okw.any():
                buy_ub[n, o] = pb.opt_max_month[o]
                buy_cost[n, o] = float((wd.prob[worlds] * okw).sum()) * (
                    pb.opt_price[o] * pb.opt_fill[o] * held[nt[n]] / life
                    + market[pb.opt_pool[o]] * float(pb.arrival_coef(o)[nt[n]].sum()))
    Bv = B.var((NM, O), cost=buy_cost * SCALE, ub=buy_ub)
    # training runs: one binary per (pattern, node of its start month)
    per_node = [np.nonzero(pat.start == nt[n])[0] for n in range(NM)]
    y_q = np.concatenate(per_node) if per_node else np.zeros(0, int)
    y_node = np.concatenate([np.full(len(v), n) for n, v in enumerate(per_node)]) if per_node else np.zeros(0, int)
    occ_energy = np.zeros(pat.n)
    np.add.at(occ_energy, pat.occ_rows, pat.size[pat.occ_rows] * (pat.busy_frac * pb.energy_usd[pat.pool[pat.occ_rows]]
                                                                   - market[pat.pool[pat.occ_rows]]))
    late_pen = np.array([pb.gens[g].late_penalty for g in pat.gen]) if pat.n else np.zeros(0)
    Y = B.var((len(y_q),), cost=(prob[y_node] * (occ_energy[y_q] + late_pen[y_q] * pat.late[y_q]) * SCALE)
              if pat.n else 0.0, ub=1.0, integer=True)
    L = len(wd.leaves)
    leaf_prob = prob[wd.leaves]
    M = B.var((L, G), cost=(leaf_prob[:, None] * np.array([g.miss_penalty for g in pb.gens])[None, :] * SCALE)
              if G else 0.0, ub=1.0)
    # served demand levels: z_k in [0, D_mean len_k], cost -pi n_k per token/s (the constant 24 D is added back)
    pi = s.costs.unmet_penalty_usd_per_mtok / 1e6
    lp_mean = lp_demand_mean(pb)
    z_nm, z_w, z_ub, z_cost = [], [], [], []
    for w in range(W):
        for ln, hr in zip(pb.level_len[w], pb.level_hours[w]):
            z_nm.append(np.arange(NM))
            z_w.append(np.full(NM, w))
            z_ub.append(lp_mean[w, nt] * ln / TOK)
            z_cost.append(np.full(NM, -pi * hr * DAY_S * TOK) * prob)
    z_nm_a = np.concatenate(z_nm) if z_nm else np.zeros(0, int)
    z_w_a = np.concatenate(z_w) if z_w else np.zeros(0, int)
    Z = B.var((len(z_nm_a),), cost=(np.concatenate(z_cost) * SCALE) if z_cost else 0.0,
              ub=np.concatenate(z_ub) if z_ub else 0.0)
    # the objective's constant (every hour of demand unmet before any level is served), as a variable fixed at
    # 1, so that the objective is the plan's true cost and the solver's relative gap is measured against it
    B.var((1,), cost=_constant_usd(pb) * SCALE, lb=1.0, ub=1.0)
    peak_lp = (lp_mean * pb.profile.max(axis=1)[:, None])[:, nt].T / TOK         # (NM, W) peak, k tokens/s
    reserve = s.serving_reserve * peak_lp
    V = B.var((NM, W), cost=RESERVE_WEIGHT * pi * SECONDS_PER_MONTH * TOK * prob[:, None] * SCALE, ub=reserve)

    # 1. chips used <= chips on hand, per node and pool
    cap = B.rows("stock", (NM, P), hi=pb.stock[:, nt].T * usable_nt[:, pc])
    if len(pairs):
        B.add(cap[:, pairs[:, 1]], X, 1.0)
    for pool_of, coef in ((du.pre, du.share), (du.dec, 1.0 - du.share)):
        if du.n:
            B.add(cap[:, pool_of], XD, coef[None, :])
    occ_k, occ_n, occ_m = _spread(pb, y_q, y_node, pat.occ_rows, pat.occ_t)
    if len(occ_k):
        B.add(cap[occ_n, pat.pool[y_q[occ_k]]], Y[occ_k], pat.size[y_q[occ_k]].astype(float))
    for o in range(O):
        coef = pb.arrival_coef(o)                                               # (tau, t)
        c = pc[pb.opt_pool[o]]
        for n in range(NM):
            t = nt[n]
            w0 = rep[n]
            taus = np.nonzero(coef[:, t] > 0)[0]
            if not len(taus):
                continue
            ok = pb.order_ok(o, w0)[taus] * pb.usable_w[w0, c, t]
            anc = wd.node_of[w0, taus]
            B.add(cap[n, pb.opt_pool[o]], Bv[anc, o], -coef[taus, t] * ok)
    # 2. served levels and reserve: sum r x + sum r R - sum_k z + v >= rho D_peak
    dem = B.rows("demand", (NM, W), lo=reserve)
    if len(pairs):
        B.add(dem[:, pairs[:, 0]], X, pb.rate[pairs[:, 0], pc[pairs[:, 1]]][None, :] / TOK)
    if len(rent_pairs):
        B.add(dem[:, rent_pairs[:, 0]], R, pb.rate[rent_pairs[:, 0], pb.rent_chip[rent_pairs[:, 1]]][None, :] / TOK)
    if du.n:
        B.add(dem[:, du.w], XD, du.rate[None, :] / TOK)
    if len(z_nm_a):
        B.add(dem[z_nm_a, z_w_a], Z, -1.0)
    B.add(dem, V, 1.0)
    if tco:     # capacity beyond demand and reserve would count as busy without serving anyone: cap it
        top = B.rows("serving_cap", (NM, W), hi=(1.0 + s.serving_reserve) * peak_lp)
        if len(pairs):
            B.add(top[:, pairs[:, 0]], X, pb.rate[pairs[:, 0], pc[pairs[:, 1]]][None, :] / TOK)
        if len(rent_pairs):
            B.add(top[:, rent_pairs[:, 0]], R,
                  pb.rate[rent_pairs[:, 0], pb.rent_chip[rent_pairs[:, 1]]][None, :] / TOK)
        if du.n:
            B.add(top[:, du.w], XD, du.rate[None, :] / TOK)
    # 3. facility power per cluster (finite limits only)
    limited = np.nonzero(np.isfinite(pb.cluster_cap_kw))[0]
    if len(limited):
        pw = B.rows("power", (NM, len(limited)), hi=pb.cluster_cap_kw[limited][None, :])
        row_of = {int(k): i for i, k in enumerate(limited)}
        for i, (_w, p) in enumerate(pairs):
            k = int(pb.pool_cluster[p])
            if k in row_of:
                B.add(pw[:, row_of[k]], X[:, i], pb.power_kw[p])
        for k in range(du.n):                  # both pools of a pair are in one cluster
            c_k = int(pb.pool_cluster[du.pre[k]])
            if c_k in row_of:
                B.add(pw[:, row_of[c_k]], XD[:, k], float(du_coef[k] @ pb.power_kw))
        kc = pb.pool_cluster[pat.pool[y_q[occ_k]]]
        sel = np.isin(kc, limited)
        if sel.any():
            ridx = np.array([row_of[int(k)] for k in kc[sel]], int)
            qq = y_q[occ_k[sel]]
            B.add(pw[occ_n[sel], ridx], Y[occ_k[sel]], pat.size[qq] * pb.power_kw[pat.pool[qq]])
    # 4. rental caps (a chip barred from use cannot be rented either)
    if len(rent_pairs):
        rc = B.rows("rental", (NM, len(pb.rent_chip)), hi=pb.rent_max[None, :] * usable_nt[:, pb.rent_chip])
        B.add(rc[:, rent_pairs[:, 1]], R, 1.0)
    # 5. one run per generation in every world (leaf), or missed
    if G:
        gr = B.rows("generation", (L, G), lo=1.0, hi=1.0)
        for li, leaf in enumerate(wd.leaves):
            w0 = rep[leaf]
            on_path = wd.node_of[w0, nt[y_node]] == y_node
            ks = np.nonzero(on_path)[0]
            B.add(gr[li, pat.gen[y_q[ks]]], Y[ks], 1.0)
        B.add(gr, M, 1.0)
    # 6. sequencing: g starts in month s only if its predecessor ended by then (on the same path)
    for gi, g in enumerate(pb.gens):
        if g.after is None:
            continue
        sq = B.rows(f"after:{gi}", (NM,), hi=0.0)
        mine = np.nonzero(pat.gen[y_q] == gi)[0]
        B.add(sq[y_node[mine]], Y[mine], 1.0)
        prev = np.nonzero(pat.gen[y_q] == g.after)[0]
        if len(prev):
            # a predecessor chosen at node a lets g start in every later node on its paths from its end month on
            ends = np.ceil(pat.end[y_q[prev]] - 1e-9).astype(int)
            counts = np.maximum(T - ends, 0)
            rows_k = np.repeat(prev, counts)
            months = np.concatenate([np.arange(e, T) for e in ends]) if counts.sum() else np.zeros(0, int)
            k2, n2, _ = _spread(pb, y_q, y_node, rows_k, months, by_var=True)
            B.add(sq[n2], Y[k2], -1.0)
    # 7. procurement totals and budget, per leaf (path)
    fin = np.nonzero(np.isfinite(pb.opt_max_total))[0] if O else np.zeros(0, int)
    if len(fin):
        tot = B.rows("procurement_total", (L, len(fin)), hi=pb.opt_max_total[fin][None, :])
        for li, leaf in enumerate(wd.leaves):
            nodes = wd.node_of[rep[leaf]]
            for i, o_fin in enumerate(fin):
                B.add(tot[li, i], Bv[nodes, o_fin], 1.0)
    if s.costs.capex_budget_usd is not None and O:
        bud = B.rows("capex_budget", (L,), hi=s.costs.capex_budget_usd)
        for li, leaf in enumerate(wd.leaves):
            w0 = rep[leaf]
            nodes = wd.node_of[w0]
            for o in range(O):
                paid = pb.opt_price[o] * pb.opt_fill[o] * pb.order_ok(o, w0)
                B.add(bud[li], Bv[nodes, o], paid)
    return B, {"x": X, "duo": XD, "rent": R, "buy": Bv, "y": Y, "y_q": y_q, "y_node": y_node, "miss": M, "z": Z,
               "z_nm": z_nm_a, "z_w": z_w_a, "pairs": pairs, "rent_pairs": rent_pairs}


def _spread(pb: Problem, y_q: np.ndarray, y_node: np.ndarray, rows: np.ndarray, months: np.ndarray,
            by_var: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map (run, month) entries to the tree: for each run variable k (pattern y_q[k] chosen at node y_node[k])
    and each month m it concerns, the nodes in month m of the worlds that pass through y_node[k].

    `rows` holds patterns (occupancy entries: every variable of that pattern gets the month) or, with by_var,
    variable indices. Returns unique (variable, node, month) triplets."""
    wd = pb.worlds
    if by_var:
        ent_k, ent_m = rows, months
    else:
        order = np.argsort(rows, kind="stable")
        r_sorted, m_sorted = rows[order], months[order]
        counts = np.bincount(r_sorted, minlength=pb.patterns.n)
        ptr = np.concatenate([[0], np.cumsum(counts)])
        per = counts[y_q]
        ent_k = np.repeat(np.arange(len(y_q)), per)
        offs = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
        ent_m = m_sorted[ptr[y_q][ent_k] + offs]
    if not len(ent_k):
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
    if wd.NM == pb.T:                                 # one world: node = month
        return ent_k, wd.node_of[0, ent_m], ent_m
    Om = wd.n
    in_node = wd.node_of[:, wd.node_t] == np.arange(wd.NM)[None, :]          # (Omega, NM)
    k = np.repeat(ent_k, Om)
    m = np.repeat(ent_m, Om)
    w = np.tile(np.arange(Om), len(ent_k))
    keep = in_node[w, y_node[k]]
    k, m, w = k[keep], m[keep], w[keep]
    n = wd.node_of[w, m]
    key = np.unique(k.astype(np.int64) * wd.NM + n)
    kk, nn = key // wd.NM, key % wd.NM
    return kk.astype(int), nn.astype(int), wd.node_t[nn]


_STATUS = {0: "optimal", 1: "time_limit", 2: "infeasible", 3: "unbounded", 4: "solver_error"}


def _constant_usd(pb: Problem) -> float:
    """The objective's constant: every hour's demand unmet before any level is served (expected over nodes)."""
    pi = pb.scenario.costs.unmet_penalty_usd_per_mtok / 1e6
    nt = pb.worlds.node_t
    return float((pb.worlds.node_prob[:, None] * lp_demand_mean(pb)[:, nt].T).sum() * 24.0 * DAY_S * pi)


def lp_demand_mean(pb: Problem) -> np.ndarray:
    """(W, T) mean demand as the LP sees it: at most twice what every chip the fleet could ever hold (stock,
    every purchase, every rental) serves at the peak hour. Demand beyond that is unmet whatever the plan does;
    capping it keeps the LP well scaled under extreme growth (the result reports the real shortfall)."""
    C = len(pb.chips)
    most = np.zeros(C)
    np.add.at(most, pb.pool_chip, pb.stock.max(axis=1) if pb.T else 0.0)
    for o in range(len(pb.opt_pool)):
        most[pb.pool_chip[pb.opt_pool[o]]] += min(pb.opt_max_month[o] * pb.T, pb.opt_max_total[o])
    for j, c in enumerate(pb.rent_chip):
        most[c] += pb.rent_max[j]
    tok = (pb.rate * most[None, :]).sum(axis=1)
    du = pb.duos
    if du.n:                 # a pair serves at most as many GPUs as its scarcer chip allows
        c_pre, c_dec = pb.pool_chip[du.pre], pb.pool_chip[du.dec]
        np.add.at(tok, du.w, du.rate * np.minimum(most[c_pre] / du.share, most[c_dec] / (1.0 - du.share)))
    cap = 2.0 * tok / pb.profile.max(axis=1)                                                     # (W,)
    return np.minimum(pb.demand_mean, cap[:, None])


def solve(pb: Problem, *, time_limit_s: float = 60.0, mip_rel_gap: float = 1e-3, duals: bool = True,
          tie_break: bool = True, warm_from: Solution | None = None) -> Solution:
    """Build and solve the MILP; then (lexicographic) the earliest training finishes at no extra cost; then,
    optionally, the LP with the runs fixed for shadow prices. With `warm_from` (a solution of a problem whose
    MILP has the same matrix: the stock-alone variant of the plan), its HiGHS model is reused with this
    problem's costs and bounds, so the solves start from its basis."""
    t_start = time.perf_counter()
    B, ix = build(pb)
    A = B.matrix()
    c, lb, ub = B.vec(B.cost), B.vec(B.lb), B.vec(B.ub)
    integ = np.concatenate(B.integer) if B.integer else np.zeros(0, int)
    lo, hi = B.vec(B.row_lo), B.vec(B.row_hi)
    prior = warm_from.model if warm_from is not None else None
    model = prior if prior is not None and prior.retarget(c, A, lo, hi, lb, ub, integ) else \
        hs.Model(c, A, lo, hi, lb, ub, integ)
    fixed: list[FixedLP] = []
    sol_x, code, message, gap = _mip(pb, ix, model, time_limit_s, mip_rel_gap, fixed_out=fixed)
    status = _STATUS.get(code, "solver_error")
    NM, W = pb.worlds.NM, len(pb.workloads)
    ok = sol_x is not None
    if sol_x is None:
        sol_x = lb.copy()                         # no incumbent (all-unmet is always feasible): the empty plan
        sol_x[ix["miss"].ravel()] = 1.0
    how = "none"
    if ok and tie_break and len(ix["y"]) and (sol_x[ix["y"]] > 0.5).any():
        if B.n <= TIE_BREAK_MAX_VARS:
            sol_x, how = _earliest_finish(pb, ix, A, c, lb, ub, integ, lo, hi, sol_x, time_limit_s, mip_rel_gap)
        else:
            how = (f"skipped: {B.n:,} variables is too many for the second solve; runs keep the first solve's "
                   "starts (no weight of the cost objective favours early finishes, so nothing is spent on them)")
    served = np.zeros((NM, W))
    np.add.at(served, (ix["z_nm"], ix["z_w"]), sol_x[ix["z"]] * TOK)
    sol = Solution(
        status=status, message=message, success=ok and code in (0, 1),
        objective_usd=float(c @ sol_x) / SCALE, mip_gap=gap,
        seconds=0.0, pairs=ix["pairs"], rent_pairs=ix["rent_pairs"], x=sol_x[ix["x"]], duo=sol_x[ix["duo"]],
        rent=sol_x[ix["rent"]],
        buy=sol_x[ix["buy"]], y_q=ix["y_q"], y_node=ix["y_node"], y=np.round(sol_x[ix["y"]]),
        miss=sol_x[ix["miss"]], served=served, tie_break=how)
    if duals and ok:
        # the rounded plan's LP already has the runs fixed: its duals are the shadow prices (no third solve)
        lp = fixed[0] if fixed and fixed[0].x is sol_x else _fixed_lp(model, sol_x)
        if lp is not None:
            _shadow_prices(B, lp, sol)
        if "upper" in sol.bound_duals:
            sol.bound_duals["buy"] = sol.bound_duals.pop("upper")[ix["buy"]]
    sol.solves = [(r.label, r.seconds) for r in model.log]
    sol.model = model
    sol.seconds = time.perf_counter() - t_start
    return sol


def _gap(val: float, bound: float) -> float:
    return max(0.0, (val - bound) / max(abs(bound), abs(val), 1e-9))


def _mip(pb: Problem, ix: dict[str, np.ndarray], model: hs.Model, time_limit_s: float, gap: float,
         fallback: bool = True, fixed_out: list[FixedLP] | None = None) -> tuple[np.ndarray | None, int, str, float | None]:
    """Solve the MILP: first its LP relaxation (usually tight: the runs are few, the rest continuous); then two
    plans from it: the fractional runs rounded (LP solved again, warm), and branch and bound over only the
    fractional runs with the others held at their relaxed 0 or 1, started from the rounded plan. The better one,
    if within `gap` of the relaxation's bound, is optimal to that tolerance; otherwise branch and bound over every
    run in the time left (skipped when that is less than twice the relaxation took), keeping the best plan found.
    Returns (x, status, message, gap)."""
    t0 = time.perf_counter()
    c, lb, ub = model.c, model.lb, model.ub
    relax = model.lp(time_limit_s=time_limit_s, label="LP relaxation")
    candidates: list[np.ndarray] = []
    bound = None
    t_relax = time.perf_counter() - t0
    if relax.x is not None and relax.status == 0:
        bound = relax.fun
        y = relax.x[ix["y"]]
        whole = np.abs(y - np.round(y)) <= 1e-6
        if whole.all():
            return relax.x, 0, "optimal (the LP relaxation's runs are whole)", 0.0
        # a plan to fall back on: the fractional runs rounded (``heuristics.round_runs``) and the LP solved again
        y_full = lb.copy()
        y_full[ix["y"]] = round_runs(pb, ix, y)
        rounded = _fixed_lp(model, y_full, label="LP, runs rounded")
        if rounded is not None:
            candidates.append(rounded.x)
            if fixed_out is not None:
                fixed_out.append(rounded)
            g = _gap(rounded.fun, bound)
            if g <= gap:
                return rounded.x, 0, (f"optimal within {g:.1e} of the LP bound ({int((~whole).sum())} "
                                      "fractional runs rounded)"), g
        # relaxation-induced neighbourhood: runs the relaxation leaves at 0 or 1 stay there; a dive and then
        # branch and bound decide only the fractional ones (a few dozen instead of thousands)
        lb2, ub2 = lb.copy(), ub.copy()
        lb2[ix["y"][whole]] = ub2[ix["y"][whole]] = np.round(y[whole])
        dived = dive(model, ix["y"], lb2, ub2, y, bound, gap=gap, deadline=t0 + time_limit_s / 4)
        if dived is not None:
            candidates.append(dived)
            best = min(candidates, key=lambda x: float(c @ x))
            g = _gap(float(c @ best), bound)
            if g <= gap:
                return best, 0, (f"optimal within {g:.1e} of the LP bound ({int((~whole).sum())} "
                                 "fractional runs decided by rounding or diving)"), g
        left = max(1.0, time_limit_s - (time.perf_counter() - t0))
        near = model.mip(lb2, ub2, time_limit_s=left / 2, gap=gap / 2,
                         start=candidates[0] if candidates else None,
                         label=f"B&B, {int((~whole).sum())}/{len(y):,} runs free")
        if near.x is not None:
            candidates.append(near.x)
        if candidates:
            best = min(candidates, key=lambda x: float(c @ x))
            g = _gap(float(c @ best), bound)
            if g <= gap:
                return best, 0, (f"optimal within {g:.1e} of the LP bound ({int((~whole).sum())} "
                                 "fractional runs decided by branch and bound or rounding)"), g
    left = time_limit_s - (time.perf_counter() - t0)
    if not fallback or (candidates and left < 2 * t_relax):
        # full branch and bound cannot even solve its root in the time left: keep the best plan found
        if not candidates or bound is None:
            return None, 4, "no plan within the time limit", None
        best = min(candidates, key=lambda x: float(c @ x))
        g = _gap(float(c @ best), bound)
        return best, 1, f"time limit: the best plan found is {g:.1e} from the LP bound", g
    start = min(candidates, key=lambda x: float(c @ x)) if candidates else None
    res = model.mip(lb, ub, time_limit_s=max(1.0, left), gap=gap, start=start, label="B&B, all runs")
    if res.x is not None:
        candidates.append(res.x)
    if candidates and bound is not None and (res.x is None or min(float(c @ x) for x in candidates) < res.fun):
        best = min(candidates, key=lambda x: float(c @ x))
        g = _gap(float(c @ best), bound)
        return best, 1, f"branch and bound stopped at its time limit; the best plan found is {g:.1e} from the LP bound", g
    msg = {0: "optimal", 1: "time limit reached", 2: "infeasible", 4: "no plan found"}[res.status]
    return res.x, res.status, msg, res.gap


def _earliest_finish(pb: Problem, ix: dict[str, np.ndarray], A: csr_matrix, c, lb, ub, integ, lo, hi, x0,
                     time_limit_s: float, gap: float) -> tuple[np.ndarray, str]:
    """Second, lexicographic solve: keep the first objective at most its value (no extra spend, no extra unmet
    demand, no later or missed run), and minimise the expected end month of the chosen runs."""
    pat = pb.patterns
    cost0 = float(c @ x0)
    tie = np.zeros(len(c))
    tie[ix["y"]] = pb.worlds.node_prob[ix["y_node"]] * pat.end[ix["y_q"]]
    A2 = vstack([A, csr_matrix(c.reshape(1, -1))]).tocsr()
    slack = 1e-9 * max(1.0, abs(cost0))
    # branch and bound only where it is cheap: a tie-break is not worth minutes of a large plan
    model = hs.Model(tie, A2, np.append(lo, -np.inf), np.append(hi, cost0 + slack), lb, ub, integ)
    x, code, _, _ = _mip(pb, ix, model, max(5.0, time_limit_s / 4), gap,
                         fallback=len(ix["y"]) <= TIE_BREAK_BNB_MAX_RUNS)
    if x is None or float(c @ x) > cost0 + 10 * slack or float(tie @ x) > float(tie @ x0) + 1e-9:
        return x0, "kept: the tie-break solve found no plan of equal cost in its time"
    return x, "earliest finish among plans of equal cost (second solve)"


@dataclass
class FixedLP:
    """The LP with the training runs fixed, solved with row and bound duals (HiGHS)."""

    x: np.ndarray
    fun: float
    row_duals: np.ndarray      # per row of A, USD x SCALE per unit
    upper_duals: np.ndarray    # per variable: the reduced cost where it sits at its upper bound, else 0


def _fixed_lp(model: hs.Model, y_fixed: np.ndarray, label: str = "LP, runs fixed (duals)") -> FixedLP | None:
    """Solve the LP with the integer variables fixed at `y_fixed` (their values in a full-length vector), warm
    from the model's last basis."""
    lb2, ub2 = model.lb.copy(), model.ub.copy()
    fixed = model.integ
    lb2[fixed] = ub2[fixed] = np.round(y_fixed[fixed])
    res = model.lp(lb2, ub2, duals=True, label=label)
    if res.status != 0 or res.x is None or res.row_dual is None or res.col_dual is None:
        return None
    fin = np.isfinite(ub2)
    at_upper = fin & (res.x >= np.where(fin, ub2 - 1e-9 * np.maximum(1.0, np.abs(np.where(fin, ub2, 0.0))), np.inf))
    upper = np.where(at_upper & (res.col_dual < 0), res.col_dual, 0.0)
    return FixedLP(x=res.x, fun=res.fun, row_duals=res.row_dual, upper_duals=upper)


def _shadow_prices(B: _Builder, lp: FixedLP, sol: Solution) -> None:
    """Row and bound duals of the LP with the chosen runs fixed, in USD per unit (binding constraints)."""
    for kind, (start, shape) in B.kinds.items():
        size = int(np.prod(shape))
        sol.duals[kind] = lp.row_duals[start:start + size].reshape(shape) / SCALE / (TOK if kind == "demand"
                                                                                    else 1.0)
    sol.bound_duals["upper"] = lp.upper_duals / SCALE
