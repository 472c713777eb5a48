"""Fleet-plan scale benchmark (issue 11, "Scale"): the whole plan of ``plan_scenario`` on a synthetic fleet.

    .venv/bin/python bench/plan_scale.py                                    # 100k GPUs, 20 chips, 50 wl, 24 mo
    .venv/bin/python bench/plan_scale.py --gpus 1000000 --chips 40 --workloads 200 --months 36
    options: --samples 10000  --seed 0  --time-limit 60  --check (also run plan_scenario end to end)

The scenario: `--gpus` GPUs split (Dirichlet) over `--chips` chip types, each type in one or two of 5 clusters
with facility power limits (the stock's all-in power x 1.15); `--workloads` inference workloads over 10 catalog
models, each allowed on a random 12 chip types, their traffic scaled so the fleet starts about half busy and
grows 0-10 %/month; 6 training generations (100B-600B, sizes and tokens scaled with sqrt(GPUs / 100k), three
of them chained by `after`); 6 procurement options; one rental offer; 4 policy events: 3 uncertain
(allow_purchase p=0.6 with 2 months of date jitter, no_purchase p=0.3, no_use p=0.1 announced two months
early: 8 policy worlds) and one certain no_purchase.

Chips: catalog chips with a sourced bf16 (or fp16) peak and TDP come first (36 of 47). A larger fleet takes the
other 11 catalog chips with their missing figures (TDP, bf16 peak, bandwidth, memory) given in the scenario's
`chips:` section (catalog format, source "bench: synthetic ..."), and beyond 47 chips made-up ids
``bench-chip-NN`` with all four figures in the same section. So `--chips 40` = 36 sourced catalog chips + 4
catalog chips with synthetic figures (the run prints which).

Rates are synthetic so that the benchmark measures the planner, not the performance models: serving from the
catalog bandwidth (40 tokens/s per GPU per TB/s, scaled by sqrt(10B / active parameters)); training from the
MFU rule (35 % of the bf16 peak / 6 N_active) with the failure model's job goodput at the run's GPU count.

Stages are timed by calling the stage functions the way ``stockpile.fleet.planner._plan`` does (same
arguments, inside the same ``extra_chips`` block); each HiGHS solve (fleet/highs.py) and the module's build are wrapped
(timing only) to split the MILP stage into the matrix build and each solver call (the LP relaxation, LP
re-solves, branch and bound with how many runs it leaves free, the tie-break's calls, the shadow-price LP). Peak memory
is ru_maxrss (whole process; also printed after each stage and solver call), plus the forked process's. As in
the planner, the plan's Monte Carlo runs in a forked process alongside the stock-alone answer (its MILP warm from
the plan's basis, and its Monte Carlo) on two or more cores (stockpile/fleet/background.py); the Monte Carlo's own
time is printed, and the wait for it. Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import platform
import resource
import sys
import time
from typing import Any

import numpy as np

MODELS = ["deepseek-ai/DeepSeek-V3", "Qwen/Qwen3-235B-A22B", "Qwen/Qwen3-32B", "Qwen/Qwen3-8B",
          "meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-30B-A3B",
          "google/gemma-3-27b-it", "mistralai/Mixtral-8x7B-v0.1", "zai-org/GLM-5"]
CLUSTERS = ["north", "east", "south", "west", "central"]
# the fleet of a Chinese lab first (the previous benchmark's 20 chips), then the rest of the catalog
PREFERRED = ["h800-sxm-80gb", "h20-96gb", "a800-sxm-80gb", "h100-sxm-80gb", "h200-sxm-141gb", "a100-sxm-80gb",
             "a100-sxm-40gb", "l40s-48gb", "ascend-910b-64gb", "mi300x-192gb", "mi325x-256gb", "gaudi2-96gb",
             "gaudi3-128gb", "b200-sxm-180gb", "h100-pcie-80gb", "a800-pcie-80gb", "h20-141gb", "mlu590-64gb",
             "dcu-k100-96gb", "v100-sxm-32gb"]
PROCURED = ["ascend-910b-64gb", "h20-96gb", "h200-sxm-141gb", "mi325x-256gb", "gaudi3-128gb", "b200-sxm-180gb"]
TRAINERS = ["h800-sxm-80gb", "h100-sxm-80gb", "h200-sxm-141gb", "a800-sxm-80gb", "b200-sxm-180gb", "mi300x-192gb"]
SYN = "bench: synthetic figure (bench/plan_scale.py), not a sourced value"
HOST_OVERHEAD, PUE = 1.82, 1.3          # the scenario defaults (costs.host_overhead, costs.pue)
GB = 1024.0 ** 2                        # ru_maxrss is in KiB on Linux


def _peak_rss_gb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (GB * 1024.0) if sys.platform == "darwin" else kb / GB


# ------------------------------------------------------------------ the fleet's chips
def pick_chips(n: int) -> tuple[list[str], dict[str, dict[str, Any]], dict[str, float]]:
    """(chip ids, the scenario's chips: section, TDP W per chip). Sourced catalog chips first, then catalog chips
    with synthetic figures for what they lack, then made-up ids with all figures synthetic."""
    from stockpile.catalog import list_chips
    from stockpile.errors import MissingFigureError

    def sourced(c: Any) -> bool:
        try:
            c.peak_flops("bf16")
        except MissingFigureError:
            return False
        return c.tdp_w is not None

    cat = {c.id: c for c in list_chips()}
    good = [cid for cid in PREFERRED if cid in cat and sourced(cat[cid])]
    good += [cid for cid, c in cat.items() if cid not in good and sourced(c)]
    rest = [cid for cid in PREFERRED if cid in cat and cid not in good]
    rest += [cid for cid in cat if cid not in good and cid not in rest]
    chips = (good + rest)[:n]
    section: dict[str, dict[str, Any]] = {}
    for cid in chips:
        c = cat[cid]
        if sourced(c):           # a missing bandwidth only matters to the synthetic serving rate (1 TB/s then)
            continue
        figs: dict[str, Any] = {}
        if c.tdp_w is None:
            figs["tdp_w"] = {"value": 500.0, "source": SYN}
        if not sourced(c) and c.bf16_tflops is None:
            figs["bf16_tflops"] = {"value": 400.0, "source": SYN}
        if c.memory_bw_gbs is None:
            figs["memory_bw_gbs"] = {"value": 2000.0, "source": SYN}
        if c.memory_gb is None:
            figs["memory_gb"] = {"value": 96.0, "source": SYN}
        section[cid] = figs
    for k in range(n - len(chips)):
        cid = f"bench-chip-{k:02d}"
        chips.append(cid)
        section[cid] = {"vendor": "bench", "name": cid, "family": "bench",
                        "tdp_w": {"value": 400.0 + 10 * (k % 20), "source": SYN},
                        "bf16_tflops": {"value": 300.0 + 25 * (k % 20), "source": SYN},
                        "memory_bw_gbs": {"value": 1600.0 + 100 * (k % 20), "source": SYN},
                        "memory_gb": {"value": 96.0, "source": SYN}}
    tdp = {cid: float(section.get(cid, {}).get("tdp_w", {}).get("value") or cat[cid].tdp_w.value)  # type: ignore[union-attr]
           for cid in chips}
    return chips, section, tdp


# ------------------------------------------------------------------ the scenario
def month(start_year: int, k: int) -> str:
    return f"{start_year + k // 12}-{1 + k % 12:02d}"


def scenario(gpus: int = 100_000, n_chips: int = 20, n_workloads: int = 50, months: int = 24,
             seed: int = 0) -> tuple[dict[str, Any], list[str]]:
    rng = np.random.default_rng(seed)
    chips, section, tdp = pick_chips(n_chips)
    f = gpus / 100_000                                   # fleet scale against the 100k reference
    sq = max(1.0, f) ** 0.5
    counts = rng.dirichlet(np.ones(len(chips)) * 2) * gpus
    stock: list[dict[str, Any]] = []
    for i, chip in enumerate(chips):
        parts = [0.6, 0.4] if rng.random() < 0.5 else [1.0]
        for j, share in enumerate(parts):
            stock.append({"chip": chip, "count": int(counts[i] * share), "age_months": int(rng.integers(0, 36)),
                          "cluster": CLUSTERS[(i + j) % len(CLUSTERS)]})
    stock[0]["count"] += gpus - sum(s["count"] for s in stock)
    mw = dict.fromkeys(CLUSTERS, 0.0)
    for s in stock:
        mw[s["cluster"]] += s["count"] * tdp[s["chip"]] * HOST_OVERHEAD * PUE / 1e6
    workloads = []
    tok_scale = f * 50 / n_workloads
    for w in range(n_workloads):
        workloads.append({"name": f"w{w:03d}", "model": MODELS[w % len(MODELS)],
                          "tokens_per_day": float(rng.uniform(2e9, 4e10) * tok_scale),
                          "monthly_growth": float(rng.uniform(0, 0.1)),
                          "isl": int(rng.choice([500, 1000, 2000, 4000])), "osl": int(rng.choice([200, 500, 1000])),
                          "ttft_ms": 3000, "tpot_ms": 60,
                          "chips": [chips[k] for k in rng.choice(len(chips), min(12, len(chips)), replace=False)]})
    trainers = [c for c in TRAINERS if c in chips] or chips[:6]
    gens = []
    for g in range(6):
        earliest = g * months // 8
        gens.append({"name": f"gen{g}", "params_b": float(100 * (g + 1)), "active_params_b": float(10 * (g + 1)),
                     "tokens": float(5e12 * (g + 1) * sq), "earliest_start": month(2025, earliest),
                     "deadline": month(2025, min(months - 1, earliest + months // 3)),
                     "min_chips": int(1024 * sq) // 8 * 8, "max_chips": int(8192 * sq) // 8 * 8, "chips": trainers})
    for g in range(1, 6, 2):
        gens[g]["after"] = gens[g - 1]["name"]
    procured = [c for c in PROCURED if c in chips]
    procured += [c for c in chips if c not in procured][:6 - len(procured)]
    procurement = [{"chip": c, "cluster": CLUSTERS[i % 5], "price_usd": 15000 + 5000 * i, "lead_time_months": 3,
                    "max_per_month": round(2000 * f)} for i, c in enumerate(procured)]
    # the no_use event hits a stock chip that is neither procured nor the rental's
    banned = next(c for c in chips[2:] if c not in procured)
    events = [
        {"chip": procured[1], "date": month(2025, 3), "effect": "no_purchase", "note": "certain"},
        {"chip": procured[2], "date": month(2025, months // 3), "effect": "allow_purchase", "probability": 0.6,
         "date_sd_months": 2},
        {"chip": procured[3], "date": month(2025, 5), "effect": "no_purchase", "probability": 0.3},
        {"chip": banned, "date": month(2025, months // 2), "announced": month(2025, months // 2 - 2),
         "effect": "no_use", "probability": 0.1},
    ]
    scn = {
        "name": f"scale-{gpus}", "start": "2025-01", "horizon_months": months,
        "clusters": [{"id": k, "power_mw": round(max(mw[k], 1.0) * 1.15, 3)} for k in CLUSTERS],
        "stock": stock,
        "procurement": procurement,
        "policy_events": events,
        "training": {"generations": gens},
        "inference": workloads,
        "costs": {"rental": [{"chip": chips[0], "usd_per_gpu_hour": 2.0, "max_gpus": round(2000 * f)}]},
        "chips": section,
    }
    synthetic = [c for c in chips if c in section]
    return scn, synthetic


# ------------------------------------------------------------------ synthetic rates
def synthetic_rates() -> Any:
    """Rates(serving, training) with the planner's signatures (ServingRate with weight_dtype; TrainingSpeedFn).
    Figures are read inside the caller's extra_chips block, cached per catalog overlay."""
    from stockpile.catalog import get_chip, get_model
    from stockpile.catalog.chips import overlay_version
    from stockpile.errors import MissingFigureError
    from stockpile.fleet.rates import Rates, mfu_tokens_per_s
    from stockpile.perf.goodput import job_goodput

    @functools.lru_cache(maxsize=None)
    def _serve(model: str, chip: str, _v: int) -> float:
        c, m = get_chip(chip), get_model(model)
        bw = c.memory_bw_gbs.value if c.memory_bw_gbs else 1000.0
        return 40.0 * bw / 1000.0 * (10e9 / max(m.active_params, 1e9)) ** 0.5

    def serving(model: str, chip: str, isl: float, osl: float, ttft: float | None, tpot: float | None,
                weight_dtype: str | None = None) -> float:
        return _serve(model, chip, overlay_version())

    @functools.lru_cache(maxsize=None)
    def _train(params_b: float, active_b: float, chip: str, gpus: int, _v: int) -> tuple[float, float] | None:
        try:
            peak = get_chip(chip).peak_flops("bf16")
        except MissingFigureError:
            return None
        return mfu_tokens_per_s(active_b * 1e9, peak, 0.35), job_goodput(int(gpus), params_b * 1e9).goodput

    def training(params_b: float, active_b: float, chip: str, gpus: int,
                 model_id: str | None = None) -> tuple[float, float] | None:
        return _train(float(params_b), float(active_b), chip.lower(), int(gpus), overlay_version())

    return Rates(serving=serving, training=training, notes=["bench: synthetic rates"])


# ------------------------------------------------------------------ timing
class SolverClock:
    """Wraps what the fleet MILP module calls (each HiGHS solve of fleet/highs.py's Model, the module's build and
    tie-break) to time each solver call under its label (the LP relaxation, the LP with the runs rounded or fixed,
    branch and bound with the runs it leaves free, the tie-break's calls), note each branch and bound's plan
    against the LP bound, and record the size of each MILP built. Timing only: arguments and results pass
    through untouched."""

    def __init__(self) -> None:
        import stockpile.fleet.highs as hs
        import stockpile.fleet.milp as mm
        self.mm, self.hs = mm, hs
        self.calls: list[tuple[str, float, float]] = []       # (label, seconds, peak RSS GB after)
        self.sizes: list[dict[str, int]] = []
        self.build_s = 0.0
        self.phase = ""
        self.bound: float | None = None                        # the last LP relaxation's objective
        self.notes: list[str] = []                             # each branch and bound's plan against the LP bound
        self._orig = {k: getattr(mm, k) for k in ("build", "_earliest_finish")}
        self._run = hs.Model._run

    def __enter__(self) -> SolverClock:
        o, clock, run = self._orig, self, self._run

        def _run(model, time_limit_s, gap, start, duals, label):  # noqa: ANN001, ANN202
            lbl = f"{clock.phase}HiGHS {label}"
            _progress(f"  {lbl} ...")
            res = run(model, time_limit_s, gap, start, duals, label)
            clock.calls.append((lbl, res.seconds, _peak_rss_gb()))
            _progress(f"  {lbl} done in {res.seconds:.1f} s")
            if label == "LP relaxation" and res.status == 0:
                clock.bound = res.fun
            elif "B&B" in label or "rounded" in label or "dive" in label:
                if res.x is None:
                    clock.notes.append(f"{lbl}: no plan")
                elif clock.bound is not None:
                    g = (res.fun - clock.bound) / max(abs(clock.bound), abs(res.fun), 1e-9)
                    if "dive" in label and clock.notes and "dive" in clock.notes[-1]:
                        clock.notes.pop()           # a dive's plan is its last step's
                    clock.notes.append(f"{lbl}: {g:.1e} above the LP bound")
            return res

        def build(*args, **kw):  # noqa: ANN002, ANN003, ANN202
            t = time.perf_counter()
            try:
                B, ix = o["build"](*args, **kw)
            finally:
                self.build_s += time.perf_counter() - t
            self.sizes.append({"vars": int(B.n), "binaries": int(sum(int(np.count_nonzero(i)) for i in B.integer)),
                               "rows": int(B.m), "nnz": int(sum(len(v) for v in B.v))})
            return B, ix

        def earliest_finish(*args, **kw):  # noqa: ANN002, ANN003, ANN202
            self.phase = "tie-break: "
            try:
                return o["_earliest_finish"](*args, **kw)
            finally:
                self.phase = ""
        self.mm.build, self.mm._earliest_finish = build, earliest_finish
        self.hs.Model._run = _run
        return self

    def __exit__(self, *exc: object) -> None:
        for k, v in self._orig.items():
            setattr(self.mm, k, v)
        self.hs.Model._run = self._run

    def take(self) -> tuple[float, list[tuple[str, float, float]], list[dict[str, int]], list[str]]:
        out = (self.build_s, self.calls, self.sizes, self.notes)
        self.build_s, self.calls, self.sizes, self.notes, self.bound = 0.0, [], [], [], None
        return out


def _progress(msg: str) -> None:
    """Stage progress on stderr (the results file holds stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_staged(scn_dict: dict[str, Any], samples: int, time_limit_s: float, gap: float = 1e-3) -> dict[str, Any]:
    """The stages of planner._plan, each timed (same calls, same arguments, same extra_chips block)."""
    from stockpile.catalog.chips import extra_chips
    from stockpile.fleet.background import in_background
    from stockpile.fleet.chips_in import scenario_chips
    from stockpile.fleet.milp import solve
    from stockpile.fleet.problem import compile_problem
    from stockpile.fleet.result import assemble
    from stockpile.fleet.runway import draw, monte_carlo, nominal_draws, views_of
    from stockpile.fleet.scenario_load import load_scenario
    from stockpile.fleet.stock_alone import stock_alone, stock_alone_problem

    st: dict[str, Any] = {"rss": {}}
    t = time.perf_counter()
    scn = load_scenario(scn_dict).scenario
    st["load"] = time.perf_counter() - t
    st["rss"]["load"] = _peak_rss_gb()
    rates = synthetic_rates()
    with extra_chips(scenario_chips(scn)) if scn.chips else contextlib.nullcontext(), SolverClock() as clock:
        t0 = time.perf_counter()
        _progress("compile")
        pb = compile_problem(scn, rates.serving, rates.training)
        st["compile"] = time.perf_counter() - t0
        st["rss"]["compile"] = _peak_rss_gb()

        t = time.perf_counter()
        _progress("MILP solve")
        sol = solve(pb, time_limit_s=time_limit_s, mip_rel_gap=gap)
        st["solve"] = time.perf_counter() - t
        st["solve_build"], st["solve_calls"], sizes, st["bnb"] = clock.take()
        st["milp"] = sizes[0] if sizes else {}
        st["status"], st["mip_gap"], st["tie_break"] = sol.status, sol.mip_gap, sol.tie_break
        st["rss"]["solve"] = _peak_rss_gb()

        t = time.perf_counter()
        seed = scn.uncertainty.seed
        draws = draw(pb, max(samples, 1), seed)

        def mc_run() -> Any:
            return monte_carlo(pb, sol, samples=samples, seed=seed, backend="numpy", draws=draws)
        job = in_background(mc_run) if samples else None
        st["forked"] = job is not None and job is not mc_run
        st["mc_start"] = time.perf_counter() - t
        _progress("stock alone" + (" (the plan's Monte Carlo in a forked process alongside)" if st["forked"] else ""))

        t = time.perf_counter()
        pb0 = stock_alone_problem(pb)
        sol0 = solve(pb0, time_limit_s=time_limit_s, mip_rel_gap=gap, duals=False, tie_break=False, warm_from=sol)
        st["alone_solve"] = time.perf_counter() - t
        st["alone_warm"] = sol0.model is sol.model
        st["alone_calls"] = [(label, sec) for label, sec, _ in clock.take()[1]]
        t1 = time.perf_counter()
        alone = stock_alone(pb0, views_of(pb0, sol0), draws if samples else nominal_draws(pb0),
                            nominal_draws(pb0), rates.training)
        st["alone_mc"] = time.perf_counter() - t1
        st["alone"] = time.perf_counter() - t
        st["rss"]["alone"] = _peak_rss_gb()

        t = time.perf_counter()
        _progress("Monte Carlo" + (": waiting for the forked process" if st["forked"] else ""))
        mc = job() if job is not None else None
        st["mc_wait"] = time.perf_counter() - t
        st["mc"] = mc.seconds if mc is not None else 0.0
        st["rss"]["mc"] = _peak_rss_gb()

        t = time.perf_counter()
        _progress("assemble")
        res = assemble(pb, sol, mc, alone, list(rates.notes))
        st["assemble"] = time.perf_counter() - t
        st["rss"]["assemble"] = _peak_rss_gb()
        st["total"] = time.perf_counter() - t0
    st.update(pb=pb, sol=sol, res=res)
    return st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpus", type=int, default=100_000)
    ap.add_argument("--chips", type=int, default=20)
    ap.add_argument("--workloads", type=int, default=50)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=60.0, help="solver time limit, s (plan_scenario's default)")
    ap.add_argument("--check", action="store_true", help="also time plan_scenario end to end and compare")
    args = ap.parse_args()
    if args.months < 12:
        ap.error("--months must be at least 12 (events and generations are placed in the first year)")

    revision = _revision()              # before the run: the code imported is the code of this moment
    t = time.perf_counter()
    scn_dict, synthetic = scenario(args.gpus, args.chips, args.workloads, args.months, args.seed)
    t_gen = time.perf_counter() - t
    st = run_staged(scn_dict, args.samples, args.time_limit)
    pb, res = st["pb"], st["res"]
    wd = pb.worlds
    # issue 11's targets: 1M GPUs / 40 chips / 200 workloads / 36 months under 60 s and 2 GB; the defaults under 5 s
    defaults = (args.gpus, args.chips, args.workloads, args.months) == (100_000, 20, 50, 24)
    t_target, m_target = (60.0, 2.0) if args.gpus >= 1_000_000 else (5.0 if defaults else None, None)
    m = st["milp"]
    rss = _peak_rss_gb()

    import os

    import highspy
    print(f"plan_scale {' '.join(sys.argv[1:]) or '(defaults)'}: stockpile at {revision}; "
          f"{platform.python_implementation()} {platform.python_version()}, numpy {np.__version__}, highspy "
          f"{highspy.Highs().version()}; {_cpus()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"fleet: {int(pb.stock[:, 0].sum()):,} GPUs, {len(pb.chips)} chip types "
          f"({len(pb.chips) - len(synthetic)} sourced catalog chips"
          + (f"; synthetic figures via chips: for {', '.join(synthetic)}" if synthetic else "") + "), "
          f"{len(pb.clusters)} clusters, {pb.P} pools, {len(pb.workloads)} workloads, {len(pb.gens)} generations, "
          f"{len(pb.opt_pool)} procurement options, {pb.T} months")
    print(f"policy: {len(scn_dict['policy_events'])} events, {len(wd.uncertain)} uncertain -> {wd.n} worlds, "
          f"{wd.NM} nodes of the scenario tree ({len(wd.leaves)} leaves)")
    print(f"MILP (plan):       {m.get('vars', 0):,} variables, {m.get('binaries', 0):,} binaries "
          f"({pb.patterns.n:,} candidate runs), {m.get('rows', 0):,} rows, {m.get('nnz', 0):,} nonzeros; "
          f"status {st['status']}" + (f", gap {st['mip_gap']:.2e}" if st["mip_gap"] is not None else "")
          + f"; tie-break: {st['tie_break']}")
    print("branch and bound (gap target 1e-3): plan: " + ("; ".join(st["bnb"]) or "none needed"))
    print("MILP (stock only): the plan's matrix with orders and rental capped at zero")
    print(f"scenario generation (not timed in the total): {t_gen:.2f} s; load + validate {st['load']:.2f} s")
    print("stage                                   wall s   peak RSS GB (so far)")
    print(f"  compile (scenario -> arrays)        {st['compile']:8.2f}   {st['rss']['compile']:.2f}")
    print(f"  MILP solve (build, solves, duals)   {st['solve']:8.2f}   {st['rss']['solve']:.2f}")
    print(f"      build matrix                    {st['solve_build']:8.2f}")
    for label, sec, mem in st["solve_calls"]:
        print(f"      {label:<32}{sec:8.2f}   {mem:.2f}")
    rest = st["solve"] - st["solve_build"] - sum(sec for _, sec, _ in st["solve_calls"])
    print(f"      {'rest (rounding, Solution, duals)':<32}{rest:8.2f}")
    print(f"  draws (+ fork)                      {st['mc_start']:8.2f}")
    print(f"  stock-alone + ladder                {st['alone']:8.2f}   {st['rss']['alone']:.2f}")
    print(f"      MILP ({'warm from the plan' if st['alone_warm'] else 'cold'}; no tie-break, no duals)"
          f"   {st['alone_solve']:.2f}  ("
          + ", ".join(f"{label} {sec:.1f}" for label, sec in st["alone_calls"]) + ")")
    print(f"      Monte Carlo to {res.runway.stock_only.searched_until if res.runway.stock_only else '?'} + ladder"
          f"       {st['alone_mc']:.2f}")
    how = "in a forked process alongside the stock alone" if st["forked"] else "inline"
    print(f"  Monte Carlo ({args.samples:,} samples; {how}): its own time ({st['mc']:.2f}), then the wait")
    print(f"      wait                            {st['mc_wait']:8.2f}   {st['rss']['mc']:.2f}")
    print(f"  assemble (PlanResult)               {st['assemble']:8.2f}   {st['rss']['assemble']:.2f}")
    ok_t = (f"target < {t_target:.0f} s: {'OK' if st['total'] < t_target else 'MISSED'}" if t_target
            else "(no target at this size)")
    print(f"  TOTAL (compile..assemble)           {st['total']:8.2f}   {ok_t}")
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / GB    # the forked Monte Carlo (Linux: KiB)
    both = rss + child                                                     # an upper bound on both at once
    mem = f"target < {m_target:.0f} GB: {'OK' if both < m_target else 'MISSED'}" if m_target else "(no target)"
    print(f"peak memory (ru_maxrss): {rss:.2f} GB this process + {child:.2f} GB the forked Monte Carlo "
          f"(shared pages counted twice) = {both:.2f} GB   {mem}")
    r = res.runway
    so = r.stock_only
    print(f"answer: runway deterministic {r.deterministic}, P10 {r.p10}, P50 {r.p50}, P90 {r.p90}; "
          f"stock alone P50 {so.p50 if so else None}; generations trained {res.generations_trained}/"
          f"{res.generations_planned}; ladder rungs {res.generations_trainable.p50 if res.generations_trainable else None}")
    if args.check:
        from stockpile.fleet.planner import plan_scenario
        _progress("check: plan_scenario end to end")
        t = time.perf_counter()
        with SolverClock() as clock:
            res2 = plan_scenario(scn_dict, samples=args.samples, rates=synthetic_rates(),
                                 time_limit_s=args.time_limit)
        t_all = time.perf_counter() - t
        _, calls, _, dives = clock.take()
        print("check: solver calls " + ", ".join(f"{label} {sec:.1f} s" for label, sec, _ in calls)
              + ("; " + "; ".join(dives) if dives else ""))
        same = (res2.runway.p50, res2.runway.deterministic) == (r.p50, r.deterministic)
        print(f"check: plan_scenario end to end {t_all:.2f} s (its own count {res2.seconds:.2f} s, load excluded); "
              f"same runway as the staged run: {same}; peak RSS now {_peak_rss_gb():.2f} GB")


def _revision() -> str:
    """The commit the stockpile package was run at ('+ changes' if stockpile/ differs from it)."""
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "stockpile"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown revision"
    return (rev or "unknown revision") + (" + changes in stockpile/" if dirty else "")


def _cpus() -> int:
    import os
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


if __name__ == "__main__":
    main()
