"""Memory per GPU: ZeRO stages, recompute, tensor parallelism, and a layout that does not fit says so."""
import numpy as np
import pytest

from stockpile.catalog import get_chip, get_model
from stockpile.errors import InfeasibleError
from stockpile.perf.training import TrainChip, TrainConsts, TrainJob, TrainLayout, memory_per_gpu
from stockpile.search.training import estimate


def _mem(model, chip, priors, **kw):
    lay = dict(tp=1.0, pp=1.0, dp=8.0, ep=1.0, cp=1.0, mb=1.0, recompute=0.0, zero=0.0, vpp=1.0)
    lay.update(kw)
    return memory_per_gpu(TrainConsts.of(model), TrainChip.of(chip), priors.params(chip.family, "megatron"),
                          micro_batches=8.0, seq=4096.0, fp8=0.0, **lay)


def test_memory_falls_with_each_zero_stage(tiny_model, tiny_chip, priors):
    totals = [float(_mem(tiny_model, tiny_chip, priors, zero=z)["total"]) for z in (0.0, 1.0, 2.0, 3.0)]
    assert all(a > b for a, b in zip(totals, totals[1:]))
    m0, m1 = _mem(tiny_model, tiny_chip, priors, zero=0.0), _mem(tiny_model, tiny_chip, priors, zero=1.0)
    # ZeRO-1 shards the 12 B/param Adam states over dp = 8 (Rajbhandari et al. 2020, Fig. 1)
    assert float(m1["optimizer"]) == pytest.approx(float(m0["optimizer"]) / 8)


def test_recompute_and_tp_lower_activation_memory(tiny_model, tiny_chip, priors):
    acts = [float(_mem(tiny_model, tiny_chip, priors, recompute=r)["activations"]) for r in (0.0, 1.0, 2.0)]
    assert acts[0] > acts[1] > acts[2]
    a1 = float(_mem(tiny_model, tiny_chip, priors, tp=1.0)["activations"])
    a4 = float(_mem(tiny_model, tiny_chip, priors, tp=4.0, dp=2.0)["activations"])
    assert a4 == pytest.approx(a1 / 4)          # sequence parallelism splits every stored activation


def test_pipeline_first_stage_holds_pp_micro_batches(tiny_model, tiny_chip, priors):
    one = float(_mem(tiny_model, tiny_chip, priors, pp=1.0)["activations"])
    four = float(_mem(tiny_model, tiny_chip, priors, pp=4.0, dp=2.0)["activations"])
    assert four == pytest.approx(one)           # 1/4 of the layers x 4 micro-batches in flight


def test_a_layout_that_does_not_fit_says_by_how_much():
    job = TrainJob(model=get_model("meta-llama/Llama-3.1-70B"), chip=get_chip("h100-sxm-80gb"), gpus=8,
                   seq_len=8192, global_batch_tokens=8 * 8192)
    est = estimate(job, TrainLayout(tp=8, dp=1, zero=0))
    assert not est.fits and est.over_memory_gb > 50
    assert any("GB over" in s for s in est.limits)


def test_memory_breakdown_adds_up(tiny_model, tiny_chip, priors):
    m = _mem(tiny_model, tiny_chip, priors, zero=1.0)
    parts = sum(float(m[k]) for k in ("weights", "gradients", "optimizer", "activations", "other"))
    assert np.isclose(parts, float(m["total"]))


def test_infeasible_model_raises_a_clear_error():
    from stockpile.search.training import best_training_layout
    with pytest.raises(InfeasibleError, match="does not fit .* GB over"):
        best_training_layout("meta-llama/Llama-3.1-405B", "l4-24gb", 8, seq_len=4096)
