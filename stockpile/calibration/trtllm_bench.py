"""The engine limits `trtllm-bench throughput` sets for a run, where a row measured with it does not state them.

TensorRT-LLM's published throughput tables (docs/source/performance/perf-overview.md) come from `trtllm-bench
throughput` with the engine limits left to the benchmark. The benchmark picks them from the dataset's lengths and
its own estimate of how many requests the KV cache holds (tensorrt_llm/bench/build/tuning.py, calc_engine_setting and
finetune_setting, at NVIDIA/TensorRT-LLM@04cba88:
https://github.com/NVIDIA/TensorRT-LLM/blob/04cba882084a25665e7f80f5bda71b35b9790b6f/tensorrt_llm/bench/build/tuning.py):

* the KV cache: the GPUs' memory less the weights (parameters x bytes per element), x 0.95, over the bytes a request
  of ISL + OSL tokens takes (2 x attention layers x max(TP, KV heads) x head size x KV bytes per element);
* the batch cap: those requests, at most 4,096, over the pipeline stages, rounded up (to 32 below 256, 128 below
  1,024, else 256; at least 64);
* the token budget of one step (max_num_tokens): the batch cap x (1 + ISL / OSL), at most 32,768, rounded up (to 256
  below 4,096 and at least 2,048, to 512 below 8,192, else to 1,024).

A prompt-heavy table row (2,048 in, 128 out) then steps through up to 32,768 prompt tokens at a time instead of the
engine's default 8,192, and a decode-heavy one on a large-memory node runs up to 4,096 sequences instead of the 2,048
the engine defaults to (perf/calibration.engine_limits); the KV cache still bounds the running batch. The cap is per
rank, as TensorRT-LLM applies max_batch_size to each attention-DP rank.
"""
from __future__ import annotations

import math
import re

from stockpile.catalog.models import ModelSpec

# a row measured with the benchmark names it in its notes
HARNESS = re.compile(r"trtllm-bench", re.I)
KV_FRACTION = 0.95            # calc_engine_setting's kv_cache_gpu_mem_fraction
MAX_BATCH = 4096              # finetune_setting's cap on the batch
MAX_TOKENS = 32768            # ... and on the token budget
_BYTES = {"fp8": 1.0, "fp4": 0.5}   # BYTES_PER_ELEM: FP8 (and block-scaled FP8) 1, NVFP4 0.5, anything else 2


def _bytes(dtype: str) -> float:
    return _BYTES.get(dtype, 2.0)


def kv_requests(model: ModelSpec, memory_bytes: float, tp: int, pp: int, isl: float, osl: float,
                weight_dtype: str, kv_dtype: str) -> float:
    """Requests of ISL + OSL tokens the benchmark estimates the KV cache holds (its own arithmetic, not ours)."""
    layers = max(model.layers - model.linear_layers, 1)
    head = model.head_dim if not model.is_mla else model.qk_nope_head_dim + model.qk_rope_head_dim
    per_token = 2.0 * layers * max(tp, model.kv_heads) * head * _bytes(kv_dtype)
    free = memory_bytes * tp * pp - model.params * _bytes(weight_dtype)
    return max(free, 0.0) * KV_FRACTION / max(per_token * (isl + osl), 1.0)


# finetune_setting's rounding: (below this value, round up to a multiple of this step), the last for everything above,
# and the floor
_BATCH_STEPS = ((256, 32), (1024, 128), (math.inf, 256))
_TOKEN_STEPS = ((4096, 256), (8192, 512), (math.inf, 1024))
_BATCH_FLOOR, _TOKEN_FLOOR = 64, 2048


def _round_up(x: float, steps: tuple[tuple[float, int], ...], floor: int) -> int:
    step = next(s for below, s in steps if x < below)
    return max(floor, step * math.ceil(x / step))


def settings(requests: float, isl: float, osl: float, pp: int) -> tuple[int, int]:
    """(max_batch_size, max_num_tokens) from the estimated requests, as finetune_setting rounds them."""
    raw_bs = min(requests, MAX_BATCH) / max(pp, 1)
    raw_tok = min(raw_bs * (1.0 + isl / max(osl, 1.0)), MAX_TOKENS)
    return _round_up(raw_bs, _BATCH_STEPS, _BATCH_FLOOR), _round_up(raw_tok, _TOKEN_STEPS, _TOKEN_FLOOR)


def bench_limits(model: ModelSpec, memory_bytes: float, tp: int, pp: int, isl: float, osl: float,
                 weight_dtype: str, kv_dtype: str) -> tuple[int, int]:
    """(max_batch_size, max_num_tokens) trtllm-bench throughput sets for a run of these lengths on this layout."""
    return settings(kv_requests(model, memory_bytes, tp, pp, isl, osl, weight_dtype, kv_dtype), isl, osl, pp)
