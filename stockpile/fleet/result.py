"""The plan's answer as typed records: the stock-alone headline, runway (with policy worlds), generations,
allocation (chips actually held), procurement, cost, unmet demand (integrated over the day), binding constraints
and diagnoses, with ``to_contract()`` giving the ``plan --json`` dict (CONTRACTS.md).

The allocation, generations and procurement shown are those of the most likely policy world; decisions taken
before an uncertain event is known are the same in every world (``runway.worlds`` lists each world's path).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from stockpile.fleet.demand import unmet_hour_sum
from stockpile.fleet.diagnose import binding, generation_reason, idle_reasons, pair_uses, procurement_notes
from stockpile.fleet.months import SECONDS_PER_MONTH, month_name, month_of_fraction
from stockpile.fleet.problem import Problem, world_label
from stockpile.fleet.runway import RunwayResult, quantile_month
from stockpile.fleet.solution import Solution, WorldPlan, serving_capacity, serving_chips, world_plan
from stockpile.fleet.stock_alone import StockAloneResult


class StockOnly(BaseModel):
    p10: str | None = Field(description="10 % of futures: the stock alone stops meeting demand by this month; "
                            "null only if it outlasts ten years")
    p50: str | None
    p90: str | None
    deterministic: str | None
    p_meets_demand_through_horizon: float | None = None
    searched_until: str


class World(BaseModel):
    events: list[str] = Field(description="uncertain events that happen in this world")
    probability: float
    runway: str | None = Field(description="first month this world's plan leaves demand unmet; null: never "
                               "inside the horizon")
    runway_p50: str | None = None
    samples: int = 0
    procurement: list[Order]


class Runway(BaseModel):
    p10: str | None = Field(description="pessimistic: 10 % of samples stop meeting demand by this month")
    p50: str | None
    p90: str | None
    deterministic: str | None = Field(description="first month the plan itself leaves demand unmet (peak hour)")
    samples: int = 0
    backend: str = "numpy"
    seconds: float = 0.0
    p_meets_demand_through_horizon: float | None = None
    p_met_by_month: list[float] = Field(default_factory=list)
    coverage_p10: list[float] = Field(default_factory=list)
    coverage_p50: list[float] = Field(default_factory=list)
    coverage_p90: list[float] = Field(default_factory=list)
    by_workload: dict[str, str | None] = Field(default_factory=dict)
    stock_only: StockOnly | None = None
    worlds: list[World] = Field(default_factory=list)
    tolerance: float = 0.01
    measured_at: str = "peak hour"


class Trainable(BaseModel):
    p10: int
    p50: int
    p90: int
    deterministic: int
    ladder: dict[str, Any]


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
    goodput: float | None = None
    tokens: float
    params_b: float
    active_params_b: float
    p_on_time: float | None = None
    p_done_in_horizon: float | None = None
    rate_source: str = ""
    reason: str | None = Field(default=None, description="why a generation is not trained")


class AllocationRow(BaseModel):
    month: str
    chip: str
    stock: int
    usable: int
    training: int = Field(description="chips held by training runs (a run holds its chips for every month it "
                          "touches)")
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


World.model_rebuild()
Runway.model_rebuild()


class UnmetRow(BaseModel):
    workload: str
    month: str
    output_tokens_per_s: float = Field(description="short at the peak hour")
    output_tokens: float = Field(description="short over the month, integrating the daily profile")
    fraction: float = Field(description="share of the month's output tokens not served")


class DemandRow(BaseModel):
    workload: str
    month: str
    demand_tokens_per_s: float = Field(description="peak hour")
    served_tokens_per_s: float


class Binding(BaseModel):
    month: str
    kind: str
    constraint: str
    shadow_usd: float
    unit: str


class IdleReason(BaseModel):
    chip: str
    months_idle: int
    mean_idle: float
    reason: str


class PairUse(BaseModel):
    """A chip pair offered to a workload (prefill on one chip type, decode on another) and what the plan made of it."""

    workload: str
    prefill_chip: str
    decode_chip: str
    cluster: str
    output_tokens_per_s_per_gpu: float = Field(description="the pair's rate, prefill and decode GPUs both counted")
    prefill_share: float = Field(description="fraction of the pair's GPUs that prefill")
    source: str = Field(description="search (the mixed serving search) or user (throughput_per_gpu)")
    how: str = ""
    months_used: int = Field(description="months of the main path in which the plan serves through the pair")
    peak_gpus: int = Field(description="most GPUs (both chips) the pair holds in one month")
    reason: str


class PlanResult(BaseModel):
    scenario: str
    start: str
    horizon_months: int
    months: list[str]
    status: str
    message: str
    solve_seconds: float
    seconds: float = 0.0
    mip_gap: float | None = None
    objective_usd: float
    objective: str = "energy"
    tie_break: str = "none"
    headline: str = ""
    runway: Runway
    generations_trainable: Trainable | None = None
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
    idle: list[IdleReason] = Field(default_factory=list)
    chip_pairs: list[PairUse] = Field(default_factory=list, description="chip pairs offered to workloads "
                                      "(inference[].chip_pairs) and whether the plan used them")
    rates: list[dict[str, Any]]
    notes: list[str]

    def to_contract(self) -> dict[str, Any]:
        """The ``plan --json`` document (CONTRACTS.md): runway, generations, allocation, cost_usd, unmet, ..."""
        return self.model_dump(mode="json")

    def summary(self) -> str:
        """Human summary: the stock's own answer first, then the plan."""
        r = self.runway
        beyond = f"beyond {self.months[-1]}"
        lines = [f"Scenario '{self.scenario}': {self.start} + {self.horizon_months} months ({self.status})"]
        if self.headline:
            lines.append(self.headline)
        det = r.deterministic or beyond
        lines.append(f"Runway: the plan first leaves demand unmet in {det}" if r.deterministic
                     else f"Runway: the plan meets demand through the horizon ({beyond})")
        if r.samples:
            q = [v or beyond for v in (r.p10, r.p50, r.p90)]
            lines.append(f"  under uncertainty ({r.samples:,} samples): P10 {q[0]}, P50 {q[1]}, P90 {q[2]}; "
                         f"P(meets demand through the horizon) = {r.p_meets_demand_through_horizon:.0%}")
        if len(r.worlds) > 1:
            lines.append("  policy worlds (decisions before an event is known are shared):")
            for w in r.worlds:
                lines.append(f"    {', '.join(w.events) or 'no uncertain event happens'} (p {w.probability:.2f}): "
                             f"runway {w.runway or beyond}, {sum(o.count for o in w.procurement):,} chips ordered")
        lines.append(f"Generations: {self.generations_trained} of {self.generations_planned} trained, "
                     f"{self.generations_on_time} on time")
        for g in self.generations:
            if g.trained:
                p = f", P(on time) {g.p_on_time:.0%}" if g.p_on_time is not None else ""
                lines.append(f"  {g.name}: {g.chips} x {g.chip} @ {g.cluster}, {g.start} -> {g.end} "
                             f"({g.gpu_hours / 1e6 if g.gpu_hours else 0:,.2f}M GPU-h; deadline {g.deadline}"
                             f"{'' if g.meets_deadline else ', LATE'}{p})")
            else:
                lines.append(f"  {g.name}: not trained in the horizon (deadline {g.deadline}): {g.reason}")
        cb = self.cost_breakdown_usd
        lines.append(f"Cost: ${self.cost_usd / 1e6:,.1f}M (energy ${cb['energy'] / 1e6:,.1f}M, procurement "
                     f"${cb['procurement_capex'] / 1e6:,.1f}M, rental ${cb['rental'] / 1e6:,.1f}M)"
                     + (f"; TCO ${cb['tco'] / 1e6:,.1f}M" if "tco" in cb else ""))
        if self.procurement:
            by_chip: dict[str, int] = {}
            for o in self.procurement:
                by_chip[o.chip] = by_chip.get(o.chip, 0) + o.expected_delivered
            lines.append("Procurement (expected deliveries): " + ", ".join(f"{v:,} x {k}" for k, v in by_chip.items()))
        lines.append(f"Binding: {self.binding_summary}")
        if self.unmet:
            tot = sum(u.output_tokens for u in self.unmet)
            lines.append(f"Unmet demand: {tot:.3g} output tokens over {len({u.month for u in self.unmet})} months "
                         "(integrated over the day)")
        for u in self.chip_pairs:
            lines.append(f"Pair {u.prefill_chip} prefill + {u.decode_chip} decode for {u.workload} "
                         f"({u.cluster}): {u.reason}")
        for i in self.idle:
            lines.append(f"Idle {i.chip}: {i.mean_idle:,.0f} chips on average in {i.months_idle} months: {i.reason}")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


def _month_or_none(pb_months: list[str], t0: int, v: int, T: int) -> str | None:
    return None if v >= T else month_name(t0 + v)


def deterministic_runway(pb: Problem, wp: WorldPlan) -> tuple[int, dict[str, int]]:
    """First month (index) the path leaves more than the tolerance of peak demand unmet; T = never."""
    tol = pb.scenario.runway_tolerance
    total = pb.demand.sum(axis=0)
    bad = (wp.unmet.sum(axis=0) > tol * total + 1e-9) & (total > 0)
    by_w = {}
    for w, name in enumerate(pb.workloads):
        bw = (wp.unmet[w] > tol * pb.demand[w] + 1e-9) & (pb.demand[w] > 0)
        by_w[name] = int(np.argmax(bw)) if bw.any() else pb.T
    return (int(np.argmax(bad)) if bad.any() else pb.T), by_w


def _orders(pb: Problem, wp: WorldPlan) -> list[Order]:
    out = []
    for o, t in zip(*np.nonzero(wp.buy > 0.5)):
        p = pb.opt_pool[o]
        n = round(float(wp.buy[o, t]))
        delivered = bool(pb.order_ok(int(o), wp.world)[t])
        out.append(Order(option=int(o), chip=pb.chips[pb.pool_chip[p]], cluster=pb.clusters[pb.pool_cluster[p]],
                         order_month=pb.months[t], arrival_month=month_name(pb.t0 + t + int(pb.opt_lead[o])),
                         count=n, expected_delivered=round(n * pb.opt_fill[o]) if delivered else 0,
                         capex_usd=round(n * float(pb.opt_fill[o] * pb.opt_price[o]), 2) if delivered else 0.0))
    return out


def assemble(pb: Problem, sol: Solution, mc: RunwayResult | None, alone: StockAloneResult | None,
             notes: list[str]) -> PlanResult:
    s, T, W, C = pb.scenario, pb.T, len(pb.workloads), len(pb.chips)
    months = pb.months
    pat = pb.patterns
    wd = pb.worlds
    main = int(np.argmax(wd.prob))
    wp = world_plan(pb, sol, main)
    det, by_w = deterministic_runway(pb, wp)
    runway = Runway(p10=None, p50=None, p90=None, deterministic=_month_or_none(months, pb.t0, det, T),
                    by_workload={k: _month_or_none(months, pb.t0, v, T) for k, v in by_w.items()},
                    tolerance=s.runway_tolerance)
    tol = s.runway_tolerance
    if mc is not None:
        qs = [quantile_month(mc.runway, x) for x in (0.1, 0.5, 0.9)]
        runway.p10, runway.p50, runway.p90 = (months[v] if v < T else None for v in qs)
        runway.samples, runway.backend, runway.seconds = mc.samples, mc.backend, round(mc.seconds, 3)
        runway.p_meets_demand_through_horizon = float(np.mean(mc.runway >= T))
        met = mc.covered >= 1.0 - tol - 1e-9
        runway.p_met_by_month = [round(float(v), 4) for v in met.mean(axis=0)]
        for attr, qq in (("coverage_p10", 0.1), ("coverage_p50", 0.5), ("coverage_p90", 0.9)):
            setattr(runway, attr, [round(float(v), 4) for v in np.quantile(mc.covered, qq, axis=0)])
    else:
        runway.p10 = runway.p50 = runway.p90 = runway.deterministic
    # --- policy worlds
    for w in range(wd.n):
        wpw = wp if w == main else world_plan(pb, sol, w)
        dw, _ = deterministic_runway(pb, wpw)
        entry = World(events=world_label(s, wd, w), probability=round(float(wd.prob[w]), 6),
                      runway=_month_or_none(months, pb.t0, dw, T), procurement=_orders(pb, wpw))
        if mc is not None:
            sel = mc.world == w
            entry.samples = int(sel.sum())
            if sel.any():
                v = quantile_month(mc.runway[sel], 0.5)
                entry.runway_p50 = months[v] if v < T else None
        runway.worlds.append(entry)
    # --- the stock alone and the ladder
    trainable = None
    if alone is not None:
        H = alone.horizon_ext

        def m(v: int) -> str | None:
            return None if v >= H else month_name(pb.t0 + v)
        q = [quantile_month(alone.runway, x) for x in (0.1, 0.5, 0.9)]
        runway.stock_only = StockOnly(p10=m(q[0]), p50=m(q[1]), p90=m(q[2]), deterministic=m(alone.deterministic),
                                      p_meets_demand_through_horizon=round(float(np.mean(alone.runway >= T)), 4),
                                      searched_until=month_name(pb.t0 + H - 1))
        rungs = alone.generations
        lad = alone.ladder
        trainable = Trainable(
            p10=int(np.quantile(rungs, 0.1, method="inverted_cdf")),
            p50=int(np.quantile(rungs, 0.5, method="inverted_cdf")),
            p90=int(np.quantile(rungs, 0.9, method="inverted_cdf")), deterministic=alone.generations_deterministic,
            ladder={"compute_growth": lad.compute_growth, "every_months": lad.every_months, "source": lad.source,
                    "rungs": [{"index": r.index, "params_b": round(r.params_b, 1),
                               "active_params_b": round(r.active_params_b, 1), "tokens": float(f"{r.tokens:.4g}"),
                               "compute_flop": float(f"{r.compute_flop:.4g}")} for r in lad.rungs[:6]]})
    # --- generations on the main path
    gens: list[GenerationPlan] = []
    chosen = {int(pat.gen[q]): int(q) for q in wp.runs}
    for gi, spec in enumerate(pb.gens):
        g = GenerationPlan(name=spec.name, trained=gi in chosen, deadline=month_name(pb.t0 + spec.deadline),
                           meets_deadline=False, tokens=spec.tokens, params_b=spec.params_b,
                           active_params_b=spec.active_params_b, rate_source=spec.rate_note)
        if gi in chosen:
            qi = chosen[gi]
            p = int(pat.pool[qi])
            g.chip, g.cluster = pb.chips[pb.pool_chip[p]], pb.clusters[pb.pool_cluster[p]]
            g.chips, g.start = int(pat.size[qi]), months[int(pat.start[qi])]
            g.end = month_name(pb.t0 + month_of_fraction(float(pat.end[qi])))
            g.end_month_fraction = round(float(pat.end[qi]), 3)
            g.months = round(float(pat.months[qi]), 3)
            g.months_late = round(float(pat.late[qi]), 3)
            g.meets_deadline = bool(pat.late[qi] <= 1e-9)
            g.gpu_hours = float(pat.gpu_hours[qi])
            g.goodput = round(float(pat.goodput[qi]), 4)
        else:
            g.reason = generation_reason(pb, gi)
        if mc is not None and len(pb.gens):
            ends = mc.gen_end[:, gi]
            g.p_on_time = round(float(np.mean(ends <= spec.deadline + 1 + 1e-9)), 4)
            g.p_done_in_horizon = round(float(np.mean(np.isfinite(ends))), 4)
        gens.append(g)
    # --- allocation per month per chip type: chips held
    stock_c = np.zeros((C, T))
    np.add.at(stock_c, pb.pool_chip, pb.stock)
    arrived = np.zeros((C, T))
    for o in range(len(pb.opt_pool)):
        ok = pb.order_ok(o, main)
        arrived[pb.pool_chip[pb.opt_pool[o]]] += (wp.buy[o] * ok) @ pb.arrival_coef(o)
    on_hand = stock_c + arrived
    usable = on_hand * pb.usable_w[main]
    inf = np.zeros((W, C, T))
    by_pool = serving_chips(pb, wp)                                   # (W, P, T), chip pairs split by share
    np.add.at(inf.transpose(1, 0, 2), pb.pool_chip, by_pool.transpose(1, 0, 2))
    tok_c = np.zeros((C, T))                   # output tokens/s per chip type: a pair's split like its GPUs
    np.add.at(tok_c, pb.pool_chip[wp.pairs[:, 1]], pb.rate[wp.pairs[:, 0], pb.pool_chip[wp.pairs[:, 1]]][:, None]
              * wp.x)
    du = pb.duos
    np.add.at(tok_c, pb.pool_chip[du.pre], (du.rate * du.share)[:, None] * wp.duo)
    np.add.at(tok_c, pb.pool_chip[du.dec], (du.rate * (1.0 - du.share))[:, None] * wp.duo)
    train = np.zeros((C, T))
    busy_energy = np.zeros((pb.P, T))
    for q in wp.runs:
        sel = pat.occ_rows == q
        train[pb.pool_chip[pat.pool[q]], pat.occ_t[sel]] += pat.size[q]
        busy_energy[pat.pool[q], pat.occ_t[sel]] += pat.size[q] * pat.busy_frac[sel]
    rent = np.zeros((W, C, T))
    for i, (w, j) in enumerate(wp.rent_pairs):
        rent[w, pb.rent_chip[j]] += wp.rent[i]
    rows: list[AllocationRow] = []
    for t in range(T):
        for c, cid in enumerate(pb.chips):
            stock_i, use_i = int(np.floor(on_hand[c, t] + 1e-6)), int(np.floor(usable[c, t] + 1e-6))
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
                output_tokens_per_s=round(float(tok_c[c, t] + (pb.rate[:, c] * rent[:, c, t]).sum()), 1)))
    # --- cost (the main world's path)
    orders = _orders(pb, wp)
    busy_energy += by_pool.sum(axis=0)
    energy_t = (busy_energy * pb.energy_usd[:, None]).sum(axis=0)
    rent_t = np.zeros(T)
    for i, (_, j) in enumerate(wp.rent_pairs):
        rent_t += wp.rent[i] * pb.rent_usd_month[j]
    capex_t = np.zeros(T)
    for o in range(len(pb.opt_pool)):
        capex_t += wp.buy[o] * pb.order_ok(o, main) * pb.opt_price[o] * pb.opt_fill[o]
    cap = serving_capacity(pb, wp)
    unmet_tok = unmet_hour_sum(pb.profile[:, None, :], pb.demand_mean, np.minimum(cap, pb.demand)) \
        * SECONDS_PER_MONTH / 24.0
    demand_tok = pb.demand_mean * SECONDS_PER_MONTH
    pen_unmet = float(unmet_tok.sum() / 1e6 * s.costs.unmet_penalty_usd_per_mtok)
    pen_late = sum(pb.gens[int(pat.gen[q])].late_penalty * float(pat.late[q]) for q in chosen.values())
    pen_miss = sum(g.miss_penalty for gi, g in enumerate(pb.gens) if gi not in chosen)
    breakdown = {"energy": float(energy_t.sum()), "procurement_capex": float(capex_t.sum()),
                 "rental": float(rent_t.sum()), "penalty_unmet": pen_unmet, "penalty_late": pen_late,
                 "penalty_missed": pen_miss}
    if s.costs.objective == "tco":
        from stockpile.fleet.diagnose import tco_costs
        breakdown.update(tco_costs(pb, on_hand, usable, train, inf))
        breakdown["tco"] = (breakdown["energy"] + breakdown["rental"] + breakdown["depreciation_all_chips"]
                            + breakdown["opportunity_idle"])
    breakdown = {k: round(v, 2) for k, v in breakdown.items()}
    cost_by_month = [{"month": months[t], "energy": round(float(energy_t[t]), 2),
                      "procurement_capex": round(float(capex_t[t]), 2), "rental": round(float(rent_t[t]), 2)}
                     for t in range(T)]
    unmet = [UnmetRow(workload=pb.workloads[w], month=months[t], output_tokens_per_s=round(float(wp.unmet[w, t]), 3),
                      output_tokens=float(unmet_tok[w, t]),
                      fraction=round(float(unmet_tok[w, t] / demand_tok[w, t]), 5) if demand_tok[w, t] > 0 else 0.0)
             for w in range(W) for t in range(T) if wp.unmet[w, t] > max(1e-6, 1e-9 * pb.demand[w, t])]
    demand = [DemandRow(workload=pb.workloads[w], month=months[t], demand_tokens_per_s=round(float(pb.demand[w, t]), 3),
                        served_tokens_per_s=round(float(pb.demand[w, t] - wp.unmet[w, t]), 3))
              for w in range(W) for t in range(T)]
    bind, summary = binding(pb, sol, wp, on_hand)
    rates = [{"workload": pb.workloads[w], "chip": pb.chips[c], "source": "user" if pb.rate_given[w, c] else "search",
              "output_tokens_per_s_per_gpu": round(float(pb.rate[w, c]), 2)} for w in range(W) for c in range(C)]
    rates += [{"generation": g.name, "chip": pb.chips[c], "gpus": n, "gpu_hours": round(g.gpu_hours(c, n), 1),
               "tokens_per_s_per_gpu": round(sp[0], 2), "goodput": round(sp[1], 4)}
              for g in pb.gens for (c, n), sp in g.speed.items()]
    idle = [IdleReason(**r) for r in idle_reasons(pb, wp, usable, train, inf)]
    res = PlanResult(
        scenario=s.name, start=months[0], horizon_months=T, months=months, status=sol.status, message=sol.message,
        solve_seconds=round(sol.seconds, 3), mip_gap=sol.mip_gap, objective_usd=round(sol.objective_usd, 2),
        objective=s.costs.objective, tie_break=sol.tie_break, runway=runway, generations_trainable=trainable,
        generations=gens, generations_planned=len(gens), generations_trained=sum(g.trained for g in gens),
        generations_on_time=sum(g.meets_deadline for g in gens), allocation=rows, procurement=orders,
        cost_usd=round(breakdown["energy"] + breakdown["procurement_capex"] + breakdown["rental"], 2),
        cost_breakdown_usd=breakdown, cost_by_month=cost_by_month, unmet=unmet, demand=demand, binding=bind,
        binding_summary=summary, idle=idle, chip_pairs=[PairUse(**u) for u in pair_uses(pb, wp)], rates=rates,
        notes=list(pb.notes) + procurement_notes(pb) + notes)
    res.headline = headline(res)
    return res


def headline(r: PlanResult) -> str:
    """'Your stock alone meets demand until M (P10..P90) and trains N more generations (P10..P90); with the
    planned purchases: ...' (issue 11's wording)."""
    so, gt, rw = r.runway.stock_only, r.generations_trainable, r.runway
    beyond = f"beyond {r.months[-1]}"
    parts = []
    if so is not None:
        until = so.p50 or f"beyond {so.searched_until}"
        spread = f"P10 {so.p10 or '-'} .. P90 {so.p90 or 'beyond ' + so.searched_until}"
        parts.append(f"Your stock alone meets demand until {until} ({spread})")
        if gt is not None:
            parts[-1] += (f" and trains {gt.p50} more generation{'s' if gt.p50 != 1 else ''} of the ladder "
                          f"(P10 {gt.p10} .. P90 {gt.p90})")
    plan = (f"with the planned purchases and rental: demand met until {rw.p50 or beyond} "
            f"(P10 {rw.p10 or beyond} .. P90 {rw.p90 or beyond}), {r.generations_trained} of "
            f"{r.generations_planned} generations trained, ${r.cost_usd / 1e6:,.1f}M")
    parts.append(plan)
    return "; ".join(parts) + "."


class ComparisonRow(BaseModel):
    scenario: str
    runway_p50: str | None
    stock_only_p50: str | None
    generations_trainable_p50: int | None
    cost_usd: float
    differences: list[str] = Field(default_factory=list)


class Comparison(BaseModel):
    scenarios: list[PlanResult]
    comparison: list[ComparisonRow]

    def to_contract(self) -> dict[str, Any]:
        return {"scenarios": [r.to_contract() for r in self.scenarios],
                "comparison": [c.model_dump(mode="json") for c in self.comparison]}

    def summary(self) -> str:
        lines = ["scenario | runway P50 | stock alone P50 | generations trainable P50 | cost"]
        for c in self.comparison:
            lines.append(f"{c.scenario} | {c.runway_p50 or 'beyond horizon'} | {c.stock_only_p50 or '-'} | "
                         f"{c.generations_trainable_p50 if c.generations_trainable_p50 is not None else '-'} | "
                         f"${c.cost_usd / 1e6:,.1f}M" + (f"  ({'; '.join(c.differences)})" if c.differences else ""))
        return "\n".join(lines)


def compare(results: list[PlanResult]) -> Comparison:
    """Side by side: runway, stock-alone runway, generations trainable, cost; differences against the first."""
    rows = []
    base = results[0]
    for r in results:
        diff = []
        if r is not base:
            if r.runway.p50 != base.runway.p50:
                diff.append(f"runway P50 {base.runway.p50 or 'beyond'} -> {r.runway.p50 or 'beyond'}")
            b_so = base.runway.stock_only.p50 if base.runway.stock_only else None
            r_so = r.runway.stock_only.p50 if r.runway.stock_only else None
            if b_so != r_so:
                diff.append(f"stock alone {b_so or 'beyond'} -> {r_so or 'beyond'}")
            if r.generations_trained != base.generations_trained:
                diff.append(f"generations trained {base.generations_trained} -> {r.generations_trained}")
            if abs(r.cost_usd - base.cost_usd) > 0.005 * max(base.cost_usd, 1.0):
                diff.append(f"cost {r.cost_usd - base.cost_usd:+,.0f} USD")
        rows.append(ComparisonRow(
            scenario=r.scenario, runway_p50=r.runway.p50,
            stock_only_p50=r.runway.stock_only.p50 if r.runway.stock_only else None,
            generations_trainable_p50=r.generations_trainable.p50 if r.generations_trainable else None,
            cost_usd=r.cost_usd, differences=diff))
    return Comparison(scenarios=results, comparison=rows)
