"""Model shapes for a size alone: the nearest catalog config of the same kind, scaled (stockpile.catalog.derive)."""
from __future__ import annotations

import math

import pytest

from stockpile.catalog import get_model, list_models
from stockpile.catalog.derive import derive_model
from stockpile.errors import InputError


def test_deepseek_v3_size_gives_an_mla_moe_of_that_size():
    spec, note = derive_model(671, 37)       # DeepSeek-V3: 671B total, 37B activated (arXiv 2412.19437)
    assert spec.is_moe and spec.is_mla
    assert spec.params == pytest.approx(671e9, rel=0.03)
    assert spec.active_params == pytest.approx(37e9, rel=0.03)
    assert "\n" not in note and "DeepSeek-V3" in note


def test_dense_70b():
    spec, note = derive_model(70)
    assert not spec.is_moe
    assert spec.params == pytest.approx(70e9, rel=0.03)
    assert spec.active_params == spec.params
    assert spec.head_dim == 128 and note


def test_a_moe_beyond_the_catalog():
    spec, _ = derive_model(1000, 50)
    assert spec.is_moe
    assert spec.params == pytest.approx(1000e9, rel=0.03)
    assert spec.active_params == pytest.approx(50e9, rel=0.03)
    # expert parallelism still divides the experts by 16 or more, as in published configs (64 ... 384)
    assert spec.experts % 16 == 0


def test_small_dense_and_kind_threshold():
    assert derive_model(1)[0].params == pytest.approx(1e9, rel=0.03)
    # active within 3 % of the total is dense; 10 % below it is a mixture of experts
    assert not derive_model(100, 98)[0].is_moe
    moe = derive_model(100, 90)[0]
    assert moe.is_moe and moe.active_params == pytest.approx(90e9, rel=0.03)


def test_a_catalog_size_gives_back_its_shape():
    v3 = get_model("deepseek-ai/DeepSeek-V3")
    spec, _ = derive_model(v3.params / 1e9, v3.active_params / 1e9)
    assert (spec.layers, spec.hidden, spec.experts, spec.ffn_expert, spec.dense_layers) == (61, 7168, 256, 2048, 3)
    llama = get_model("meta-llama/Llama-3.1-70B")
    spec, _ = derive_model(llama.params / 1e9)
    assert (spec.layers, spec.hidden, spec.heads, spec.kv_heads, spec.ffn_dense) == (80, 8192, 64, 8, 28672)


def test_every_catalog_size_can_be_derived():
    for m in list_models():
        total, active = round(m.params / 1e9, 1), round(m.active_params / 1e9, 1)
        spec, _ = derive_model(total, active)
        assert spec.params == pytest.approx(total * 1e9, rel=0.03), m.id
        assert spec.active_params == pytest.approx(active * 1e9, rel=0.03), m.id


@pytest.mark.parametrize("args,field", [((0,), "params_b"), ((-5,), "params_b"), ((math.nan,), "params_b"),
                                        ((10, 20), "active_params_b"), ((10, 0), "active_params_b"),
                                        ((10, -1), "active_params_b")])
def test_nonsense_is_an_input_error_naming_the_field(args, field):
    with pytest.raises(InputError) as err:
        derive_model(*args)
    assert err.value.field == field


def test_cached_and_named():
    assert derive_model(235, 22) is derive_model(235, 22)
    assert derive_model(30, 3, name="next-gen")[0].id == "next-gen"
