"""Speed of the scheduler simulation (issue 12): 10,000 requests of Llama-3.1-8B (input 1,000, output 200 tokens)
on one H100 (vLLM) at 20 requests/s must take under 2 s on a 2-core machine. Also prints other loads and a
larger model, each with the simulated steps and the result, so a slowdown shows where it comes from.

    .venv/bin/python bench/simulate_speed.py
"""
from __future__ import annotations

import platform
import time

import numpy as np

CASES = [  # (model, chip, tp, rate req/s, requests, isl, osl, engine)
    ("meta-llama/Llama-3.1-8B-Instruct", "h100-sxm-80gb", 1, 20.0, 10_000, 1000, 200, "vllm"),
    ("meta-llama/Llama-3.1-8B-Instruct", "h100-sxm-80gb", 1, 5.0, 10_000, 1000, 200, "vllm"),
    ("meta-llama/Llama-3.1-8B-Instruct", "h100-sxm-80gb", 1, 60.0, 10_000, 1000, 200, "vllm"),
    ("meta-llama/Llama-3.1-8B-Instruct", "h100-sxm-80gb", 1, 20.0, 10_000, 1000, 200, "sglang"),
    ("meta-llama/Llama-3.1-70B-Instruct", "h100-sxm-80gb", 4, 8.0, 10_000, 1000, 200, "vllm"),
]


def main() -> None:
    from stockpile.catalog import get_chip, get_model
    from stockpile.perf.inference import Configs
    from stockpile.perf.traffic import simulate_estimate

    print(f"simulate_speed: CPython {platform.python_version()}, numpy {np.__version__}")
    print(f"{'model':34} {'engine':6} {'rate':>5} {'reqs':>6} {'wall s':>7} {'steps':>8} {'TTFT ms':>9} "
          f"{'TPOT ms':>8} {'req/s':>7} {'backlog':>8}")
    worst = 0.0
    for model, chip, tp, rate, n, isl, osl, engine in CASES:
        m, c = get_model(model), get_chip(chip)
        cfg = Configs(attn_tp=tp, isl=isl, osl=osl, rate=rate, num_requests=n)
        best = np.inf
        for _ in range(3):                      # best of three: the machine's noise, not the code's
            t = time.perf_counter()
            res = simulate_estimate(m, c, engine, cfg)
            best = min(best, time.perf_counter() - t)
        if (model, rate, engine) == ("meta-llama/Llama-3.1-8B-Instruct", 20.0, "vllm"):
            worst = best
        st = res.stats()
        print(f"{model:34} {engine:6} {rate:5.0f} {n:6,} {best:7.2f} {res.steps:8,} {st['ttft_ms']:9.1f} "
              f"{st['tpot_ms']:8.2f} {res.requests_per_s:7.2f} {res.backlog:8,}")
    print(f"target: 10,000 requests of Llama-3.1-8B on one H100 at 20 req/s under 2 s: {worst:.2f} s "
          f"({'OK' if worst < 2 else 'MISSED'})")


if __name__ == "__main__":
    main()
