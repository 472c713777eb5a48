"""Default rates: the serving sweep through the inference model, the MFU training rule."""
from __future__ import annotations

import pytest

from stockpile.fleet.rates import default_serving_rate, mfu_tokens_per_s, mfu_training_rate


def test_serving_rate_meets_slo_and_loosening_it_never_hurts():
    tight = default_serving_rate("Qwen/Qwen3-8B", "h800-sxm-80gb", 1000, 200, 1000.0, 30.0)
    loose = default_serving_rate("Qwen/Qwen3-8B", "h800-sxm-80gb", 1000, 200, None, None)
    assert 0 < tight <= loose


def test_mfu_rule():
    # 0.35 x 989 TFLOP/s / (6 x 37e9) = 1,559 tokens/s per H800 (DeepSeek-V3 size)
    rate = mfu_training_rate(0.35)(671.0, 37.0, "h800-sxm-80gb")
    assert rate == pytest.approx(mfu_tokens_per_s(37e9, 989e12, 0.35), rel=1e-3)
    assert rate == pytest.approx(1559, rel=0.01)
    assert mfu_training_rate(0.35, mfu_by_chip={"h800-sxm-80gb": 0.7})(671.0, 37.0, "h800-sxm-80gb") == \
        pytest.approx(2 * rate)


def test_mfu_rule_reproduces_deepseek_v3_gpu_hours():
    # DeepSeek-V3: 14.8T tokens in 2.664M H800 GPU-hours of pre-training (fleet_facts.csv, arXiv 2412.19437)
    rate = mfu_training_rate(0.35)(671.0, 37.0, "h800-sxm-80gb")
    assert 14.8e12 / rate / 3600 == pytest.approx(2.664e6, rel=0.03)
