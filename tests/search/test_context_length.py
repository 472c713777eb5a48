"""Context length of an exported engine: the model's own unless one sequence cannot fit its KV memory."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stockpile.catalog import get_chip, get_model
from stockpile.cli import app
from stockpile.errors import InputError
from stockpile.search.export import context_length, longest_sequence
from stockpile.search.serving import search

runner = CliRunner()


def _best(model: str, chip: str, gpus: int, isl: float = 2000, osl: float = 500):  # type: ignore[no-untyped-def]
    r = search(get_model(model), get_chip(chip), gpus=gpus, isl=isl, osl=osl, engine="vllm", top=1,
               disaggregation=False, dtypes=["bf16"])
    return r.candidates[0]


def test_the_models_own_context_when_it_fits() -> None:
    m, c = get_model("Qwen/Qwen3-32B"), get_chip("h100-sxm-80gb")
    n, note = context_length(m, c, "vllm", _best("Qwen/Qwen3-32B", "h100-sxm-80gb", 8), isl=2000, osl=500)
    assert n == m.max_position == 40960 and "model's own" in note


def test_the_longest_that_fits_when_the_models_own_does_not() -> None:
    # Llama 3.1 8B in BF16 on one 24 GiB L4: ~16 GB of weights leave a few GB for KV at
    # 32 layers x 8 KV heads x 128 x 2 (K, V) x the KV dtype's bytes a token: tens of thousands of tokens,
    # far below the model's 131,072.
    from stockpile.catalog.chips import BYTES
    from stockpile.perf.calibration import load_calibration
    m, c = get_model("meta-llama/Llama-3.1-8B-Instruct"), get_chip("l4-24gb")
    cand = _best("meta-llama/Llama-3.1-8B-Instruct", "l4-24gb", 1)
    n, note = context_length(m, c, "vllm", cand, isl=2000, osl=500)
    per_token = 32 * 8 * 128 * 2 * BYTES[cand.kv_dtype]
    p = load_calibration().params(c.family, "vllm")
    # the fitted reserve and vLLM's profiling sampler: 256 sequences (its cap on a GPU this size) x 128,256 tokens
    reserve = p.reserve_gb * 1e9 + p.sampler_bytes * 256 * 128256
    budget = c.memory_bytes * 0.9 - cand.weights_gb_per_gpu * 1e9 - reserve
    assert 2500 <= n < m.max_position and "longest" in note
    assert abs(n - budget / per_token) / (budget / per_token) < 0.05      # within rounding of the hand figure
    assert longest_sequence(m, c, "vllm", cand, 1000) == 1000              # a short limit fits as it is


def test_requested_context_is_kept_or_refused_with_the_limit() -> None:
    m, c = get_model("Qwen/Qwen3-32B"), get_chip("h100-sxm-80gb")
    cand = _best("Qwen/Qwen3-32B", "h100-sxm-80gb", 8)
    assert context_length(m, c, "vllm", cand, isl=2000, osl=500, requested=16384)[0] == 16384
    with pytest.raises(InputError, match="40,960"):
        context_length(m, c, "vllm", cand, isl=2000, osl=500, requested=100000)


def test_export_json_carries_context_and_endpoint() -> None:
    r = runner.invoke(app, ["export", "--target", "vllm", "--model", "Qwen/Qwen3-32B", "--chip", "h100-sxm-80gb",
                            "--gpus", "8", "--isl", "2000", "--osl", "500", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["spec"]["max_model_len"] == 40960 and "model's own" in d["context_note"]
    assert d["endpoint"].endswith(":8000/v1") and d["engine_version"] == "0.33.0"
    ports = [(la["host"], la["port"]) for la in d["launches"] if la["port"]]
    assert len(ports) == len(set(ports))
    bad = runner.invoke(app, ["export", "--target", "vllm", "--model", "Qwen/Qwen3-32B", "--chip", "h100-sxm-80gb",
                              "--gpus", "8", "--isl", "2000", "--osl", "500", "--max-model-len", "999999"])
    assert bad.exit_code == 2 and "max_model_len" in bad.output
