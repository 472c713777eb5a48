import pytest

from stockpile.errors import InputError
from stockpile.perf.layout import resolve_layout


def test_plain_tensor_parallel():
    lay = resolve_layout(gpus=8, tp=8)
    assert (lay.attn_tp, lay.attn_dp, lay.replicas, lay.gpus) == (8, 1, 1, 8)


def test_dp_replicas_for_dense():
    lay = resolve_layout(gpus=8, tp=2, dp=4)
    assert (lay.attn_tp, lay.replicas) == (2, 4)


def test_sglang_dp_attention_spelling():
    lay = resolve_layout(gpus=32, tp=32, ep=32, dp=32, is_moe=True)
    assert (lay.attn_tp, lay.attn_dp, lay.moe_ep, lay.replicas) == (1, 32, 32, 1)


def test_trtllm_attention_dp_spelling():
    lay = resolve_layout(gpus=8, tp=1, ep=8, dp=8, is_moe=True)
    assert (lay.attn_tp, lay.attn_dp, lay.moe_ep, lay.moe_tp) == (1, 8, 8, 1)


def test_moe_without_ep_shards_experts_by_tp():
    lay = resolve_layout(gpus=8, tp=8, is_moe=True)
    assert (lay.moe_ep, lay.moe_tp) == (1, 8)


def test_blank_tp_fills_the_gpus():
    assert resolve_layout(gpus=4).attn_tp == 4


@pytest.mark.parametrize("kw,field", [(dict(gpus=8, tp=16), "tp"), (dict(gpus=6, tp=4), "gpus"),
                                      (dict(gpus=8, tp=0), "tp")])
def test_impossible_layouts(kw, field):
    with pytest.raises(InputError) as e:
        resolve_layout(**kw)
    assert e.value.field == field
