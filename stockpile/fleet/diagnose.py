"""Why the plan looks the way it does, in sentences: binding constraints (shadow prices), generations not
trained, idle chips, procurement options that can never deliver, and the total-cost-of-ownership accounting."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from stockpile.fleet.months import HOURS_PER_MONTH, SECONDS_PER_MONTH, month_name
from stockpile.fleet.problem import Problem
from stockpile.fleet.solution import Solution, WorldPlan

if TYPE_CHECKING:
    from stockpile.fleet.result import Binding


def binding(pb: Problem, sol: Solution, wp: WorldPlan, on_hand_c: np.ndarray) -> tuple[list[Binding], str]:
    """Per month, the resource whose shadow price (USD per extra chip-month) is largest, on the main path.

    A shadow price below the dearest chip's monthly energy only says one chip type is cheaper to run than
    another; a resource counts as binding when its price is above that (it forces buying, renting, unmet
    demand or a late run)."""
    from stockpile.fleet.result import Binding
    if not sol.duals:
        return [], "not computed (no shadow prices)"
    T, nodes = pb.T, wp.nodes
    floor = float(pb.energy_usd.max()) * 1.01 if pb.P else 1.0
    cand: list[list[tuple[float, str, str, str]]] = [[] for _ in range(T)]
    d = sol.duals.get("stock")
    if d is not None:
        for c, cid in enumerate(pb.chips):
            pools = np.nonzero(pb.pool_chip == c)[0]
            if not len(pools):
                continue
            v = -d[nodes][:, pools].min(axis=1)
            for t in range(T):
                if on_hand_c[c, t] >= 0.5:
                    cand[t].append((float(v[t]), "stock", f"chips of {cid} on hand", "USD per chip-month"))
    d = sol.duals.get("power")
    if d is not None:
        limited = np.nonzero(np.isfinite(pb.cluster_cap_kw))[0]
        for i, k in enumerate(limited):
            kw = pb.power_kw[pb.pool_cluster == k].mean() if (pb.pool_cluster == k).any() else 1.0
            for t in range(T):
                cand[t].append((float(-d[nodes[t], i] * kw), "power", f"power limit of cluster {pb.clusters[k]}",
                                "USD per chip-month of power"))
    d = sol.duals.get("rental")
    if d is not None:
        for j, c in enumerate(pb.rent_chip):
            for t in range(T):
                cand[t].append((float(-d[nodes[t], j]), "rental", f"rental cap of {pb.chips[c]}",
                                "USD per GPU-month"))
    d = sol.bound_duals.get("buy")
    if d is not None and d.size:
        for o in range(d.shape[1]):
            ok = pb.order_ok(o, wp.world)
            for t in range(T):
                if ok[t]:
                    cand[t].append((float(-d[nodes[t], o]), "procurement",
                                    f"monthly supply of {pb.chips[pb.pool_chip[pb.opt_pool[o]]]} (procurement[{o}])",
                                    "USD per chip ordered"))
    d = sol.duals.get("capex_budget")
    if d is not None:
        leaf = int(np.nonzero(pb.worlds.leaves == pb.worlds.leaf_of[wp.world])[0][0])
        for t in range(T):
            cand[t].append((float(-d[leaf]), "budget", "procurement budget", "USD per USD"))
    out: list[Binding] = []
    for t in range(T):
        if not cand[t]:
            continue
        v, kind, name, unit = max(cand[t], key=lambda x: x[0])
        if v > floor:
            out.append(Binding(month=pb.months[t], kind=kind, constraint=name, shadow_usd=round(v, 2), unit=unit))
    if not out:
        return out, "none: every month has spare capacity"
    counts: dict[str, list[str]] = {}
    for b in out:
        counts.setdefault(b.constraint, []).append(b.month)
    top = max(counts, key=lambda k: len(counts[k]))
    return out, f"{top} (binding in {len(counts[top])} of {T} months, from {counts[top][0]})"


def generation_reason(pb: Problem, gi: int) -> str:
    """Why generation gi is not trained on the main path, as a sentence."""
    spec = pb.gens[gi]
    pat = pb.patterns
    if not spec.speed:
        return ("none of the fleet's chip types it may use (stock, procurement) can train it: no sourced peak, or "
                "the model fits in no layout at its chip counts")
    sizes = sorted({n for (_, n) in spec.speed})
    if not (pat.gen == gi).any():
        # would a run fit without attrition? then attrition is why
        first = pb.stock[:, 0] * pb.usable_w.max(axis=0)[pb.pool_chip, 0]
        for p in range(pb.P):
            c = int(pb.pool_chip[p])
            for n in sizes:
                if (c, n) not in spec.speed or first[p] + 1e-6 < n:
                    continue
                d = spec.gpu_hours(c, n) / (n * HOURS_PER_MONTH)
                if spec.earliest + d <= pb.T:
                    low = np.nonzero(pb.stock[p] * pb.usable_w.max(axis=0)[c] + 1e-6 < n)[0]
                    when = month_name(pb.t0 + int(low[0])) if len(low) else "the horizon's end"
                    return (f"attrition left too few chips: {first[p]:,.0f} x {pb.chips[c]} at the start fall below "
                            f"the {n:,}-chip run it needs by {when}, before a {d:.1f}-month run could finish")
        return (f"no run fits: not {min(sizes):,} chips of an allowed type in one cluster (stock plus the most that "
                "can be bought in time) for long enough to finish inside the horizon")
    return (f"the plan drops it: in every run that fits, the chips it would hold serve demand, or other "
            f"generations, worth more than its miss penalty (${spec.miss_penalty:,.0f})")


def idle_reasons(pb: Problem, wp: WorldPlan, usable: np.ndarray, train: np.ndarray,
                 inf: np.ndarray) -> list[dict[str, Any]]:
    """A sentence for every chip type that sits idle (usable, neither training nor serving) on the main path."""
    out = []
    W = len(pb.workloads)
    s = pb.scenario
    du = pb.duos
    for c, cid in enumerate(pb.chips):
        idle = usable[c] - train[c] - inf[:, c].sum(axis=0)
        months = np.nonzero(idle >= 0.5)[0]
        if not len(months):
            continue
        mean = float(idle[months].mean())
        serves = [w for w in range(W) if pb.rate[w, c] > 0]
        barred = [wl.name for wl in s.inference if wl.chips is not None and cid not in {x.lower() for x in wl.chips}]
        in_pairs = sorted({int(du.w[k]) for k in range(du.n) if c in (pb.pool_chip[du.pre[k]], pb.pool_chip[du.dec[k]])})
        if not serves and in_pairs:
            why = (f"it serves only in chip pairs ({', '.join(pb.workloads[w] for w in in_pairs)}), and those pairs "
                   "use no more of it: their other chip, the cluster's power or the demand limits them")
        elif not serves:
            why = "no workload can be served on it"
            why += (f": {', '.join(barred)} exclude it (their chips lists)" if barred else
                    ": none of the models fits on it or meets its SLO (TTFT/TPOT) at any layout the serving search "
                    "tries")
        else:
            short = [pb.workloads[w] for w in serves if wp.unmet[w, months].sum() > 1e-6]
            if short:
                why = (f"{', '.join(short)} go short while it idles: the power limit of its cluster, or the chips are "
                       "held back for a training run that starts or ends mid-month")
            else:
                def per_mtok(cc: int, w: int) -> float:
                    pools = np.nonzero(pb.pool_chip == cc)[0]
                    return float(pb.energy_usd[pools].min()) / (pb.rate[w, cc] * SECONDS_PER_MONTH) * 1e6
                w0 = max(serves, key=lambda w: float(pb.demand[w, months].sum()))
                used_by = [cc for cc in range(len(pb.chips)) if cc != c and inf[w0, cc, months].sum() > 0.5
                           and pb.rate[w0, cc] > 0]
                mine = per_mtok(c, w0)
                if used_by:
                    other = min(used_by, key=lambda cc: per_mtok(cc, w0))
                    why = (f"the workloads it can serve ({', '.join(pb.workloads[w] for w in serves)}) are met by "
                           f"chips that cost less to run: {pb.workloads[w0]} costs ${per_mtok(other, w0):.3f} per "
                           f"million output tokens in energy on {pb.chips[other]}, ${mine:.3f} on {cid}")
                else:
                    why = (f"the workloads it can serve ({', '.join(pb.workloads[w] for w in serves)}) need no "
                           "more chips")
                if s.costs.objective == "energy":
                    why += ("; only running costs count (costs.objective: energy), so an idle chip costs nothing; "
                            "costs.objective: tco also charges its depreciation and forgone market rental")
        out.append({"chip": cid, "months_idle": int(len(months)), "mean_idle": round(mean, 1), "reason": why})
    return out


def pair_uses(pb: Problem, wp: WorldPlan) -> list[dict[str, Any]]:
    """Each chip pair offered to a workload: what it gives against its two chips alone, and whether (and how much)
    the main path uses it, with the reason in a sentence."""
    du, out = pb.duos, []
    for k in range(du.n):
        w, a, b = int(du.w[k]), int(pb.pool_chip[du.pre[k]]), int(pb.pool_chip[du.dec[k]])
        rate, share = float(du.rate[k]), float(du.share[k])
        used = wp.duo[k]
        months = np.nonzero(used >= 0.5)[0]
        ra, rb = float(pb.rate[w, a]), float(pb.rate[w, b])
        alone = (f"alone, {pb.chips[a]} serves {ra:,.0f} and {pb.chips[b]} {rb:,.0f} tokens/s per GPU"
                 if ra > 0 or rb > 0 else "neither chip serves it alone within its SLO")
        per_pre = rate / share
        if len(months):
            peak = float(used.max())
            why = (f"used in {len(months)} months, up to {peak * share:,.0f} x {pb.chips[a]} prefill + "
                   f"{peak * (1 - share):,.0f} x {pb.chips[b]} decode: the pair gives {rate:,.0f} tokens/s per GPU "
                   f"({per_pre:,.0f} per {pb.chips[a]}); {alone}")
            if ra > 0 and per_pre > ra:
                why += (f"; each {pb.chips[a]} does {per_pre / ra:.1f}x the serving it does alone, with "
                        f"{pb.chips[b]} chips taking the decode")
        else:
            why = (f"offered, not used: the pair gives {rate:,.0f} tokens/s per GPU; {alone}; the plan meets the "
                   "workload at less cost with single chips, or has no spare chips of both kinds in the cluster")
        out.append({"workload": pb.workloads[w], "prefill_chip": pb.chips[a], "decode_chip": pb.chips[b],
                    "cluster": pb.clusters[pb.pool_cluster[du.pre[k]]],
                    "output_tokens_per_s_per_gpu": round(rate, 2), "prefill_share": round(share, 4),
                    "source": "user" if du.given[k] else "search", "how": du.note[k],
                    "months_used": int(len(months)), "peak_gpus": int(round(float(used.max()))) if used.size else 0,
                    "reason": why})
    return out


def procurement_notes(pb: Problem) -> list[str]:
    """Options that can never deliver in any world (e.g. orders whose lead time lands after a ban)."""
    notes = []
    for o, opt in enumerate(pb.scenario.procurement):
        if any(pb.order_ok(o, w).any() for w in range(pb.worlds.n)):
            continue
        window = pb.opt_window[o]
        if not window.any():
            why = "its ordering window lies outside the horizon"
        else:
            first = int(np.argmax(window))
            why = (f"an order placed in {pb.months[first]} or later arrives after {int(pb.opt_lead[o])} months "
                   f"(lead time plus expected delay), when deliveries of {opt.chip} are barred or the horizon ends")
        notes.append(f"procurement[{o}] ({opt.chip}) is dead: it can never deliver: {why}")
    return notes


def tco_costs(pb: Problem, on_hand: np.ndarray, usable: np.ndarray, train: np.ndarray,
              inf: np.ndarray) -> dict[str, float]:
    """Total cost of ownership on the main path: straight-line depreciation of every chip on hand (at the price
    of its procurement option where one exists), and the market rental an idle usable chip forgoes."""
    s = pb.scenario
    life = s.costs.depreciation_years * 12.0
    price = np.full(len(pb.chips), np.nan)
    for o, opt in enumerate(s.procurement):
        c = pb.pool_chip[pb.opt_pool[o]]
        price[c] = np.nanmin([price[c], opt.price_usd])
    dep = float(np.nansum(on_hand.sum(axis=1) * price / life))
    idle = np.maximum(usable - train - inf.sum(axis=0), 0.0)
    opp = float(np.nansum(idle.sum(axis=1) * pb.market_usd_month))
    return {"depreciation_all_chips": dep, "opportunity_idle": opp,
            "chip_types_without_price": float(np.isnan(price).sum())}
