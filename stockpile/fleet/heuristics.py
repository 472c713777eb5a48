"""Whole runs from the MILP's LP relaxation, the two heuristics milp.py tries before branch and bound:
``round_runs`` (generations in dependency order, each keeping its most-wanted run that fits on every world
path) and ``dive`` (fix the most-wanted fractional run to 1, or to 0 where that costs more than a share of the
gap, and re-solve the LP warm, until every run is whole)."""
from __future__ import annotations

import time

import numpy as np

from stockpile.fleet import highs as hs
from stockpile.fleet.problem import Problem


def dive(model: hs.Model, y_cols: np.ndarray, lb: np.ndarray, ub: np.ndarray, y: np.ndarray, fun: float, *,
          gap: float, deadline: float, max_steps: int = 400) -> np.ndarray | None:
    """A plan by diving: take the fractional run the LP most wants and fix it to 1; if that costs more than a
    share of the gap (or is infeasible), fix it to 0 instead (the cheaper of the two where both cost); solve the
    LP again from its basis and repeat until every run is whole. Each step is a warm dual simplex re-solve."""
    lbd, ubd = lb.copy(), ub.copy()
    allow = gap / 8 * max(abs(fun), 1e-9)
    x = None
    for _ in range(max_steps):
        frac = np.nonzero(np.abs(y - np.round(y)) > 1e-6)[0]
        if not len(frac):
            return x
        k = y_cols[frac[int(np.argmax(y[frac]))]]
        tries = []
        for v in (1.0, 0.0):
            if time.perf_counter() > deadline:
                return None
            lbd[k] = ubd[k] = v
            res = model.lp(lbd, ubd, time_limit_s=max(0.1, deadline - time.perf_counter()), label="LP, dive step")
            if res.x is not None and res.status == 0:
                tries.append((res.fun, v, res.x))
                if res.fun <= fun + allow:
                    break
        if not tries:
            return None
        fun, v, x = min(tries, key=lambda t: t[0])
        lbd[k] = ubd[k] = v
        y = x[y_cols]
    return None


def depth(pb: Problem, g: int) -> int:
    """How many generations come before g through its `after` chain."""
    d, cur = 0, pb.gens[g].after
    while cur is not None:
        d, cur = d + 1, pb.gens[cur].after
    return d


def round_runs(pb: Problem, ix: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
    """0/1 runs from a relaxed solution: generations in dependency order, then runs by relaxed value (ties: the
    earlier end); a run is kept when no world through its node has that generation yet and, where
    the generation follows another, the predecessor ends by its start on every such path. Runs the relaxation
    did not use come last, so a generation is only left out where no candidate fits."""
    pat, wd = pb.patterns, pb.worlds
    y_q, y_node = ix["y_q"], ix["y_node"]
    out = np.zeros(len(y_q))
    level = {g: depth(pb, g) for g in range(len(pb.gens))}
    tie = pat.end[y_q]
    # every candidate, so that a generation whose preferred run no longer fits after its predecessor's rounding
    # takes the next one that does (the relaxation may value it at zero)
    keys = sorted(range(len(y_q)), key=lambda k: (level[int(pat.gen[y_q[k]])], pat.late[y_q[k]] > 1e-9 and y[k] < 0.5,
                                                  -round(float(y[k]), 6), float(tie[k])))
    node_leaves = [tuple(int(v) for v in np.unique(wd.leaf_of[wd.node_of[:, wd.node_t[a]] == a]))
                   for a in range(wd.NM)]                 # the leaves (world paths) through each node
    done: dict[tuple[int, int], float] = {}               # (leaf, generation) -> end month
    everything = len(wd.leaves) * len(pb.gens)
    for k in keys:
        if len(done) == everything:
            break
        q, a = int(y_q[k]), int(y_node[k])
        g = int(pat.gen[q])
        leaves = node_leaves[a]
        if any((lf, g) in done for lf in leaves):
            continue
        prev = pb.gens[g].after
        if prev is not None and any((lf, prev) not in done or np.ceil(done[(lf, prev)] - 1e-9)
                                    > pat.start[q] for lf in leaves):
            continue
        out[k] = 1.0
        for lf in leaves:
            done[(lf, g)] = float(pat.end[q])
    return out
