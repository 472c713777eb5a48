"""The plan's answer as typed records: allocation, generations, procurement, cost, unmet demand, binding
constraints and the runway, with ``to_contract()`` giving the ``plan --json`` dict (CONTRACTS.md)."""
from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from stockpile.fleet.milp import Solution, month_of_fraction
from stockpile.fleet.problem import SECONDS_PER_MONTH, Problem
from stockpile.fleet.runway import RunwayResult, quantile_month
from stockpile.fleet.scenario import month_name


class Runway(BaseModel):
    p10: str | None = Field(description="pessimistic: 10 % of samples stop meeting demand by this month")
    p50: str | None
    p90: str | None
    deterministic: str | None = Field(description="first month the plan itself leaves demand unmet")
    samples: int = 0
    backend: str = "numpy"
    seconds: float = 0.0
    resolves: int = 0
    p_meets_demand_through_horizon: float | None = None
    p_met_by_month: list[float] = Field(default_factory=list)
    coverage_p10: list[float] = Field(default_factory=list)
    coverage_p50: list[float] = Field(default_factory=list)
    coverage_p90: list[float] = Field(default_factory=list)
    by_workload: dict[str, str | None] = Field(default_factory=dict)
    stock_only: str | None = Field(default=None, description="first month the stock alone (no procurement, no "
                                   "rental) leaves demand unmet; null: it lasts the horizon")
    stock_only_generations_trained: int | None = None
    tolerance: float = 0.01


class GenerationPlan(BaseModel):
    name: str
    trained: bool
    chip: str | None = None
    cluster: str | None = None
    chips: int | None = None
    start: str | None = None
    end: str | None = None
    end_month_fraction: float | None = None
    months: float | None = None
    deadline: str
    meets_deadline: bool
    months_late: float = 0.0
    gpu_hours: float | None = None
    tokens: float
    params_b: float
    active_params_b: float
    p_on_time: float | None = None
    p_done_in_horizon: float | None = None
    reason: str | None = Field(default=None, description="why a generation is not trained")


class AllocationRow(BaseModel):
    month: str
    chip: str
    stock: int
    usable: int
    training: int
    inference: dict[str, int]
    idle: int
    rented: dict[str, int] = Field(default_factory=dict)
    utilisation: float
    output_tokens_per_s: float


class Order(BaseModel):
    option: int
    chip: str
    cluster: str
    order_month: str
    arrival_month: str
    count: int
    expected_delivered: int
    capex_usd: float


class UnmetRow(BaseModel):
    workload: str
    month: str
    output_tokens_per_s: float
    output_tokens: float
    fraction: float


class DemandRow(BaseModel):
    workload: str
    month: str
    demand_tokens_per_s: float
    served_tokens_per_s: float


class Binding(BaseModel):
    month: str
    kind: str
    constraint: str
    shadow_usd: float
    unit: str


class PlanResult(BaseModel):
    scenario: str
    start: str
    horizon_months: int
    months: list[str]
    status: str
    message: str
    solve_seconds: float
    mip_gap: float | None = None
    objective_usd: float
    runway: Runway
    generations: list[GenerationPlan]
    generations_planned: int
    generations_trained: int
    generations_on_time: int
    allocation: list[AllocationRow]
    procurement: list[Order]
    cost_usd: float
    cost_breakdown_usd: dict[str, float]
    cost_by_month: list[dict[str, Any]]
    unmet: list[UnmetRow]
    demand: list[DemandRow]
    binding: list[Binding]
    binding_summary: str
    rates: list[dict[str, Any]]
    notes: list[str]

    def to_contract(self) -> dict[str, Any]:
        """The ``plan --json`` document (CONTRACTS.md): runway, generations, allocation, cost_usd, unmet, ..."""
        return self.model_dump(mode="json")

    def summary(self) -> str:
        """Human summary: the runway answer first."""
        r = self.runway
        beyond = f"beyond {self.months[-1]}"
        lines = [f"Scenario '{self.scenario}': {self.start} + {self.horizon_months} months ({self.status})"]
        det = r.deterministic or beyond
        lines.append(f"Runway: the plan first leaves demand unmet in {det}" if r.deterministic
                     else f"Runway: the plan meets demand through the horizon ({beyond})")
        if r.samples:
            q = [v or beyond for v in (r.p10, r.p50, r.p90)]
            lines.append(f"  under uncertainty ({r.samples} samples): P10 {q[0]}, P50 {q[1]}, P90 {q[2]}; "
                         f"P(meets demand through the horizon) = {r.p_meets_demand_through_horizon:.0%}")
        if r.stock_only_generations_trained is not None:
            lines.append("  the stock alone (no purchases, no rental) meets demand "
                         + (f"until {r.stock_only}" if r.stock_only else "through the horizon")
                         + f" and trains {r.stock_only_generations_trained} of {self.generations_planned} generations")
        lines.append(f"Generations: {self.generations_trained} of {self.generations_planned} trained, "
                     f"{self.generations_on_time} on time")
        for g in self.generations:
            if g.trained:
                p = f", P(on time) {g.p_on_time:.0%}" if g.p_on_time is not None else ""
                lines.append(f"  {g.name}: {g.chips} x {g.chip} @ {g.cluster}, {g.start} -> {g.end} "
                             f"(deadline {g.deadline}{'' if g.meets_deadline else ', LATE'}{p})")
            else:
                lines.append(f"  {g.name}: not trained in the horizon (deadline {g.deadline}): {g.reason}")
        cb = self.cost_breakdown_usd
        lines.append(f"Cost: ${self.cost_usd / 1e6:,.1f}M (energy ${cb['energy'] / 1e6:,.1f}M, procurement "
                     f"${cb['procurement_capex'] / 1e6:,.1f}M, rental ${cb['rental'] / 1e6:,.1f}M)")
        if self.procurement:
            by_chip: dict[str, int] = {}
            for o in self.procurement:
                by_chip[o.chip] = by_chip.get(o.chip, 0) + o.expected_delivered
            lines.append("Procurement (expected deliveries): " + ", ".join(f"{v:,} x {k}" for k, v in by_chip.items()))
        lines.append(f"Binding: {self.binding_summary}")
        if self.unmet:
            tot = sum(u.output_tokens for u in self.unmet)
            lines.append(f"Unmet demand: {tot:.3g} output tokens over {len({u.month for u in self.unmet})} months")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


def _on_hand(pb: Problem, sol: Solution, usable: bool) -> np.ndarray:
    """(P, T) chips on hand (expected, after attrition) including planned deliveries."""
    out = pb.stock * (pb.usable[pb.pool_chip] if usable else 1.0)
    for o in range(len(pb.opt_pool)):
        out[pb.opt_pool[o]] += sol.buy[o] @ pb.arrival_coef(o, usable=usable)
    return out


def assemble(pb: Problem, sol: Solution, mc: RunwayResult | None, notes: list[str]) -> PlanResult:
    s, T, W, C = pb.scenario, pb.T, len(pb.workloads), len(pb.chips)
    months = pb.months
    pat = pb.patterns
    tol = s.runway_tolerance
    # --- deterministic runway
    total_d = pb.demand.sum(axis=0)
    bad = (sol.unmet.sum(axis=0) > tol * total_d + 1e-9) & (total_d > 0)
    det = months[int(np.argmax(bad))] if bad.any() else None
    by_w = {}
    for w, name in enumerate(pb.workloads):
        bw = (sol.unmet[w] > tol * pb.demand[w] + 1e-9) & (pb.demand[w] > 0)
        by_w[name] = months[int(np.argmax(bw))] if bw.any() else None
    runway = Runway(p10=None, p50=None, p90=None, deterministic=det, by_workload=by_w, tolerance=tol)
    if mc is not None:
        qs = [quantile_month(mc.runway, x) for x in (0.1, 0.5, 0.9)]
        runway.p10, runway.p50, runway.p90 = (months[v] if v < T else None for v in qs)
        runway.samples, runway.backend, runway.seconds, runway.resolves = (mc.samples, mc.backend, mc.seconds,
                                                                           mc.resolves)
        runway.p_meets_demand_through_horizon = float(np.mean(mc.runway >= T))
        met = mc.covered >= 1.0 - tol - 1e-12
        runway.p_met_by_month = [round(float(v), 4) for v in met.mean(axis=0)]
        for attr, qq in (("coverage_p10", 0.1), ("coverage_p50", 0.5), ("coverage_p90", 0.9)):
            setattr(runway, attr, [round(float(v), 4) for v in np.quantile(mc.covered, qq, axis=0)])
    else:
        runway.p10 = runway.p50 = runway.p90 = det
    # --- generations
    gens: list[GenerationPlan] = []
    chosen = {int(pat.gen[q]): int(q) for q in np.nonzero(sol.y > 0.5)[0]}
    for gi, spec in enumerate(pb.gens):
        g = GenerationPlan(name=spec.name, trained=gi in chosen, deadline=month_name(pb.t0 + spec.deadline),
                           meets_deadline=False, tokens=spec.tokens, params_b=spec.params_b,
                           active_params_b=spec.active_params_b)
        if gi in chosen:
            q = chosen[gi]
            p = int(pat.pool[q])
            g.chip, g.cluster = pb.chips[pb.pool_chip[p]], pb.clusters[pb.pool_cluster[p]]
            g.chips, g.start = int(pat.size[q]), months[int(pat.start[q])]
            g.end = month_name(pb.t0 + month_of_fraction(float(pat.end[q])))
            g.end_month_fraction = round(float(pat.end[q]), 3)
            g.months = round(float(pat.months[q]), 3)
            g.months_late = round(float(pat.late[q]), 3)
            g.meets_deadline = bool(pat.late[q] <= 1e-9)
            g.gpu_hours = spec.gpu_hours[int(pb.pool_chip[p])]
        elif not spec.gpu_hours:
            g.reason = "none of the fleet's chip types it may use (stock, procurement) has a training rate"
        elif not (pat.gen == gi).any():
            g.reason = ("no run fits: not enough chips of an allowed type in one cluster for its minimum size "
                        "in time to finish inside the horizon")
        else:
            g.reason = "the plan drops it: the chips serve demand worth more than its miss penalty"
        if mc is not None and len(pb.gens):
            ends = mc.gen_end[:, gi]
            g.p_on_time = round(float(np.mean(ends <= spec.deadline + 1 + 1e-9)), 4)
            g.p_done_in_horizon = round(float(np.mean(np.isfinite(ends))), 4)
        gens.append(g)
    # --- allocation per month per chip type
    on_hand, usable = _on_hand(pb, sol, False), _on_hand(pb, sol, True)
    inf = np.zeros((W, C, T))
    for i, (w, p) in enumerate(sol.pairs):
        inf[w, pb.pool_chip[p]] += sol.x[i]
    train = np.zeros((C, T))
    sel = sol.y[pat.occ_rows] > 0.5
    np.add.at(train, (pb.pool_chip[pat.pool[pat.occ_rows[sel]]], pat.occ_t[sel]), pat.occ_val[sel])
    rent = np.zeros((W, C, T))
    for i, (w, j) in enumerate(sol.rent_pairs):
        rent[w, pb.rent_chip[j]] += sol.rent[i]
    oh_c, us_c = np.zeros((C, T)), np.zeros((C, T))
    np.add.at(oh_c, pb.pool_chip, on_hand)
    np.add.at(us_c, pb.pool_chip, usable)
    rows: list[AllocationRow] = []
    for t in range(T):
        for c, cid in enumerate(pb.chips):
            stock_i, use_i = int(np.floor(oh_c[c, t] + 1e-6)), int(np.floor(us_c[c, t] + 1e-6))
            tr = min(round(train[c, t]), use_i)
            alloc = {pb.workloads[w]: int(np.floor(inf[w, c, t] + 1e-6)) for w in range(W) if inf[w, c, t] >= 0.5}
            over = tr + sum(alloc.values()) - use_i
            while over > 0 and alloc:
                k = max(alloc, key=lambda a: alloc[a])
                cut = min(over, alloc[k])
                alloc[k] -= cut
                over -= cut
            rented = {pb.workloads[w]: int(np.ceil(rent[w, c, t] - 1e-6)) for w in range(W) if rent[w, c, t] > 1e-6}
            busy = tr + sum(alloc.values())
            if stock_i == 0 and busy == 0 and not rented:
                continue
            rows.append(AllocationRow(
                month=months[t], chip=cid, stock=stock_i, usable=use_i, training=tr, inference=alloc,
                idle=max(0, use_i - busy), rented=rented, utilisation=round(busy / use_i, 4) if use_i else 0.0,
                output_tokens_per_s=round(float((pb.rate[:, c] * (inf[:, c, t] + rent[:, c, t])).sum()), 1)))
    # --- procurement
    orders = []
    for o, t in zip(*np.nonzero(sol.buy > 0.5)):
        p = pb.opt_pool[o]
        n = round(sol.buy[o, t])
        orders.append(Order(option=int(o), chip=pb.chips[pb.pool_chip[p]], cluster=pb.clusters[pb.pool_cluster[p]],
                            order_month=months[t], arrival_month=month_name(pb.t0 + t + int(pb.opt_lead[o])),
                            count=n, expected_delivered=round(n * pb.opt_fill[o]),
                            capex_usd=round(n * float(pb.opt_fill[o] * pb.opt_price[o]), 2)))
    # --- cost
    busy_p = np.zeros((pb.P, T))
    for i, (_, p) in enumerate(sol.pairs):
        busy_p[p] += sol.x[i]
    np.add.at(busy_p, (pat.pool[pat.occ_rows[sel]], pat.occ_t[sel]), pat.occ_val[sel])
    energy_t = (busy_p * pb.energy_usd[:, None]).sum(axis=0)
    rent_t = np.zeros(T)
    for i, (_, j) in enumerate(sol.rent_pairs):
        rent_t += sol.rent[i] * pb.rent_usd_month[j]
    paid = (pb.opt_price * pb.opt_fill)[:, None]
    capex_t = (sol.buy * paid).sum(axis=0) if len(pb.opt_pool) else np.zeros(T)
    life = s.costs.depreciation_years * 12
    months_held = np.maximum(0, T - (np.arange(T)[None, :] + pb.opt_lead[:, None])) if len(pb.opt_pool) else None
    depreciation = float((sol.buy * paid * months_held / life).sum()) if months_held is not None else 0.0
    unmet_tokens = sol.unmet * SECONDS_PER_MONTH
    pen_unmet = float(unmet_tokens.sum() / 1e6 * s.costs.unmet_penalty_usd_per_mtok)
    pen_late = sum(pb.gens[int(pat.gen[q])].late_penalty * float(pat.late[q]) for q in chosen.values())
    pen_miss = sum(g.miss_penalty for gi, g in enumerate(pb.gens) if gi not in chosen)
    breakdown = {"energy": float(energy_t.sum()), "procurement_capex": float(capex_t.sum()),
                 "rental": float(rent_t.sum()), "depreciation_in_horizon": depreciation,
                 "penalty_unmet": pen_unmet, "penalty_late": pen_late, "penalty_missed": pen_miss}
    breakdown = {k: round(v, 2) for k, v in breakdown.items()}
    cost_by_month = [{"month": months[t], "energy": round(float(energy_t[t]), 2),
                      "procurement_capex": round(float(capex_t[t]), 2), "rental": round(float(rent_t[t]), 2)}
                     for t in range(T)]
    # --- unmet and demand
    unmet = [UnmetRow(workload=pb.workloads[w], month=months[t], output_tokens_per_s=round(float(sol.unmet[w, t]), 3),
                      output_tokens=float(unmet_tokens[w, t]),
                      fraction=round(float(sol.unmet[w, t] / pb.demand[w, t]), 5) if pb.demand[w, t] > 0 else 0.0)
             for w in range(W) for t in range(T) if sol.unmet[w, t] > max(1e-6, 1e-9 * pb.demand[w, t])]
    demand = [DemandRow(workload=pb.workloads[w], month=months[t], demand_tokens_per_s=round(float(pb.demand[w, t]), 3),
                        served_tokens_per_s=round(float(pb.demand[w, t] - sol.unmet[w, t]), 3))
              for w in range(W) for t in range(T)]
    binding, summary = _binding(pb, sol, on_hand)
    rates = [{"workload": pb.workloads[w], "chip": pb.chips[c],
              "output_tokens_per_s_per_gpu": round(float(pb.rate[w, c]), 2)} for w in range(W) for c in range(C)]
    rates += [{"generation": g.name, "chip": pb.chips[c], "gpu_hours": round(h, 1),
               "tokens_per_s_per_gpu": round(g.tokens / (h * 3600 * s.training.goodput), 2)}
              for g in pb.gens for c, h in g.gpu_hours.items()]
    return PlanResult(
        scenario=s.name, start=months[0], horizon_months=T, months=months, status=sol.status, message=sol.message,
        solve_seconds=round(sol.seconds, 3), mip_gap=sol.mip_gap, objective_usd=round(sol.objective_usd, 2),
        runway=runway, generations=gens, generations_planned=len(gens),
        generations_trained=sum(g.trained for g in gens), generations_on_time=sum(g.meets_deadline for g in gens),
        allocation=rows, procurement=orders,
        cost_usd=round(breakdown["energy"] + breakdown["procurement_capex"] + breakdown["rental"], 2),
        cost_breakdown_usd=breakdown, cost_by_month=cost_by_month, unmet=unmet, demand=demand, binding=binding,
        binding_summary=summary, rates=rates, notes=list(pb.notes) + notes)


def _binding(pb: Problem, sol: Solution, on_hand: np.ndarray) -> tuple[list[Binding], str]:
    """Per month, the resource whose shadow price (USD per extra chip-month) is largest.

    A shadow price below the dearest chip's monthly energy only says one chip type is cheaper to run than
    another; a resource counts as binding when its price is above that (it forces buying, renting, unmet
    demand or a late run)."""
    if not sol.duals:
        return [], "not computed (no shadow prices)"
    T = pb.T
    floor = float(pb.energy_usd.max()) * 1.01 if pb.P else 1.0
    cand: list[list[tuple[float, str, str, str]]] = [[] for _ in range(T)]
    d = sol.duals.get("stock")
    if d is not None:
        for c, cid in enumerate(pb.chips):
            pools = np.nonzero(pb.pool_chip == c)[0]
            if not len(pools):
                continue
            v = -d[pools].min(axis=0)
            held = on_hand[pools].sum(axis=0)
            for t in range(T):
                if held[t] >= 0.5:
                    cand[t].append((float(v[t]), "stock", f"chips of {cid} on hand", "USD per chip-month"))
    d = sol.duals.get("power")
    if d is not None:
        limited = np.nonzero(np.isfinite(pb.cluster_cap_kw))[0]
        for i, k in enumerate(limited):
            kw = pb.power_kw[pb.pool_cluster == k].mean() if (pb.pool_cluster == k).any() else 1.0
            for t in range(T):
                cand[t].append((float(-d[i, t] * kw), "power", f"power limit of cluster {pb.clusters[k]}",
                                "USD per chip-month of power"))
    d = sol.duals.get("rental")
    if d is not None:
        for j, c in enumerate(pb.rent_chip):
            for t in range(T):
                cand[t].append((float(-d[j, t]), "rental", f"rental cap of {pb.chips[c]}", "USD per GPU-month"))
    d = sol.bound_duals.get("buy")
    if d is not None and d.size:
        for o in range(d.shape[0]):
            for t in range(T):
                if pb.order_ok[o, t]:
                    cand[t].append((float(-d[o, t]), "procurement", (f"monthly supply of {pb.chips[pb.pool_chip[pb.opt_pool[o]]]}"
                                    f" (procurement[{o}])"), "USD per chip ordered"))
    d = sol.duals.get("capex_budget")
    if d is not None:
        for t in range(T):
            cand[t].append((float(-d[0]), "budget", "procurement budget", "USD per USD"))
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

