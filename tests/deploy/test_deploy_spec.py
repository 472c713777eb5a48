"""DeploySpec validation: bad input raises DeployError naming the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from stockpile.deploy import DeployError, DeploySpec, SpeculativeSpec

OK: dict[str, Any] = {"model_id": "Qwen/Qwen3-32B", "chip_id": "h100-sxm-80gb", "engine": "vllm",
                          "max_model_len": 8192}


def make(**kw: Any) -> DeploySpec:
    return DeploySpec(**{**OK, **kw})


def test_defaults_and_layout() -> None:
    s = make(tp=4)
    assert (s.gpus_per_node, s.pp, s.ep, s.dp, s.replicas, s.port) == (8, 1, 1, 1, 1, 8000)
    lay = s.layout()
    assert (lay.role, lay.gpus, lay.nodes, lay.gpus_per_pod) == ("serve", 4, 1, 4)


@pytest.mark.parametrize("kw,gpus,nodes", [
    ({"tp": 8, "pp": 2}, 16, 2),
    ({"tp": 2, "dp": 4}, 8, 1),
    ({"tp": 8, "dp": 8, "ep": 8, "attention_dp": True}, 8, 1),
    ({"tp": 16, "dp": 16, "ep": 16, "attention_dp": True}, 16, 2),
    ({"tp": 8, "pp": 4, "gpus_per_node": 4}, 32, 8),
    ({"tp": 8, "pp": 3}, 24, 3),
])
def test_gpus_per_instance(kw: dict[str, Any], gpus: int, nodes: int) -> None:
    lay = make(**kw).layout()
    assert (lay.gpus, lay.nodes) == (gpus, nodes)


def test_spec_is_frozen_and_closed() -> None:
    s = make()
    with pytest.raises(ValidationError, match="frozen"):
        s.tp = 2  # type: ignore[misc]
    with pytest.raises(DeployError, match="tensor_parallel.*fix: remove it"):
        make(tensor_parallel=2)


@pytest.mark.parametrize("kw,field", [
    ({"tp": 3}, "tp/pp"),                           # 3 does not divide an 8-GPU node
    ({"tp": 16, "gpus_per_node": 6}, "tp/pp"),         # 16 GPUs is not whole 6-GPU nodes
    ({"tp": 4, "pp": 3}, "tp/pp"),                     # 12 GPUs
    ({"tp": 2, "dp": 3}, "tp/pp"),                     # 6 GPUs of engine DP
    ({"tp": 6, "gpus_per_node": 4}, "tp/pp"),
])
def test_layout_must_tile_nodes(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(DeployError) as err:
        make(**kw)
    msg = str(err.value)
    assert msg.startswith(field) and "gpus_per_node" in msg and "fix:" in msg


@pytest.mark.parametrize("kw,needle", [
    ({"weight_dtype": "fp6"}, "weight_dtype"),
    ({"kv_dtype": "int8"}, "kv_dtype"),
    ({"engine": "trtllm"}, "engine"),
    ({"tp": 0}, "tp"),
    ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
    ({"port": 70000}, "port"),
    ({"max_model_len": None}, "max_model_len"),
])
def test_unknown_or_out_of_range_values(kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(DeployError) as err:
        make(**kw)
    assert str(err.value).startswith(needle) and "fix:" in str(err.value)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_disaggregation_transport_the_engine_lacks(engine: str) -> None:
    pd = {"prefill": {"tp": 4}, "decode": {"tp": 4}, "kv_transfer": "nccl"}
    with pytest.raises(DeployError, match=r"disaggregated.kv_transfer: 'nccl' is not supported by "
                                          f"{engine}.*fix: use one of"):
        make(engine=engine, disaggregated=pd)


def test_disaggregation_scales_by_instances_not_replicas() -> None:
    pd = {"prefill": {"tp": 4}, "decode": {"tp": 4}}
    with pytest.raises(DeployError, match="replicas: .*fix: set replicas=1"):
        make(disaggregated=pd, replicas=2)
    s = make(disaggregated=pd)
    assert [lay.role for lay in s.layouts()] == ["prefill", "decode"]
    with pytest.raises(DeployError, match="role"):
        s.layout()
    with pytest.raises(DeployError, match="role"):
        s.layout("serve")


def test_disaggregated_role_layout_is_checked_with_its_path() -> None:
    pd = {"prefill": {"tp": 4}, "decode": {"tp": 12}}
    with pytest.raises(DeployError, match=r"^disaggregated\.decode\.tp/pp"):
        make(disaggregated=pd)


def test_attention_dp_rules() -> None:
    with pytest.raises(DeployError, match="attention_dp: needs dp >= 2"):
        make(tp=8, attention_dp=True)
    with pytest.raises(DeployError, match="dp: with attention_dp .* divisible"):
        make(tp=8, dp=3, attention_dp=True)


def test_expert_parallel_width_per_engine() -> None:
    with pytest.raises(DeployError, match="ep: SGLang requires ep_size == tp_size"):
        make(engine="sglang", tp=8, ep=4)
    with pytest.raises(DeployError, match=r"ep: vLLM's --enable-expert-parallel spans .*16 GPUs"):
        make(engine="vllm", tp=2, dp=8, ep=8)
    assert make(engine="vllm", tp=2, dp=4, ep=8).layout().ep == 8


def test_sglang_has_no_fp16_kv_unless_model_is_fp16() -> None:
    with pytest.raises(DeployError, match="kv_dtype: SGLang"):
        make(engine="sglang", kv_dtype="fp16")
    assert make(engine="sglang", kv_dtype="fp16", weight_dtype="fp16").kv_dtype == "fp16"


def test_speculative_draft_model_rules() -> None:
    with pytest.raises(DeployError, match="speculative.draft_model: method='eagle'"):
        make(speculative={"method": "eagle", "num_draft_tokens": 3})
    with pytest.raises(DeployError, match="takes no draft model"):
        SpeculativeSpec(method="mtp", num_draft_tokens=1, draft_model="x/y")
    with pytest.raises(DeployError, match="speculative.method"):
        make(speculative={"method": "medusa", "num_draft_tokens": 3})


def test_model_validate_also_raises_deploy_error() -> None:
    with pytest.raises(DeployError, match="weight_dtype"):
        DeploySpec.model_validate({**OK, "weight_dtype": "fp2"})
    assert DeploySpec.model_validate(OK).engine == "vllm"
    assert issubclass(DeployError, ValueError)
