"""Training layout search speed: layouts evaluated per second (one numpy pass per search).

    .venv/bin/python bench/training_search_speed.py
"""
from __future__ import annotations

import time

from stockpile.search.training import make_job, search

JOBS = [
    ("meta-llama/Llama-3.1-8B", "h100-sxm-80gb", 64, 8192, "bf16"),
    ("meta-llama/Llama-3.1-405B", "h100-sxm-80gb", 16384, 8192, "bf16"),
    ("deepseek-ai/DeepSeek-V3", "h800-sxm-80gb", 2048, 4096, "fp8"),
    ("Qwen/Qwen3-235B-A22B", "gb200-186gb", 1152, 4096, "bf16"),
]
REPEAT = 5


def main() -> None:
    total_layouts, total_s = 0, 0.0
    print(f"{'model':32} {'chip':16} {'gpus':>6} {'layouts':>8} {'ms/search':>10} {'layouts/s':>12}")
    for model, chip, gpus, seq, precision in JOBS:
        job = make_job(model, chip, gpus, tokens=None, seq_len=seq, global_batch_tokens=None, precision=precision)
        search(job)                                   # warm the catalog caches
        t = time.perf_counter()
        for _ in range(REPEAT):
            _, sp, _ = search(job)
        dt = (time.perf_counter() - t) / REPEAT
        n = int(sp["tp"].size)
        total_layouts, total_s = total_layouts + n, total_s + dt
        print(f"{model:32} {chip:16} {gpus:>6} {n:>8} {dt * 1e3:>10.1f} {n / dt:>12,.0f}")
    print(f"overall: {total_layouts / total_s:,.0f} layout evaluations/s "
          f"(space construction, masks, step time, memory and the argmax included)")


if __name__ == "__main__":
    main()
