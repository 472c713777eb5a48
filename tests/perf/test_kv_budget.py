"""What the KV cache gets: vLLM's and SGLang's memory fraction is of the whole memory, TensorRT-LLM's of the memory
the weights leave free (perf/serving.kv_budget_bytes, defaults.yaml memory_fraction_of)."""
from __future__ import annotations

import pytest

from stockpile.catalog.chips import get_chip
from stockpile.catalog.models import get_model
from stockpile.perf.calibration import load_calibration
from stockpile.perf.inference import estimate
from stockpile.perf.layout import resolve_layout
from stockpile.perf.serving import kv_budget_bytes


def test_the_two_readings_of_a_memory_fraction():
    m, w, r = 80e9, 35e9, 2e9
    assert float(kv_budget_bytes(m, 0.9, w, r, 0.0)) == pytest.approx(0.9 * m - w - r)       # of the whole
    assert float(kv_budget_bytes(m, 0.9, w, r, 1.0)) == pytest.approx(0.9 * (m - w - r))     # of what is free
    # weights that fill most of the memory: the share of the whole leaves nothing, the share of what is free some
    assert float(kv_budget_bytes(m, 0.9, 72e9, r, 0.0)) < 0 < float(kv_budget_bytes(m, 0.9, 72e9, r, 1.0))


def test_only_tensorrt_llm_reads_its_fraction_of_the_free_memory():
    cal = load_calibration()
    assert cal.params("hopper", "trtllm").kv_free == 1.0
    assert cal.params("hopper", "vllm").kv_free == 0.0 and cal.params("hopper", "sglang").kv_free == 0.0


def test_a_tensorrt_llm_estimate_holds_the_larger_cache():
    model, chip = get_model("Qwen/Qwen3-32B"), get_chip("h100-sxm-80gb")
    layout = resolve_layout(gpus=1, tp=1)
    runs = {eng: estimate(model, chip, layout=layout, engine=eng, weight_dtype="bf16", kv_dtype="bf16", isl=1000,
                          osl=1000, concurrency=512) for eng in ("vllm", "trtllm")}
    mem = {eng: e.memory_gb for eng, e in runs.items()}
    weights = mem["trtllm"].weights_gb * 1e9
    free = chip.memory_bytes - weights - mem["trtllm"].reserve_gb * 1e9
    # 64 GB of weights on 80 GiB: TensorRT-LLM's 0.9 of the ~20 GB left, against vLLM's 0.9 x 80 GiB less the weights
    assert runs["trtllm"].max_batch > 1.3 * runs["vllm"].max_batch
    per_seq = mem["trtllm"].kv_per_sequence_mb * 1e6
    assert runs["trtllm"].max_batch == pytest.approx(0.9 * free / per_seq, abs=1.0)
