"""The engine limits trtllm-bench throughput sets for a table row (calibration/trtllm_bench)."""
from __future__ import annotations

import pytest

from stockpile.calibration import trtllm_bench
from stockpile.calibration.inference import Prepared, prepare_rows
from stockpile.catalog.models import get_model


def test_the_benchmark_rounds_its_batch_and_token_budget_as_tensorrt_llm_does():
    assert trtllm_bench.settings(5000, 128, 128, 1) == (4096, 8192)          # batch capped; 2 x 4,096 tokens
    assert trtllm_bench.settings(100, 2048, 128, 1) == (128, 2048)           # 100 x 17 = 1,700 -> the 2,048 floor
    assert trtllm_bench.settings(300, 2048, 128, 1) == (384, 5120)           # 300 x 17 = 5,100 -> 512s
    assert trtllm_bench.settings(3000, 2048, 128, 1) == (3072, 32768)        # 3,000 x 17 -> capped at 32,768
    assert trtllm_bench.settings(900, 5000, 500, 1) == (1024, 10240)         # 900 x 11 = 9,900 -> 1,024s
    assert trtllm_bench.settings(40, 128, 128, 2) == (64, 2048)              # at least 64 sequences, 2,048 tokens


def test_its_kv_estimate_counts_at_least_one_kv_head_per_tensor_parallel_rank():
    m = get_model("Qwen/Qwen3-235B-A22B")                                    # 4 KV heads
    mem = 141e9
    at4 = trtllm_bench.kv_requests(m, mem, 4, 1, 1000, 1000, "fp8", "fp8")
    at8 = trtllm_bench.kv_requests(m, mem, 8, 1, 1000, 1000, "fp8", "fp8")
    free4, free8 = 4 * mem - m.params, 8 * mem - m.params
    assert at8 / at4 == pytest.approx((free8 / 8) / (free4 / 4))             # 8 "heads" at TP8 against 4 at TP4
    assert trtllm_bench.kv_requests(m, 40e9, 1, 1, 1000, 1000, "bf16", "bf16") == 0.0   # weights do not fit


def _row(notes: str, concurrency: str = "") -> dict[str, str]:
    return {"id": "t-1", "model": "meta-llama/Llama-3.1-8B-Instruct", "accelerator": "h200-sxm-141gb",
            "num_accelerators": "1", "engine": "trtllm", "weight_dtype": "fp8", "kv_dtype": "", "tp": "1", "pp": "1",
            "ep": "", "dp": "", "input_len": "2048", "output_len": "128", "concurrency": concurrency,
            "scenario": "offline", "metric": "output_tokens_per_s", "value": "3500", "source_url": "u", "notes": notes}


def test_a_table_row_takes_the_benchmarks_limits_unless_it_states_them():
    preps = [p for p in prepare_rows([_row("trtllm-bench throughput, max load"),
                                      _row("trtllm-bench throughput; max_num_tokens 8192"),
                                      _row("trtllm-bench serve", concurrency="64"),
                                      _row("a throughput run")]) if isinstance(p, Prepared)]
    m = get_model("meta-llama/Llama-3.1-8B-Instruct")
    bs, tok = trtllm_bench.bench_limits(m, preps[0].chip.memory_bytes, 1, 1, 2048, 128, "fp8", "fp8")
    assert 8192 < tok <= trtllm_bench.MAX_TOKENS and bs > 64
    assert [p.case.budget for p in preps] == [tok, 8192, None, None]
    assert [p.case.max_seqs for p in preps] == [bs, bs, None, None]
    assert any("trtllm-bench" in u for u in preps[0].case.notes_used)
