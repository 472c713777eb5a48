"""Compile a scenario into arrays: months, pools (chip type x cluster), surviving stock, demand and its daily
shape, rates, procurement arrival coefficients, candidate training runs, and the policy worlds of the scenario
tree. The MILP (milp.py) and the Monte Carlo (runway.py) both read this :class:`Problem`; neither touches YAML.

Units: chips, output tokens/s, USD, months (index 0 = the scenario start). Symbols follow docs/fleet-model.md.

Policy worlds. Each event with 0 < probability < 1 is uncertain; a world is one combination of them happening
or not (at most 2^6). A node is what a planner can know in a month: the outcome of the uncertain events
announced by then. Worlds that agree on every announced event share a node, so decisions in that month are the
same for them (non-anticipativity); ``node_of[world, t]`` maps worlds to nodes.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stockpile.errors import InputError
from stockpile.fleet.demand import daily_profile, load_levels
from stockpile.fleet.months import HOURS_PER_MONTH, month_index, month_name, months_touched
from stockpile.fleet.pairs import Duos, compile_duos, no_duos
from stockpile.fleet.scenario import ChipRule, Generation, PolicyEvent, Scenario

# (params_b, active_params_b, chip_id, gpus, model_id) -> (training tokens/s per GPU, goodput) or None
TrainingSpeedFn = Callable[[float, float, str, int, "str | None"], "tuple[float, float] | None"]


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


def survival_tables(s: Scenario, chips: list[str], cohort_chip: list[str], cohort_age0: np.ndarray,
                    T: int) -> tuple[np.ndarray, np.ndarray]:
    """(S_i(t) per stock cohort (cohorts, T), S_new(k) of a chip k months after arrival per chip type (C, T)) from
    the scenario's attrition curve, per-chip multipliers and retirement age."""
    curve = sorted((a.age_years, a.annual_rate) for a in s.attrition.curve) or [(0.0, 0.0)]
    mult = {k.lower(): v for k, v in s.attrition.chip_multiplier.items()}
    retire = s.attrition.retire_age_years * 12 if s.attrition.retire_age_years else None
    cohorts = np.vstack([survival(np.array([a]), T, curve, mult.get(c, 1.0), retire)[0]
                         for c, a in zip(cohort_chip, cohort_age0)]) if len(cohort_chip) else np.zeros((0, T))
    new = np.vstack([survival(np.zeros(1), T, curve, mult.get(c, 1.0), retire)[0] for c in chips]) \
        if chips else np.zeros((0, T))
    return cohorts, new


# ------------------------------------------------------------------ policy
def rule_selects(rule: ChipRule, chip_id: str) -> bool:
    """Whether a chip falls under a rule-based event (its figures at or above the threshold)."""
    from stockpile.catalog import get_chip
    chip = get_chip(chip_id)
    if rule.tpp_at_least is not None:
        return chip.tpp is not None and chip.tpp >= rule.tpp_at_least
    pd = chip.performance_density
    return pd is not None and pd >= float(rule.performance_density_at_least or 0.0)


def event_chips(ev: PolicyEvent, chips: list[str]) -> list[int]:
    """Indices of the chips an event applies to (by id, or every chip its rule selects)."""
    if ev.chip is not None:
        return [chips.index(ev.chip.lower())] if ev.chip.lower() in chips else []
    assert ev.rule is not None  # the schema requires chip or rule
    return [c for c, cid in enumerate(chips) if rule_selects(ev.rule, cid)]


def event_masks(chips: list[str], T: int, events: list[PolicyEvent], month: list[int | None]) -> tuple[
        np.ndarray, np.ndarray]:
    """(usable (C, T), deliverable (C, T)) from events and their months (None: the event does not happen).

    Events compose in date order per chip, a later one overriding an earlier one: no_purchase stops deliveries,
    allow_purchase lets them (re)start, no_use bars use. A chip whose first event (by date, happening or not) is
    an allow_purchase cannot be delivered before it: it was not for sale."""
    C = len(chips)
    usable, deliver = np.ones((C, T)), np.ones((C, T), bool)
    tt = np.arange(T)
    per_chip: dict[int, list[tuple[int, int, PolicyEvent, int | None]]] = {}
    for i, ev in enumerate(events):
        m_i = month[i]
        nominal: int = m_i if m_i is not None else 10**6
        for c in event_chips(ev, chips):
            per_chip.setdefault(c, []).append((nominal, i, ev, month[i]))
    for c, evs in per_chip.items():
        evs.sort(key=lambda e: (e[0], e[1]))
        if min(evs, key=lambda e: (e[2].date, e[1]))[2].effect == "allow_purchase":
            deliver[c] = False
        for _, _, ev, m in evs:
            if m is None:
                continue
            if ev.effect == "no_use":
                usable[c, tt >= m] = 0.0
            else:
                deliver[c, tt >= m] = ev.effect == "allow_purchase"
    return usable, deliver


@dataclass
class Worlds:
    """Policy worlds (combinations of the uncertain events) and the nodes of the scenario tree."""

    uncertain: list[int]          # indices of events with 0 < p < 1
    bits: np.ndarray              # (Omega, U) bool: which uncertain events happen in each world
    prob: np.ndarray              # (Omega,)
    known: np.ndarray             # (U,) month index from the start at which each uncertain event is known
    node_of: np.ndarray           # (Omega, T): node id of each world in each month
    node_t: np.ndarray            # (NM,) month of each node
    node_prob: np.ndarray         # (NM,)
    node_rep: np.ndarray          # (NM,) one world of the node (they agree on everything known)
    leaves: np.ndarray            # (L,) node ids in the last month
    leaf_of: np.ndarray           # (Omega,) leaf of each world

    @property
    def n(self) -> int:
        return len(self.prob)

    @property
    def NM(self) -> int:
        return len(self.node_t)

    def ancestor(self, node: int, t: int) -> int:
        """The node a world of `node` was in at month t (t <= the node's month)."""
        return int(self.node_of[self.node_rep[node], t])


def build_worlds(s: Scenario, T: int) -> Worlds:
    """Enumerate worlds over the uncertain events (probability 0 < p < 1) and group them into nodes by month."""
    evs = s.policy_events
    unc = [i for i, e in enumerate(evs) if 0.0 < e.probability < 1.0]
    U = len(unc)
    bits = np.array(list(itertools.product([False, True], repeat=U)), bool).reshape(2**U, U)
    p = np.array([evs[i].probability for i in unc])
    prob = np.prod(np.where(bits, p[None, :], 1.0 - p[None, :]), axis=1) if U else np.ones(1)
    known = np.array([min(max(month_index(evs[i].known_month) - s.start_index, 0), T) for i in unc], int)
    Om = len(prob)
    node_of = np.zeros((Om, T), int)
    node_t: list[int] = []
    node_prob: list[float] = []
    node_rep: list[int] = []
    for t in range(T):
        seen: dict[tuple[int, ...], int] = {}
        for w in range(Om):
            key = tuple(int(bits[w, j]) if known[j] <= t else -1 for j in range(U))
            if key not in seen:
                seen[key] = len(node_t)
                node_t.append(t)
                node_prob.append(0.0)
                node_rep.append(w)
            node_of[w, t] = seen[key]
            node_prob[seen[key]] += float(prob[w])
    leaves = np.unique(node_of[:, T - 1])
    return Worlds(uncertain=unc, bits=bits, prob=prob, known=known, node_of=node_of, node_t=np.array(node_t, int),
                  node_prob=np.array(node_prob), node_rep=np.array(node_rep, int), leaves=leaves,
                  leaf_of=node_of[:, T - 1].copy())


def world_events(s: Scenario, worlds: Worlds, w: int, t0: int) -> list[int | None]:
    """Month index (from the start) of each event in world w, or None where it does not happen there."""
    out: list[int | None] = []
    for i, ev in enumerate(s.policy_events):
        happens = ev.probability >= 1.0 if i not in worlds.uncertain else bool(
            worlds.bits[w, worlds.uncertain.index(i)])
        out.append(month_index(ev.date) - t0 if happens and ev.probability > 0 else None)
    return out


def world_label(s: Scenario, worlds: Worlds, w: int) -> list[str]:
    """Human names of the uncertain events that happen in world w."""
    out = []
    for j, i in enumerate(worlds.uncertain):
        if worlds.bits[w, j]:
            ev = s.policy_events[i]
            out.append(f"{ev.effect} {ev.chip or 'rule'} {ev.date}")
    return out


# ------------------------------------------------------------------ the compiled problem
@dataclass
class Patterns:
    """Candidate training runs q = (generation, pool, start month, chips): binary y_q in the MILP."""

    gen: np.ndarray
    pool: np.ndarray
    start: np.ndarray
    size: np.ndarray
    months: np.ndarray        # duration d_q = W_gcn / (n HOURS_PER_MONTH), fractional months
    end: np.ndarray           # start + months (fractional month index)
    late: np.ndarray          # months past the deadline's month end, >= 0
    gpu_hours: np.ndarray     # GPU-hours of the whole run at its size, goodput included
    goodput: np.ndarray       # goodput the training model gives the run at its size
    occ_rows: np.ndarray      # sparse occupancy: pattern occ_rows[i] holds its n chips in month occ_t[i]
    occ_t: np.ndarray
    busy_frac: np.ndarray     # (per occupancy entry) fraction of that month the chips compute (energy)

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
    speed: dict[tuple[int, int], tuple[float, float]]   # (chip index, chips) -> (tokens/s per GPU, goodput)
    late_penalty: float
    miss_penalty: float
    rate_note: str = ""

    def gpu_hours(self, c: int, n: int) -> float:
        tps, goodput = self.speed[(c, n)]
        return self.tokens / tps / 3600.0 / goodput


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
    worlds: Worlds
    usable_w: np.ndarray               # (Omega, C, T) 1 where the chip may be used in that world
    deliver_w: np.ndarray              # (Omega, C, T) bool: deliveries may arrive in that month, in that world
    power_kw: np.ndarray               # (P,) all-in maximum kW per chip
    energy_usd: np.ndarray             # (P,) USD per busy chip-month
    cluster_cap_kw: np.ndarray         # (K,) facility kW limit / PUE: accelerator all-in kW allowed (inf = none)
    workloads: list[str]
    demand: np.ndarray                 # (W, T) output tokens/s to serve at the peak hour
    demand_mean: np.ndarray            # (W, T) daily mean output tokens/s
    profile: np.ndarray                # (W, 24) hourly load relative to the mean
    level_len: list[np.ndarray]        # per workload: segment lengths relative to the mean (ascending levels)
    level_hours: list[np.ndarray]      # per workload: hours above each segment
    demand_base: np.ndarray            # (W,) mean output tokens/s at launch
    growth: np.ndarray                 # (W,)
    launch: np.ndarray                 # (W,) month index of launch
    rate: np.ndarray                   # (W, C) output tokens/s per GPU under the SLO; 0 = cannot serve
    rate_given: np.ndarray             # (W, C) bool: the user's throughput_per_gpu
    duos: Duos                         # chip pairs (prefill on one pool, decode on another of the same cluster)
    opt_pool: np.ndarray               # (O,)
    opt_price: np.ndarray              # USD per chip delivered
    opt_lead: np.ndarray               # expected lead time: nominal + mean delay (rounded), months
    opt_lead_base: np.ndarray          # nominal lead time
    opt_delay_mean: np.ndarray         # mean extra delay (Monte Carlo: Poisson)
    opt_fill: np.ndarray               # expected fraction of an order delivered (mean of the fill range)
    opt_fill_range: np.ndarray         # (O, 2) fill-rate range sampled by the Monte Carlo
    opt_max_month: np.ndarray
    opt_max_total: np.ndarray
    opt_window: np.ndarray             # (O, T) bool: an order in month tau is inside the option's window
    new_surv: np.ndarray               # (C, T) survival of a new chip k months after arrival
    rent_chip: np.ndarray              # (R,) chip index
    rent_usd_month: np.ndarray
    rent_max: np.ndarray
    market_usd_month: np.ndarray       # (C,) market rental per chip-month (tco opportunity); nan = none known
    gens: list[GenSpec]
    patterns: Patterns
    notes: list[str] = field(default_factory=list)

    @property
    def months(self) -> list[str]:
        return [month_name(self.t0 + t) for t in range(self.T)]

    @property
    def P(self) -> int:
        return len(self.pool_chip)

    def order_ok(self, o: int, w: int) -> np.ndarray:
        """(T,) bool: an order of option o in month tau is in its window and can arrive in the horizon in world w."""
        T, lead = self.T, int(self.opt_lead[o])
        arrive = np.arange(T) + lead
        c = self.pool_chip[self.opt_pool[o]]
        return self.opt_window[o] & (arrive < T) & self.deliver_w[w, c, np.clip(arrive, 0, T - 1)]

    def arrival_coef(self, o: int) -> np.ndarray:
        """(T_order, T): chips on hand in month t per chip ordered in month tau (fill x survival after arrival);
        whether the order is delivered at all is world-dependent (``order_ok``)."""
        T, lead = self.T, int(self.opt_lead[o])
        c = self.pool_chip[self.opt_pool[o]]
        k = np.arange(T)[None, :] - (np.arange(T)[:, None] + lead)
        return np.where(k >= 0, self.new_surv[c][np.clip(k, 0, T - 1)], 0.0) * self.opt_fill[o]


def chip_power_w(s: Scenario, chip_id: str) -> float:
    """All-in maximum power per accelerator, W: a scenario override, else (TDP x host_overhead)."""
    from stockpile.catalog import get_chip
    ov = {k.lower(): v for k, v in s.chips.items()}.get(chip_id)
    if ov is not None and ov.power_w:
        return float(ov.power_w)
    tdp = ov.tdp_w if ov is not None and isinstance(ov.tdp_w, (int, float)) else None
    if tdp is None:
        fig = get_chip(chip_id).tdp_w
        if fig is None:
            raise InputError(f"chips.{chip_id}.power_w", f"the catalog has no sourced TDP for {chip_id}; give "
                             "its all-in power per accelerator (W) in the scenario's chips section, with a source")
        tdp = fig.value
    return float(tdp) * s.costs.host_overhead


def gen_size(g: Generation) -> tuple[float, float]:
    """(total, active) parameters in billions: the generation's own figures, else its catalog model's."""
    if g.model:
        from stockpile.catalog import get_model
        m = get_model(g.model)
        return g.params_b or m.params / 1e9, g.active_params_b or m.active_params / 1e9
    total = g.params_b or g.active_params_b
    assert total is not None  # the schema requires one of them
    return total, g.active_params_b or total


def size_ladder(lo: int, hi: int, steps: int = 4) -> list[int]:
    """Chip counts tried between min and max: geometric steps, rounded to whole 8-GPU nodes when possible."""
    if lo == hi:
        return [lo]
    vals = np.geomspace(lo, hi, steps)
    out = sorted({int(v) if v < 16 else int(round(v / 8.0) * 8) for v in vals} | {lo, hi})
    return [v for v in out if lo <= v <= hi]


def compile_problem(s: Scenario, serving: Callable[..., float], training: TrainingSpeedFn,
                    pair: Callable[..., Any] | None = None) -> Problem:
    """Scenario -> arrays for the MILP and the Monte Carlo (see module docstring)."""
    T, t0 = s.horizon_months, s.start_index
    tt = np.arange(T)
    chips: list[str] = []
    for cid in [i.chip for i in s.stock] + [o.chip for o in s.procurement] + [r.chip for r in s.costs.rental]:
        if cid.lower() not in chips:
            chips.append(cid.lower())
    clusters = [c.id for c in s.clusters]
    for it in s.stock:
        if it.cluster not in clusters:
            clusters.append(it.cluster)
    clusters = clusters or ["default"]
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
    c_pool, c_count, c_age = [], [], []
    for it in s.stock:
        c_pool.append(pool_of(it.chip, it.cluster))
        c_count.append(float(it.count))
        c_age.append(float(it.age_months if it.age_months is not None else (
            t0 - month_index(it.acquired) if it.acquired else 0)))
    for o in s.procurement:
        pool_of(o.chip, o.cluster or clusters[0])
    cohort_surv, new_surv = survival_tables(s, chips, [chips[pools[p][0]] for p in c_pool], np.array(c_age), T)
    P = len(pools)
    pool_chip = np.array([p[0] for p in pools], int)
    pool_cluster = np.array([p[1] for p in pools], int)
    stock = np.zeros((P, T))
    for i in range(len(c_pool)):
        stock[c_pool[i]] += c_count[i] * cohort_surv[i]

    # --- policy worlds
    worlds = build_worlds(s, T)
    masks = [event_masks(chips, T, s.policy_events, world_events(s, worlds, w, t0)) for w in range(worlds.n)]
    usable_w = np.stack([m[0] for m in masks])
    deliver_w = np.stack([m[1] for m in masks])

    # --- power and energy
    cl = {c.id: c for c in s.clusters}
    pue = np.array([(cl[k].pue if k in cl and cl[k].pue else s.costs.pue) for k in clusters])
    price = np.array([(cl[k].power_usd_per_kwh if k in cl and cl[k].power_usd_per_kwh is not None
                       else s.costs.power_usd_per_kwh) for k in clusters])
    cap = np.array([(float(cl[k].power_mw or 0.0) * 1e3 / pue[i] if k in cl and cl[k].power_mw else np.inf)
                    for i, k in enumerate(clusters)])
    power_kw = np.array([chip_power_w(s, chips[c]) / 1e3 for c in pool_chip]) if P else np.zeros(0)
    energy = power_kw * s.costs.average_power_fraction * pue[pool_cluster] * HOURS_PER_MONTH * price[pool_cluster]

    # --- inference demand, its daily shape, and rates
    W = len(s.inference)
    mean, base, growth, launch = np.zeros((W, T)), np.zeros(W), np.zeros(W), np.zeros(W, int)
    profile = np.ones((W, 24))
    lengths, hours = [], []
    rate, given = np.zeros((W, len(chips))), np.zeros((W, len(chips)), bool)
    for w, wl in enumerate(s.inference):
        per_day = (wl.tokens_per_day * wl.osl / (wl.isl + wl.osl) if wl.tokens_per_day is not None
                   else (wl.requests_per_day or 0.0) * wl.osl)
        base[w] = per_day / 86400.0
        growth[w] = wl.monthly_growth
        launch[w] = (month_index(wl.start) - t0) if wl.start else 0
        k = tt - launch[w]
        mean[w] = np.where(k >= 0, base[w] * (1.0 + growth[w]) ** np.maximum(k, 0), 0.0)
        profile[w] = daily_profile(wl)
        ln, hr = load_levels(profile[w])
        lengths.append(ln)
        hours.append(hr)
        allowed = {c.lower() for c in wl.chips} if wl.chips else None
        user = {k.lower(): v for k, v in wl.throughput_per_gpu.items()}
        for c, cid in enumerate(chips):
            if allowed is not None and cid not in allowed:
                continue
            if cid in user:
                rate[w, c], given[w, c] = user[cid], True
            else:
                rate[w, c] = max(0.0, float(serving(wl.model, cid, wl.isl, wl.osl, wl.ttft_ms, wl.tpot_ms,
                                                    wl.weight_dtype)))
    demand = mean * profile.max(axis=1)[:, None]

    # --- procurement: the plan uses the expected lead time (nominal + mean delay) and the expected fill
    u = s.uncertainty
    delay_mean = np.array([o.delay_mean_months if o.delay_mean_months is not None
                           else u.procurement_delay_mean_months for o in s.procurement])
    fill_range = np.array([[(o.fill_rate or u.fill_rate).low, (o.fill_rate or u.fill_rate).high]
                           for o in s.procurement]).reshape(-1, 2)
    lead = np.array([o.lead_time_months for o in s.procurement], int) + np.rint(delay_mean).astype(int)
    window = np.zeros((len(s.procurement), T), bool)
    for i, o in enumerate(s.procurement):
        first = month_index(o.available_from) - t0 if o.available_from else 0
        last = month_index(o.available_until) - t0 if o.available_until else T
        window[i] = (tt >= first) & (tt <= last)
    market = np.full(len(chips), np.nan)
    for r in s.costs.rental:
        c = chips.index(r.chip.lower())
        market[c] = np.nanmin([market[c], r.usd_per_gpu_hour * HOURS_PER_MONTH])

    pb = Problem(
        scenario=s, T=T, t0=t0, chips=chips, clusters=clusters, pool_chip=pool_chip, pool_cluster=pool_cluster,
        cohort_pool=np.array(c_pool, int), cohort_count=np.array(c_count), cohort_age0=np.array(c_age),
        cohort_surv=cohort_surv, stock=stock, worlds=worlds, usable_w=usable_w, deliver_w=deliver_w,
        power_kw=power_kw, energy_usd=energy, cluster_cap_kw=cap, workloads=[w.name for w in s.inference],
        demand=demand, demand_mean=mean, profile=profile, level_len=lengths, level_hours=hours, demand_base=base,
        growth=growth, launch=launch, rate=rate, rate_given=given, duos=no_duos(),
        opt_pool=np.array([pool_of(o.chip, o.cluster or clusters[0]) for o in s.procurement], int),
        opt_price=np.array([o.price_usd for o in s.procurement]), opt_lead=lead,
        opt_lead_base=np.array([o.lead_time_months for o in s.procurement], int), opt_delay_mean=delay_mean,
        opt_fill=fill_range.mean(axis=1), opt_fill_range=fill_range,
        opt_max_month=np.array([o.max_per_month for o in s.procurement]),
        opt_max_total=np.array([o.max_total if o.max_total is not None else np.inf for o in s.procurement]),
        opt_window=window, new_surv=new_surv,
        rent_chip=np.array([chips.index(r.chip.lower()) for r in s.costs.rental], int),
        rent_usd_month=np.array([r.usd_per_gpu_hour * HOURS_PER_MONTH for r in s.costs.rental]),
        rent_max=np.array([r.max_gpus for r in s.costs.rental]), market_usd_month=market, gens=[],
        patterns=_empty_patterns())
    pb.duos = compile_duos(s, chips, clusters, pools, pb.notes, pair)
    names = [g.name for g in s.training.generations]
    pb.gens = [_gen_spec(s, g, chips, training, t0) for g in s.training.generations]
    for g, spec in zip(s.training.generations, pb.gens):
        spec.after = names.index(g.after) if g.after else None
    pb.patterns = _patterns(pb)
    for i, ev in enumerate(s.policy_events):
        if ev.rule is not None and ev.rule.performance_density_at_least is not None:
            from stockpile.catalog import get_chip
            unknown = [c for c in chips if get_chip(c).performance_density is None]
            if unknown:
                pb.notes.append(f"policy_events[{i}]: the performance-density rule cannot judge "
                                f"{', '.join(unknown)} (no sourced die area), so it does not select them")
    for w, wl in enumerate(s.inference):
        if not rate[w].any():
            pb.notes.append(f"workload '{wl.name}': no chip in the fleet serves {wl.model} within its SLO "
                            "(all its demand is unmet)")
    return pb


def _empty_patterns() -> Patterns:
    z, zi = np.zeros(0), np.zeros(0, int)
    return Patterns(gen=zi, pool=zi, start=zi, size=zi, months=z, end=z, late=z, gpu_hours=z, goodput=z,
                    occ_rows=zi, occ_t=zi, busy_frac=z)


def _gen_spec(s: Scenario, g: Generation, chips: list[str], training: TrainingSpeedFn, t0: int) -> GenSpec:
    params_b, active_b = gen_size(g)
    tokens = float(g.tokens) if g.tokens is not None else float(g.compute_flop or 0.0) / (6.0 * active_b * 1e9)
    allowed = {c.lower() for c in g.chips} if g.chips else None
    sizes = sorted(set(g.sizes)) if g.sizes else size_ladder(g.min_chips, g.max_chips)
    speed: dict[tuple[int, int], tuple[float, float]] = {}
    for c, cid in enumerate(chips):
        if allowed is not None and cid not in allowed:
            continue
        for n in sizes:
            if g.mfu is not None:
                r = _mfu_speed(s, active_b, params_b, cid, n, g.mfu)
            else:
                r = training(params_b, active_b, cid, n, g.model)
            if r is not None and r[0] > 0 and r[1] > 0:
                goodput = s.training.goodput if s.training.goodput is not None else r[1]
                speed[(c, n)] = (float(r[0]), float(goodput))
    note = (f"the user's MFU {g.mfu:.0%} (tokens/s per GPU = MFU x peak / 6 N_active)" if g.mfu is not None
            else "the training model's best layout at each run size, with its goodput")
    return GenSpec(name=g.name, params_b=params_b, active_params_b=active_b, tokens=tokens,
                   earliest=max(0, month_index(g.earliest_start) - t0) if g.earliest_start else 0,
                   deadline=month_index(g.deadline) - t0, after=None, speed=speed,
                   late_penalty=(g.late_penalty_usd_per_month if g.late_penalty_usd_per_month is not None
                                 else s.training.late_penalty_usd_per_month),
                   miss_penalty=g.miss_penalty_usd if g.miss_penalty_usd is not None else s.training.miss_penalty_usd,
                   rate_note=note)


def _mfu_speed(s: Scenario, active_b: float, params_b: float, chip_id: str, gpus: int,
               mfu: float) -> tuple[float, float] | None:
    """A generation's explicit MFU: tokens/s per GPU = MFU x peak / (6 N_active); goodput from the failure model."""
    from stockpile.errors import MissingFigureError
    from stockpile.fleet.rates import mfu_tokens_per_s, peak_training_flops
    from stockpile.perf.goodput import job_goodput
    try:
        peak = peak_training_flops(chip_id, s.training.precision)
    except MissingFigureError:
        return None
    return mfu_tokens_per_s(active_b * 1e9, peak, mfu), job_goodput(gpus, params_b * 1e9).goodput


def _patterns(pb: Problem) -> Patterns:
    """Every (generation, pool, size, start) that fits in the horizon and in the most chips a pool could hold.

    A run holds its n chips in every month it touches (chips are booked by the month); it computes, and draws
    power for energy, only for the fraction of its last month it runs."""
    s, T = pb.scenario, pb.T
    deliver_any: np.ndarray = np.asarray(pb.deliver_w.any(axis=0))
    ub = pb.stock * pb.usable_w.max(axis=0)[pb.pool_chip]
    for o in range(len(pb.opt_pool)):
        c = pb.pool_chip[pb.opt_pool[o]]
        lead = int(pb.opt_lead[o])
        arrive = np.arange(T) + lead
        ok = pb.opt_window[o] & (arrive < T) & deliver_any[c, np.clip(arrive, 0, T - 1)]
        cum = np.cumsum(np.where(ok, pb.opt_max_month[o], 0.0))
        add = np.concatenate([np.zeros(min(lead, T)), cum[: max(T - lead, 0)]])
        ub[pb.opt_pool[o]] += np.minimum(add, pb.opt_max_total[o]) * pb.opt_fill[o]
    rows: dict[str, list] = {k: [] for k in ("gen", "pool", "start", "size", "months", "end", "late", "gpu_hours",
                                             "goodput")}
    occ_r, occ_t, occ_f = [], [], []
    for gi, spec in enumerate(pb.gens):
        for p in range(pb.P):
            c = int(pb.pool_chip[p])
            g = s.training.generations[gi]
            if g.clusters and pb.clusters[pb.pool_cluster[p]] not in g.clusters:
                continue
            for (cc, n), (_, goodput) in spec.speed.items():
                if cc != c:
                    continue
                hours = spec.gpu_hours(c, n)
                dur = hours / (n * HOURS_PER_MONTH)
                for t in range(spec.earliest, T):
                    end = t + dur
                    if end > T + 1e-9:
                        break
                    held = months_touched(t, end)
                    if any(n > ub[p, m] + 1e-6 for m in held):
                        continue
                    q = len(rows["gen"])
                    for k, v in (("gen", gi), ("pool", p), ("start", t), ("size", n), ("months", dur), ("end", end),
                                 ("late", max(0.0, end - (spec.deadline + 1))), ("gpu_hours", hours),
                                 ("goodput", goodput)):
                        rows[k].append(v)
                    for m in held:
                        occ_r.append(q)
                        occ_t.append(m)
                        occ_f.append(min(1.0, end - m))
    return Patterns(gen=np.array(rows["gen"], int), pool=np.array(rows["pool"], int),
                    start=np.array(rows["start"], int), size=np.array(rows["size"], int),
                    months=np.array(rows["months"], float), end=np.array(rows["end"], float),
                    late=np.array(rows["late"], float), gpu_hours=np.array(rows["gpu_hours"], float),
                    goodput=np.array(rows["goodput"], float), occ_rows=np.array(occ_r, int),
                    occ_t=np.array(occ_t, int), busy_frac=np.array(occ_f, float))
