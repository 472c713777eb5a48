"""Runway under uncertainty: Monte Carlo over demand growth, failure rates, procurement delays and policy events.

Each sample runs a capacity-versus-demand recursion over the months with the plan held fixed (its training
runs, procurement orders and inference mix), vectorised over samples with numpy (docs/fleet-model.md, section 3):

    A[s,p,t]  chips on hand = sum_cohorts n * S(t)^m_s + sum_orders q * f_s,o * S_new(t - a_s)^m_s, times usability
    training  each planned run takes min(n, A - other runs) chips a month until its GPU-hours are done
    need[s,c] = sum_w N[s,w] * phi[w,c] / r[w,c]           chips of type c the plan's mix needs for demand N
    unmet     = max(0, sum_c short_c/need_c * load_c - sum_c spare_c * rbar_c)   (spare chips cover shortfalls)
    runway_s  = first month with unmet > tolerance * demand

Policy events with 0 < probability < 1 split the samples by which events occur; the MILP is re-solved once for
each of the most frequent outcome patterns (``max_resolves``), so a sample is judged against the plan made for
its policy world, and only there: everything else is the numpy recursion.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from stockpile.errors import InputError
from stockpile.fleet.milp import Solution
from stockpile.fleet.problem import HOURS_PER_MONTH, Problem
from stockpile.fleet.scenario import month_index

CHUNK = 2000
BACKENDS = ("numpy", "process", "ray")


@dataclass
class PlanView:
    """What the recursion needs from one solved plan."""

    phi: np.ndarray          # (T, W, C) share of w's own-chip tokens carried by chip type c
    mix: np.ndarray          # (T, W, C) phi / rate: chips of c per token/s of w
    rented: np.ndarray       # (W, T) output tokens/s served by rented GPUs
    runs: list[tuple[int, int, int, int, float, float]]  # (gen, pool, start, chips, gpu_hours, end)
    orders: list[tuple[int, int, float]]                 # (option, order month, chips)
    power_cap: np.ndarray    # (P, T) chips a pool may run under its cluster's power limit (inf: unlimited)


def plan_view(pb: Problem, sol: Solution) -> PlanView:
    W, C, T = len(pb.workloads), len(pb.chips), pb.T
    xc = np.zeros((W, C, T))
    for i, (w, p) in enumerate(sol.pairs):
        xc[w, pb.pool_chip[p]] += sol.x[i]
    tokens = pb.rate[:, :, None] * xc                                          # (W, C, T)
    on_hand_c = np.zeros((C, T))
    np.add.at(on_hand_c, pb.pool_chip, pb.stock)
    fallback = pb.rate[:, :, None] * on_hand_c[None, :, :] + pb.rate[:, :, None] * 1e-9
    tot = tokens.sum(axis=1, keepdims=True)
    share = np.where(tot > 0, tokens / np.where(tot > 0, tot, 1.0),
                     fallback / np.maximum(fallback.sum(axis=1, keepdims=True), 1e-300))
    phi = np.transpose(share, (2, 0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        mix = np.where(pb.rate[None] > 0, phi / pb.rate[None], 0.0)
    rented = np.zeros((W, T))
    for i, (w, j) in enumerate(sol.rent_pairs):
        rented[w] += pb.rate[w, pb.rent_chip[j]] * sol.rent[i]
    pat = pb.patterns
    runs = [(int(pat.gen[q]), int(pat.pool[q]), int(pat.start[q]), int(pat.size[q]),
             pb.gens[pat.gen[q]].gpu_hours[int(pb.pool_chip[pat.pool[q]])], float(pat.end[q]))
            for q in np.nonzero(sol.y > 0.5)[0]]
    runs.sort(key=lambda r: r[2])
    orders = [(int(o), int(t), float(sol.buy[o, t])) for o, t in zip(*np.nonzero(sol.buy > 1e-6))]
    power_cap = np.full((pb.P, T), np.inf)
    dual = sol.duals.get("power")
    if dual is not None:
        busy = _busy(pb, sol)
        limited = np.nonzero(np.isfinite(pb.cluster_cap_kw))[0]
        for i, k in enumerate(limited):
            bind = np.abs(dual[i]) > 1e-9
            for p in np.nonzero(pb.pool_cluster == k)[0]:
                power_cap[p, bind] = busy[p, bind]
    return PlanView(phi=phi, mix=mix, rented=rented, runs=runs, orders=orders, power_cap=power_cap)


def _busy(pb: Problem, sol: Solution) -> np.ndarray:
    busy = np.zeros((pb.P, pb.T))
    for i, (_, p) in enumerate(sol.pairs):
        busy[p] += sol.x[i]
    pat = pb.patterns
    sel = sol.y[pat.occ_rows] > 0.5
    np.add.at(busy, (pat.pool[pat.occ_rows[sel]], pat.occ_t[sel]), pat.occ_val[sel])
    return busy


@dataclass
class EventDraws:
    occurs: np.ndarray       # (S, E) bool
    month: np.ndarray        # (S, E) month index relative to the start


def draw_events(pb: Problem, samples: int, seed: int) -> EventDraws:
    evs = pb.scenario.policy_events
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    occurs = np.zeros((samples, len(evs)), bool)
    month = np.zeros((samples, len(evs)), int)
    for e, ev in enumerate(evs):
        occurs[:, e] = rng.random(samples) < ev.probability
        jitter = np.rint(rng.normal(0.0, ev.date_sd_months, samples)) if ev.date_sd_months > 0 else 0
        month[:, e] = month_index(ev.date) - pb.t0 + jitter
    return EventDraws(occurs, month)


def _chunk(pb: Problem, views: list[PlanView], view_of: np.ndarray, ev: EventDraws, seed_seq: Any,
           tolerance: float) -> dict[str, np.ndarray]:
    """The recursion for one chunk of samples; returns per-sample runway and run ends, per-month coverage."""
    s, T, W, C, P = pb.scenario, pb.T, len(pb.workloads), len(pb.chips), pb.P
    u = s.uncertainty
    S = len(view_of)
    rng = np.random.default_rng(seed_seq)
    tt = np.arange(T)
    # demand: persistent growth and level shocks, partly common to all workloads
    rho = u.demand_correlation

    def mixed(shape: tuple[int, ...]) -> np.ndarray:
        return np.sqrt(rho) * rng.standard_normal((shape[0], 1)) + np.sqrt(1 - rho) * rng.standard_normal(shape)
    sd = np.array([w.growth_sd if w.growth_sd is not None else u.demand_growth_sd for w in s.inference])
    growth = np.maximum(pb.growth[None, :] + sd[None, :] * mixed((S, W)), -0.99)
    level = np.exp(u.demand_level_sd * mixed((S, W)))
    k = tt[None, None, :] - pb.launch[None, :, None]
    demand = np.where(k >= 0, (pb.demand_base * level)[:, :, None]
                      * (1.0 + growth[:, :, None]) ** np.maximum(k, 0), 0.0)        # (S, W, T)
    # attrition: proportional-hazard multiplier, median 1
    mult = np.exp(u.attrition_sigma * rng.standard_normal(S))
    onehot = np.zeros((len(pb.cohort_pool), P))
    onehot[np.arange(len(pb.cohort_pool)), pb.cohort_pool] = pb.cohort_count
    surv = pb.cohort_surv[None] ** mult[:, None, None]                                  # (S, K, T)
    on_hand = np.einsum("skt,kp->spt", surv, onehot)
    # policy events in each sample
    usable = np.ones((S, C, T))
    no_buy = np.full((S, C), np.inf)
    allow = np.full((S, C), -np.inf)
    for e, evt in enumerate(s.policy_events):
        c = pb.chips.index(evt.chip.lower()) if evt.chip.lower() in pb.chips else None
        if c is None:
            continue
        occ, m = ev.occurs[:, e], ev.month[:, e].astype(float)
        if evt.effect == "no_use":
            usable[:, c, :] *= ~(occ[:, None] & (tt[None, :] >= m[:, None]))
        elif evt.effect == "no_purchase":
            no_buy[:, c] = np.minimum(no_buy[:, c], np.where(occ, m, np.inf))
        else:
            allow[:, c] = np.maximum(allow[:, c], np.where(occ, m, np.inf))
    gp = rng.uniform(u.goodput.low, u.goodput.high, S)
    O = len(pb.opt_pool)
    delay = np.stack([rng.poisson(d, S) for d in pb.opt_delay_mean], 1) if O else np.zeros((S, 0), int)
    fill = np.stack([rng.uniform(lo, hi, S) for lo, hi in pb.opt_fill_range], 1) if O else np.zeros((S, 0))

    pool_onehot = np.zeros((P, C))
    pool_onehot[np.arange(P), pb.pool_chip] = 1.0
    runway = np.full(S, T)
    covered = np.ones((S, T))
    n_gen = len(pb.gens)
    gen_end = np.full((S, n_gen), np.inf)
    for vi, view in enumerate(views):
        idx = np.nonzero(view_of == vi)[0]
        if not len(idx):
            continue
        A = on_hand[idx].copy()
        for o, tau, qty in view.orders:
            p, c = pb.opt_pool[o], pb.pool_chip[pb.opt_pool[o]]
            # a late licence postpones deliveries; a ban (or a licence that never comes) loses them
            arrive = np.maximum(tau + pb.opt_lead_base[o] + delay[idx, o], allow[idx, c])
            ok = (arrive < no_buy[idx, c]) & np.isfinite(arrive)
            arrive = np.where(ok, arrive, T).astype(int)
            age = tt[None, :] - arrive[:, None]
            sv = np.where(age >= 0, pb.new_surv[c][np.clip(age, 0, T - 1)], 0.0) ** mult[idx, None]
            A[:, p, :] += (qty * fill[idx, o] * ok)[:, None] * sv
        A *= usable[idx][:, pb.pool_chip, :]
        A = np.minimum(A, view.power_cap[None])
        # training runs in plan order; a run uses what is left of its pool, its successor waits for it
        used = np.zeros_like(A)
        n_s = len(idx)
        for g, p, start, n, hours, _ in view.runs:
            spec = pb.gens[g]
            work = hours * s.training.goodput           # GPU-hours at full goodput
            begin = np.full(n_s, float(start))
            if spec.after is not None:
                begin = np.maximum(begin, np.ceil(gen_end[idx, spec.after] - 1e-9))
            done = np.zeros(n_s)
            end = np.full(n_s, np.inf)
            for t in range(start, T):
                active = (begin <= t) & ~np.isfinite(end)
                if not active.any():
                    if np.all(np.isfinite(end) | (begin > T)):
                        break
                    continue
                chips = np.clip(np.minimum(n, A[:, p, t] - used[:, p, t]), 0, None) * active
                rate = chips * HOURS_PER_MONTH * gp[idx]
                need = work - done
                fin = active & (rate >= need) & (rate > 0)
                frac = np.where(fin, need / np.where(rate > 0, rate, 1.0), 1.0)
                end = np.where(fin, t + frac, end)
                done += rate
                used[:, p, t] += chips * frac
            gen_end[idx, g] = end
        free = A - used                                                             # (n, P, T)
        avail = np.einsum("spt,pc->sct", free, pool_onehot)
        for t in range(T):
            dem = demand[idx, :, t]
            total = dem.sum(axis=1)
            need_tok = np.maximum(dem - view.rented[None, :, t], 0.0)
            need = need_tok @ view.mix[t]                                           # (n, C) chips
            load = need_tok @ view.phi[t]                                           # (n, C) tokens/s
            short = np.maximum(need - avail[:, :, t], 0.0)
            spare = np.maximum(avail[:, :, t] - need, 0.0)
            short_tok = np.where(need > 0, short / np.where(need > 0, need, 1.0) * load, 0.0).sum(axis=1)
            own = need_tok.sum(axis=1)
            rbar = (need_tok @ pb.rate) / np.where(own > 0, own, 1.0)[:, None]
            unmet = np.clip(short_tok - (spare * rbar).sum(axis=1), 0.0, own)
            frac_unmet = np.where(total > 0, unmet / np.where(total > 0, total, 1.0), 0.0)
            covered[idx, t] = 1.0 - frac_unmet
            first = (frac_unmet > tolerance) & (runway[idx] == T)
            runway[idx[first]] = t
    return {"runway": runway, "covered": covered, "gen_end": gen_end}


@dataclass
class RunwayResult:
    samples: int
    backend: str
    seconds: float
    runway: np.ndarray        # (S,) first month index not meeting demand; T = beyond the horizon
    covered: np.ndarray       # (S, T) fraction of demand served
    gen_end: np.ndarray       # (S, G) fractional month index of each generation's end (inf: not done)
    resolves: int
    patterns: int


def _run_chunks(backend: str, jobs: list[tuple]) -> list[dict[str, np.ndarray]]:
    if backend == "numpy" or len(jobs) == 1:
        return [_chunk(*j) for j in jobs]
    if backend == "process":
        import os
        from concurrent.futures import ProcessPoolExecutor
        workers = max(1, min(len(jobs), os.cpu_count() or 1))
        with ProcessPoolExecutor(max_workers=workers) as ex:
            return list(ex.map(_chunk_star, jobs))
    import ray  # type: ignore[import-not-found,unused-ignore]
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(_chunk_star)
    return list(ray.get([remote.remote(j) for j in jobs]))


def _chunk_star(job: tuple) -> dict[str, np.ndarray]:
    return _chunk(*job)


def check_backend(backend: str) -> str:
    b = backend.strip().lower()
    if b not in BACKENDS:
        raise InputError("backend", f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if b == "ray":
        try:
            import ray  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
        except ImportError:
            raise InputError("backend", "ray is not installed (pip install ray), or use --backend numpy "
                                        "(default) or process") from None
    return b


def monte_carlo(pb: Problem, sol: Solution, *, samples: int = 10_000, seed: int | None = None,
                backend: str = "numpy", resolve: Callable[[list[bool]], tuple[Problem, Solution]] | None = None,
                max_resolves: int = 3) -> RunwayResult:
    """Runway distribution of the plan `sol` (see module docstring). `resolve(occurs)` re-plans a policy world."""
    backend = check_backend(backend)
    if samples < 1:
        raise InputError("samples", f"must be at least 1, got {samples}")
    t_start = time.perf_counter()
    seed = pb.scenario.uncertainty.seed if seed is None else seed
    ev = draw_events(pb, samples, seed)
    views = [plan_view(pb, sol)]
    view_of = np.zeros(samples, int)
    base = tuple(e.probability >= 0.5 for e in pb.scenario.policy_events)
    uncertain = [i for i, e in enumerate(pb.scenario.policy_events) if 0 < e.probability < 1]
    resolves = 0
    keys = [tuple(bool(v) for v in row) for row in ev.occurs[:, uncertain]] if uncertain else []
    counts = Counter(keys)
    if resolve is not None and uncertain:
        base_key = tuple(base[i] for i in uncertain)
        for key, _ in counts.most_common():
            if resolves >= max_resolves:
                break
            if key == base_key:
                continue
            occ = list(base)
            for i, v in zip(uncertain, key):
                occ[i] = v
            pb_k, sol_k = resolve(occ)
            views.append(plan_view(pb_k, sol_k) if pb_k.P == pb.P else views[0])
            resolves += 1
            match = np.array([k == key for k in keys])
            view_of[match] = len(views) - 1
    n_chunks = -(-samples // CHUNK)
    seqs = np.random.SeedSequence(seed).spawn(n_chunks)
    tol = pb.scenario.runway_tolerance
    jobs = []
    for i in range(n_chunks):
        sl = slice(i * CHUNK, min(samples, (i + 1) * CHUNK))
        jobs.append((pb, views, view_of[sl], EventDraws(ev.occurs[sl], ev.month[sl]), seqs[i], tol))
    parts = _run_chunks(backend, jobs)
    return RunwayResult(samples=samples, backend=backend, seconds=time.perf_counter() - t_start,
                        runway=np.concatenate([p["runway"] for p in parts]),
                        covered=np.concatenate([p["covered"] for p in parts]),
                        gen_end=np.concatenate([p["gen_end"] for p in parts]),
                        resolves=resolves, patterns=max(1, len(counts)))


def quantile_month(runway: np.ndarray, q: float) -> int:
    """The q-quantile of runway months as an actual sample value (inverted CDF)."""
    return int(np.quantile(runway, q, method="inverted_cdf"))
