"""The MILP's solution on the scenario tree (:class:`Solution`) and one world's path through it
(:class:`WorldPlan`, month-indexed), with the serving they add up to: chips per pool and workload, and
capacity per workload. The result, the diagnoses and the Monte Carlo read these; only milp.py writes them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stockpile.fleet.problem import Problem


@dataclass
class Solution:
    """Raw MILP solution on the nodes of the scenario tree (node = month when nothing is uncertain)."""

    status: str
    message: str
    success: bool
    objective_usd: float
    mip_gap: float | None
    seconds: float
    pairs: np.ndarray            # (pairs, 2) = (w, p)
    rent_pairs: np.ndarray       # (rent pairs, 2) = (w, j)
    x: np.ndarray                # (NM, pairs)
    duo: np.ndarray              # (NM, chip pairs of pb.duos) GPUs serving through each chip pair
    rent: np.ndarray             # (NM, rent pairs)
    buy: np.ndarray              # (NM, O)
    y_q: np.ndarray              # (Y,) pattern of each run variable
    y_node: np.ndarray           # (Y,) node of each run variable
    y: np.ndarray                # (Y,) 0/1
    miss: np.ndarray             # (leaves, G)
    served: np.ndarray           # (NM, W) output tokens/s of capacity counted against the day's levels
    tie_break: str = "none"
    solves: list[tuple[str, float]] = field(default_factory=list)   # (what, seconds) per HiGHS call
    duals: dict[str, np.ndarray] = field(default_factory=dict)
    bound_duals: dict[str, np.ndarray] = field(default_factory=dict)
    model: Any = field(default=None, repr=False)   # the HiGHS model (fleet/highs.py), for a warm re-solve


@dataclass
class WorldPlan:
    """One world's path through the tree, as month-indexed arrays (what the result and the Monte Carlo read)."""

    world: int
    nodes: np.ndarray            # (T,) node per month
    x: np.ndarray                # (pairs, T)
    duo: np.ndarray              # (chip pairs, T) GPUs of both pools serving through each chip pair
    rent: np.ndarray             # (rent pairs, T)
    buy: np.ndarray              # (O, T)
    runs: np.ndarray             # chosen pattern indices
    served: np.ndarray           # (W, T)
    unmet: np.ndarray            # (W, T) output tokens/s short at the peak hour
    pairs: np.ndarray
    rent_pairs: np.ndarray


def world_plan(pb: Problem, sol: Solution, w: int) -> WorldPlan:
    nodes = pb.worlds.node_of[w]
    on_path = np.isin(sol.y_node, nodes) & (sol.y > 0.5)
    served = sol.served[nodes].T
    unmet = np.maximum(pb.demand - served, 0.0)
    unmet[unmet <= 1e-9 * np.maximum(pb.demand, 1.0)] = 0.0
    return WorldPlan(world=w, nodes=nodes, x=sol.x[nodes].T, duo=sol.duo[nodes].T, rent=sol.rent[nodes].T,
                     buy=sol.buy[nodes].T,
                     runs=np.sort(sol.y_q[on_path]), served=served, unmet=unmet, pairs=sol.pairs,
                     rent_pairs=sol.rent_pairs)


def serving_chips(pb: Problem, wp: WorldPlan) -> np.ndarray:
    """(W, P, T) chips of each pool serving each workload on the path, a chip pair's GPUs split by its share."""
    out = np.zeros((len(pb.workloads), pb.P, pb.T))
    np.add.at(out, (wp.pairs[:, 0], wp.pairs[:, 1]), wp.x)
    du = pb.duos
    np.add.at(out, (du.w, du.pre), du.share[:, None] * wp.duo)
    np.add.at(out, (du.w, du.dec), (1.0 - du.share)[:, None] * wp.duo)
    return out


def serving_capacity(pb: Problem, wp: WorldPlan, rented: bool = True) -> np.ndarray:
    """(W, T) output tokens/s the path's serving chips give (single pools, chip pairs, and rented GPUs)."""
    cap = np.zeros((len(pb.workloads), pb.T))
    np.add.at(cap, wp.pairs[:, 0], pb.rate[wp.pairs[:, 0], pb.pool_chip[wp.pairs[:, 1]]][:, None] * wp.x)
    np.add.at(cap, pb.duos.w, pb.duos.rate[:, None] * wp.duo)
    if rented:
        np.add.at(cap, wp.rent_pairs[:, 0], pb.rate[wp.rent_pairs[:, 0], pb.rent_chip[wp.rent_pairs[:, 1]]][:, None]
                  * wp.rent)
    return cap
