"""Frameworks before fused attention kernels (Megatron-LM 2021-22) move the score matrix through HBM."""
from __future__ import annotations

import numpy as np

from stockpile.catalog import get_chip, get_model
from stockpile.perf.training import FRAMEWORKS, TrainChip, TrainConsts, fw_flags, load_training_calibration, step_time


def _attention_share(model_id: str, flash: float, seq: float = 2048.0) -> tuple[float, float]:
    mc, cc = TrainConsts.of(get_model(model_id)), TrainChip.of(get_chip("a100-sxm4-80gb"))
    p = load_training_calibration().params("ampere", "megatron")
    flags = {**fw_flags(FRAMEWORKS["megatron"]), "flash": flash}
    out = step_time(mc, cc, p, tp=np.array(8.0), pp=np.array(1.0), dp=np.array(1.0), ep=np.array(1.0),
                    cp=np.array(1.0), mb=np.array(1.0), recompute=np.array(0.0), zero=np.array(0.0),
                    vpp=np.array(1.0), seq=np.array(seq), batch_tokens=np.array(8 * seq), fp8=np.array(0.0), **flags)
    return float(out["step"]), float(out["attention"])


def test_the_pre_flash_megatron_runs_are_marked_unfused() -> None:
    assert not FRAMEWORKS["megatron2021"].flash and not FRAMEWORKS["megatron2022"].flash
    assert FRAMEWORKS["megatron"].flash and FRAMEWORKS["mosaic"].flash


def test_unfused_attention_costs_more_and_most_on_narrow_models() -> None:
    costs = {}
    for model_id in ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-405B"):
        fused_step, fused_att = _attention_share(model_id, 1.0)
        plain_step, plain_att = _attention_share(model_id, 0.0)
        assert plain_att > fused_att and plain_step > fused_step
        costs[model_id] = plain_step / fused_step - 1.0
    # the score matrix grows with heads x s^2, the GEMMs with hidden^2 x s: wide models feel it least
    assert costs["meta-llama/Llama-3.1-8B"] > 1.5 * costs["meta-llama/Llama-3.1-405B"] > 0.0


def test_the_score_traffic_grows_with_the_square_of_the_sequence() -> None:
    model_id = "meta-llama/Llama-3.1-8B"
    extra = [_attention_share(model_id, 0.0, s)[1] - _attention_share(model_id, 1.0, s)[1] for s in (2048.0, 4096.0)]
    # per step of 8 sequences: twice the tokens per sequence and twice the keys per token
    assert extra[1] / extra[0] > 3.5
