"""FLOPs per token: 6N for dense models, active parameters for MoE, attention with the context, recompute."""
import pytest

from stockpile.catalog import get_model
from stockpile.perf.training import TrainConsts, hardware_flops_per_token, model_flops_per_token


@pytest.mark.parametrize("model_id", ["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B",
                                      "meta-llama/Llama-3.1-405B", "Qwen/Qwen2.5-72B-Instruct"])
def test_dense_flops_are_6n_at_short_context(model_id):
    """Kaplan et al. 2020: C = 6N per token, N the weights a token multiplies (embedding lookup excluded)."""
    m = get_model(model_id)
    n = m.params - m.embed_params
    assert float(model_flops_per_token(TrainConsts.of(m), 128.0)) == pytest.approx(6 * n, rel=0.03)


def test_moe_flops_follow_active_not_total_parameters():
    m = get_model("deepseek-ai/DeepSeek-V3")
    f = float(model_flops_per_token(TrainConsts.of(m), 128.0))
    assert 6 * (m.active_params - m.embed_params) * 0.95 < f < 6 * m.active_params * 1.05
    assert f < 0.1 * 6 * m.params


def test_attention_grows_linearly_with_context_and_causal_halves_it(tiny_model):
    mc = TrainConsts.of(tiny_model)
    base = float(model_flops_per_token(mc, 0.0))
    a1, a2 = (float(model_flops_per_token(mc, s)) - base for s in (4096.0, 8192.0))
    assert a2 == pytest.approx(2 * a1)
    full = float(model_flops_per_token(mc, 4096.0, causal=False)) - base
    assert full == pytest.approx(2 * a1)
    # Narayanan et al. 2021 eq. (3): attention core 12 l s h per token for fwd+bwd (non-causal convention)
    assert full == pytest.approx(12 * tiny_model.layers * 4096 * tiny_model.heads * tiny_model.head_dim)


def test_more_recompute_means_more_hardware_flops(tiny_model, tiny_moe):
    for model in (tiny_model, tiny_moe):
        mc = TrainConsts.of(model)
        mf = float(model_flops_per_token(mc, 4096.0))
        hf = [float(hardware_flops_per_token(mc, 4096.0, rc)) for rc in (0.0, 1.0, 2.0)]
        assert hf[0] == pytest.approx(mf)
        ratios = [mf / h for h in hf]                 # = MFU / HFU
        assert ratios[0] > ratios[1] > ratios[2]
        assert 0.74 < ratios[2] < 0.82      # full recompute: 4 passes for 3 counted (the lm head not recomputed)
