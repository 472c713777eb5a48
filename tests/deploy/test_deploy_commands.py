"""Engine-specific translation of the spec: the argv says what the spec means."""

from __future__ import annotations

import json
import shlex

import pytest
from deploy_cases import make_spec

from stockpile.deploy import (
    DeployError,
    load_table,
    parse,
    sglang_command,
    sglang_launches,
    sglang_router_command,
    sglang_shell,
    vllm_command,
    vllm_launches,
    vllm_shell,
)
from stockpile.deploy.launch import script


def opt(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_vllm_dense_tp() -> None:
    argv = vllm_command(make_spec("dense_tp8_fp8", "vllm"))
    assert argv[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-70B-Instruct"]
    assert opt(argv, "--tensor-parallel-size") == "8" and "--data-parallel-size" not in argv
    assert opt(argv, "--quantization") == "fp8" and "--dtype" not in argv
    assert opt(argv, "--max-num-batched-tokens") == "8192" and opt(argv, "--max-num-seqs") == "128"
    assert "--nnodes" not in argv and "--headless" not in argv


def test_vllm_attention_dp_maps_to_tp_over_dp_with_expert_parallel() -> None:
    argv = vllm_command(make_spec("moe_ep8_attn_dp8", "vllm"))
    assert opt(argv, "--tensor-parallel-size") == "1" and opt(argv, "--data-parallel-size") == "8"
    assert "--enable-expert-parallel" in argv and opt(argv, "--kv-cache-dtype") == "fp8"


def test_vllm_multinode_uses_nnodes_and_headless_workers() -> None:
    spec = make_spec("tp8_pp2_multinode", "vllm")
    lead, work = (item.argv for item in vllm_launches(spec, leader_address="10.1.2.3"))
    for argv, rank in ((lead, "0"), (work, "1")):
        assert opt(argv, "--nnodes") == "2" and opt(argv, "--node-rank") == rank
        assert opt(argv, "--master-addr") == "10.1.2.3"
    assert "--headless" not in lead and "--headless" in work
    assert opt(lead, "--served-model-name") == "llama-405b"
    with pytest.raises(DeployError, match="node_rank"):
        vllm_command(spec, node_rank=2)


def test_vllm_speculative_and_prefix_cache() -> None:
    argv = vllm_command(make_spec("spec_eagle3", "vllm"))
    cfg = json.loads(opt(argv, "--speculative-config") or "{}")
    assert cfg == {"method": "eagle3", "num_speculative_tokens": 4,
                   "model": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"}
    assert "--enable-prefix-caching" in argv
    argv = vllm_command(make_spec("fp8_kv", "vllm"))
    assert "--disable-prefix-caching" in argv and opt(argv, "--port") == "30000"
    assert json.loads(opt(vllm_command(make_spec("spec_mtp", "vllm")), "--speculative-config") or "")[
        "method"] == "mtp"


def test_vllm_pd_one_command_per_role() -> None:
    spec = make_spec("pd_moe_mooncake", "vllm")
    roles = {}
    for item in vllm_launches(spec):
        if item.role == "router":
            continue
        cfg = json.loads(opt(item.argv, "--kv-transfer-config") or "")
        assert cfg["kv_connector"] == "MooncakeConnector"
        roles.setdefault(item.role, set()).add(cfg["kv_role"])
    assert roles == {"prefill": {"kv_producer"}, "decode": {"kv_consumer"}}
    nixl = make_spec("pd_nixl", "vllm")
    assert json.loads(opt(vllm_command(nixl, "decode"), "--kv-transfer-config") or "") == {
        "kv_connector": "NixlConnector", "kv_role": "kv_both"}
    with pytest.raises(DeployError, match="role"):
        vllm_command(nixl)


def test_sglang_attention_dp_uses_attn_dp_size_not_the_deprecated_switch() -> None:
    argv = sglang_command(make_spec("moe_ep8_attn_dp8", "sglang"))
    assert opt(argv, "--tp-size") == "8" and opt(argv, "--attn-dp-size") == "8"
    assert opt(argv, "--ep-size") == "8" and "--dp-size" not in argv
    assert "--enable-dp-attention" not in argv and opt(argv, "--kv-cache-dtype") == "fp8_e4m3"
    dense = sglang_command(make_spec("dense_dp4_tp2", "sglang"))
    assert opt(dense, "--dp-size") == "4" and "--attn-dp-size" not in dense


def test_sglang_mtp_is_eagle_chain() -> None:
    argv = sglang_command(make_spec("spec_mtp", "sglang"))
    assert opt(argv, "--speculative-algorithm") == "EAGLE"
    assert (opt(argv, "--speculative-num-steps"), opt(argv, "--speculative-eagle-topk"),
            opt(argv, "--speculative-num-draft-tokens")) == ("3", "1", "4")
    eagle3 = sglang_command(make_spec("spec_eagle3", "sglang"))
    assert opt(eagle3, "--speculative-draft-model-path") == "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"


def test_sglang_multinode_and_prefix_cache() -> None:
    spec = make_spec("tp8_pp2_multinode", "sglang")
    argv = sglang_command(spec, node_rank=1, leader_address="10.1.2.3")
    assert opt(argv, "--tp-size") == "8" and opt(argv, "--pp-size") == "2"
    assert (opt(argv, "--nnodes"), opt(argv, "--node-rank")) == ("2", "1")
    assert opt(argv, "--dist-init-addr") == "10.1.2.3:20000" and opt(argv, "--host") == "0.0.0.0"
    assert "--disable-radix-cache" in sglang_command(make_spec("fp8_kv", "sglang"))


def test_sglang_pd_roles_and_router() -> None:
    spec = make_spec("pd_nixl", "sglang")
    pre, dec = sglang_command(spec, "prefill"), sglang_command(spec, "decode")
    assert opt(pre, "--disaggregation-mode") == "prefill" and opt(dec, "--disaggregation-mode") == "decode"
    assert opt(pre, "--disaggregation-transfer-backend") == "nixl"
    assert opt(pre, "--disaggregation-bootstrap-port") == "8998"
    assert "--disaggregation-bootstrap-port" not in dec
    router = sglang_router_command(spec)   # 2 x TP4 prefill fill node-0; the TP8 decode takes node-1
    ns = parse(load_table("sglang_router"), router)
    assert ns.pd_disaggregation and ns.prefill == [["http://node-0:8001", "8998"], ["http://node-0:8002", "8999"]]
    assert ns.decode == [["http://node-1:8001"]] and ns.port == 8000
    found = sglang_router_command(spec, discovery={"namespace": "llm", "prefill": {"a": "p"},
                                                   "decode": {"a": "d"}})
    ns = parse(load_table("sglang_router"), found)
    assert ns.service_discovery and ns.prefill_selector == ["a=p"] and ns.decode_selector == ["a=d"]
    assert [item.role for item in sglang_launches(spec)] == ["prefill", "prefill", "decode", "router"]
    replicas = parse(load_table("sglang_router"), sglang_router_command(make_spec("spec_eagle3", "sglang")))
    assert replicas.worker_urls == [f"http://node-0:{8001 + i}" for i in range(4)] and not replicas.pd_disaggregation
    with pytest.raises(DeployError, match="Service"):
        sglang_router_command(make_spec("spec_eagle3", "sglang"), discovery={"namespace": "x"})


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_shell_is_the_quoted_argv(engine: str) -> None:
    spec = make_spec("spec_mtp", engine)
    shell, command = (vllm_shell, vllm_command) if engine == "vllm" else (sglang_shell, sglang_command)
    assert shlex.split(shell(spec)) == command(spec)
    launches = vllm_launches(spec) if engine == "vllm" else sglang_launches(spec)
    text = script(launches)
    assert text.startswith("#!/bin/sh") and shell(spec) in text


def test_launch_count_is_instances_times_nodes_plus_router(spec) -> None:  # type: ignore[no-untyped-def]
    launches = vllm_launches(spec) if spec.engine == "vllm" else sglang_launches(spec)
    expected = sum(lay.nodes * lay.instances for lay in spec.layouts())
    if spec.disaggregated is not None or spec.replicas > 1:
        expected += 1
    assert len(launches) == expected
    assert [la.role for la in launches].count("router") == expected - sum(
        lay.nodes * lay.instances for lay in spec.layouts())


@pytest.mark.parametrize("weight,kv,vllm_kv,sglang_kv", [
    ("bf16", "bf16", "auto", "auto"),
    ("fp8", "bf16", "auto", "auto"),       # quantized checkpoints keep bf16 activations
    ("fp16", "fp16", "auto", "auto"),
    ("fp16", "bf16", "bfloat16", "bf16"),  # explicit only when it differs from the activations
    ("bf16", "fp8", "fp8", "fp8_e4m3"),
])
def test_kv_cache_dtype_mapping(weight: str, kv: str, vllm_kv: str, sglang_kv: str) -> None:
    base = {"model_id": "m/m", "chip_id": "h100-sxm-80gb", "max_model_len": 4096, "weight_dtype": weight,
                "kv_dtype": kv}
    from stockpile.deploy import DeploySpec

    assert opt(vllm_command(DeploySpec(engine="vllm", **base)), "--kv-cache-dtype") == vllm_kv
    assert opt(sglang_command(DeploySpec(engine="sglang", **base)), "--kv-cache-dtype") == sglang_kv
