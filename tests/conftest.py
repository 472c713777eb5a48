"""Shared fixtures: a tiny chip and a tiny model built in the test, independent of the shipped data."""
from __future__ import annotations

import pytest

from stockpile.catalog.chips import Chip
from stockpile.catalog.models import spec_from_config

SRC = "https://example.org/test-fixture"


def fig(v: float) -> dict:
    return {"value": v, "source": SRC}


@pytest.fixture
def tiny_chip() -> Chip:
    """A 16 GB, 1 TB/s, 100 TFLOP/s (bf16) chip with fp8, NVLink-like scale-up of 8."""
    return Chip.model_validate(dict(
        id="tiny-16gb", vendor="Test", name="Tiny", family="hopper", memory_gb=fig(16), memory_bw_gbs=fig(1000),
        bf16_tflops=fig(100), fp8_tflops=fig(200), int8_tops=fig(200), scaleup_bw_gbs=fig(100),
        scaleup_domain=fig(8), scaleout_gbps=fig(100), tdp_w=fig(300)))


@pytest.fixture
def tiny_model():
    """A 1.2B-parameter Llama-style model (GQA 16/4 heads)."""
    cfg = dict(model_type="llama", hidden_size=2048, num_hidden_layers=16, num_attention_heads=16,
               num_key_value_heads=4, intermediate_size=8192, vocab_size=32000, tie_word_embeddings=False)
    return spec_from_config(cfg, model_id="test/tiny-llama")


@pytest.fixture
def tiny_moe():
    cfg = dict(model_type="qwen3_moe", hidden_size=1024, num_hidden_layers=8, num_attention_heads=16,
               num_key_value_heads=4, head_dim=64, intermediate_size=4096, moe_intermediate_size=512,
               num_experts=32, num_experts_per_tok=4, vocab_size=32000, decoder_sparse_step=1, mlp_only_layers=[])
    return spec_from_config(cfg, model_id="test/tiny-moe")
