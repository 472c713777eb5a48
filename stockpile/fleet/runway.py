"""Runway under uncertainty: Monte Carlo over demand growth, failure rates, procurement delays and fills, policy
events (whether and when), and training goodput, vectorised over samples with numpy (docs/fleet-model.md, sec. 3).

The plan is a policy on the scenario tree: in month t a sample follows the branch of what it knows then (an
uncertain event counts once the sample has seen it announced; with date jitter the announcement moves with the
date). Its orders and serving mix come from that branch; its training runs are those of its own world's path,
started no earlier than the sample can know the branch. Then a capacity recursion, per month:

    A[s,p,t]   chips on hand = sum_cohorts n S(t)^mu_s + executed orders' deliveries, times usability
    training   each run holds min(n, A - other runs) chips for every month it touches until its work is done
    serving    step 1: the plan's chips of each pool for each workload, scaled to the sample's demand and
               capped by the free chips of the pool and the cluster's power (a chip pair serves the share
               its scarcer pool allows);
               step 2: spare chips of each pool cover the workloads it may serve (proportionally), within power;
               step 3: unused rental capacity covers what is left (where renting costs less than unmet demand)
    unmet      = sum_w max(0, D_peak[s,w,t] - served[s,w])   (at the peak hour; the runway is a peak-hour measure)
    runway_s   = first month with unmet > tolerance * demand

With no uncertainty the recursion reproduces the plan's own runway: step 1 is the plan's allocation. A workload
that no chip may serve stays unmet; idle chips of one type only cover workloads that type may serve.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from stockpile.errors import InputError
from stockpile.fleet.months import HOURS_PER_MONTH, SECONDS_PER_MONTH, month_index
from stockpile.fleet.problem import Problem, event_chips, survival_tables
from stockpile.fleet.solution import Solution, WorldPlan, serving_chips, world_plan

CHUNK = 2000
BACKENDS = ("numpy", "process")
MAX_SAMPLES = 1_000_000


@dataclass
class PlanView:
    """What the recursion needs from one world's path of the plan (all month-indexed)."""

    x: np.ndarray            # (T, W, P) chips of pool p serving w (a chip pair's GPUs split by its share)
    xr: np.ndarray           # (T, P, W) tokens/s of single-pool serving, pool-major for the product in step 1
    duo_tok: np.ndarray      # (T, K) tokens/s of each chip pair (pb.duos)
    cap: np.ndarray          # (T, W) the plan's own serving capacity, tokens/s (pools and pairs, no rental)
    rented: np.ndarray       # (W, T) output tokens/s served by rented GPUs
    rent_used: np.ndarray    # (R, T) rented GPUs per offer
    buy: np.ndarray          # (O, T) chips ordered
    runs: list[int]          # chosen pattern indices


def plan_view(pb: Problem, wp: WorldPlan) -> PlanView:
    W, T, P = len(pb.workloads), pb.T, pb.P
    single = np.zeros((T, W, P))
    for i, (w, p) in enumerate(wp.pairs):
        single[:, w, p] += wp.x[i]
    xr = np.ascontiguousarray(np.transpose(single * pb.rate[:, pb.pool_chip][None], (0, 2, 1)))
    x = np.ascontiguousarray(np.transpose(serving_chips(pb, wp), (2, 0, 1))) if pb.duos.n else single
    duo_tok = np.ascontiguousarray((pb.duos.rate[:, None] * wp.duo).T)
    cap = xr.sum(axis=1)
    np.add.at(cap.T, pb.duos.w, duo_tok.T)
    rented = np.zeros((W, T))
    rent_used = np.zeros((len(pb.rent_chip), T))
    for i, (w, j) in enumerate(wp.rent_pairs):
        rented[w] += pb.rate[w, pb.rent_chip[j]] * wp.rent[i]
        rent_used[j] += wp.rent[i]
    return PlanView(x=x, xr=xr, duo_tok=duo_tok, cap=cap, rented=rented, rent_used=rent_used, buy=wp.buy,
                    runs=[int(q) for q in wp.runs])


@dataclass
class Draws:
    """The per-sample random inputs that do not depend on the plan (drawn once, shared by every plan judged)."""

    occurs: np.ndarray       # (S, E) bool
    month: np.ndarray        # (S, E) event month from the start (jittered)
    known: np.ndarray        # (S, E) month the event is known (jittered with the date)
    growth: np.ndarray       # (S, W)
    level: np.ndarray        # (S, W)
    mult: np.ndarray         # (S,) attrition hazard multiplier
    goodput: np.ndarray      # (S,) goodput drawn from uncertainty.goodput (relative to its mid-point)
    delay: np.ndarray        # (S, O)
    fill: np.ndarray         # (S, O)


def draw(pb: Problem, samples: int, seed: int) -> Draws:
    s, u = pb.scenario, pb.scenario.uncertainty
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    E = len(s.policy_events)
    occurs, month, known = np.zeros((samples, E), bool), np.zeros((samples, E), int), np.zeros((samples, E), int)
    for e, ev in enumerate(s.policy_events):
        occurs[:, e] = rng.random(samples) < ev.probability
        jitter = np.rint(rng.normal(0.0, ev.date_sd_months, samples)).astype(int) if ev.date_sd_months > 0 else 0
        month[:, e] = month_index(ev.date) - pb.t0 + jitter
        known[:, e] = month_index(ev.known_month) - pb.t0 + jitter
    W = len(pb.workloads)
    rho = u.demand_correlation

    def mixed(shape: tuple[int, int]) -> np.ndarray:
        return np.sqrt(rho) * rng.standard_normal((shape[0], 1)) + np.sqrt(1 - rho) * rng.standard_normal(shape)
    sd = np.array([w.growth_sd if w.growth_sd is not None else u.demand_growth_sd for w in s.inference])
    growth = np.maximum(pb.growth[None, :] + sd[None, :] * mixed((samples, W)), -0.99)
    level = np.exp(u.demand_level_sd * mixed((samples, W)))
    mult = np.exp(u.attrition_sigma * rng.standard_normal(samples))
    gp = rng.uniform(u.goodput.low, u.goodput.high, samples)
    O = len(pb.opt_pool)
    delay = np.stack([rng.poisson(d, samples) for d in pb.opt_delay_mean], 1) if O else np.zeros((samples, 0), int)
    fill = np.stack([rng.uniform(lo, hi, samples) for lo, hi in pb.opt_fill_range], 1) if O else np.zeros((samples, 0))
    return Draws(occurs, month, known, growth, level, mult, gp, delay, fill)


def nominal_draws(pb: Problem) -> Draws:
    """One sample with nothing uncertain: medians of every distribution, events as the plan assumes them (the
    most likely world), dates and fills as stated."""
    s = pb.scenario
    E, W, O = len(s.policy_events), len(pb.workloads), len(pb.opt_pool)
    best = int(np.argmax(pb.worlds.prob))
    occurs = np.array([[ev.probability >= 1.0 if i not in pb.worlds.uncertain
                        else bool(pb.worlds.bits[best, pb.worlds.uncertain.index(i)])
                        for i, ev in enumerate(s.policy_events)]], bool).reshape(1, E)
    month = np.array([[month_index(ev.date) - pb.t0 for ev in s.policy_events]], int).reshape(1, E)
    known = np.array([[month_index(ev.known_month) - pb.t0 for ev in s.policy_events]], int).reshape(1, E)
    gr = s.uncertainty.goodput
    return Draws(occurs=occurs, month=month, known=known, growth=pb.growth[None, :].copy(), level=np.ones((1, W)),
                 mult=np.ones(1), goodput=np.array([0.5 * (gr.low + gr.high)]),
                 delay=np.rint(pb.opt_delay_mean)[None, :].astype(int).reshape(1, O),
                 fill=pb.opt_fill[None, :].reshape(1, O))


def _policy(pb: Problem, d: Draws, idx: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: (usable (S, C, T), deliverable (S, C, T), first month a never-yet-allowed chip may arrive
    (S, C)). Events compose per chip in the order of their sampled dates, the later overriding the earlier."""
    s = pb.scenario
    S, C = len(idx), len(pb.chips)
    tt = np.arange(T)
    usable = np.ones((S, C, T))
    deliver = np.ones((S, C, T), bool)
    for c in range(C):
        evs = [e for e, ev in enumerate(s.policy_events) if c in event_chips(ev, pb.chips)]
        if not evs:
            continue
        first = min(evs, key=lambda e: (s.policy_events[e].date, e))
        state = np.full((S, T), s.policy_events[first].effect != "allow_purchase")
        when = np.full((S, T), -np.inf)
        for e in evs:
            ev = s.policy_events[e]
            m = np.where(d.occurs[idx, e], d.month[idx, e], 10**6).astype(float)
            in_force = tt[None, :] >= m[:, None]
            if ev.effect == "no_use":
                usable[:, c, :] *= ~in_force
                continue
            later = in_force & (m[:, None] + 1e-3 * e >= when)
            state = np.where(later, ev.effect == "allow_purchase", state)
            when = np.where(later, m[:, None] + 1e-3 * e, when)
        deliver[:, c, :] = state
    first_ok = np.where(deliver.any(axis=2), np.argmax(deliver, axis=2), T)
    return usable, deliver, first_ok


def _branch(pb: Problem, d: Draws, idx: np.ndarray, T: int) -> np.ndarray:
    """(S, T) world whose branch each sample follows in each month: the uncertain events it has seen announced."""
    wd = pb.worlds
    out = np.zeros((len(idx), T), int)
    for e in wd.uncertain:
        seen = d.occurs[idx, e][:, None] & (np.arange(T)[None, :] >= d.known[idx, e][:, None])
        out = out * 2 + seen.astype(int)          # itertools.product order: the first event is the high bit
    return out


def _own_world(pb: Problem, d: Draws, idx: np.ndarray) -> np.ndarray:
    out = np.zeros(len(idx), int)
    for e in pb.worlds.uncertain:
        out = out * 2 + d.occurs[idx, e].astype(int)
    return out


def evaluate(pb: Problem, views: list[PlanView], d: Draws, idx: np.ndarray, tolerance: float, *,
             T: int | None = None, stop_at_runway: bool = False,
             spare_pools: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The recursion of the module docstring for the samples `idx`; T may exceed the plan's horizon (the
    stock-alone runway): beyond it the plan's last month's serving mix is kept and no decisions are taken.
    With `stop_at_runway` a sample is no longer followed once it fails (its coverage and spare chips stay 0
    from then on): what the stock-alone runway and the ladder need. `spare_pools` (indices) asks for the spare
    chips of those pools after serving, (S, len(spare_pools), T) under "spare" (the ladder's)."""
    s = pb.scenario
    T = T or pb.T
    Tp, W, P = pb.T, len(pb.workloads), pb.P
    S = len(idx)
    tt = np.arange(T)
    # the sample's peak-hour demand in month t, computed month by month (an (S, W, T) array is 384 MB per chunk
    # at 120 months and 200 workloads): start x level x (1 + g)^(t - launch) x the profile's peak
    peak0 = pb.demand_base * d.level[idx] * pb.profile.max(axis=1)[None, :]                        # (S, W)
    log_g = np.log1p(d.growth[idx])

    def peak_at(t: int, rows: np.ndarray) -> np.ndarray:
        k = t - pb.launch
        return np.where(k >= 0, peak0[rows] * np.exp(log_g[rows] * np.maximum(k, 0)), 0.0)
    mult = d.mult[idx]
    surv, new_surv = (pb.cohort_surv, pb.new_surv) if T == Tp else survival_tables(
        s, pb.chips, [pb.chips[c] for c in pb.pool_chip[pb.cohort_pool]], pb.cohort_age0, T)
    A = np.zeros((S, P, T))
    for i in range(len(pb.cohort_pool)):
        A[:, pb.cohort_pool[i], :] += pb.cohort_count[i] * surv[i][None, :] ** mult[:, None]
    usable, deliver, first_ok = _policy(pb, d, idx, T)
    branch = _branch(pb, d, idx, T)
    own = _own_world(pb, d, idx)
    vi = np.minimum(np.arange(T), Tp - 1)              # plan month used in month t (the last one beyond)
    # --- executed orders: each month's orders come from the branch the sample follows then
    for o in range(len(pb.opt_pool)):
        p, c = pb.opt_pool[o], pb.pool_chip[pb.opt_pool[o]]
        for tau in range(Tp):
            qty = np.array([v.buy[o, tau] for v in views])[branch[:, tau]]
            if not (qty > 1e-9).any():
                continue
            arrive = tau + pb.opt_lead_base[o] + d.delay[idx, o]
            arrive = np.maximum(arrive, first_ok[:, c])          # a licence not yet granted postpones deliveries
            ok = arrive < T
            ok[ok] &= deliver[np.nonzero(ok)[0], c, arrive[ok]]   # a ban in force at arrival loses them
            age = tt[None, :] - np.where(ok, arrive, T)[:, None]
            sv = np.where(age >= 0, new_surv[c][np.clip(age, 0, T - 1)], 0.0) ** mult[:, None]
            A[:, p, :] += (qty * d.fill[idx, o] * ok)[:, None] * sv
    barred = [p for p in range(P) if not (usable[:, pb.pool_chip[p], :] == 1.0).all()]    # no_use in some sample
    for p in barred:
        A[:, p, :] *= usable[:, pb.pool_chip[p], :]
    # --- training: the runs of the sample's own world, in start order, none before the sample knows its branch
    n_gen = len(pb.gens)
    gen_end = np.full((S, n_gen), np.inf)
    pat = pb.patterns
    wd = pb.worlds
    runs = sorted({(int(pat.start[q]), q) for v in views for q in v.runs})
    trained = sorted({int(pat.pool[q]) for _, q in runs})            # pools any run holds chips in
    slot = {p: i for i, p in enumerate(trained)}
    used = np.zeros((S, len(trained), T))                             # chips runs hold, those pools only
    gr = s.uncertainty.goodput
    rel_goodput = d.goodput[idx] / (0.5 * (gr.low + gr.high))     # the sample's goodput relative to the plan's
    for start, q in runs:
        mine = np.array([q in views[w].runs for w in range(len(views))])[own]
        if not mine.any():
            continue
        g, p, n = int(pat.gen[q]), int(pat.pool[q]), float(pat.size[q])
        spec = pb.gens[g]
        work = pat.gpu_hours[q] * pat.goodput[q]            # GPU-hours at full goodput
        begin = np.full(S, float(start))
        for j, e in enumerate(wd.uncertain):
            if wd.known[j] <= start:
                begin = np.maximum(begin, np.where(d.occurs[idx, e], d.known[idx, e], begin))
        if spec.after is not None:
            begin = np.maximum(begin, np.ceil(gen_end[:, spec.after] - 1e-9))
        begin = np.where(mine, begin, np.inf)
        done = np.zeros(S)
        end = np.full(S, np.inf)
        for t in range(start, T):
            active = (begin <= t) & ~np.isfinite(end)
            if not active.any():
                if np.all(np.isfinite(end) | (begin > T)):
                    break
                continue
            chips = np.clip(np.minimum(n, A[:, p, t] - used[:, slot[p], t]), 0, None) * active
            rate = chips * HOURS_PER_MONTH * pat.goodput[q] * rel_goodput
            need = work - done
            fin = active & (rate >= need) & (rate > 0)
            end = np.where(fin, t + np.where(fin, need / np.where(rate > 0, rate, 1.0), 1.0), end)
            done += rate
            used[:, slot[p], t] += chips                     # held for the whole month
        gen_end[:, g] = np.minimum(gen_end[:, g], end)
    # --- serving
    free = A                                          # A is not needed after this: reuse its memory
    if trained:
        free[:, trained, :] -= used
    np.maximum(free, 0.0, out=free)
    cluster_cap = pb.cluster_cap_kw
    limited = np.isfinite(cluster_cap)
    kw = pb.power_kw
    pool_kw = np.zeros((P, len(cluster_cap)))                         # kW a chip of pool p draws in cluster k
    pool_kw[np.arange(P), pb.pool_cluster] = kw
    train_kw = (np.einsum("spt,pk->skt", used, pool_kw[trained]) if trained
                else np.zeros((S, len(cluster_cap), T)))
    pi = s.costs.unmet_penalty_usd_per_mtok / 1e6
    rent_ok = np.array([pb.rent_usd_month[j] < pi * pb.rate[:, pb.rent_chip[j]].max() * SECONDS_PER_MONTH
                        for j in range(len(pb.rent_chip))], bool)
    runway = np.full(S, T)
    covered = np.ones((S, T))
    keep = np.zeros(0, int) if spare_pools is None else np.asarray(spare_pools, int)
    spare_out = np.zeros((T, S, len(keep)))            # month-major: each month's write is contiguous
    rate_p = pb.rate[:, pb.pool_chip]                                  # (W, P)
    elig_w = [np.nonzero(rate_p[:, p] > 0)[0] for p in range(P)]       # workloads each pool may serve
    has_elig = np.array([len(e) > 0 for e in elig_w], bool)
    inv_rate_p = np.where(rate_p > 0, 1.0 / np.where(rate_p > 0, rate_p, 1.0), 0.0)
    rent_elig = [np.nonzero(pb.rate[:, c] > 0)[0] for c in pb.rent_chip]
    du = pb.duos
    for t in range(T):
        m = vi[t]
        # samples still meeting demand (all of them unless the caller stops at each sample's runway)
        rows = np.nonzero(runway == T)[0] if stop_at_runway else np.arange(S)
        if not len(rows):
            break
        dem = peak_at(t, rows)
        n = len(rows)
        served = np.zeros((n, W))
        spare = free[rows, :, t]
        headroom = np.where(limited[None, :], cluster_cap[None, :] - train_kw[rows, :, t], np.inf)
        rent_left = np.zeros((n, len(pb.rent_chip)))
        bw = branch[rows, min(t, Tp - 1)]
        for wi in np.unique(bw):
            sel = bw == wi
            v = views[wi]
            rented = v.rented[:, m] if t < Tp else np.zeros(W)
            need_tok = np.maximum(dem[sel] - rented[None, :], 0.0)
            capw = v.cap[m]
            scale = np.where(capw > 0, need_tok / np.where(capw > 0, capw, 1.0), 0.0)        # (n, W)
            want = scale @ v.x[m]                                                           # (n, P) chips
            give = np.minimum(want, spare[sel])
            frac = np.where(want > 0, give / np.where(want > 0, want, 1.0), 0.0)
            power = give @ pool_kw
            over = np.where(limited[None, :] & (power > headroom[sel]),
                            np.maximum(headroom[sel], 0.0) / np.where(power > 0, power, 1.0), 1.0)
            frac = frac * over[:, pb.pool_cluster]
            give = want * frac
            tok = (frac @ v.xr[m]) * scale
            for k in np.nonzero(v.duo_tok[m] > 0)[0]:      # a chip pair serves as far as its scarcer pool lets it
                wk = du.w[k]
                tok[:, wk] += scale[:, wk] * np.minimum(frac[:, du.pre[k]], frac[:, du.dec[k]]) * v.duo_tok[m, k]
            served[sel] = rented[None, :] + tok
            spare[sel] -= give
            headroom[sel] -= give @ pool_kw
            if t < Tp:
                rent_left[sel] = (pb.rent_max[None, :] * usable[rows[sel][:, None], pb.rent_chip[None, :], t]
                                  - v.rent_used[None, :, m])
        res = np.maximum(dem - served, 0.0)
        short = np.nonzero(res.sum(axis=1) > 1e-9 * np.maximum(dem.sum(axis=1), 1.0))[0]
        if len(short):
            # spare chips cover what they may serve, then unused rental capacity (only the short samples)
            r_s, sp_s, hr_s = res[short], spare[short], headroom[short]
            r_start = r_s.copy()                                    # served by spares and rental = start - end
            for p in range(P):
                if not has_elig[p]:
                    continue
                k_c = pb.pool_cluster[p]
                avail = np.minimum(sp_s[:, p], np.maximum(hr_s[:, k_c], 0.0) / kw[p])
                if not (avail > 0).any():
                    continue
                tot = r_s @ inv_rate_p[:, p]                        # chips pool p needs for what is left
                use = np.minimum(avail, tot)
                f = np.where(tot > 0, use / np.where(tot > 0, tot, 1.0), 0.0)
                ws = elig_w[p]                                      # it serves a share f of what is left of each
                if len(ws) == W:
                    r_s *= (1.0 - f)[:, None]
                else:
                    r_s[:, ws] = r_s[:, ws] * (1.0 - f)[:, None]
                sp_s[:, p] -= use
                hr_s[:, k_c] -= use * kw[p]
            for j in range(len(pb.rent_chip)):
                ws = rent_elig[j]
                if not rent_ok[j] or not len(ws):
                    continue
                rr = pb.rate[ws, pb.rent_chip[j]]
                need = r_s[:, ws] / rr[None, :]
                tot = need.sum(axis=1)
                use = np.minimum(np.maximum(rent_left[short, j], 0.0), tot)
                f = np.where(tot > 0, use / np.where(tot > 0, tot, 1.0), 0.0)
                r_s[:, ws] -= need * f[:, None] * rr[None, :]
            served[short] += r_start - r_s
            spare[short] = sp_s
        total = dem.sum(axis=1)
        unmet = np.maximum(dem - served, 0.0).sum(axis=1)
        frac_unmet = np.where(total > 0, unmet / np.where(total > 0, total, 1.0), 0.0)
        covered[rows, t] = 1.0 - frac_unmet
        first = frac_unmet > tolerance + 1e-9
        runway[rows[first & (runway[rows] == T)]] = t
        if len(keep):
            spare_out[t, rows] = spare[:, keep]
    return {"runway": runway, "covered": covered, "gen_end": gen_end, "spare": np.moveaxis(spare_out, 0, 2)}


@dataclass
class RunwayResult:
    samples: int
    backend: str
    seconds: float
    runway: np.ndarray        # (S,) first month index not meeting demand; T = beyond the horizon
    covered: np.ndarray       # (S, T) fraction of peak demand served
    gen_end: np.ndarray       # (S, G) fractional month index of each generation's end (inf: not done)
    world: np.ndarray         # (S,) the world of each sample (which uncertain events happen)


def one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread. The recursion's products are small ((2,000 x 50) @ (50 x 36)
    per month and branch): OpenBLAS's threads cost more to wake than they save, and on a busy machine they
    fight for the cores. On 2 cores, the 100k-GPU benchmark's Monte Carlo takes 2.2 s instead of 5.5 s."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


def _chunk_job(job: tuple) -> dict[str, np.ndarray]:
    pb, views, d, idx, tol = job
    with one_blas_thread():
        out = evaluate(pb, views, d, idx, tol)
    out.pop("spare")
    return out


def check_backend(backend: str) -> str:
    b = backend.strip().lower()
    if b not in BACKENDS:
        raise InputError("backend", f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    return b


def check_samples(samples: int) -> int:
    if samples < 1 or samples > MAX_SAMPLES:
        raise InputError("samples", f"must be 1..{MAX_SAMPLES:,} (10,000 gives P10/P90 to about +-0.6 %), "
                         f"got {samples}")
    return samples


def views_of(pb: Problem, sol: Solution) -> list[PlanView]:
    """One PlanView per world (worlds sharing a path share it)."""
    return [plan_view(pb, world_plan(pb, sol, w)) for w in range(pb.worlds.n)]


def monte_carlo(pb: Problem, sol: Solution, *, samples: int = 10_000, seed: int | None = None,
                backend: str = "numpy", draws: Draws | None = None) -> RunwayResult:
    """Runway distribution of the plan `sol` on the scenario tree (see module docstring)."""
    backend = check_backend(backend)
    check_samples(samples)
    t_start = time.perf_counter()
    seed = pb.scenario.uncertainty.seed if seed is None else seed
    d = draws or draw(pb, samples, seed)
    views = views_of(pb, sol)
    tol = pb.scenario.runway_tolerance
    jobs = [(pb, views, d, np.arange(i, min(samples, i + CHUNK)), tol) for i in range(0, samples, CHUNK)]
    if backend == "process" and len(jobs) > 1:
        import os
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as ex:
            parts = list(ex.map(_chunk_job, jobs))
    else:
        parts = [_chunk_job(j) for j in jobs]
    return RunwayResult(samples=samples, backend=backend, seconds=time.perf_counter() - t_start,
                        runway=np.concatenate([p["runway"] for p in parts]),
                        covered=np.concatenate([p["covered"] for p in parts]),
                        gen_end=np.concatenate([p["gen_end"] for p in parts]),
                        world=_own_world(pb, d, np.arange(samples)))


def quantile_month(runway: np.ndarray, q: float) -> int:
    """The q-quantile of runway months as an actual sample value (inverted CDF)."""
    return int(np.quantile(runway, q, method="inverted_cdf"))
