"""Default rates: the serving sweep through the inference model; training speed from the training model (one
path for catalog models and sizes); the MFU rule of an explicit override."""
from __future__ import annotations

import pytest

from stockpile.errors import InputError
from stockpile.fleet.rates import (
    TrainingSpeed,
    default_serving_rate,
    gpu_hours,
    mfu_tokens_per_s,
    mfu_training_rate,
    training_speed,
    training_speed_fn,
)


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


# ---------------------------------------------------------------- one training-speed path
def _reported_deepseek_v3_gpu_hours() -> float:
    """DeepSeek-V3 pre-training: 2.664M H800 GPU-hours for 14.8T tokens (arXiv 2412.19437), as shipped."""
    import csv
    from importlib import resources
    text = (resources.files("stockpile") / "data" / "measurements" / "fleet_facts.csv").read_text()
    row = next(r for r in csv.DictReader(text.splitlines()) if r["fact"] == "DeepSeek-V3 pre-training GPU-hours")
    assert row["unit"] == "million H800 GPU-hours" and float(row["value"]) == 2.664
    return float(row["value"]) * 1e6


@pytest.mark.parametrize("precision", ["fp8", "bf16"])
def test_deepseek_v3_by_id_and_by_size_agree(precision):
    by_id = training_speed(671, 37, "h800-sxm-80gb", 2048, model_id="deepseek-ai/DeepSeek-V3", precision=precision)
    by_size = training_speed(671, 37, "h800-sxm-80gb", 2048, precision=precision)
    assert by_id is not None and by_size is not None
    assert gpu_hours(14.8e12, by_size) == pytest.approx(gpu_hours(14.8e12, by_id), rel=0.10)
    assert "seq 4096" in by_id.note and "DeepSeek-V3" in by_size.note


def test_deepseek_v3_reported_gpu_hours():
    # DeepSeek-V3 was pre-trained in fp8 on 2048 H800 at sequence 4096: 14.8T tokens in 2.664M GPU-hours
    reported = _reported_deepseek_v3_gpu_hours()
    for model_id in ("deepseek-ai/DeepSeek-V3", None):
        speed = training_speed(671, 37, "h800-sxm-80gb", 2048, model_id=model_id, precision="fp8")
        assert speed is not None
        assert gpu_hours(14.8e12, speed) == pytest.approx(reported, rel=0.25), speed.note
        # goodput of a 2048-GPU job (Llama 3 interruption rate, Young/Daly checkpoints): a few percent lost
        assert 0.9 < speed.goodput < 1.0
        # 6 N_active x tokens/s over the fp8 peak (1979 TFLOP/s dense) is an MFU below the reported figure
        assert 6 * 37e9 * speed.tokens_per_s_per_gpu / 1979e12 < speed.mfu < 0.5


def test_goodput_falls_with_the_job_size():
    small = training_speed(671, 37, "h800-sxm-80gb", 2048, precision="fp8")
    large = training_speed(671, 37, "h800-sxm-80gb", 8192, precision="fp8")
    assert small is not None and large is not None
    assert large.goodput < small.goodput


def test_chips_that_cannot_train_give_none():
    # the RTX 4090D has no sourced 16-bit tensor peak in the catalog
    assert training_speed(70, 70, "rtx-4090d-24gb", 64) is None
    # 405B in bf16 weights alone is 810 GB; 8 x 24 GB L4 hold 192 GB
    assert training_speed(405, None, "l4-24gb", 8) is None
    assert training_speed(405, 405, "l4-24gb", 8, model_id="meta-llama/Llama-3.1-405B") is None


def test_fp8_on_a_chip_without_fp8_units_trains_in_bf16():
    fp8 = training_speed(70, None, "a100-sxm-80gb", 64, precision="fp8")
    bf16 = training_speed(70, None, "a100-sxm-80gb", 64, precision="bf16")
    assert fp8 is not None and bf16 is not None
    assert fp8.tokens_per_s_per_gpu == bf16.tokens_per_s_per_gpu and "no fp8 units" in fp8.note


def test_bad_input_still_raises():
    with pytest.raises(InputError):
        training_speed(10, 20, "h100-sxm-80gb", 8)
    with pytest.raises(InputError):
        training_speed(8, 8, "h100-sxm-80gb", 0)


def test_gpu_hours_arithmetic():
    speed = TrainingSpeed(tokens_per_s_per_gpu=1000.0, goodput=0.8, mfu=0.4, layout={}, note="")
    # 3.6e9 tokens at 1000 tokens/s per GPU = 3.6e6 GPU-s = 1000 GPU-h of work, / 0.8 goodput = 1250 GPU-h
    assert gpu_hours(3.6e9, speed) == pytest.approx(1250.0)


def test_planner_training_fn_is_training_speed():
    fn = training_speed_fn("bf16")
    speed = training_speed(671, 37, "h800-sxm-80gb", 2048, model_id="deepseek-ai/DeepSeek-V3")
    assert speed is not None
    assert fn(671.0, 37.0, "h800-sxm-80gb", 2048, "deepseek-ai/DeepSeek-V3") == (speed.tokens_per_s_per_gpu,
                                                                               speed.goodput)
    assert fn(671.0, 37.0, "rtx-4090d-24gb", 2048, None) is None    # no sourced peak: cannot train


def test_plan_prices_a_generation_the_same_by_size_and_by_id():
    # One training-rate path (issue 11 item 8): DeepSeek-V3 named by its catalog id and described by its size
    # (671B / 37B active) on 2048 H800 in FP8 cost the same GPU-hours, near DeepSeek's reported 2.664M.
    from fleet_helpers import fake_rates

    from stockpile.fleet.planner import plan_scenario
    from stockpile.fleet.rates import Rates
    scn = {"name": "t", "start": "2025-01", "horizon_months": 12,
           "stock": [{"chip": "h800-sxm-80gb", "count": 4096}],
           "training": {"precision": "fp8", "generations": [
               {"name": "by-id", "model": "deepseek-ai/DeepSeek-V3", "tokens": "14.8T", "deadline": "2025-12",
                "min_chips": 2048, "max_chips": 2048},
               {"name": "by-size", "params_b": 671, "active_params_b": 37, "tokens": "14.8T",
                "deadline": "2025-12", "min_chips": 2048, "max_chips": 2048}]}}
    rates = Rates(serving=fake_rates().serving, training=training_speed_fn("fp8"))
    res = plan_scenario(scn, samples=0, rates=rates, stock_only=False)
    a, b = (g.gpu_hours for g in res.generations)
    assert a == pytest.approx(b, rel=0.10)
    for h in (a, b):
        assert h == pytest.approx(2.664e6, rel=0.25)
    assert all("training model" in g.rate_source for g in res.generations)
