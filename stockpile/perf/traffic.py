"""Serving under traffic: one configuration's step-time model (operators.stage_time, the same constants the
steady state uses) handed to the scheduler simulation (simulate.py), and the engine's scheduling policy.

Which policy an engine runs (docs/inference-model.md, "Scheduler simulation"):
vLLM from 0.8 (the V1 engine) mixes decode tokens and prompt chunks in one step under its token budget;
vLLM before 0.8 (V0, chunked prefill off by default for short contexts) and SGLang (mixed chunks off by
default) run prompt-only prefill steps first and pause decodes meanwhile; TensorRT-LLM's in-flight batching
mixes like vLLM V1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stockpile.perf.calibration import Params, engine_defaults, engine_key
from stockpile.perf.operators import ChipConsts, ModelConsts, stage_time
from stockpile.perf.serving import kv_budget_bytes, reserve_bytes, verify_width
from stockpile.perf.simulate import EngineSpec, Requests, SimResult, StepTable, simulate


def engine_policy(engine: str, version: str | None = None, chunked_prefill: bool | None = None) -> str:
    """The scheduler policy of an engine release (see the module docstring; `engine` may be a release family
    such as "vllm-v0"). SGLang and vLLM's V0 engine run prompt-only steps unless the run mixes prompt chunks
    into decode steps (SGLang's --enable-mixed-chunk, V0's chunked prefill); vLLM V1 and TensorRT-LLM put
    prompts into decode steps whether or not they chunk them."""
    base = engine.split("-v")[0]
    if base == "sglang" or engine == "vllm-v0" or (base == "vllm" and engine_key(base, version) == "vllm-v0"):
        return "mixed" if chunked_prefill else "prefill_first"
    return "mixed"


def prefill_policy(engine: str, chunk: Any, version: str | None = None,
                   chunked_prefill: bool | None = None) -> tuple[float, Any]:
    """(1 where the engine prefills waiting prompts in prompt-only batches before decoding, else 0; the tokens
    of one such batch): the scheduler policy the simulation uses (engine_policy), with the batch size the
    prefill budget `chunk` (SGLang's --chunked-prefill-size caps one prompt-only batch) and at most the engine
    default's cap on a prefill batch (SGLang's --max-prefill-tokens)."""
    first = engine_policy(engine, version, chunked_prefill) == "prefill_first"
    batch = (engine_defaults().get(engine.split("-v")[0]) or {}).get("prefill_batch_tokens")
    return float(first), (chunk if batch is None else np.minimum(chunk, float(batch)))


def wave_note(engine: str, batch: float) -> str:
    """What `estimate` says where a prefill-first engine runs a fixed-length closed loop in waves."""
    return (f"{engine} prefills waiting prompts in prompt-only batches of up to {batch:,.0f} tokens before it "
            "decodes, so a closed loop of fixed lengths runs in waves: a request gets its first token when the "
            "batch that ends its prompt ends, and its second after the wave's last batch (TPOT carries that wait); lengths that vary "
            "(--length-spread) break the waves up")


def preempts_in_bursts(engine: str, version: str | None = None) -> bool:
    """True where a burst of prompts beyond the KV cache is served through preemption, which the steady state
    does not carry, so a burst run goes through the simulation: vLLM's V1 engine admits a prompt once its prompt
    blocks fit and preempts the newest sequence (recomputing it later) when decodes outgrow the cache. SGLang
    reserves room for the expected output at admission (its new-token ratio) and TensorRT-LLM's default policy
    guarantees no eviction, so their bursts stay in the steady state; so does vLLM V0, whose prompt-only steps
    the steady state already follows (simulating its bursts was worse on the shipped rows)."""
    return engine == "vllm" and engine_key(engine, version) != "vllm-v0"


def simulated_burst(engine: str, version: str | None, concurrency: float | None, request_rate: float | None,
                    num_requests: float | None) -> bool:
    """A burst (every prompt sent at once: no rate, and no client cap below the prompt count) that the engine
    serves through preemption, so `estimate` and `validate` run it through the simulation."""
    return bool(not request_rate and num_requests and (not concurrency or concurrency >= num_requests)
                and preempts_in_bursts(engine, version))


@dataclass
class Config:
    """One aggregated configuration, scalars (as serve() takes them, one entry each)."""

    attn_tp: float
    attn_dp: float
    pp: float
    moe_ep: float
    moe_tp: float
    wbytes: float
    kvbytes: float
    gemm_peak: float
    dtype_eff: float
    weights_gpu: float
    kv_token_gpu: float
    max_seqs: float
    chunk: float
    mem_util: float
    spec_draft: float = 0.0
    spec_accept: float = 1.0
    spec_verify: float = 0.0          # tokens verified per step with a draft tree (0: a chain)
    multi_step: int = 1
    wstream: float = 1.0              # bandwidth share of the dense weight stream (inference.stream_share)


def _scalar(x: Any, j: int | None) -> Any:
    a = np.asarray(x)
    return float(a.reshape(-1)[j]) if j is not None and a.ndim else float(a)


def pick(obj: Any, j: int) -> Any:
    """Row j of a stacked ModelConsts/ChipConsts/Params (fields that are arrays; scalars stay)."""
    return type(obj)(**{f: (_scalar(v, j) if isinstance(v, np.ndarray) else v) for f, v in vars(obj).items()})


def engine_spec(mc: ModelConsts, cc: ChipConsts, p: Params, c: Config, *, isl: float, osl: float,
                prefix_hit: float, policy: str) -> EngineSpec:
    """The engine as the simulation sees it: step time, KV capacity in tokens, limits, policy."""
    lay: dict[str, Any] = dict(attn_tp=np.asarray(c.attn_tp), attn_dp=np.asarray(c.attn_dp), pp=np.asarray(c.pp),
               moe_ep=np.asarray(c.moe_ep), moe_tp=np.asarray(c.moe_tp), wbytes=np.asarray(c.wbytes),
               kvbytes=np.asarray(c.kvbytes), gemm_peak=np.asarray(c.gemm_peak), dtype_eff=np.asarray(c.dtype_eff),
               wstream=np.asarray(c.wstream))
    ranks = c.attn_dp * c.pp
    new_isl = max(isl * (1.0 - prefix_hit), 1.0)
    pre_ctx = isl * prefix_hit + new_isl / 2.0
    draft = c.spec_draft
    width = float(verify_width(draft, c.spec_verify))

    def fn(pre: np.ndarray, dec: np.ndarray, ctx: np.ndarray) -> np.ndarray:
        d = dec / ranks
        st = stage_time(mc, cc, p, **lay, dec_seqs=d, dec_tokens=d * width, dec_ctx=np.maximum(ctx, 1.0),
                        pre_tokens=pre / ranks, pre_ctx=np.full_like(pre, pre_ctx))
        t = c.pp * st
        return t + draft * (t / mc.layers + 0.25 * p.step_s) * (dec > 0)

    kv_budget = float(kv_budget_bytes(cc.memory, c.mem_util, c.weights_gpu, reserve_bytes(p, mc, c.max_seqs),
                                      p.kv_free))
    kv_tokens = max(kv_budget, 0.0) / max(c.kv_token_gpu, 1e-9) * c.attn_dp
    cap = c.max_seqs * c.attn_dp                    # the engine's cap is per attention-DP rank
    max_seqs = int(min(cap, max(kv_tokens / max(isl + osl, 1.0), 1.0) * 4))
    table = StepTable(fn, max_pre=max(c.chunk, 4.0 * isl), max_seqs=max(max_seqs, 2),
                      max_ctx=max(4.0 * (isl + osl), 64.0))
    return EngineSpec(step=table, kv_tokens=kv_tokens, max_seqs=int(cap), budget=int(c.chunk),
                      policy=policy, accept=max(c.spec_accept, 1.0), fixed_s=p.ttft_s,
                      admit_s=p.admit_s, stream_s=p.stream_s, multi_step=int(c.multi_step),
                      reserve_out=float(p.kv_reserve_out))


def run(mc: ModelConsts, cc: ChipConsts, p: Params, c: Config, req: Requests, *, isl: float, osl: float,
        prefix_hit: float, policy: str) -> SimResult:
    return simulate(engine_spec(mc, cc, p, c, isl=isl, osl=osl, prefix_hit=prefix_hit, policy=policy), req)


def run_closed(mc: ModelConsts, cc: ChipConsts, p: Params, c: Config, req: Requests, *, concurrency: int,
               isl: float, osl: float, prefix_hit: float, policy: str) -> SimResult:
    """One instance under a closed loop of `concurrency` clients (simulate.closed_loop)."""
    from stockpile.perf.simulate import closed_loop
    eng = engine_spec(mc, cc, p, c, isl=isl, osl=osl, prefix_hit=prefix_hit, policy=policy)
    return closed_loop(eng, concurrency, req)


def config_of(model: Any, chip: Any, engine: str, cfg: Any, p: Params) -> Config:
    """A scalar Config for one configuration (inference.Configs with scalar fields) of `model` on `chip`."""
    from stockpile.catalog.chips import BYTES
    from stockpile.perf.inference import (
        KV_DTYPES,
        WEIGHT_BYTES,
        chip_dtype_tables,
        dtype_efficiency,
        engine_limits,
        hybrid_kv,
        kv_bytes_per_token_gpu,
        stream_share,
        weight_bytes_array,
    )
    mc = ModelConsts.of(model)
    wdt, kdt = str(cfg.weight_dtype), str(cfg.kv_dtype)
    peak, kind = chip_dtype_tables(chip, wdt)
    max_seqs, chunk, mem_util = engine_limits(engine, chip, cfg, float(cfg.attn_dp), float(cfg.gpus_per_instance))
    wb, kb = WEIGHT_BYTES[wdt], {k: BYTES[k] for k in KV_DTYPES}[kdt]
    tp, pp, ep, etp = float(cfg.attn_tp), float(cfg.pp), float(cfg.moe_ep), float(cfg.moe_tp)
    hyb = hybrid_kv(engine) if cfg.hybrid_kv is None else float(cfg.hybrid_kv)
    return Config(attn_tp=tp, attn_dp=float(cfg.attn_dp), pp=pp, moe_ep=ep, moe_tp=etp, wbytes=wb, kvbytes=kb,
                  gemm_peak=float(peak), dtype_eff=float(dtype_efficiency(p, np.array(float(kind)))),
                  wstream=float(stream_share(p, np.array(float(kind)))),
                  weights_gpu=float(weight_bytes_array(mc, tp, pp, ep, etp, wb)),
                  kv_token_gpu=float(kv_bytes_per_token_gpu(mc, tp, pp, kb, float(cfg.isl) + float(cfg.osl), hyb)),
                  max_seqs=float(max_seqs), chunk=float(chunk), mem_util=float(mem_util),
                  spec_draft=float(cfg.spec_draft), spec_accept=float(cfg.spec_accept),
                  spec_verify=float(getattr(cfg, "spec_verify", 0.0)))


def simulate_estimate(model: Any, chip: Any, engine: str, cfg: Any, *, requests: Requests | None = None,
                      engine_version: str | None = None, calibration: Any = None, seed: int = 0) -> SimResult:
    """One configuration under a request rate (cfg.rate, cfg.num_requests, per system), a burst (no rate:
    cfg.num_requests sent at once) or a trace (`requests`, for one instance): the simulated run. With replicas,
    each instance gets rate / replicas (a burst: num_requests / replicas)."""
    from stockpile.perf.calibration import load_calibration
    from stockpile.perf.simulate import burst_arrivals, poisson_arrivals
    cal = calibration or load_calibration()
    p = cal.params(chip.family, engine_key(engine, engine_version))
    c = config_of(model, chip, engine, cfg, p)
    replicas = max(int(cfg.replicas), 1)
    isl, osl, hit = float(cfg.isl), float(cfg.osl), float(cfg.prefix_hit)
    if requests is None:
        n = int(max(round(float(cfg.num_requests) / replicas), 1)) if np.isfinite(float(cfg.num_requests)) else 1000
        spread = float(cfg.spread) if np.isfinite(float(cfg.spread)) else 0.0
        if not np.isfinite(float(cfg.rate)) or float(cfg.rate) <= 0:
            requests = burst_arrivals(n, isl=isl, osl=osl, spread=spread, prefix_hit=hit, seed=seed)
        else:
            requests = poisson_arrivals(float(cfg.rate) / replicas, n, isl=isl, osl=osl, poisson=bool(cfg.poisson),
                                        spread=spread, prefix_hit=hit, seed=seed)
    else:
        isl, osl = float(np.mean(requests.isl)), float(np.mean(requests.osl))
        hit = float(np.sum(requests.cached) / max(np.sum(requests.isl), 1))
    return run(ModelConsts.of(model), ChipConsts.of(chip), p, c, requests, isl=isl, osl=osl, prefix_hit=hit,
               policy=engine_policy(engine, engine_version))
