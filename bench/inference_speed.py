"""Speed benchmark: vectorised inference evaluations per second on this machine (issue: >= 100,000/s).

Evaluates a grid of serving configurations (layouts x dtypes x concurrencies x lengths) for a dense and a
MoE model in one numpy call each, repeats, and prints configurations per second.
Run: .venv/bin/python bench/inference_speed.py
"""
from __future__ import annotations

import time

import numpy as np

from stockpile.catalog import get_chip, get_model
from stockpile.perf.inference import Configs, evaluate
from stockpile.perf.serving import MODE_CLOSED


def grid(n_target: int, moe: bool) -> Configs:
    tp = np.array([1, 2, 4, 8])
    pp = np.array([1, 2])
    ep = np.array([1, 2, 4, 8]) if moe else np.array([1])
    wd = np.array(["bf16", "fp8", "int4"])
    conc = np.unique(np.geomspace(1, 1024, 64).astype(int)).astype(float)
    isl = np.array([128.0, 1000.0, 4000.0, 16000.0])
    G = np.meshgrid(tp, pp, ep, np.arange(len(wd)), conc, isl, indexing="ij")
    flat = [g.reshape(-1) for g in G]
    reps = max(1, n_target // flat[0].size)
    flat = [np.tile(f, reps) for f in flat]
    t, p, e, w, c, i = flat
    moe_ep = np.minimum(e, t)
    return Configs(attn_tp=t, pp=p, moe_ep=moe_ep, moe_tp=t / moe_ep, replicas=1, weight_dtype=wd[w.astype(int)],
                   kv_dtype="bf16", isl=i, osl=512.0, mode=MODE_CLOSED, concurrency=c)


def main() -> None:
    chip = get_chip("h800-sxm-80gb")
    for model_id, moe in (("meta-llama/Llama-3.1-70B-Instruct", False), ("Qwen/Qwen3-235B-A22B", True)):
        model = get_model(model_id)
        cfg = grid(200_000, moe)
        evaluate(model, chip, "vllm", cfg)          # warm up caches
        n = np.asarray(cfg.attn_tp).size
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            out = evaluate(model, chip, "vllm", cfg)
            best = min(best, time.perf_counter() - t0)
        fits = int(np.sum(out["fits"]))
        print(f"{model_id}: {n:,} configurations in {best * 1e3:.0f} ms -> {n / best:,.0f} evaluations/s "
              f"({fits:,} fit in memory)")


if __name__ == "__main__":
    main()
