"""Fleet-plan scale benchmark: 100,000 GPUs of 20 chip types in 5 clusters, 50 inference workloads, 6 training
generations, 24 months. Prints the MILP solve time (target < 5 s) and the time of 10,000 Monte Carlo samples
(target < 10 s on 2 cores).

Serving and training rates are synthetic (a smooth function of each chip's catalog bandwidth and peak), so the
benchmark measures the planner, not the performance models.

    .venv/bin/python bench/plan_scale.py [--samples 10000] [--backend numpy|process]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

CHIPS = ["h800-sxm-80gb", "h20-96gb", "a800-sxm-80gb", "h100-sxm-80gb", "h200-sxm-141gb", "a100-sxm-80gb",
         "a100-sxm-40gb", "l40s-48gb", "ascend-910b-64gb", "mi300x-192gb", "mi325x-256gb", "gaudi2-96gb",
         "gaudi3-128gb", "b200-sxm-180gb", "h100-pcie-80gb", "a800-pcie-80gb", "h20-141gb", "mlu590-64gb",
         "dcu-k100-96gb", "v100-sxm-32gb"]
MODELS = ["deepseek-ai/DeepSeek-V3", "Qwen/Qwen3-235B-A22B", "Qwen/Qwen3-32B", "Qwen/Qwen3-8B",
          "meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-30B-A3B",
          "google/gemma-3-27b-it", "mistralai/Mixtral-8x7B-v0.1", "zai-org/GLM-5"]
CLUSTERS = ["north", "east", "south", "west", "central"]


def scenario(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    counts = rng.dirichlet(np.ones(len(CHIPS)) * 2) * 100_000
    stock = []
    for i, chip in enumerate(CHIPS):
        split = rng.random() < 0.5
        parts = [0.6, 0.4] if split else [1.0]
        for j, f in enumerate(parts):
            stock.append({"chip": chip, "count": int(counts[i] * f), "age_months": int(rng.integers(0, 36)),
                          "cluster": CLUSTERS[(i + j) % len(CLUSTERS)]})
    total = sum(s["count"] for s in stock)
    stock[0]["count"] += 100_000 - total
    workloads = []
    for w in range(50):
        workloads.append({"name": f"w{w:02d}", "model": MODELS[w % len(MODELS)],
                          "tokens_per_day": float(rng.uniform(2e9, 4e10)), "monthly_growth": float(rng.uniform(0, 0.1)),
                          "isl": int(rng.choice([500, 1000, 2000, 4000])), "osl": int(rng.choice([200, 500, 1000])),
                          "ttft_ms": 3000, "tpot_ms": 60,
                          "chips": [CHIPS[k] for k in rng.choice(len(CHIPS), 12, replace=False)]})
    gens = []
    for g in range(6):
        gens.append({"name": f"gen{g}", "params_b": float(100 * (g + 1)), "active_params_b": float(10 * (g + 1)),
                     "tokens": float(5e12 * (g + 1)), "earliest_start": f"2025-{1 + 3 * (g % 4):02d}",
                     "deadline": f"{2025 + (g + 2) // 4}-{1 + (3 * g + 6) % 12:02d}", "min_chips": 1024,
                     "max_chips": 8192, "chips": CHIPS[:5]})
    for g in range(1, 6, 2):
        gens[g]["after"] = gens[g - 1]["name"]
    return {
        "name": "scale-100k", "start": "2025-01", "horizon_months": 24,
        "clusters": [{"id": k, "power_mw": 60.0} for k in CLUSTERS],
        "stock": stock,
        "procurement": [{"chip": c, "cluster": CLUSTERS[i % 5], "price_usd": 15000 + 5000 * i, "lead_time_months": 3,
                         "max_per_month": 2000} for i, c in enumerate(["ascend-910b-64gb", "h20-96gb", "h200-sxm-141gb",
                                                                         "mi325x-256gb", "gaudi3-128gb", "b200-sxm-180gb"])],
        "policy_events": [{"chip": "h20-96gb", "date": "2025-04", "effect": "no_purchase"},
                          {"chip": "h200-sxm-141gb", "date": "2026-02", "effect": "allow_purchase", "probability": 0.6,
                           "date_sd_months": 2},
                          {"chip": "mi325x-256gb", "date": "2025-06", "effect": "no_purchase", "probability": 0.3}],
        "training": {"generations": gens},
        "inference": workloads,
        "costs": {"rental": [{"chip": "h800-sxm-80gb", "usd_per_gpu_hour": 2.0, "max_gpus": 2000}]},
    }


def synthetic_rates():
    from stockpile.catalog import get_chip, get_model
    from stockpile.fleet.rates import Rates, mfu_training_rate

    def serving(model: str, chip: str, isl: float, osl: float, ttft: float | None, tpot: float | None) -> float:
        c, m = get_chip(chip), get_model(model)
        bw = c.memory_bw_gbs.value if c.memory_bw_gbs else 1000.0
        return 40.0 * bw / 1000.0 * (10e9 / max(m.active_params, 1e9)) ** 0.5

    def training(params_b: float, active_b: float, chip: str) -> float:
        try:
            return mfu_training_rate(0.35)(params_b, active_b, chip)
        except Exception:  # noqa: BLE001 - chips without a sourced bf16 peak do not train here
            return 0.0
    return Rates(serving=serving, training=training)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--backend", default="numpy")
    args = ap.parse_args()
    from stockpile.fleet.milp import solve
    from stockpile.fleet.problem import compile_problem
    from stockpile.fleet.result import assemble
    from stockpile.fleet.runway import monte_carlo
    from stockpile.fleet.scenario import load_scenario

    t = time.perf_counter()
    scn = load_scenario(scenario()).scenario
    rates = synthetic_rates()
    pb = compile_problem(scn, rates)
    t_compile = time.perf_counter() - t
    t = time.perf_counter()
    sol = solve(pb, duals=False)
    t_solve = time.perf_counter() - t
    t = time.perf_counter()
    sol_d = solve(pb, duals=True)
    t_solve_duals = time.perf_counter() - t
    def resolve(occurs: list[bool]):
        events = [e.model_copy(update={"probability": 1.0 if o else 0.0}) for e, o in zip(scn.policy_events, occurs)]
        pb_k = compile_problem(scn.model_copy(update={"policy_events": events}), rates)
        return pb_k, solve(pb_k, duals=False)
    t = time.perf_counter()
    mc = monte_carlo(pb, sol, samples=args.samples, backend=args.backend, resolve=resolve)
    t_mc = time.perf_counter() - t
    res = assemble(pb, sol_d, mc, [])
    n_vars = sol.x.size + sol.rent.size + sol.buy.size + sol.y.size + sol.miss.size + 2 * sol.unmet.size
    print(f"fleet: {int(pb.stock[:, 0].sum()):,} GPUs, {len(pb.chips)} chip types, {pb.P} pools, "
          f"{len(pb.workloads)} workloads, {len(pb.gens)} generations, {pb.T} months")
    print(f"MILP: {n_vars:,} variables ({pb.patterns.n:,} binary training runs); status {sol.status}")
    print(f"compile (scenario -> arrays): {t_compile:.2f} s")
    print(f"solve (HiGHS MILP):           {t_solve:.2f} s   (target < 5 s)")
    print(f"solve + shadow prices:        {t_solve_duals:.2f} s")
    print(f"Monte Carlo {args.samples:,} samples ({args.backend}), {mc.resolves} policy-world re-solves: "
          f"{t_mc:.2f} s   (target < 10 s)")
    print(f"runway deterministic {res.runway.deterministic}, P10 {res.runway.p10}, P50 {res.runway.p50}, "
          f"P90 {res.runway.p90}; generations trained {res.generations_trained}/{res.generations_planned}")


if __name__ == "__main__":
    main()
