"""The stockpile's own answer: how long the stock alone (no purchases, no rental) meets demand, and how many more
generations of a training ladder it trains while doing so (CONTRACTS.md: runway.stock_only,
generations_trainable).

The stock-alone plan is the scenario's MILP with procurement and rental capped at zero (solved warm from the
plan's basis). Its Monte Carlo runs past the planning
horizon, up to ten years, so that the answer is a month: beyond the horizon demand keeps its growth, attrition
continues, the policy events given still apply, and the serving mix of the plan's last month is kept (spare
chips cover the rest as inside the horizon).

The ladder (training.ladder): rung k needs g^k times the first rung's compute. Rungs run one at a time, rung k
starting no earlier than k x every_months after the start; each runs on one pool (chip type x cluster), the
one that finishes it first, using that pool's chips left spare by serving and by the scenario's own runs, and
must finish within every_months of its start and before demand goes unmet. Spare chips are fluid: a rung uses
all of its pool's spare chips each month (an upper bound on what one run could use).
Rung sizes: the first rung's parameters and tokens (or, for a compute budget, the reference shape scaled by
sqrt(C / C_ref)); each next rung scales parameters and tokens by sqrt(g) (compute-optimal growth, Hoffmann et al.
2022); training speed per GPU scales as 1 / N_active from the first rung's measured speed on each chip.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from stockpile.fleet.months import HOURS_PER_MONTH, MAX_SEARCH_MONTHS
from stockpile.fleet.problem import Problem, TrainingSpeedFn, gen_size
from stockpile.fleet.runway import Draws, PlanView, evaluate, one_blas_thread
from stockpile.fleet.solution import Solution

# DeepSeek-V3: 671B total / 37B active parameters, 14.8T pre-training tokens (arXiv 2412.19437; fleet_facts.csv
# 'DeepSeek-V3 pre-training tokens'): the reference generation when a scenario names none.
REF_TOTAL_B, REF_ACTIVE_B, REF_TOKENS = 671.0, 37.0, 14.8e12
MAX_RUNGS = 10


def stock_alone_problem(pb: Problem) -> Problem:
    """The plan's problem without procurement and rental: the same arrays (pools, runs, worlds) with every order
    and rental capped at zero, so that its MILP has the plan's matrix and starts from the plan's basis (milp.solve
    with warm_from), and its Monte Carlo takes the plan's draws."""
    s = pb.scenario
    bare = s.model_copy(update={"procurement": [], "costs": s.costs.model_copy(update={"rental": []})})
    return dataclasses.replace(pb, scenario=bare, opt_max_month=np.zeros_like(pb.opt_max_month),
                               rent_max=np.zeros_like(pb.rent_max),
                               notes=[])


@dataclass
class Rung:
    index: int
    params_b: float
    active_params_b: float
    tokens: float
    compute_flop: float


@dataclass
class LadderSpec:
    rungs: list[Rung]
    compute_growth: float
    every_months: int
    hours: np.ndarray          # (K, P) GPU-hours of rung k on pool p (inf: cannot train there)
    source: str


def ladder_rungs(pb: Problem) -> tuple[list[Rung], float, int, str]:
    """The ladder's rungs from the scenario (defaults: CONTRACTS.md and fleet_facts.csv, named in `source`)."""
    s = pb.scenario
    lad = s.training.ladder
    g = lad.compute_growth if lad else 4.5
    every = lad.every_months if lad else 12
    first = lad.first if lad else None
    if first is not None and (first.params_b is not None or first.active_params_b is not None):
        total = first.params_b or first.active_params_b or 0.0
        active = first.active_params_b or total
        tokens = float(first.tokens or (float(first.compute_flop or 0) / (6 * active * 1e9)))
        source = "training.ladder.first"
    else:
        if s.training.generations:
            sizes = [(gen_size(gg), gg) for gg in s.training.generations]
            (ref_total, ref_active), gg = max(sizes, key=lambda x: x[0][1] * float(
                x[1].tokens or (x[1].compute_flop or 0) / (6 * x[0][1] * 1e9)))
            ref_tokens = float(gg.tokens or float(gg.compute_flop or 0) / (6 * ref_active * 1e9))
            ref_name = f"the scenario's largest generation '{gg.name}'"
        else:
            ref_total, ref_active, ref_tokens = REF_TOTAL_B, REF_ACTIVE_B, REF_TOKENS
            ref_name = "DeepSeek-V3 (671B/37B, 14.8T tokens; fleet_facts.csv)"
        c_ref = 6.0 * ref_active * 1e9 * ref_tokens
        c0 = float(first.compute_flop) if first is not None and first.compute_flop else g * c_ref
        f = math.sqrt(c0 / c_ref)
        total, active, tokens = ref_total * f, ref_active * f, ref_tokens * f
        source = (f"first rung {'= training.ladder.first.compute_flop' if first is not None else f'= {g:g} x'} "
                  f"{'shaped like' if first is not None else ''} {ref_name}")
    if not lad:
        source += (f"; growth {g:g}x per generation every {every} months (Epoch AI frontier compute growth 4-5x/yr, "
                   "fleet_facts.csv)")
    rungs = []
    for k in range(MAX_RUNGS):
        f = g ** (k / 2.0)
        rungs.append(Rung(index=k, params_b=total * f, active_params_b=active * f, tokens=tokens * f,
                          compute_flop=6.0 * active * f * 1e9 * tokens * f))
    return rungs, g, every, source


def ladder_spec(pb: Problem, training: TrainingSpeedFn) -> LadderSpec:
    rungs, g, every, source = ladder_rungs(pb)
    s = pb.scenario
    allowed = {c.lower() for c in s.training.ladder.chips} if s.training.ladder and s.training.ladder.chips else None
    K, P = len(rungs), pb.P
    hours = np.full((K, P), np.inf)
    first = rungs[0]
    speed: dict[int, tuple[float, float] | None] = {}
    for p in range(P):
        c = int(pb.pool_chip[p])
        if allowed is not None and pb.chips[c] not in allowed:
            continue
        if c not in speed:
            held = float(pb.stock[pb.pool_chip == c, 0].sum()) if pb.P else 0.0
            n = int(min(16384, max(8, 8 * (held // 8))))
            speed[c] = training(first.params_b, first.active_params_b, pb.chips[c], n, None)
        sp = speed[c]
        if sp is None or sp[0] <= 0:
            continue
        tps0, goodput = sp
        for k, r in enumerate(rungs):
            tps = tps0 * first.active_params_b / r.active_params_b
            hours[k, p] = r.tokens / tps / 3600.0 / goodput
    return LadderSpec(rungs=rungs, compute_growth=g, every_months=every, hours=hours, source=source)


def climb(spec: LadderSpec, spare: np.ndarray, runway: np.ndarray, pools: np.ndarray | None = None) -> np.ndarray:
    """Rungs finished per sample: spare (S, P', T) chips after serving of the pools `pools` (default: all P),
    runway (S,) first month demand is unmet.

    Rung k starts at max(k x every_months, the end of rung k-1); a rung that cannot finish within every_months
    of its start, or before demand goes unmet, ends the climb."""
    S, P, T = spare.shape
    hours = spec.hours if pools is None else spec.hours[:, pools]
    every = spec.every_months
    cum = np.concatenate([np.zeros((S, P, 1)), np.cumsum(spare * HOURS_PER_MONTH, axis=2)], axis=2)  # (S, P, T+1)
    months = np.arange(T + 1)[None, :]
    count = np.zeros(S, int)
    free_from = np.zeros(S, int)
    climbing = np.ones(S, bool)
    for k in range(len(spec.rungs)):
        can = np.nonzero(np.isfinite(hours[k]))[0]
        if not len(can) or not climbing.any():
            break
        a = np.maximum(free_from, k * every)
        finish = np.full(S, np.inf)
        inside = (months > a[:, None]) & (months <= np.minimum(a + every, T)[:, None])            # (S, T+1)
        for p in can:
            c = cum[:, p, :]
            need = np.take_along_axis(c, np.minimum(a, T)[:, None], axis=1)[:, 0] + hours[k, p]
            ok = inside & (c >= need[:, None] - 1e-9)
            end = np.where(ok.any(axis=1), np.argmax(ok, axis=1), np.inf)
            finish = np.minimum(finish, end)
        done = climbing & np.isfinite(finish) & (finish <= runway)
        count += done
        free_from = np.where(done, np.where(np.isfinite(finish), finish, T), free_from).astype(int)
        climbing &= done
    return count


@dataclass
class StockAloneResult:
    runway: np.ndarray           # (S,) first month index (from the start) demand is unmet; horizon_ext = never
    deterministic: int           # the same with nothing uncertain
    generations: np.ndarray      # (S,) ladder rungs trained
    generations_deterministic: int
    horizon_ext: int
    ladder: LadderSpec


def stock_alone(pb0: Problem, views: list[PlanView], draws: Draws, nominal: Draws, training: TrainingSpeedFn,
                chunk: int = 2000) -> StockAloneResult:
    """Monte Carlo of the stock-alone plan (pb0 / views) past the horizon, and the ladder it climbs."""
    T_ext = max(pb0.T, MAX_SEARCH_MONTHS)
    spec = ladder_spec(pb0, training)
    tol = pb0.scenario.runway_tolerance
    S = len(draws.mult)
    runway = np.zeros(S, int)
    gens = np.zeros(S, int)
    pools = np.nonzero(np.isfinite(spec.hours).any(axis=0))[0] if spec.hours.size else np.zeros(0, int)
    with one_blas_thread():
        det = evaluate(pb0, views, nominal, np.arange(1), tol, T=T_ext, stop_at_runway=True, spare_pools=pools)
        # Months are followed in order and a sample stops at its runway, so a shorter search gives every sample
        # that fails inside it the same runway and rungs; only the samples still meeting demand at its end are
        # followed again to T_ext. The short search covers half as much again as the nominal runway, plus half a
        # year (100k-GPU benchmark: 1 % of the samples are followed again).
        T1 = int(min(T_ext, max(pb0.T, math.ceil(1.5 * int(det["runway"][0])) + 6)))
        for i in range(0, S, chunk):
            idx = np.arange(i, min(S, i + chunk))
            out = evaluate(pb0, views, draws, idx, tol, T=T1, stop_at_runway=True, spare_pools=pools)
            alive = out["runway"] >= T1
            runway[idx] = np.where(alive, T_ext, out["runway"])
            gens[idx] = climb(spec, out["spare"], out["runway"], pools)
            if T1 < T_ext and alive.any():
                again = idx[alive]
                out = evaluate(pb0, views, draws, again, tol, T=T_ext, stop_at_runway=True, spare_pools=pools)
                runway[again] = out["runway"]
                gens[again] = climb(spec, out["spare"], out["runway"], pools)
    return StockAloneResult(runway=runway, deterministic=int(det["runway"][0]), generations=gens,
                            generations_deterministic=int(climb(spec, det["spare"], det["runway"], pools)[0]),
                            horizon_ext=T_ext, ladder=spec)


def stock_alone_answer(pb: Problem, draws: Draws | None, training: TrainingSpeedFn, *, time_limit_s: float = 60.0,
                       mip_rel_gap: float = 1e-3, warm_from: Solution | None = None) -> StockAloneResult:
    """The whole stock-alone answer for the plan's problem `pb`: its MILP with orders and rental at zero (warm
    from the plan's solution where given), then :func:`stock_alone` on the plan's draws (None: nothing
    uncertain, the nominal draws)."""
    from stockpile.fleet.milp import solve
    from stockpile.fleet.runway import nominal_draws, views_of
    pb0 = stock_alone_problem(pb)
    sol0 = solve(pb0, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, duals=False, tie_break=False,
                 warm_from=warm_from)
    nominal = nominal_draws(pb0)
    return stock_alone(pb0, views_of(pb0, sol0), draws if draws is not None else nominal, nominal, training)

