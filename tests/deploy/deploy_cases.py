"""Spec spread shared by the deploy-layer tests: every case is exported for both engines."""

from __future__ import annotations

import re
from typing import Any

from stockpile.deploy import DeploySpec, FlagTable

BASE: dict[str, Any] = {"max_model_len": 8192}

CASES: dict[str, dict[str, Any]] = {
    # dense, TP inside one node, FP8 weights
    "dense_tp8_fp8": {"model_id": "meta-llama/Llama-3.1-70B-Instruct", "chip_id": "h800-sxm-80gb", "tp": 8,
                          "weight_dtype": "fp8", "max_num_batched_tokens": 8192, "max_num_seqs": 128},
    # dense, TP x PP over two nodes
    "tp8_pp2_multinode": {"model_id": "meta-llama/Llama-3.1-405B-Instruct", "chip_id": "h100-sxm-80gb",
                              "tp": 8, "pp": 2, "served_model_name": "llama-405b"},
    # dense, engine-internal data parallel (4 replicas of TP2 on one node), several pods
    "dense_dp4_tp2": {"model_id": "Qwen/Qwen3-32B", "chip_id": "a100-sxm-80gb", "tp": 2, "dp": 4, "replicas": 3},
    # MoE with EP + attention DP on one node
    "moe_ep8_attn_dp8": {"model_id": "deepseek-ai/DeepSeek-V3", "chip_id": "h200-sxm-141gb", "tp": 8, "dp": 8,
                             "ep": 8, "attention_dp": True, "weight_dtype": "fp8", "kv_dtype": "fp8",
                             "max_model_len": 32768},
    # MoE with EP + attention DP spanning two nodes
    "moe_ep16_attn_dp16_2nodes": {"model_id": "deepseek-ai/DeepSeek-R1", "chip_id": "h800-sxm-80gb", "tp": 16,
                                      "dp": 16, "ep": 16, "attention_dp": True, "weight_dtype": "fp8"},
    # FP8 KV cache, prefix caching off, small model on a 4-GPU node
    "fp8_kv": {"model_id": "Qwen/Qwen2.5-7B-Instruct", "chip_id": "l40s-48gb", "gpus_per_node": 4, "tp": 1,
                   "kv_dtype": "fp8", "prefix_caching": False, "gpu_memory_utilization": 0.85, "port": 30000},
    # speculative MTP
    "spec_mtp": {"model_id": "deepseek-ai/DeepSeek-V3", "chip_id": "h200-sxm-141gb", "tp": 8,
                     "weight_dtype": "fp8", "speculative": {"method": "mtp", "num_draft_tokens": 3}},
    # speculative EAGLE3 with a draft head, several replicas
    "spec_eagle3": {"model_id": "meta-llama/Llama-3.1-8B-Instruct", "chip_id": "h100-sxm-80gb", "tp": 1,
                        "replicas": 4, "speculative": {"method": "eagle3", "num_draft_tokens": 4,
                                                 "draft_model": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"}},
    # P/D disaggregation, single-node roles, NIXL
    "pd_nixl": {"model_id": "Qwen/Qwen3-32B", "chip_id": "h100-sxm-80gb",
                    "disaggregated": {"prefill": {"instances": 2, "tp": 4}, "decode": {"instances": 1, "tp": 8},
                                   "kv_transfer": "nixl"}},
    # P/D disaggregation of a MoE, decode spans two nodes with attention DP, Mooncake
    "pd_moe_mooncake": {"model_id": "deepseek-ai/DeepSeek-V3", "chip_id": "h800-sxm-80gb",
                            "weight_dtype": "fp8", "disaggregated": {
                                "prefill": {"instances": 1, "tp": 8, "ep": 8, "dp": 8, "attention_dp": True},
                                "decode": {"instances": 2, "tp": 16, "ep": 16, "dp": 16,
                                           "attention_dp": True},
                                "kv_transfer": "mooncake"}},
}

ENGINES = ("vllm", "sglang")
ENV = {"LWS_LEADER_ADDRESS": "10.0.0.1", "LWS_WORKER_INDEX": "1", "LWS_GROUP_SIZE": "2"}


def make_spec(case: str, engine: str) -> DeploySpec:
    return DeploySpec(engine=engine, **{**BASE, **CASES[case]})


def expand_env(argv: list[str]) -> list[str]:
    """What the kubelet does to $(VAR) references before the engine starts."""
    return [re.sub(r"\$\(([A-Z_][A-Z0-9_]*)\)", lambda m: ENV[m.group(1)], a) for a in argv]


def launches(spec: DeploySpec) -> list[tuple[str, list[str]]]:
    """(table name, argv) for every process the spec starts, router included."""
    from stockpile.deploy import sglang_launches, vllm_launches

    fn = vllm_launches if spec.engine == "vllm" else sglang_launches
    return [(item.table, item.argv) for item in fn(spec, leader_address="10.0.0.1")]


def walk(table: FlagTable, argv: list[str]) -> list[str]:
    """Independently re-check an argv against a table; returns the flags seen.

    Every ``-``-token must be a table flag; a value flag consumes its argument(s), each of which must
    pass the table's type/choice check. Anything else (besides the launcher and an allowed positional)
    is an error.
    """
    rest = argv[len(table.command):]
    seen: list[str] = []
    i = 0
    if table.positional and rest and not rest[0].startswith("-"):
        i = 1
    while i < len(rest):
        tok = rest[i]
        assert tok.startswith("-"), f"stray token {tok!r} in {argv}"
        flag = table.get(tok)
        assert not flag.deprecated, tok
        seen.append(flag.name)
        i += 1
        if flag.kind != "value":
            continue
        take = 1 if flag.nargs is None else None if flag.nargs in ("+", "*") else int(flag.nargs)
        values = []
        while i < len(rest) and (take is None or len(values) < take) and not (
                rest[i].startswith("--") and len(rest[i]) > 2):
            values.append(rest[i])
            i += 1
        assert values, f"{tok} without a value"
        for v in values:
            table.check_value(flag, v)
    return seen
