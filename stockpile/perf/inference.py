"""Inference estimate: a model on N chips with a layout, dtypes, engine and workload.

:func:`evaluate` is the vectorised entry (arrays of layouts, dtypes and workloads for one model, chip and
engine) used by search and calibration; :func:`estimate` wraps it for one configuration and returns a typed
:class:`InferenceEstimate` with the memory breakdown and what limits the configuration.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from stockpile.catalog.chips import BYTES, Chip
from stockpile.catalog.dtypes import normalise_dtype
from stockpile.catalog.engines import read_engine
from stockpile.catalog.figure_ranges import chip_at_edge, estimated_figures, uncertain_speeds
from stockpile.catalog.models import ModelSpec
from stockpile.catalog.prices import token_cost
from stockpile.errors import InputError, UnknownNameError
from stockpile.perf.calibration import (  # noqa: F401  (engine_limits, hybrid_kv: re-exported)
    Calibration,
    Params,
    check_release,
    engine_defaults,
    engine_key,
    engine_limits,
    hybrid_kv,
    load_calibration,
    release_notes,
)
from stockpile.perf.layout import Layout
from stockpile.perf.operators import ChipConsts, ModelConsts
from stockpile.perf.serving import (
    MODE_CLOSED,
    MODE_OFFLINE,
    MODE_OPEN,
    ContextHold,
    check_batch_wait,
    check_intervals,
    check_request_rate,
    kv_budget_bytes,
    reserve_bytes,
    serve,
    serve_disagg,
)
from stockpile.perf.traffic import prefill_policy, wave_note
from stockpile.perf.uncertainty import edge_ratios, estimate_bands

# the memory fraction a launch command sets where the engine's own default leaves a layout no room
# (deploy.spec's gpu_memory_utilization default, which `stockpile export` writes as vLLM's flag)
LAUNCH_MEM_UTIL = 0.9

WEIGHT_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")
KV_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8")
# Stored bytes per weight, scales included: int4 group-128 with fp16 scales; NVFP4 block-16 with fp8 scales.
WEIGHT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0 + 4 / 128 ** 2, "int8": 1.0 + 2 / 4096,
                "int4": 0.5 + 2 / 128, "fp4": 0.5 + 1 / 16}


def check_engine(engine: str) -> str:
    """The calibrated engine an engine name runs as (catalog.engines: spellings, ports, engines read as 'other');
    a release written into the name is refused with the fix (commands take it apart, --engine-version)."""
    return read_engine(engine, allow_version=False).engine


def check_engine_chip(engine: str, chip: Chip) -> None:
    """An engine runs only on the chip vendors in data/engines/defaults.yaml (`vendors`; no entry: any). A vendor
    the catalog does not know (a user's chip file) is not judged."""
    from stockpile.catalog.chips import shipped_vendors
    vendors = engine_defaults().get(engine, {}).get("vendors")
    known = shipped_vendors()
    if vendors and chip.vendor in known and chip.vendor not in vendors:
        able = [e for e, d in engine_defaults().items() if isinstance(d, dict) and chip.vendor in (d.get("vendors")
                                                                                               or [chip.vendor])]
        raise InputError("engine", f"{engine} does not run on {chip.vendor} chips ({chip.id}); use "
                                   f"{' or '.join(able) if able else 'another engine'}")


def check_dtype(field_name: str, dtype: str, allowed: tuple[str, ...]) -> str:
    d = normalise_dtype(dtype) or ""
    if d not in allowed:
        raise UnknownNameError(field_name, dtype, allowed)
    return d


DTYPE_KINDS = ("16bit", "fp8", "fp4", "int8", "dequant")


def compute_path(chip: Chip, wdtype: str) -> tuple[float, str, str]:
    """(GEMM peak FLOP/s, kind, description) for weights stored in `wdtype` on `chip`.

    Native low-precision tensor cores run W8A8/W4A4 at their own peak; otherwise engines dequantize to
    16 bit (weight-only kernels such as Marlin), so the 16-bit peak applies with a dequant penalty."""
    sixteen = "bf16" if chip.has_native("bf16") else "fp16"
    if wdtype in ("fp8", "fp4", "int8") and chip.has_native(wdtype):
        return chip.peak_flops(wdtype), wdtype, f"{wdtype} tensor cores"
    if wdtype in ("bf16", "fp16", "fp32"):
        return chip.peak_flops(sixteen), "16bit", "16-bit tensor cores"
    return chip.peak_flops(sixteen), "dequant", f"{wdtype} weights dequantized to 16 bit"


def dtype_efficiency(p: Params, kind: np.ndarray) -> np.ndarray:
    """GEMM efficiency factor of each compute path relative to 16-bit GEMMs (kind: index in DTYPE_KINDS)."""
    table = np.stack(np.broadcast_arrays(1.0, p.fp8_gemm_eff, p.fp4_gemm_eff, p.int8_gemm_eff, p.dequant_eff))
    k = np.asarray(kind, dtype=int)
    if table.ndim == 1:
        return table[k]
    return np.take_along_axis(table, k.reshape(1, -1), axis=0)[0] if k.ndim else table[k]


def stream_share(p: Params, kind: np.ndarray) -> np.ndarray:
    """Share of the memory bandwidth at which a dense GEMM streams its weights on each compute path (kind: index
    in DTYPE_KINDS): `fp4_mem_eff` on native 4-bit tensor cores, 1 elsewhere.

    A decode-sized GEMM on NVFP4/MXFP4 weights (Blackwell's block-scaled kernels) has to read the per-16-element
    scales beside the packed weights and fills a 128-row tile from a few rows; on the aiconfigurator sweeps
    Llama-3.1-70B in FP4 decodes on one B200 at 13.5 ms where its 38.5 GB of GEMM weights take 5.3 ms at the fitted
    bandwidth, and barely faster than in FP8 at two to eight GPUs. Grouped expert kernels are other code and keep
    `expert_mem_eff` (fitting this share on them too drives it to its upper bound)."""
    k = np.asarray(kind, dtype=float)
    return np.where(k == float(DTYPE_KINDS.index("fp4")), np.asarray(p.fp4_mem_eff, dtype=float), 1.0)


def weight_bytes_array(mc: ModelConsts, attn_tp, pp, moe_ep, moe_tp, wbytes):
    """Weights held by the most loaded GPU: each part split by its parallel degree, over PP stages."""
    stage = (mc.dense_like_params / attn_tp + mc.expert_params / (moe_ep * moe_tp)) / pp
    vocab = np.where(np.asarray(pp) == 1, mc.embed + mc.head_params, np.maximum(mc.embed, mc.head_params)) / attn_tp
    return (stage + vocab) * wbytes


def kv_bytes_per_token_gpu(mc: ModelConsts, attn_tp, pp, kvbytes, context, hybrid_kv=0.0):
    """KV bytes one GPU stores per token of one of its sequences (GQA heads split over TP; MLA not).

    Sliding-window layers get full-length KV blocks in most engines' allocators (TensorRT-LLM, SGLang); engines
    with a hybrid KV manager (vLLM V1) keep only the window for them (`hybrid_kv` = 1)."""
    split = np.minimum(attn_tp, mc.kv_split_max)
    frac = np.minimum(1.0, mc.window / np.maximum(context, 1.0))
    window_only = np.maximum(hybrid_kv, mc.window_cache)
    layers = mc.full_layers + mc.sliding_layers * (1.0 - window_only + window_only * frac)
    # DeepSeek-V4: a pooled entry per ratio tokens per compressed layer, and the CSA indexer's keys
    return (mc.kv_elems * kvbytes / split * (layers + mc.pooled_per_token) + mc.index_bytes * mc.softmax_layers
            + mc.pooled_index_bytes) / pp


@dataclass
class Configs:
    """Arrays (broadcastable) describing configurations of one model on one chip with one engine."""

    attn_tp: Any = 1
    attn_dp: Any = 1
    pp: Any = 1
    moe_ep: Any = 1
    moe_tp: Any = 1
    replicas: Any = 1
    weight_dtype: Any = "bf16"      # str or array of str
    kv_dtype: Any = "bf16"
    isl: Any = 1024
    osl: Any = 256
    mode: Any = MODE_CLOSED
    concurrency: Any = np.nan
    rate: Any = np.nan
    num_requests: Any = np.nan
    poisson: Any = 1.0
    spec_draft: Any = 0
    spec_accept: Any = 1.0
    spec_verify: Any = 0            # tokens verified per step with a draft tree (0: a chain, 1 + spec_draft)
    prefix_hit: Any = 0.0
    max_seqs: Any = None
    chunk: Any = None
    mem_util: Any = None
    hybrid_kv: Any = None           # 1 where the engine stores only the window for sliding-window layers
    sync: Any = 1.0                 # 1: fixed request lengths (closed loops stay in lockstep); 0: varied
    spread: Any = np.inf            # varied lengths: (max - min) / mean where known (a random range ratio)
    prefill_first: Any = None       # 1 where waiting prompts run as prompt-only batches first (perf/traffic.py)
    prefill_batch: Any = None       # tokens in one such batch (traffic.prefill_policy)
    recv: Any = 1.0                 # decode steps between the scheduler's polls for new requests (SGLang)
    stream: Any = 1.0               # decode steps between a request's output flushes (SGLang --stream-interval)
    hold: Any = None                # TensorRT-LLM's context holding (serving.ContextHold); None: none

    @property
    def gpus_per_instance(self) -> Any:
        """GPUs of one instance, attn_tp x attn_dp x pp (as Layout.gpus_per_instance), per configuration."""
        return np.asarray(self.attn_tp, float) * np.asarray(self.attn_dp, float) * np.asarray(self.pp, float)


def _lookup(values, table: dict[str, float]) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype.kind in "US":
        uniq, inv = np.unique(a, return_inverse=True)
        return np.array([table[u] for u in uniq], dtype=float)[inv].reshape(a.shape)
    return np.asarray(a, dtype=float)


def chip_dtype_tables(chip: Chip, dtypes) -> tuple[np.ndarray, np.ndarray]:
    """(GEMM peak, compute-path kind index) for each weight dtype in `dtypes`, on `chip`."""
    wd = np.asarray(dtypes)
    peaks, kinds = {}, {}
    for u in np.unique(wd):
        peak, kind, _ = compute_path(chip, str(u))
        peaks[str(u)], kinds[str(u)] = peak, float(DTYPE_KINDS.index(kind))
    return _lookup(wd, peaks), _lookup(wd, kinds)


def evaluate_core(mc: ModelConsts, cc: ChipConsts, p: Params, cfg: Configs, *, gemm_peak, kind,
                  max_seqs, chunk, mem_util) -> dict[str, np.ndarray]:
    """Evaluation where model, chip and calibration constants may themselves be per-configuration arrays."""
    wbytes = _lookup(cfg.weight_dtype, WEIGHT_BYTES)
    kvbytes = _lookup(cfg.kv_dtype, {k: BYTES[k] for k in KV_DTYPES})
    attn_tp, pp = np.asarray(cfg.attn_tp, float), np.asarray(cfg.pp, float)
    moe_ep, moe_tp = np.asarray(cfg.moe_ep, float), np.asarray(cfg.moe_tp, float)
    isl, osl = np.asarray(cfg.isl, float), np.asarray(cfg.osl, float)
    weights = weight_bytes_array(mc, attn_tp, pp, moe_ep, moe_tp, wbytes)
    kv_tok = kv_bytes_per_token_gpu(mc, attn_tp, pp, kvbytes, isl + osl,
                                    0.0 if cfg.hybrid_kv is None else np.asarray(cfg.hybrid_kv, float))
    out = serve(mc, cc, p, attn_tp=attn_tp, attn_dp=cfg.attn_dp, pp=pp, moe_ep=moe_ep, moe_tp=moe_tp,
                replicas=cfg.replicas, wbytes=wbytes, kvbytes=kvbytes, gemm_peak=gemm_peak,
                dtype_eff=dtype_efficiency(p, kind), wstream=stream_share(p, kind), weights_gpu=weights,
                kv_token_gpu=kv_tok, isl=isl, osl=osl,
                mode=cfg.mode, concurrency=cfg.concurrency, rate=cfg.rate, num_requests=cfg.num_requests,
                poisson=cfg.poisson, spec_draft=cfg.spec_draft, spec_accept=cfg.spec_accept,
                prefix_hit=cfg.prefix_hit, max_seqs=max_seqs, chunk=chunk, mem_util=mem_util, sync=cfg.sync,
                spread=cfg.spread, spec_verify=cfg.spec_verify,
                prefill_first=0.0 if cfg.prefill_first is None else cfg.prefill_first,
                prefill_batch=chunk if cfg.prefill_batch is None else cfg.prefill_batch,
                recv=cfg.recv, stream=cfg.stream, hold=cfg.hold)
    out["weights_bytes"] = np.broadcast_to(weights, out["ttft_s"].shape)
    out["kv_bytes_per_token"] = np.broadcast_to(kv_tok, out["ttft_s"].shape)
    return out


def evaluate(model: ModelSpec, chip: Chip, engine: str, cfg: Configs,
             calibration: Calibration | None = None, params: Params | None = None) -> dict[str, np.ndarray]:
    """Vectorised evaluation of many configurations of one model on one chip; metric arrays (serving.serve)."""
    cal = calibration or load_calibration()
    p = params or cal.params(chip.family, engine)
    peak, kind = chip_dtype_tables(chip, cfg.weight_dtype)
    max_seqs, chunk, mem_util = engine_limits(engine, chip, cfg, cfg.attn_dp, cfg.gpus_per_instance)
    if cfg.hybrid_kv is None:
        cfg.hybrid_kv = hybrid_kv(engine)
    if cfg.prefill_first is None:
        cfg.prefill_first, cfg.prefill_batch = prefill_policy(engine, chunk)
    return evaluate_core(ModelConsts.of(model), ChipConsts.of(chip), p, cfg, gemm_peak=peak, kind=kind,
                         max_seqs=max_seqs, chunk=chunk, mem_util=mem_util)


# ------------------------------------------------------------------ one configuration, typed
class MemoryBreakdown(BaseModel):
    total_gb: float
    weights_gb: float
    kv_cache_gb: float
    reserve_gb: float
    capacity_gb: float
    kv_per_sequence_mb: float


class InferenceEstimate(BaseModel):
    model: str
    chip: str
    gpus: int
    engine: str
    layout: dict[str, int]
    layout_text: str
    weight_dtype: str
    kv_dtype: str
    compute_path: str
    isl: float
    osl: float
    mode: str
    concurrency: float | None
    request_rate: float | None
    fits: bool
    max_batch: int
    batch: float
    ttft_ms: float | None            # None when the configuration does not fit
    tpot_ms: float | None
    e2e_latency_s: float | None
    output_tokens_per_s: float | None
    output_tokens_per_s_per_gpu: float | None
    total_tokens_per_s: float | None
    total_tokens_per_s_per_gpu: float | None
    requests_per_s: float | None
    tokens_per_s_per_user: float | None
    memory_gb: MemoryBreakdown
    limits: str
    assumptions: list[str]
    # under a request rate or a trace (the scheduler simulation): percentiles, mean inter-token latency, the
    # finite run's backlog and the queue over time
    ttft_p50_ms: float | None = None
    ttft_p90_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p90_ms: float | None = None
    tpot_p99_ms: float | None = None
    e2e_p50_s: float | None = None
    e2e_p90_s: float | None = None
    e2e_p99_s: float | None = None
    itl_ms: float | None = None
    backlog: dict[str, Any] | None = None
    timeline: list[dict[str, float]] | None = None
    simulated_requests: int | None = None
    # the validated spread of this kind of prediction (calibration/bands.py): metric -> [p10, p90]
    band: dict[str, list[float]] | None = None
    band_note: str | None = None
    # what the tokens cost at the predicted throughput (catalog/prices.py), or why there is no number
    cost: dict[str, Any] | None = None
    # the same split by token kind (shared/CONTRACTS.md): device time on prompts prices the input tokens, the rest
    # the output tokens; `price` is the GPU-hour price used (basis rental or TCO, with its source)
    usd_per_mtok_input: float | None = None
    usd_per_mtok_output: float | None = None
    price: dict[str, Any] | None = None


def estimate(model: ModelSpec, chip: Chip, *, layout: Layout, engine: str = "vllm", weight_dtype: str | None = None,
             kv_dtype: str | None = None, isl: float, osl: float, concurrency: float | None = None,
             request_rate: float | None = None, num_requests: float | None = None, poisson: bool = True,
             spec_draft: int = 0, spec_accept: float = 1.0, prefix_hit: float = 0.0, spec_verify: int = 0,
             length_spread: float = 0.0, calibration: Calibration | None = None, assumptions: list[str] | None = None,
             trace: Any = None, engine_version: str | None = None, cost_basis: str = "auto",
             recv_interval: int = 1, stream_interval: int = 1, batch_wait_iters: int = 0,
             batch_wait_tokens: int = 0) -> InferenceEstimate:
    """Estimate one configuration. Offline max-throughput when neither concurrency nor rate is given. Under a
    request rate or a trace (simulate.Requests, one instance's requests) the scheduler simulation gives the
    latencies, percentiles and throughput; the steady state gives memory and the limit text."""
    from stockpile.calibration.bands import unbacked_family
    named = read_engine(engine, allow_version=False)
    engine = named.engine
    check_engine_chip(engine, chip)
    notes = list(assumptions or []) + estimated_figures(chip) + unbacked_family(model) + \
        ([named.note] if named.note else [])
    wdt = check_dtype("weight_dtype", normalise_dtype(weight_dtype) or model.default_weight_dtype, WEIGHT_DTYPES)
    kv_dtype = normalise_dtype(kv_dtype)
    if kv_dtype is None:
        kv_dtype = "fp8" if engine == "trtllm" and wdt in ("fp8", "fp4") else "bf16"
        notes.append(f"kv_dtype not given: {kv_dtype} (engine default)")
    kdt = check_dtype("kv_dtype", kv_dtype, KV_DTYPES)
    for name, v in (("isl", isl), ("osl", osl)):
        if not v or v <= 0:
            raise InputError(name, f"must be a positive token count, got {v}")
    if concurrency is not None and concurrency <= 0:
        raise InputError("concurrency", f"must be positive, got {concurrency}")
    if request_rate is not None:
        check_request_rate(request_rate)
    if concurrency is not None and request_rate is not None:
        raise InputError("request_rate", "give either --concurrency or --request-rate, not both")
    if not 0 <= prefix_hit < 1:
        raise InputError("prefix_hit", f"must be in [0, 1), got {prefix_hit}")
    check_intervals(engine, recv_interval, stream_interval)
    check_batch_wait(engine, batch_wait_iters, batch_wait_tokens)
    if model.heads % layout.attn_tp:
        raise InputError("tp", f"{model.heads} attention heads do not split over TP{layout.attn_tp}; use a TP "
                               f"that divides {model.heads}")
    if trace is not None and (concurrency is not None or request_rate is not None):
        raise InputError("trace", "give --trace alone, without --concurrency or --request-rate")
    if trace is not None:
        isl, osl = float(np.mean(trace.isl)), float(np.mean(trace.osl))
        span = float(trace.arrival[-1] - trace.arrival[0])
        request_rate = len(trace) / span if span > 0 else None
        num_requests = float(len(trace))
        if request_rate is None:
            concurrency = float(len(trace))           # all at once: a burst
            num_requests = float(len(trace))
    mode = MODE_OPEN if request_rate else MODE_CLOSED if concurrency else MODE_OFFLINE
    instance = layout.attn_tp * layout.attn_dp * layout.pp
    if chip.scaleout_gbps is None and instance > chip.scaleup_size:
        from stockpile.perf.operators import NO_NIC_SCALEUP_SHARE
        notes.append(f"{chip.id} has no sourced NIC figure: the network between its {chip.scaleup_size}-chip "
                     f"scale-up domains is modelled at {NO_NIC_SCALEUP_SHARE:.3g} of the scale-up link "
                     f"({chip.scaleup_bw * NO_NIC_SCALEUP_SHARE / 1e9:,.0f} GB/s per chip)")
    from stockpile.perf.traffic import simulated_burst
    cal = calibration or load_calibration()
    release = engine_key(engine, check_release(engine_version))
    notes += release_notes(engine, engine_version)
    p = cal.params(chip.family, release)
    cfg = Configs(attn_tp=layout.attn_tp, attn_dp=layout.attn_dp, pp=layout.pp, moe_ep=layout.moe_ep,
                  moe_tp=layout.moe_tp, replicas=layout.replicas, weight_dtype=wdt, kv_dtype=kdt, isl=isl,
                  osl=osl, mode=mode, concurrency=np.nan if concurrency is None else concurrency,
                  rate=np.nan if request_rate is None else request_rate,
                  num_requests=np.nan if num_requests is None else num_requests, poisson=1.0 if poisson else 0.0,
                  spec_draft=spec_draft, spec_accept=spec_accept, prefix_hit=prefix_hit, spec_verify=spec_verify,
                  sync=1.0 if length_spread == 0 else 0.0, spread=length_spread if length_spread > 0 else np.inf,
                  recv=float(recv_interval), stream=float(stream_interval),
                  hold=ContextHold(float(batch_wait_iters), float(batch_wait_tokens)))
    if batch_wait_iters > 0 and (layout.attn_dp > 1 or request_rate or trace is not None):
        notes.append("TensorRT-LLM batch waiting: modelled for closed loops without attention DP (it does not run "
                     "with attention DP; the scheduler simulation under a request rate or trace leaves it out)")
    if recv_interval > 1 and (request_rate or trace is not None):
        notes.append(f"--scheduler-recv-interval {recv_interval}: the closed-loop steady state polls for requests; "
                     "the scheduler simulation under a request rate or trace polls every step")
    cfg.prefill_first, cfg.prefill_batch = prefill_policy(engine, engine_limits(engine, chip, cfg)[1], engine_version)
    if cfg.prefill_first and mode == MODE_CLOSED and spec_draft <= 0 and length_spread == 0:
        notes.append(wave_note(engine, cfg.prefill_batch))
    r = {k: np.asarray(v).reshape(-1)[0] for k, v in evaluate(model, chip, engine, cfg, cal, p).items()}
    gpus = layout.gpus
    max_seqs, _, mem_util = (float(x) for x in engine_limits(engine, chip, cfg, layout.attn_dp, layout.gpus_per_instance))
    if not bool(r["fits"]) and mem_util < LAUNCH_MEM_UTIL:
        # the engine's derived default (SGLang's, after what it holds back for attention-DP graphs) leaves no room
        # where the fraction a launch command sets would: predict at that, and say so
        cfg.mem_util = LAUNCH_MEM_UTIL
        raised = {k: np.asarray(v).reshape(-1)[0] for k, v in evaluate(model, chip, engine, cfg, cal, p).items()}
        if bool(raised["fits"]):
            notes.append(f"memory fraction {LAUNCH_MEM_UTIL:g}: {engine}'s default for this layout, {mem_util:.3f}, "
                         "leaves no room for a sequence (set it with the engine's memory-fraction flag; "
                         "`stockpile export` writes it)")
            r, mem_util = raised, LAUNCH_MEM_UTIL
        else:
            cfg.mem_util = None
    # usable for weights, reserve and KV cache (TensorRT-LLM: its fraction of what the weights leave free)
    reserve = float(reserve_bytes(p, ModelConsts.of(model), max_seqs))
    if reserve > p.reserve_gb * 1e9 * 1.001:
        from stockpile.perf.explain import reserve_note
        notes.append(reserve_note(engine, model, p, reserve, max_seqs))
    cap = float(r["weights_bytes"]) + reserve + float(kv_budget_bytes(
        chip.memory_bytes, mem_util, float(r["weights_bytes"]), reserve, p.kv_free))
    kv_seq = float(r["kv_bytes_per_token"]) * (isl + osl)
    # what a running request holds on average (serving.running_capacity): less than its whole context where requests
    # are staggered and the engine sets little aside for their remaining output
    kv_held = float(r["kv_seq_held_bytes"])
    kv_used = min(float(r["batch"]) / max(layout.attn_dp, 1), float(r["max_batch"]) / max(layout.attn_dp, 1)) * kv_held
    weights = float(r["weights_bytes"])
    mem = MemoryBreakdown(total_gb=(weights + kv_used + reserve) / 1e9, weights_gb=weights / 1e9,
                          kv_cache_gb=kv_used / 1e9, reserve_gb=reserve / 1e9, capacity_gb=chip.memory_bytes / 1e9,
                          kv_per_sequence_mb=kv_seq / 1e6)
    fits = bool(r["fits"])
    _, _, cpath = compute_path(chip, wdt)
    if not fits:
        need = (weights + reserve + kv_seq) / 1e9
        limits = (f"does not fit: needs {need:.1f} GB per GPU for weights + one sequence, "
                  f"{cap / 1e9:.1f} GB usable of {chip.memory_bytes / 1e9:.0f} GB")
    else:
        lay = {"attn_tp": float(layout.attn_tp), "attn_dp": float(layout.attn_dp), "pp": float(layout.pp),
               "moe_ep": float(layout.moe_ep), "moe_tp": float(layout.moe_tp)}
        from stockpile.perf.explain import decode_breakdown, limit_text
        parts = decode_breakdown(model, chip, engine, p, layout=lay, wdtype=wdt, kvdtype=kdt,
                                 batch=float(r["batch"]), context=isl + osl / 2)
        limits = limit_text(r, layout, concurrency, parts)
    common: dict[str, Any] = dict(
        model=model.id, chip=chip.id, gpus=gpus, engine=engine,
        layout={"tp": layout.attn_tp, "attn_dp": layout.attn_dp, "pp": layout.pp, "ep": layout.moe_ep,
                "expert_tp": layout.moe_tp, "replicas": layout.replicas},
        layout_text=layout.describe(), weight_dtype=wdt, kv_dtype=kdt, compute_path=cpath, isl=isl, osl=osl,
        mode={MODE_OPEN: "open-loop", MODE_CLOSED: "closed-loop", MODE_OFFLINE: "offline"}[mode],
        concurrency=concurrency, request_rate=request_rate, fits=fits, max_batch=int(r["max_batch"]),
        memory_gb=mem, limits=limits, assumptions=notes)
    if not fits:
        # no latency or throughput is presented for a configuration that does not fit (CONTRACTS.md)
        return InferenceEstimate(**common, batch=0.0, ttft_ms=None, tpot_ms=None, e2e_latency_s=None,
                                 output_tokens_per_s=None, output_tokens_per_s_per_gpu=None, total_tokens_per_s=None,
                                 total_tokens_per_s_per_gpu=None, requests_per_s=None, tokens_per_s_per_user=None)
    sim_fields: dict[str, Any] = {}
    edges = _figure_edges(model, chip, engine, cfg, cal, p, r)
    burst = trace is None and simulated_burst(engine, engine_version, concurrency, request_rate, num_requests)
    if request_rate or trace is not None or burst:
        r, sim_fields = _simulated(model, chip, engine, cfg, cal, r, trace, engine_version, notes, layout)
    out_tps = float(r["output_tokens_per_s"])
    sim_fields.update(estimate_bands(engine, engine_version, chip, r, concurrency, request_rate, num_requests, gpus, edges))
    sim_fields["cost"] = token_cost(chip, gpus, out_tps, float(r["total_tokens_per_s"]), cost_basis,
                                    model_id=model.id, input_share=input_share(r, isl, osl, prefix_hit,
                                                                               spec_accept, layout.attn_dp))
    sim_fields.update(contract_prices(sim_fields["cost"]))
    return InferenceEstimate(
        **common, batch=float(r["batch"]), ttft_ms=float(r["ttft_s"]) * 1e3, tpot_ms=float(r["tpot_s"]) * 1e3,
        e2e_latency_s=float(r["e2e_s"]), output_tokens_per_s=out_tps, output_tokens_per_s_per_gpu=out_tps / gpus,
        total_tokens_per_s=float(r["total_tokens_per_s"]),
        total_tokens_per_s_per_gpu=float(r["total_tokens_per_s"]) / gpus,
        requests_per_s=float(r["requests_per_s"]), tokens_per_s_per_user=1.0 / max(float(r["tpot_s"]), 1e-12),
        **sim_fields)


def _simulated(model: ModelSpec, chip: Chip, engine: str, cfg: Configs, cal: Calibration, r: dict[str, Any],
               trace: Any, engine_version: str | None, notes: list[str], layout: Layout
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scheduler simulation of the run; returns the metrics that replace the steady state's, and the extra
    fields (percentiles, backlog, timeline)."""
    from stockpile.perf import traffic
    if np.isnan(float(cfg.num_requests)):
        cfg.num_requests = 1000.0
        notes.append("request count not given: a finite run of 1,000 requests")
    sim = traffic.simulate_estimate(model, chip, engine, cfg, requests=trace, engine_version=engine_version,
                                    calibration=cal)
    st = sim.stats()
    reps = max(layout.replicas, 1) if trace is None else 1
    if trace is not None and layout.replicas > 1:
        notes.append(f"the trace is replayed on one of the {layout.replicas} replicas")
    policy = traffic.engine_policy(engine, engine_version)
    notes.append(f"scheduler simulation: {sim.submitted:,} requests per instance, {policy.replace('_', '-')} "
                 f"steps ({engine}{' ' + engine_version if engine_version else ''}), {sim.steps:,} engine steps")
    if sim.growing:
        notes.append(f"past capacity: {sim.backlog:,} requests still queued at the last arrival and the queue "
                     f"was growing; a longer run would wait longer (this run drains in {sim.duration:,.0f} s)")
    out = dict(r)
    out.update(ttft_s=st["ttft_ms"] / 1e3, tpot_s=st["tpot_ms"] / 1e3, e2e_s=st["e2e_s"],
               requests_per_s=sim.requests_per_s * reps, output_tokens_per_s=sim.output_tokens_per_s * reps,
               total_tokens_per_s=(sim.output_tokens_per_s + float(np.mean(sim_isl(trace, cfg))) * sim.requests_per_s)
               * reps)
    extra: dict[str, Any] = {k: st[k] for k in ("ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p90_ms",
                                "tpot_p99_ms", "e2e_p50_s", "e2e_p90_s", "e2e_p99_s", "itl_ms")}
    extra.update(backlog={"requests": sim.backlog, "growing": sim.growing}, timeline=sim.timeline,
                 simulated_requests=sim.submitted)
    return out, extra


def _figure_edges(model: ModelSpec, chip: Chip, engine: str, cfg: Configs, cal: Calibration, p: Params,
                  r: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Per headline metric, the steady state's ratio to `r` with the chip's estimated speed figures at the slow
    and at the fast end of their ranges (catalog/figure_ranges.py); empty when every figure is published or the
    chip has validated rows of its own (bands.chip_validated)."""
    from stockpile.calibration.bands import chip_validated
    if not uncertain_speeds(chip) or chip_validated(chip.id):
        return {}
    return edge_ratios(r, [evaluate(model, chip_at_edge(chip, side), engine, cfg, cal, p) for side in ("slow", "fast")])


def input_share(r: dict[str, Any], isl: float, osl: float, prefix_hit: float, spec_accept: float,
                attn_dp: float) -> float:
    """Share of an aggregated instance's device time spent on prompts: per request, the prefill of its new prompt
    tokens (one rank's full-chunk rate, attn_dp ranks at once) against its decode steps at the running batch."""
    pre = max(isl * (1.0 - prefix_hit), 1.0) * float(r["prefill_token_s"]) / max(attn_dp, 1.0)
    dec = max(osl / max(spec_accept, 1.0), 1.0) * float(r["decode_step_s"]) / max(float(r["batch"]), 1.0)
    return pre / max(pre + dec, 1e-15)


def contract_prices(cost: dict[str, Any] | None) -> dict[str, Any]:
    """The contract's `usd_per_mtok_input`, `usd_per_mtok_output` and `price` from a token_cost() answer."""
    if not cost or "usd_per_gpu_hour" not in cost:
        return {}
    return {"usd_per_mtok_input": cost.get("usd_per_mtok_input"), "usd_per_mtok_output": cost.get("usd_per_mtok_output"),
            "price": {"basis": cost["basis"], "usd_per_gpu_hour": cost["usd_per_gpu_hour"], "how": cost["how"],
                      "sources": cost["sources"]}}


def sim_isl(trace: Any, cfg: Configs) -> np.ndarray:
    return np.asarray(trace.isl if trace is not None else [float(cfg.isl)], dtype=float)


def disagg_core(mc: ModelConsts, cc: ChipConsts, p: Params, *, pre: dict[str, Any], dec: dict[str, Any],
                pre_workers, dec_workers, weight_dtype, kv_dtype, gemm_peak, kind, isl, osl, concurrency, rate,
                num_requests, poisson, spec_draft, spec_accept, prefix_hit, max_seqs, chunk,
                mem_util, sync=1.0, hybrid=0.0, spread=np.inf, spec_verify=0.0,
                pre_chip: tuple[ChipConsts, Params, Any, Any] | None = None) -> dict[str, np.ndarray]:
    """Disaggregated serving; `pre_chip` = (chip constants, parameters, GEMM peak, compute-path kind) puts the
    prefill pool on another chip."""
    wbytes = _lookup(weight_dtype, WEIGHT_BYTES)
    kvbytes = _lookup(kv_dtype, {k: BYTES[k] for k in KV_DTYPES})
    isl_a, osl_a = np.asarray(isl, float), np.asarray(osl, float)
    dec_f = {k: np.asarray(v, float) for k, v in dec.items()}
    pre_f = {k: np.asarray(v, float) for k, v in pre.items()}
    dec_w = weight_bytes_array(mc, dec_f["attn_tp"], dec_f["pp"], dec_f["moe_ep"], dec_f["moe_tp"], wbytes)
    dec_kv = kv_bytes_per_token_gpu(mc, dec_f["attn_tp"], dec_f["pp"], kvbytes, isl_a + osl_a, hybrid)
    kv_model = kv_bytes_per_token_gpu(mc, 1.0, 1.0, kvbytes, isl_a + osl_a)
    out = serve_disagg(mc, cc, p, pre=pre_f, dec=dec_f, pre_workers=pre_workers, dec_workers=dec_workers,
                       wbytes=wbytes, kvbytes=kvbytes, gemm_peak=gemm_peak, dtype_eff=dtype_efficiency(p, kind),
                       wstream=stream_share(p, kind), dec_weights_gpu=dec_w, dec_kv_token_gpu=dec_kv, kv_token_model=kv_model,
                       pre_gpus_worker=pre_f["attn_tp"] * pre_f["attn_dp"] * pre_f["pp"], isl=isl_a, osl=osl_a,
                       concurrency=concurrency, rate=rate, num_requests=num_requests, poisson=poisson,
                       spec_draft=spec_draft, spec_accept=spec_accept, prefix_hit=prefix_hit,
                       max_seqs=max_seqs, chunk=chunk, mem_util=mem_util, sync=sync, spread=spread,
                       spec_verify=spec_verify, pre_chip=None if pre_chip is None else (
                           pre_chip[0], pre_chip[1], pre_chip[2], dtype_efficiency(pre_chip[1], pre_chip[3]),
                           stream_share(pre_chip[1], pre_chip[3])),
                       pre_weights_gpu=weight_bytes_array(mc, pre_f["attn_tp"], pre_f["pp"], pre_f["moe_ep"],
                                                          pre_f["moe_tp"], wbytes))
    out["weights_bytes"] = dec_w
    return out
