"""Compile a scenario into arrays: months, pools (chip type x cluster), surviving stock, demand, rates,
procurement arrival coefficients and candidate training runs. The MILP (plan.py) and the Monte Carlo
(runway.py) both read this :class:`Problem`; neither touches the YAML.

Units: chips, output tokens/s, USD, months (index 0 = the scenario start). Symbols follow docs/fleet-model.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from stockpile.errors import InputError
from stockpile.fleet.rates import Rates, default_serving_rate, mfu_training_rate, search_training_rate
from stockpile.fleet.scenario import Generation, PolicyEvent, Scenario, month_index, month_name

HOURS_PER_MONTH = 8766.0 / 12.0          # 365.25 days * 24 h / 12
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0


def monthly_hazard(annual_rate: np.ndarray) -> np.ndarray:
    """Monthly failure probability from an annual rate: h = 1 - (1 - r)^(1/12) (constant hazard in a year)."""
    return 1.0 - (1.0 - np.asarray(annual_rate, float)) ** (1.0 / 12.0)


def survival(age0_months: np.ndarray, months: int, curve: list[tuple[float, float]], multiplier: float = 1.0,
             retire_months: float | None = None) -> np.ndarray:
    """S[i, k]: fraction of cohort i (age age0[i] months at month 0) alive at the start of month k.

    Hazard h(a) from the step curve of (age_years, annual_rate); a multiplier m scales the continuous hazard,
    so S_m = S^m (proportional hazards). Chips at or past the retirement age count as gone."""
    age0 = np.asarray(age0_months, float).reshape(-1, 1)
    ages = age0 + np.arange(months)[None, :]
    starts = np.array([c[0] * 12.0 for c in curve])
    rates = np.array([c[1] for c in curve])
    idx = np.clip(np.searchsorted(starts, ages, side="right") - 1, 0, len(rates) - 1)
    h = monthly_hazard(rates[idx])
    log_s = np.concatenate([np.zeros((age0.shape[0], 1)), np.cumsum(np.log1p(-h), axis=1)[:, :-1]], axis=1)
    s = np.exp(multiplier * log_s)
    if retire_months is not None:
        s = np.where(ages >= retire_months, 0.0, s)
    return s


@dataclass
class Patterns:
    """Candidate training runs q = (generation, pool, start month, chips): binary y_q in the MILP."""

    gen: np.ndarray
    pool: np.ndarray
    start: np.ndarray
    size: np.ndarray
    months: np.ndarray        # duration d_q = W_gc / (n HOURS_PER_MONTH), fractional months
    end: np.ndarray           # start + months (fractional month index)
    late: np.ndarray          # months past the deadline's month end, >= 0
    occ_rows: np.ndarray      # sparse occupancy: chips of pattern occ_rows[i] used in month occ_t[i]
    occ_t: np.ndarray
    occ_val: np.ndarray

    @property
    def n(self) -> int:
        return len(self.gen)


@dataclass
class GenSpec:
    name: str
    params_b: float
    active_params_b: float
    tokens: float
    earliest: int
    deadline: int              # month index; the run must end by deadline + 1
    after: int | None
    gpu_hours: dict[int, float]  # chip index -> GPU-hours of the whole run, goodput included
    late_penalty: float
    miss_penalty: float


@dataclass
class Problem:
    scenario: Scenario
    T: int
    t0: int
    chips: list[str]
    clusters: list[str]
    pool_chip: np.ndarray
    pool_cluster: np.ndarray
    cohort_pool: np.ndarray
    cohort_count: np.ndarray
    cohort_age0: np.ndarray
    cohort_surv: np.ndarray            # (cohorts, T) deterministic survival
    stock: np.ndarray                  # (P, T) expected chips on hand from the initial stock (usable or not)
    usable: np.ndarray                 # (C, T) 1 where the chip may be used (no_use events)
    power_kw: np.ndarray               # (P,) all-in maximum kW per chip
    energy_usd: np.ndarray             # (P,) USD per busy chip-month
    cluster_cap_kw: np.ndarray         # (K,) facility kW limit / PUE: accelerator all-in kW allowed (inf = none)
    workloads: list[str]
    demand: np.ndarray                 # (W, T) output tokens/s to serve (peak hour)
    demand_base: np.ndarray            # (W,) at launch
    growth: np.ndarray                 # (W,)
    launch: np.ndarray                 # (W,) month index of launch
    rate: np.ndarray                   # (W, C) output tokens/s per GPU under the SLO; 0 = cannot serve
    opt_pool: np.ndarray               # (O,)
    opt_price: np.ndarray              # USD per chip delivered
    opt_lead: np.ndarray               # expected lead time: nominal + mean delay (rounded), months
    opt_lead_base: np.ndarray          # nominal lead time
    opt_delay_mean: np.ndarray         # mean extra delay (Monte Carlo: Poisson)
    opt_fill: np.ndarray               # expected fraction of an order delivered (mean of the fill range)
    opt_fill_range: np.ndarray         # (O, 2) fill-rate range sampled by the Monte Carlo
    opt_max_month: np.ndarray
    opt_max_total: np.ndarray
    order_ok: np.ndarray               # (O, T) bool: an order in month tau arrives in the horizon, allowed
    new_surv: np.ndarray               # (C, T) survival of a new chip k months after arrival
    rent_chip: np.ndarray              # (R,) chip index
    rent_usd_month: np.ndarray
    rent_max: np.ndarray
    gens: list[GenSpec]
    patterns: Patterns
    notes: list[str] = field(default_factory=list)

    @property
    def months(self) -> list[str]:
        return [month_name(self.t0 + t) for t in range(self.T)]

    @property
    def P(self) -> int:
        return len(self.pool_chip)

    def pool_name(self, p: int) -> str:
        return f"{self.chips[self.pool_chip[p]]}@{self.clusters[self.pool_cluster[p]]}"

    def arrival_coef(self, o: int, usable: bool = True) -> np.ndarray:
        """(T_order, T): chips on hand in month t per chip ordered in month tau (survival after arrival),
        times the policy usability of the chip unless `usable` is False."""
        T, lead = self.T, int(self.opt_lead[o])
        c = self.pool_chip[self.opt_pool[o]]
        k = np.arange(T)[None, :] - (np.arange(T)[:, None] + lead)
        out = np.where(k >= 0, self.new_surv[c][np.clip(k, 0, T - 1)], 0.0) * self.opt_fill[o]
        return out * self.usable[c][None, :] if usable else out


def event_masks(chips: list[str], T: int, events: list[tuple[PolicyEvent, int | None]]) -> tuple[np.ndarray, np.ndarray]:
    """(usable (C, T), deliverable (C, T)) from events as (event, month index from the start, or None if the
    event does not happen). A chip gated by an allow_purchase event that does not happen is never delivered."""
    C = len(chips)
    usable, deliver = np.ones((C, T)), np.ones((C, T), bool)
    tt = np.arange(T)
    for ev, m in events:
        if ev.chip.lower() not in chips:
            continue
        c = chips.index(ev.chip.lower())
        if ev.effect == "allow_purchase":
            deliver[c, tt < (m if m is not None else T)] = False
        elif m is None:
            continue
        elif ev.effect == "no_use":
            usable[c, tt >= m] = 0.0
        else:
            deliver[c, tt >= m] = False
    return usable, deliver


def chip_power_w(s: Scenario, chip_id: str) -> float:
    """All-in maximum power per accelerator, W: a scenario override, else (TDP x host_overhead)."""
    from stockpile.catalog import get_chip
    ov = {k.lower(): v for k, v in s.chips.items()}.get(chip_id)
    if ov and ov.power_w:
        return ov.power_w
    tdp = ov.tdp_w if ov and ov.tdp_w else None
    if tdp is None:
        fig = get_chip(chip_id).tdp_w
        if fig is None:
            raise InputError(f"chips.{chip_id}.power_w", f"the catalog has no sourced TDP for {chip_id}; give "
                             "its all-in power per accelerator (W) in the scenario's chips section, with a source")
        tdp = fig.value
    return tdp * s.costs.host_overhead


def _gen_size(g: Generation) -> tuple[float, float]:
    if g.model:
        from stockpile.catalog import get_model
        m = get_model(g.model)
        return g.params_b or m.params / 1e9, g.active_params_b or m.active_params / 1e9
    total = g.params_b or g.active_params_b
    assert total is not None  # the schema requires one of them
    return total, g.active_params_b or total


def default_rates(s: Scenario) -> Rates:
    t = s.training
    fallback = mfu_training_rate(t.mfu, t.precision, t.mfu_by_chip)
    models = {_gen_size(g): (g.model, g.max_chips) for g in t.generations if g.model}
    training = search_training_rate(fallback, models=models, precision=t.precision)
    notes = []
    if models:
        notes.append("training rates of generations naming a catalog model come from the layout search "
                     "(stockpile.search.training) where it runs, else from the MFU rule")
    return Rates(serving=default_serving_rate, training=training, notes=notes)


def compile_problem(s: Scenario, rates: Rates | None = None) -> Problem:
    """Scenario -> arrays for the MILP and the Monte Carlo (see module docstring)."""
    rates = rates or default_rates(s)
    serving = rates.serving
    training = rates.training or mfu_training_rate(s.training.mfu, s.training.precision, s.training.mfu_by_chip)
    T, t0 = s.horizon_months, s.start_index
    tt = np.arange(T)
    chips: list[str] = []
    for cid in [i.chip for i in s.stock] + [o.chip for o in s.procurement] + [r.chip for r in s.costs.rental]:
        if cid.lower() not in chips:
            chips.append(cid.lower())
    clusters = [c.id for c in s.clusters] or []
    for it in s.stock:
        if it.cluster not in clusters:
            clusters.append(it.cluster)
    if not clusters:
        clusters = ["default"]
    for o in s.procurement:
        if o.cluster and o.cluster not in clusters:
            clusters.append(o.cluster)
    pools: list[tuple[int, int]] = []

    def pool_of(chip: str, cluster: str) -> int:
        key = (chips.index(chip.lower()), clusters.index(cluster))
        if key not in pools:
            pools.append(key)
        return pools.index(key)

    # --- stock cohorts and attrition (proportional-hazard multiplier per chip)
    curve = sorted((a.age_years, a.annual_rate) for a in s.attrition.curve) or [(0.0, 0.0)]
    mult = {k.lower(): v for k, v in s.attrition.chip_multiplier.items()}
    retire = s.attrition.retire_age_years * 12 if s.attrition.retire_age_years else None
    c_pool, c_count, c_age = [], [], []
    for it in s.stock:
        c_pool.append(pool_of(it.chip, it.cluster))
        c_count.append(float(it.count))
        age = it.age_months if it.age_months is not None else (
            t0 - month_index(it.acquired) if it.acquired else 0)
        c_age.append(float(age))
    for o in s.procurement:
        pool_of(o.chip, o.cluster or clusters[0])
    cohort_surv = np.ones((len(c_pool), T))
    for i in range(len(c_pool)):
        m = mult.get(chips[pools[c_pool[i]][0]], 1.0)
        cohort_surv[i] = survival(np.array([c_age[i]]), T, curve, m, retire)[0]
    P = len(pools)
    pool_chip = np.array([p[0] for p in pools], int)
    pool_cluster = np.array([p[1] for p in pools], int)
    stock = np.zeros((P, T))
    for i in range(len(c_pool)):
        stock[c_pool[i]] += c_count[i] * cohort_surv[i]
    new_surv = np.vstack([survival(np.zeros(1), T, curve, mult.get(c, 1.0), retire)[0] for c in chips]) \
        if chips else np.zeros((0, T))

    # --- policy events: the plan assumes those more likely than not
    ev = [(e, month_index(e.date) - t0 if e.probability >= 0.5 else None) for e in s.policy_events]
    usable, deliver = event_masks(chips, T, ev)

    # --- power and energy
    cl = {c.id: c for c in s.clusters}
    pue = np.array([(cl[k].pue if k in cl and cl[k].pue else s.costs.pue) for k in clusters])
    price = np.array([(cl[k].power_usd_per_kwh if k in cl and cl[k].power_usd_per_kwh is not None
                       else s.costs.power_usd_per_kwh) for k in clusters])
    cap = np.array([(float(cl[k].power_mw or 0.0) * 1e3 / pue[i] if k in cl and cl[k].power_mw else np.inf)
                    for i, k in enumerate(clusters)])
    power_kw = np.array([chip_power_w(s, chips[c]) / 1e3 for c in pool_chip]) if P else np.zeros(0)
    energy = power_kw * s.costs.average_power_fraction * pue[pool_cluster] * HOURS_PER_MONTH * price[pool_cluster]

    # --- inference demand and rates
    W = len(s.inference)
    demand, base, growth, launch = np.zeros((W, T)), np.zeros(W), np.zeros(W), np.zeros(W, int)
    rate = np.zeros((W, len(chips)))
    for w, wl in enumerate(s.inference):
        per_day = (wl.tokens_per_day * wl.osl / (wl.isl + wl.osl) if wl.tokens_per_day is not None
                   else (wl.requests_per_day or 0.0) * wl.osl)
        base[w] = per_day / 86400.0 * wl.peak_to_mean
        growth[w] = wl.monthly_growth
        launch[w] = (month_index(wl.start) - t0) if wl.start else 0
        k = tt - launch[w]
        demand[w] = np.where(k >= 0, base[w] * (1.0 + growth[w]) ** np.maximum(k, 0), 0.0)
        allowed = {c.lower() for c in wl.chips} if wl.chips else None
        for c, cid in enumerate(chips):
            if allowed is not None and cid not in allowed:
                continue
            if wl.weight_dtype and serving is default_serving_rate:
                r = default_serving_rate(wl.model, cid, wl.isl, wl.osl, wl.ttft_ms, wl.tpot_ms, wl.weight_dtype)
            else:
                r = serving(wl.model, cid, wl.isl, wl.osl, wl.ttft_ms, wl.tpot_ms)
            rate[w, c] = max(0.0, float(r))

    # --- procurement: the plan uses the expected lead time (nominal + mean delay) and the expected fill
    O = len(s.procurement)
    u = s.uncertainty
    opt_pool = np.array([pool_of(o.chip, o.cluster or clusters[0]) for o in s.procurement], int)
    delay_mean = np.array([o.delay_mean_months if o.delay_mean_months is not None
                           else u.procurement_delay_mean_months for o in s.procurement])
    fill_range = np.array([[(o.fill_rate or u.fill_rate).low, (o.fill_rate or u.fill_rate).high]
                           for o in s.procurement]).reshape(-1, 2)
    lead = np.array([o.lead_time_months for o in s.procurement], int) + np.rint(delay_mean).astype(int)
    order_ok = np.zeros((O, T), bool)
    for i, o in enumerate(s.procurement):
        first = month_index(o.available_from) - t0 if o.available_from else 0
        last = month_index(o.available_until) - t0 if o.available_until else T
        arrive = tt + lead[i]
        c = chips.index(o.chip.lower())
        ok = (tt >= first) & (tt <= last) & (arrive < T)
        ok &= deliver[c, np.clip(arrive, 0, T - 1)]
        order_ok[i] = ok
    rent_chip = np.array([chips.index(r.chip.lower()) for r in s.costs.rental], int)

    prob = Problem(
        scenario=s, T=T, t0=t0, chips=chips, clusters=clusters, pool_chip=pool_chip, pool_cluster=pool_cluster,
        cohort_pool=np.array(c_pool, int), cohort_count=np.array(c_count), cohort_age0=np.array(c_age),
        cohort_surv=cohort_surv, stock=stock, usable=usable, power_kw=power_kw, energy_usd=energy,
        cluster_cap_kw=cap, workloads=[w.name for w in s.inference], demand=demand, demand_base=base,
        growth=growth, launch=launch, rate=rate, opt_pool=opt_pool,
        opt_price=np.array([o.price_usd for o in s.procurement]),
        opt_lead=lead, opt_lead_base=np.array([o.lead_time_months for o in s.procurement], int),
        opt_delay_mean=delay_mean, opt_fill=fill_range.mean(axis=1), opt_fill_range=fill_range,
        opt_max_month=np.array([o.max_per_month for o in s.procurement]),
        opt_max_total=np.array([o.max_total if o.max_total is not None else np.inf for o in s.procurement]),
        order_ok=order_ok, new_surv=new_surv, rent_chip=rent_chip,
        rent_usd_month=np.array([r.usd_per_gpu_hour * HOURS_PER_MONTH for r in s.costs.rental]),
        rent_max=np.array([r.max_gpus for r in s.costs.rental]), gens=[],
        patterns=Patterns(*(np.zeros(0, int),) * 4, *(np.zeros(0),) * 3, np.zeros(0, int), np.zeros(0, int),
                          np.zeros(0)))
    prob.gens = [_gen_spec(s, g, chips, training, t0) for g in s.training.generations]
    names = [g.name for g in s.training.generations]
    for g, spec in zip(s.training.generations, prob.gens):
        spec.after = names.index(g.after) if g.after else None
    prob.patterns = _patterns(prob)
    for w, wl in enumerate(s.inference):
        if not rate[w].any():
            prob.notes.append(f"workload '{wl.name}': no chip in the fleet serves {wl.model} within its SLO "
                              "(all its demand is unmet)")
    return prob


def _gen_spec(s: Scenario, g: Generation, chips: list[str], training: object, t0: int) -> GenSpec:
    params_b, active_b = _gen_size(g)
    tokens = float(g.tokens) if g.tokens is not None else float(g.compute_flop or 0.0) / (6.0 * active_b * 1e9)
    allowed = {c.lower() for c in g.chips} if g.chips else None
    gpu_hours: dict[int, float] = {}
    for c, cid in enumerate(chips):
        if allowed is not None and cid not in allowed:
            continue
        if g.mfu is not None:
            from stockpile.fleet.rates import mfu_tokens_per_s, peak_training_flops
            tps = mfu_tokens_per_s(active_b * 1e9, peak_training_flops(cid, s.training.precision), g.mfu)
        else:
            try:
                tps = float(training(params_b, active_b, cid))  # type: ignore[operator]
            except Exception:  # noqa: BLE001 - a chip without a sourced peak cannot train; say so, go on
                tps = 0.0
        if tps > 0:
            gpu_hours[c] = tokens / tps / 3600.0 / s.training.goodput
    return GenSpec(name=g.name, params_b=params_b, active_params_b=active_b, tokens=tokens,
                   earliest=max(0, month_index(g.earliest_start) - t0) if g.earliest_start else 0,
                   deadline=month_index(g.deadline) - t0, after=None, gpu_hours=gpu_hours,
                   late_penalty=(g.late_penalty_usd_per_month if g.late_penalty_usd_per_month is not None
                                 else s.training.late_penalty_usd_per_month),
                   miss_penalty=g.miss_penalty_usd if g.miss_penalty_usd is not None else s.training.miss_penalty_usd)


def size_ladder(lo: int, hi: int, steps: int = 4) -> list[int]:
    """Chip counts tried between min and max: geometric steps, rounded to whole 8-GPU nodes when possible."""
    if lo == hi:
        return [lo]
    vals = np.geomspace(lo, hi, steps)
    out = sorted({int(v) if v < 16 else int(round(v / 8.0) * 8) for v in vals} | {lo, hi})
    return [v for v in out if lo <= v <= hi]


def _patterns(pb: Problem) -> Patterns:
    s, T = pb.scenario, pb.T
    # Upper bound on chips a pool can hold in month t: its stock plus everything orderable by then.
    ub = pb.stock * pb.usable[pb.pool_chip]
    for o in range(len(pb.opt_pool)):
        cum = np.cumsum(np.where(pb.order_ok[o], pb.opt_max_month[o], 0.0))
        lead = int(pb.opt_lead[o])
        add = np.concatenate([np.zeros(min(lead, T)), cum[: max(T - lead, 0)]])
        ub[pb.opt_pool[o]] += np.minimum(add, pb.opt_max_total[o]) * pb.opt_fill[o]
    rows: dict[str, list] = {k: [] for k in ("gen", "pool", "start", "size", "months", "end", "late")}
    occ_r, occ_t, occ_v = [], [], []
    for gi, (g, spec) in enumerate(zip(s.training.generations, pb.gens)):
        sizes = sorted(set(g.sizes)) if g.sizes else size_ladder(g.min_chips, g.max_chips)
        for p in range(pb.P):
            c = int(pb.pool_chip[p])
            if c not in spec.gpu_hours or (g.clusters and pb.clusters[pb.pool_cluster[p]] not in g.clusters):
                continue
            for n in sizes:
                dur = spec.gpu_hours[c] / (n * HOURS_PER_MONTH)
                for t in range(spec.earliest, T):
                    end = t + dur
                    if end > T + 1e-9 or n > ub[p, t] + 1e-6:
                        continue
                    q = len(rows["gen"])
                    for k, v in (("gen", gi), ("pool", p), ("start", t), ("size", n), ("months", dur), ("end", end),
                                 ("late", max(0.0, end - (spec.deadline + 1)))):
                        rows[k].append(v)
                    for m in range(t, min(T, math.ceil(end - 1e-9))):
                        occ_r.append(q)
                        occ_t.append(m)
                        occ_v.append(n * min(1.0, end - m))
    return Patterns(gen=np.array(rows["gen"], int), pool=np.array(rows["pool"], int),
                    start=np.array(rows["start"], int), size=np.array(rows["size"], int),
                    months=np.array(rows["months"], float), end=np.array(rows["end"], float),
                    late=np.array(rows["late"], float), occ_rows=np.array(occ_r, int), occ_t=np.array(occ_t, int),
                    occ_val=np.array(occ_v, float))
