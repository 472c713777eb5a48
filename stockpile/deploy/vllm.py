"""Export a DeploySpec to ``vllm serve`` argv, checked against data/engines/vllm.yaml (vLLM 0.33.0).

Flag semantics, all read from vLLM 0.33.0 (git 4ba787ec9):

* ``--tensor-parallel-size`` / ``--pipeline-parallel-size`` / ``--data-parallel-size``:
  vllm/engine/arg_utils.py + vllm/config/parallel.py. One engine holds TP x PP x DP GPUs.
* attention DP (spec ``attention_dp``): vLLM runs attention data-parallel across DP ranks of a MoE model
  and shards experts over the flattened TP x DP group when ``--enable-expert-parallel`` is on
  (model_executor/layers/fused_moe/config.py ``flatten_tp_across_dp``). The spec's "``dp`` attention
  groups inside ``tp`` GPUs" is therefore ``-tp tp/dp -dp dp``.
* ``--enable-expert-parallel`` is an EnableDisableAction switch; EP width is implied (see spec.py).
* ``--dtype`` only names the activation dtype (bfloat16/float16); quantized weights are read from the
  checkpoint's quantization_config unless ``--quantization`` is given (fp8 weights default to
  ``--quantization fp8``, which also quantizes a BF16 checkpoint online).
* ``--kv-cache-dtype``: vllm/config/cache.py ``CacheDType`` (fp8 = fp8_e4m3); ``auto`` (= model dtype)
  when the KV dtype equals the activation dtype, so attention kernels see matching q/kv dtypes.
* ``--enable-prefix-caching`` / ``--disable-prefix-caching``: vllm/utils/argparse_utils.py
  EnableDisableAction.
* ``--speculative-config`` JSON: vllm/config/speculative.py (``method`` in SpeculativeMethod,
  ``num_speculative_tokens``, ``model`` for EAGLE heads).
* ``--kv-transfer-config`` JSON: vllm/config/kv_transfer.py; NIXL uses ``kv_role=kv_both`` on both
  sides, Mooncake producer/consumer.
* Multi-node (instance > one node): ``--nnodes``/``--node-rank``/``--master-addr`` with the ``mp``
  executor, ``--headless`` on ranks > 0; DP ranks are inferred from the node rank
  (engine/arg_utils.py ``create_engine_config``). Ray is not needed.
* Co-located instances: each gets its own device set, ``--port``, ``--data-parallel-rpc-port`` (default
  29550) and NIXL side-channel port (env ``VLLM_NIXL_SIDE_CHANNEL_PORT``, default 5600, offset by the
  engine per DP/TP rank) or Mooncake bootstrap port (env ``VLLM_MOONCAKE_BOOTSTRAP_PORT``, default 8998).
* Router: vLLM itself ships none. Several instances sit behind ``vllm-router`` (the vLLM project's router,
  PyPI ``vllm-router`` 0.1.17, flags in data/engines/vllm_router.yaml): ``--worker-urls`` for replicas,
  ``--vllm-pd-disaggregation --prefill URL [BOOTSTRAP] --decode URL --kv-connector`` for a P/D split.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from .flags import ArgvBuilder, load_table
from .launch import LEADER_PLACEHOLDER, Launch, build_launches, check_node_rank, script, url
from .placement import Placement, Slot
from .spec import PD_TRANSFER, TORCH_DTYPE, DeploySpec, Layout

_KV = {"bf16": "bfloat16", "fp16": "float16", "fp8": "fp8"}
MASTER_PORT = 29501  # vllm/config/parallel.py ParallelConfig.master_port default
DP_RPC_PORT = 29550  # --data-parallel-rpc-port default
NIXL_SIDE_PORT = 5600  # VLLM_NIXL_SIDE_CHANNEL_PORT default (vllm/envs.py)
MOONCAKE_BOOTSTRAP_PORT = 8998  # VLLM_MOONCAKE_BOOTSTRAP_PORT default (vllm/envs.py)
PORT_STRIDE = 100  # room for the per-rank offsets the engine adds to a side-channel port


def engine_parallel(lay: Layout) -> tuple[int, int]:
    """(tensor_parallel_size, data_parallel_size) as vLLM counts them for this layout."""
    if lay.attention_dp:
        return lay.tp // lay.dp, lay.dp
    return lay.tp, lay.dp


def _speculative(spec: DeploySpec) -> dict[str, object] | None:
    sp = spec.speculative
    if sp is None:
        return None
    cfg: dict[str, object] = {"method": sp.method, "num_speculative_tokens": sp.num_draft_tokens}
    if sp.draft_model:
        cfg["model"] = sp.draft_model
    return cfg


def _kv_transfer(spec: DeploySpec, role: str) -> dict[str, object] | None:
    if spec.disaggregated is None:
        return None
    backend = spec.disaggregated.kv_transfer
    connector = PD_TRANSFER["vllm"][backend]
    if backend == "nixl":
        kv_role = "kv_both"
    else:
        kv_role = "kv_producer" if role == "prefill" else "kv_consumer"
    return {"kv_connector": connector, "kv_role": kv_role}


def vllm_command(spec: DeploySpec, role: str | None = None, node_rank: int | str = 0,
                 leader_address: str = LEADER_PLACEHOLDER, master_port: int = MASTER_PORT, *,
                 port: int | None = None, index: int = 0) -> list[str]:
    """argv for one ``vllm serve`` process: ``role`` (prefill/decode when disaggregated) on ``node_rank``.

    ``node_rank``/``leader_address`` matter only when one instance spans several nodes; they may be
    Kubernetes ``$(VAR)`` references (the manifests use LWS_WORKER_INDEX / LWS_LEADER_ADDRESS).
    ``port`` (default ``spec.port``) and ``index`` (instances before this one on its host) keep
    co-located instances' ports apart.
    """
    lay = spec.layout(role)
    check_node_rank(node_rank, lay.nodes)
    b = ArgvBuilder(load_table("vllm"), [spec.model_id])
    tp, dp = engine_parallel(lay)
    b.value("--tensor-parallel-size", tp).value("--pipeline-parallel-size", lay.pp)
    if dp > 1:
        b.value("--data-parallel-size", dp)
        if index:
            b.value("--data-parallel-rpc-port", DP_RPC_PORT + PORT_STRIDE * index)
    if lay.ep > 1:
        b.toggle("--enable-expert-parallel", True)
    if spec.weight_dtype in TORCH_DTYPE:
        b.value("--dtype", TORCH_DTYPE[spec.weight_dtype])
    if spec.quantization_method:
        b.value("--quantization", spec.quantization_method)
    b.value("--kv-cache-dtype", "auto" if spec.kv_follows_activations else _KV[spec.kv_dtype])
    b.value("--max-num-seqs", spec.max_num_seqs)
    if spec.max_num_batched_tokens is not None:
        b.value("--max-num-batched-tokens", spec.max_num_batched_tokens)
    b.value("--max-model-len", spec.max_model_len)
    b.value("--gpu-memory-utilization", spec.gpu_memory_utilization)
    b.toggle("--enable-prefix-caching", spec.prefix_caching)
    speculative = _speculative(spec)
    if speculative:
        b.value("--speculative-config", speculative)
    transfer = _kv_transfer(spec, lay.role)
    if transfer:
        b.value("--kv-transfer-config", transfer)
    b.value("--port", spec.port if port is None else port)
    if spec.served_model_name:
        b.value("--served-model-name", spec.served_model_name)
    if lay.nodes > 1:
        b.value("--nnodes", lay.nodes).value("--node-rank", node_rank)
        b.value("--master-addr", leader_address).value("--master-port", master_port)
        if node_rank != 0:
            b.switch("--headless")
    return b.argv


def vllm_shell(spec: DeploySpec, role: str | None = None, node_rank: int | str = 0,
               leader_address: str = LEADER_PLACEHOLDER) -> str:
    """:func:`vllm_command` as one shell line (shlex-joined)."""
    return shlex.join(vllm_command(spec, role, node_rank, leader_address))


def vllm_env(spec: DeploySpec, slot: Slot) -> dict[str, str]:
    """Per-instance side-channel ports, apart for co-located instances (defaults when alone)."""
    if spec.disaggregated is None:
        return {}
    if spec.disaggregated.kv_transfer == "nixl":
        return {"VLLM_NIXL_SIDE_CHANNEL_PORT": str(NIXL_SIDE_PORT + PORT_STRIDE * slot.index)}
    if slot.role == "prefill":
        return {"VLLM_MOONCAKE_BOOTSTRAP_PORT": str(MOONCAKE_BOOTSTRAP_PORT + slot.index)}
    return {}


def vllm_router_command(spec: DeploySpec, plan: Placement,
                        addr: Callable[[str], str] = lambda h: h, *, host: str = "0.0.0.0",
                        discovery: dict[str, object] | None = None) -> list[str]:
    """argv of ``vllm-router`` on ``spec.port``: replicas behind ``--worker-urls``, or a P/D split.

    ``discovery`` = ``{"namespace": ns, "prefill": {label: value}, "decode": {...}}`` (or ``"serve"``)
    finds the pods on Kubernetes instead of static URLs."""
    b = ArgvBuilder(load_table("vllm_router"))
    pd = spec.disaggregated
    if pd is not None:
        b.switch("--vllm-pd-disaggregation").value("--kv-connector", pd.kv_transfer)
    if discovery is not None:
        b.switch("--service-discovery").value("--service-discovery-namespace", discovery["namespace"])
        b.value("--service-discovery-port", spec.port)
        for side in (("prefill", "decode") if pd is not None else ("serve",)):
            labels = discovery[side]
            assert isinstance(labels, dict)
            flag = "--selector" if side == "serve" else f"--{side}-selector"
            b.value(flag, *[f"{k}={v}" for k, v in sorted(labels.items())])
    elif pd is not None:
        for s in plan.role("prefill"):
            boot = [MOONCAKE_BOOTSTRAP_PORT + s.index] if pd.kv_transfer == "mooncake" else []
            b.value("--prefill", url(addr, s.hosts[0], s.port), *boot)
        for s in plan.role("decode"):
            b.value("--decode", url(addr, s.hosts[0], s.port))
    else:
        b.value("--worker-urls", *[url(addr, s.hosts[0], s.port) for s in plan.role("serve")])
    if pd is not None:
        b.value("--prefill-policy", "cache_aware").value("--decode-policy", "power_of_two")
    else:
        b.value("--policy", "cache_aware")
    b.value("--host", host).value("--port", spec.port)
    return b.argv


def vllm_launches(spec: DeploySpec, leader_address: str | None = None,
                  addr: Callable[[str], str] | None = None) -> list[Launch]:
    """Every process: each instance's node ranks with their own devices and ports, then ``vllm-router``
    in front when there are several instances (replicas or a P/D split)."""
    return build_launches(spec, command=vllm_command, env=vllm_env, table="vllm", addr=addr,
                          leader_address=leader_address,
                          router=lambda sp, plan, a: (vllm_router_command(sp, plan, a), "vllm_router"))


def vllm_script(spec: DeploySpec, leader_address: str | None = None) -> str:
    """All launches as a commented shell listing."""
    return script(vllm_launches(spec, leader_address))
