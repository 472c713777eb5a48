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


def test_sglang_derives_its_memory_fraction_from_what_it_holds_back():
    """SGLang's --mem-fraction-static when not given: (memory - reserved) / memory, reserved = 512 MiB + 1.5 MiB
    per prefill-chunk token + 2 per CUDA-graph batch + 1 GiB per 8 GPUs, at least 10 GiB on an 80 GB GPU."""
    from stockpile.perf.calibration import engine_defaults, engine_limits, reserve_fraction
    from stockpile.perf.inference import Configs
    h100 = get_chip("h100-sxm-80gb")
    mib = h100.memory_bytes / 2**20
    frac = engine_limits("sglang", h100, Configs(), 1.0, 1.0)[2]
    assert frac == pytest.approx((mib - (512 + 1.5 * 8192 + 2 * 256 + 1024 / 8)) / mib)
    assert 0.82 < frac < 0.85                        # not the flat 0.88 the engine used before v0.4.7
    # more GPUs and attention-DP ranks hold back more; a stated fraction or chunk is the run's own
    assert engine_limits("sglang", h100, Configs(), 1.0, 8.0)[2] < frac
    assert engine_limits("sglang", h100, Configs(), 8.0, 8.0)[2] < engine_limits("sglang", h100, Configs(), 1.0, 8.0)[2]
    assert engine_limits("sglang", h100, Configs(mem_util=0.9), 1.0, 1.0)[2] == 0.9
    assert engine_limits("sglang", h100, Configs(chunk=2048), 1.0, 1.0)[2] > frac
    # a 180 GB GPU's own tier: a 16k-token chunk and 512 graph batches
    b200 = get_chip("b200-sxm-180gb")
    bmib = b200.memory_bytes / 2**20
    assert reserve_fraction(engine_defaults()["sglang"], b200) == pytest.approx(
        (bmib - (512 + 1.5 * 16384 + 2 * 512 + 1024 / 8)) / bmib)
    # Ascend's port is not on these tiers; vLLM keeps its flat 0.9
    assert engine_limits("sglang", get_chip("ascend-910b-64gb"), Configs(), 1.0, 1.0)[2] == 0.88
    assert engine_limits("vllm", h100, Configs(), 1.0, 8.0)[2] == 0.9


def test_a_large_model_on_one_gpu_holds_less_kv_cache_under_sglang_than_the_flat_fraction_gave():
    model, chip = get_model("Qwen/Qwen3-32B"), get_chip("h100-sxm-80gb")
    layout = resolve_layout(gpus=1, tp=1)
    e = estimate(model, chip, layout=layout, engine="sglang", weight_dtype="bf16", kv_dtype="bf16", isl=4000,
                 osl=200, concurrency=512)
    flat = (0.88 * chip.memory_bytes - e.memory_gb.weights_gb * 1e9 - e.memory_gb.reserve_gb * 1e9)
    held = e.max_batch * e.memory_gb.kv_per_sequence_mb * 1e6
    assert held < 0.75 * flat


def test_vllm_holds_its_profiling_sampler_apart_from_the_kv_cache():
    """vLLM sizes its KV cache after a profiling pass that samples max_num_seqs requests over the whole vocabulary
    (perf/serving.reserve_bytes): 1024 sequences on an H100, 256 on an A100 with the same memory, so the same model
    keeps less cache on the H100; SGLang and TensorRT-LLM hold back by their own rules, not by this one."""
    from stockpile.perf.operators import ModelConsts
    from stockpile.perf.serving import reserve_bytes
    cal = load_calibration()
    p_vllm, p_sgl = cal.params("hopper", "vllm"), cal.params("hopper", "sglang")
    assert p_vllm.profile_sampler == 1.0 and p_sgl.profile_sampler == 0.0
    assert cal.params("hopper", "trtllm").profile_sampler == 0.0
    qwen, llama = ModelConsts.of(get_model("Qwen/Qwen3-32B")), ModelConsts.of(get_model("meta-llama/Llama-3.1-8B"))
    sampler = float(reserve_bytes(p_vllm, qwen, 1024.0)) - p_vllm.reserve_gb * 1e9
    assert sampler == pytest.approx(p_vllm.sampler_bytes * 1024 * 151936, rel=1e-3)   # Qwen3's vocabulary
    assert float(reserve_bytes(p_vllm, qwen, 256.0)) - p_vllm.reserve_gb * 1e9 == pytest.approx(sampler / 4)
    assert float(reserve_bytes(p_vllm, llama, 1024.0)) < float(reserve_bytes(p_vllm, qwen, 1024.0))  # 128k vocabulary
    assert float(reserve_bytes(p_sgl, qwen, 1024.0)) == pytest.approx(p_sgl.reserve_gb * 1e9)

    model, layout = get_model("Qwen/Qwen3-32B"), resolve_layout(gpus=1, tp=1)
    runs = {c: estimate(model, get_chip(c), layout=layout, engine="vllm", weight_dtype="bf16", kv_dtype="bf16",
                        isl=2000, osl=100, concurrency=1000) for c in ("h100-sxm-80gb", "a100-sxm-80gb")}
    mem = {c: e.memory_gb for c, e in runs.items()}
    assert mem["h100-sxm-80gb"].reserve_gb - mem["a100-sxm-80gb"].reserve_gb == pytest.approx(0.75 * sampler / 1e9,
                                                                                                  rel=1e-3)
    assert runs["h100-sxm-80gb"].max_batch < runs["a100-sxm-80gb"].max_batch
    # the estimate says what the reserve holds and how to get the cache back
    assert any("profiling pass" in n and "1,024 sequences" in n for n in runs["h100-sxm-80gb"].assumptions)
    sgl = estimate(model, get_chip("h100-sxm-80gb"), layout=layout, engine="sglang", weight_dtype="bf16",
                   kv_dtype="bf16", isl=2000, osl=100, concurrency=1000)
    assert not any("profiling pass" in n for n in sgl.assumptions)


def test_a_running_request_holds_what_it_has_written_and_what_its_engine_sets_aside():
    """perf/serving.running_capacity: staggered requests are half way through their output on average; an engine
    holds room for `reserve_out` of the rest (vLLM none, SGLang its new-token ratio's floor, TensorRT-LLM all)."""
    from stockpile.perf.serving import running_capacity
    budget, kv, isl, osl = 1e9, 1e5, 1000.0, 2000.0          # 10,000 tokens of cache
    peak = budget // (kv * (isl + osl))
    lockstep, fits, held = running_capacity(budget, kv, isl, osl, 0.0, False, 0.0)
    assert float(lockstep) == peak and bool(fits)             # a fixed-length closed loop: each at its end
    assert float(held) == kv * (isl + osl)
    on_demand, _, held = running_capacity(budget, kv, isl, osl, 0.0, True, 0.0)
    assert float(on_demand) == budget // (kv * (isl + osl / 2)) and float(held) == kv * (isl + osl / 2)
    reserved, _, _ = running_capacity(budget, kv, isl, osl, 0.0, True, 1.0)
    assert float(reserved) == peak                            # the whole remainder set aside: the peak again
    partly, _, _ = running_capacity(budget, kv, isl, osl, 0.0, True, 0.098)
    assert float(on_demand) > float(partly) > float(reserved)
    # a request that cannot fit whole does not fit, however little a running one holds on average
    _, fits, _ = running_capacity(budget, kv, 4000.0, 8000.0, 0.0, True, 0.0)
    assert not bool(fits)


def test_engines_state_what_they_set_aside_and_varied_lengths_run_more_requests():
    cal = load_calibration()
    assert cal.params("hopper", "vllm").kv_reserve_out == 0.0
    assert cal.params("hopper", "sglang").kv_reserve_out == pytest.approx(0.098)
    assert cal.params("hopper", "trtllm").kv_reserve_out == 1.0
    assert cal.params("hopper", "other").kv_reserve_out == 1.0          # unstated: the whole remainder
    model, chip = get_model("Qwen/Qwen3-8B"), get_chip("h100-sxm-80gb")
    layout = resolve_layout(gpus=1, tp=1)

    def batch(engine: str, spread: float) -> float:
        return estimate(model, chip, layout=layout, engine=engine, weight_dtype="bf16", kv_dtype="bf16", isl=500,
                        osl=3500, concurrency=1024, length_spread=spread).max_batch
    # about 80 sequences of 4,000 tokens; varied lengths: 500 + (1/2 + 0.098/2) x 3,500 = 2,421 tokens each
    assert batch("sglang", float("inf")) > 1.5 * batch("sglang", 0.0) > 50
    assert batch("trtllm", float("inf")) == batch("trtllm", 0.0)
    # the memory breakdown charges the running requests what they hold: never more KV cache than the budget
    varied = estimate(model, chip, layout=layout, engine="sglang", weight_dtype="bf16", kv_dtype="bf16", isl=500,
                      osl=3500, concurrency=1024, length_spread=float("inf"))
    assert varied.memory_gb.total_gb <= chip.memory_bytes / 1e9
    assert varied.memory_gb.kv_cache_gb < varied.max_batch * varied.memory_gb.kv_per_sequence_mb / 1e3
