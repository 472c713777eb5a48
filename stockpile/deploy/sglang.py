"""Export a DeploySpec to ``python3 -m sglang.launch_server`` argv (SGLang 0.5.23) and the P/D router.

Flag semantics, read from SGLang 0.5.23 (python/sglang/srt/arg_groups/fields/*.py and hooks):

* ``--tp-size`` is the whole world of one model copy across nodes (parallel.py ``tp_size``);
  ``--pp-size`` pipeline stages; ``--dp-size`` data-parallel replicas behind one endpoint.
* attention DP: ``--attn-dp-size N`` ("data-parallel attention groups inside the TP group",
  fields/parallel.py). ``--dp-size N --enable-dp-attention`` is its deprecated spelling
  (parallel_hook.py ``handle_deprecated_dp_attention``; the table marks the flag deprecated).
* ``--ep-size``: must equal ``--tp-size`` when > 1 (parallel_hook.py).
* ``--quantization``, ``--kv-cache-dtype`` (fp8 -> fp8_e4m3; there is no plain ``fp8`` choice),
  ``--dtype``: choices in data/engines/sglang.yaml.
* ``--max-running-requests`` (max_num_seqs), ``--chunked-prefill-size`` (max_num_batched_tokens),
  ``--context-length`` (max_model_len), ``--mem-fraction-static`` (gpu_memory_utilization: weights +
  KV pool share of GPU memory), ``--disable-radix-cache`` (prefix caching off).
* Speculative: ``--speculative-algorithm`` EAGLE (also the MTP path: NEXTN is an alias of EAGLE in
  speculative/spec_info.py), EAGLE3 or NGRAM; ``--speculative-num-steps`` = draft tokens,
  ``--speculative-eagle-topk 1``, ``--speculative-num-draft-tokens`` = steps + 1 (chain drafting).
* Multi-node: ``--nnodes``/``--node-rank``/``--dist-init-addr host:port`` (fields/parallel.py).
* P/D: ``--disaggregation-mode prefill|decode``, ``--disaggregation-transfer-backend``,
  ``--disaggregation-bootstrap-port`` on prefill (fields/disagg.py); the router is
  ``python3 -m sglang_router.launch_router --pd-disaggregation --prefill URL BOOTSTRAP_PORT --decode URL``
  (sglang-router 0.3.2 router_args.py; checked against data/engines/sglang_router.yaml).
* ``--host 0.0.0.0``: SGLang binds 127.0.0.1 by default, unreachable from a Service.
* Co-located instances: each gets its own device set, ``--port`` and (prefill) bootstrap port; replicas
  sit behind the router's regular mode (``--worker-urls``, cache-aware policy).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from .flags import ArgvBuilder, load_table
from .launch import LEADER_PLACEHOLDER, Launch, build_launches, check_node_rank, script, url
from .placement import Placement, Slot
from .spec import PD_TRANSFER, TORCH_DTYPE, DeployError, DeploySpec

_KV = {"bf16": "bf16", "fp16": "auto", "fp8": "fp8_e4m3"}
_ALGO = {"mtp": "EAGLE", "eagle": "EAGLE", "eagle3": "EAGLE3", "ngram": "NGRAM"}
DIST_PORT = 20000
BOOTSTRAP_PORT = 8998  # --disaggregation-bootstrap-port default (fields/disagg.py)


def sglang_command(spec: DeploySpec, role: str | None = None, node_rank: int | str = 0,
                   leader_address: str = LEADER_PLACEHOLDER, dist_port: int = DIST_PORT,
                   bootstrap_port: int = BOOTSTRAP_PORT, host: str = "0.0.0.0", *,
                   port: int | None = None, index: int = 0) -> list[str]:
    """argv for one SGLang server process: ``role`` (prefill/decode when disaggregated) on ``node_rank``.

    ``port`` (default ``spec.port``) and ``index`` (instances before this one on its host, offsetting the
    bootstrap port) keep co-located instances apart."""
    lay = spec.layout(role)
    check_node_rank(node_rank, lay.nodes)
    b = ArgvBuilder(load_table("sglang"))
    b.value("--model-path", spec.model_id).value("--tp-size", lay.tp)
    if lay.pp > 1:
        b.value("--pp-size", lay.pp)
    if lay.attention_dp:
        b.value("--attn-dp-size", lay.dp)
    elif lay.dp > 1:
        b.value("--dp-size", lay.dp)
    if lay.ep > 1:
        b.value("--ep-size", lay.ep)
    if spec.weight_dtype in TORCH_DTYPE:
        b.value("--dtype", TORCH_DTYPE[spec.weight_dtype])
    if spec.quantization_method:
        b.value("--quantization", spec.quantization_method)
    b.value("--kv-cache-dtype", "auto" if spec.kv_follows_activations else _KV[spec.kv_dtype])
    b.value("--max-running-requests", spec.max_num_seqs)
    if spec.max_num_batched_tokens is not None:
        b.value("--chunked-prefill-size", spec.max_num_batched_tokens)
    b.value("--context-length", spec.max_model_len)
    b.value("--mem-fraction-static", spec.gpu_memory_utilization)
    if not spec.prefix_caching:
        b.switch("--disable-radix-cache")
    sp = spec.speculative
    if sp is not None:
        b.value("--speculative-algorithm", _ALGO[sp.method])
        if sp.draft_model:
            b.value("--speculative-draft-model-path", sp.draft_model)
        if sp.method == "ngram":
            b.value("--speculative-num-draft-tokens", sp.num_draft_tokens)
        else:
            b.value("--speculative-num-steps", sp.num_draft_tokens)
            b.value("--speculative-eagle-topk", 1)
            b.value("--speculative-num-draft-tokens", sp.num_draft_tokens + 1)
    b.value("--host", host).value("--port", spec.port if port is None else port)
    if spec.served_model_name:
        b.value("--served-model-name", spec.served_model_name)
    if lay.nodes > 1:
        b.value("--nnodes", lay.nodes).value("--node-rank", node_rank)
        b.value("--dist-init-addr", f"{leader_address}:{dist_port}")
    if spec.disaggregated is not None:
        b.value("--disaggregation-mode", lay.role)
        b.value("--disaggregation-transfer-backend", PD_TRANSFER["sglang"][spec.disaggregated.kv_transfer])
        if lay.role == "prefill":
            b.value("--disaggregation-bootstrap-port", bootstrap_port + index)
    return b.argv


def sglang_shell(spec: DeploySpec, role: str | None = None, node_rank: int | str = 0,
                 leader_address: str = LEADER_PLACEHOLDER) -> str:
    """:func:`sglang_command` as one shell line (shlex-joined)."""
    return shlex.join(sglang_command(spec, role, node_rank, leader_address))


def sglang_router_command(spec: DeploySpec, plan: Placement | None = None,
                          addr: Callable[[str], str] = lambda h: h, *, bootstrap_port: int = BOOTSTRAP_PORT,
                          discovery: dict[str, object] | None = None, host: str = "0.0.0.0") -> list[str]:
    """argv of the SGLang router on ``spec.port``: a P/D split, or replicas behind ``--worker-urls``.

    Static URLs come from ``plan`` (default: the spec's own placement); ``discovery`` =
    ``{"namespace": ns, "prefill": {label: value}, "decode": {label: value}}`` finds the pods on
    Kubernetes instead, reading each prefill pod's bootstrap port from its ``sglang.ai/bootstrap-port``
    annotation.
    """
    from .placement import place
    plan = plan or place(spec)
    b = ArgvBuilder(load_table("sglang_router"))
    if spec.disaggregated is None:
        if discovery is not None:
            raise DeployError("discovery: replicas on Kubernetes sit behind their Service, not the router; "
                              "fix: use the Service, or a P/D spec")
        b.value("--worker-urls", *[url(addr, s.hosts[0], s.port) for s in plan.role("serve")])
        b.value("--policy", "cache_aware")
        b.value("--host", host).value("--port", spec.port)
        return b.argv
    b.switch("--pd-disaggregation")
    if discovery is not None:
        b.switch("--service-discovery").value("--service-discovery-namespace", discovery["namespace"])
        b.value("--service-discovery-port", spec.port)
        for side in ("prefill", "decode"):
            labels = discovery[side]
            assert isinstance(labels, dict)
            b.value(f"--{side}-selector", *[f"{k}={v}" for k, v in sorted(labels.items())])
    else:
        for s in plan.role("prefill"):
            b.value("--prefill", url(addr, s.hosts[0], s.port), bootstrap_port + s.index)
        for s in plan.role("decode"):
            b.value("--decode", url(addr, s.hosts[0], s.port))
    b.value("--host", host).value("--port", spec.port)
    return b.argv


def _no_env(spec: DeploySpec, slot: Slot) -> dict[str, str]:
    return {}


def sglang_launches(spec: DeploySpec, leader_address: str | None = None,
                    addr: Callable[[str], str] | None = None) -> list[Launch]:
    """Every process: each instance's node ranks with their own devices and ports, then the router in
    front when there are several instances (replicas or a P/D split)."""
    return build_launches(spec, command=sglang_command, env=_no_env, table="sglang", addr=addr,
                          leader_address=leader_address,
                          router=lambda sp, plan, a: (sglang_router_command(sp, plan, a), "sglang_router"))


def sglang_script(spec: DeploySpec, leader_address: str | None = None) -> str:
    """All launches as a commented shell listing."""
    return script(sglang_launches(spec, leader_address))
