"""What a framework does that the step time sees: attention without a fused kernel (Megatron-LM 2021-22) moves
the score matrix through HBM; a dropless MoE that waits on the host pays a stall per MoE layer (Megatron-Core)."""
from __future__ import annotations

import numpy as np
import pytest

from stockpile.catalog import get_chip, get_model
from stockpile.perf.frameworks import FRAMEWORKS, fw_flags
from stockpile.perf.training import TrainChip, TrainConsts, load_training_calibration, step_time


def _step(model_id: str, seq: float = 2048.0, ep: float = 1.0, **flags: float) -> dict[str, float]:
    mc, cc = TrainConsts.of(get_model(model_id)), TrainChip.of(get_chip("a100-sxm4-80gb"))
    p = load_training_calibration().params("ampere", "megatron")
    out = step_time(mc, cc, p, tp=np.array(8.0), pp=np.array(1.0), dp=np.array(1.0), ep=np.array(ep),
                    cp=np.array(1.0), mb=np.array(1.0), recompute=np.array(0.0), zero=np.array(0.0),
                    vpp=np.array(1.0), seq=np.array(seq), batch_tokens=np.array(8 * seq), fp8=np.array(0.0),
                    **{**fw_flags(FRAMEWORKS["megatron"]), **flags})
    return {k: float(v) for k, v in out.items() if np.ndim(v) == 0}


def _attention_share(model_id: str, flash: float, seq: float = 2048.0) -> tuple[float, float]:
    out = _step(model_id, seq, flash=flash)
    return out["step"], out["attention"]


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
    # the score matrix grows with heads x s^2, the GEMMs with hidden^2 x s: wide models feel it least (4x less
    # relative to the GEMMs here; the step's other terms, the same share for both, dilute the gap)
    assert costs["meta-llama/Llama-3.1-8B"] > 1.25 * costs["meta-llama/Llama-3.1-405B"] > 0.0


def test_the_score_traffic_grows_with_the_square_of_the_sequence() -> None:
    model_id = "meta-llama/Llama-3.1-8B"
    extra = [_attention_share(model_id, 0.0, s)[1] - _attention_share(model_id, 1.0, s)[1] for s in (2048.0, 4096.0)]
    # per step of 8 sequences: twice the tokens per sequence and twice the keys per token
    assert extra[1] / extra[0] > 3.5


def test_only_a_host_synchronising_moe_pays_the_stall_per_moe_layer() -> None:
    assert FRAMEWORKS["megatron"].moe_sync and not FRAMEWORKS["hai-llm"].moe_sync
    assert not FRAMEWORKS["maxtext"].moe_sync and not FRAMEWORKS["torchtitan"].moe_sync
    p = load_training_calibration().params("ampere", "megatron")
    moe = get_model("Qwen/Qwen3-30B-A3B")
    synced, free = _step(moe.id, ep=8.0, moe_sync=1.0), _step(moe.id, ep=8.0, moe_sync=0.0)
    # one stall per MoE layer and micro-batch (8 micro-batches of one sequence here), forward and backward
    assert synced["elementwise"] - free["elementwise"] == pytest.approx(8 * moe.moe_layers * p.moe_layer_s, rel=1e-6)
    dense = get_model("meta-llama/Llama-3.1-8B")
    assert _step(dense.id, moe_sync=1.0)["step"] == _step(dense.id, moe_sync=0.0)["step"]


def test_token_dropping_pads_experts_to_capacity_and_pays_a_dense_dispatch() -> None:
    moe = get_model("mistralai/Mixtral-8x7B-v0.1")

    def extra_per_token(seq: float) -> float:
        """GEMM seconds per token that dropping at capacity 1.25 adds over a dropless run (8 sequences a step)."""
        dropless = _step(moe.id, seq=seq, moe_sync=0.0)["gemm"]
        dropped = _step(moe.id, seq=seq, moe_sync=0.0, moe_capacity=1.25)["gemm"]
        return (dropped - dropless) / (8 * seq)

    # every expert padded to 1.25x its mean load (more than the fitted dropless imbalance), plus the one-hot
    # dispatch and combine, whose work per token grows with the group (a sequence): more per token at 4k than 2k
    assert extra_per_token(4096.0) > 1.05 * extra_per_token(2048.0) > 0.0
    dense = get_model("meta-llama/Llama-3.1-8B")
    assert _step(dense.id, moe_capacity=1.25)["step"] == pytest.approx(_step(dense.id)["step"], rel=1e-12)


def test_rows_that_state_token_dropping_carry_the_capacity_factor() -> None:
    from stockpile.calibration.training import make_case
    base = {"id": "x", "model": "mistralai/Mixtral-8x7B-v0.1", "accelerator": "tpu-v6e-32gb", "num_accelerators": "256",
            "seq_len": "4096", "metric": "tokens_per_s_per_gpu", "value": "3600",
            "source_url": "https://github.com/AI-Hypercomputer/tpu-recipes/blob/main/training/trillium/x/README.md"}
    dropped = make_case({**base, "notes": "MaxText; token dropping capacity_factor 1.25, megablox off"})
    assert dropped.flags["moe_capacity"] == 1.25
    assert any("capacity factor 1.25" in a for a in dropped.assumed)
    dropless = make_case({**base, "notes": "MaxText; megablox dropless"})
    assert "moe_capacity" not in dropless.flags


def test_eager_pytorch_moves_the_counted_extra_bytes_and_a_compiler_removes_them() -> None:
    """torchtitan without torch.compile runs its RMSNorm, complex rotary and SwiGLU as chains of eager ops: the
    elementwise time grows by exactly the counted extra bytes per token and layer; compiled, or in a framework with
    fused kernels, it does not."""
    from stockpile.perf.training import EAGER_GLU_BYTES, EAGER_NORM_BYTES, EAGER_ROPE_BYTES
    assert FRAMEWORKS["torchtitan"].eager and not FRAMEWORKS["megatron"].eager and not FRAMEWORKS["mosaic"].eager
    model = get_model("meta-llama/Llama-3.1-8B")
    mc, cc = TrainConsts.of(model), TrainChip.of(get_chip("a100-sxm4-80gb"))
    p = load_training_calibration().params("ampere", "megatron")
    base, eager = _step(model.id, eager=0.0, fused=0.0), _step(model.id, eager=1.0, fused=0.0)
    per_token_layer = EAGER_NORM_BYTES * mc.hidden + EAGER_ROPE_BYTES * (mc.q_dim + 0.5 * mc.kv_dim) \
        + EAGER_GLU_BYTES * mc.ffn_act
    tokens_per_gpu = 8 * 2048 / 8          # 8 sequences of 2,048 tokens; sequence parallel over TP 8
    want = tokens_per_gpu * model.layers * per_token_layer / (cc.mem_bw * p.mem_eff)
    assert eager["elementwise"] - base["elementwise"] == pytest.approx(want, rel=1e-6)
    assert _step(model.id, eager=1.0, fused=1.0)["step"] == pytest.approx(_step(model.id, eager=0.0, fused=1.0)["step"])
    # the norms dominate: an RMSNorm written as six eager ops moves about 20x the bytes of a fused one
    assert EAGER_NORM_BYTES * mc.hidden > EAGER_ROPE_BYTES * (mc.q_dim + 0.5 * mc.kv_dim) > 0


def test_torchtitan_rows_split_a_ranks_batch_into_one_micro_batch_per_stage() -> None:
    """torchtitan (2024) splits a rank's local batch into as many micro-batches as pipeline stages unless told
    otherwise, and its interleaved schedule puts 2 stages on each rank: what its 405B rows ran, not a search."""
    from stockpile.calibration.training import make_case
    base = {"id": "x", "model": "meta-llama/Llama-3.1-405B", "accelerator": "h100-sxm-80gb", "num_accelerators": "512",
            "precision": "fp8", "tp": "8", "pp": "8", "dp": "8", "recompute": "full", "metric": "tokens_per_s_per_gpu",
            "value": "100", "source_url": "https://github.com/pytorch/torchtitan/blob/main/benchmarks/x.md"}
    one = make_case({**base, "notes": "Table5 schedule 1F1B; FSDP8 TP8 PP8 +compile; local bs 32, global bs 256 seqs"})
    assert one.fixed["mb"] == 4 and one.fixed["vpp"] == 1
    assert any("one per pipeline stage" in a for a in one.assumed)
    inter = make_case({**base, "notes": "Table5 schedule Interleaved 1F1B; FSDP8 TP8 PP8; local bs 32, global bs 256 seqs"})
    assert inter.fixed["mb"] == 4 and inter.fixed["vpp"] == 2
    # without a pipeline the local batch is one micro-batch, as before
    flat = make_case({**base, "pp": "1", "dp": "64", "notes": "FSDP; local bs 2, global bs 128 seqs"})
    assert flat.fixed["mb"] == 2
    # another framework's rows keep their layout search
    other = make_case({**base, "source_url": "https://github.com/NVIDIA/Megatron-LM/blob/main/x.md",
                       "notes": "local bs 32"})
    assert "mb" not in other.fixed
