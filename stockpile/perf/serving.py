"""Continuous-batching steady state, vectorised over configurations.

One serving instance runs iterations; each iteration decodes one token (or verifies ``1 + draft`` tokens
with speculative decoding) for every running sequence and prefills the prompt tokens that arrive meanwhile
(chunked prefill piggybacks them on the same iteration). In steady state a request's life is
``TTFT + (steps - 1) x t_iter`` with ``steps = OSL / accept_length``, and Little's law ties the running
batch B to throughput: ``X = B / latency``. Four load modes:

* closed loop at a fixed concurrency (``bench serve --max-concurrency``): B = min(C, B_max); the excess waits;
* offline max-throughput: B = B_max (memory and engine limits);
* a burst of N prompts sent at once: the first B prefill back to back, the rest wait for slots, and the run
  ends with a drain tail;
* open loop at a request rate: B from the fixed point B = lambda x latency(B), queueing (M/D/1 for Poisson,
  near zero for constant-rate arrivals) until saturation, then the backlog of a finite run.
Equations: docs/inference-model.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stockpile.errors import InputError
from stockpile.perf.calibration import Params
from stockpile.perf.operators import ChipConsts, ModelConsts, smooth_max, stage_time

MODE_CLOSED, MODE_OFFLINE, MODE_OPEN = 0, 1, 2
# the slowest open-loop arrival rate taken as a serving load (requests/s): one request in 11.6 days. Slower rates
# put arrival times beyond what a simulated run can hold (a rate of 1e-308/s overflows them)
MIN_REQUEST_RATE = 1e-6


def check_request_rate(rate: float) -> None:
    """Refuse an open-loop rate that is not a serving load (below MIN_REQUEST_RATE, or not a number)."""
    if not rate >= MIN_REQUEST_RATE:
        raise InputError("request_rate", f"must be at least {MIN_REQUEST_RATE:g} requests/s (one request in 11.6 "
                                         f"days; a slower rate is not a serving load), got {rate:g}")


def verify_width(spec_draft, spec_verify):
    """Tokens each sequence runs through the target model per decode step: 1 + drafts for a chain, the tree's
    size where the engine drafts a tree (EAGLE top-k > 1 verifies --speculative-num-draft-tokens at once)."""
    return np.where(np.asarray(spec_verify) > 0, spec_verify, 1.0 + np.asarray(spec_draft))


# Share of an engine's per-sequence host time per decode step (seq_s) spent flushing each request's new tokens to
# the front end; SGLang's --stream-interval k flushes every k-th step only. Not fitted: chosen on a grid against
# validate's medians with the shipped calibration (InferenceX sample 11.19 / 10.89 / 10.89 / 10.73 % at 0.25 / 0.5
# / 0.75 / 1; aiconfigurator's sample 14.75-14.77 % throughout): most of the per-sequence work is the flush
STREAM_SHARE = 0.75
# the most prompts one context hold can gather (held_iterations sums over them; bounds the loop)
HOLD_MAX_PROMPTS = 512


def check_intervals(engine: str, recv_interval: Any, stream_interval: Any) -> None:
    """SGLang's --scheduler-recv-interval and --stream-interval: whole numbers of decode steps, at least 1, and 1 for
    any other engine (`engine` may carry a version, "sglang:0.5.6"). Raises InputError naming the field."""
    name_of = engine.split(":")[0].strip().lower()
    for name, v in (("recv_interval", recv_interval), ("stream_interval", stream_interval)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(name, f"must be a whole number of decode steps >= 1, got {v!r}")
        if v > 1 and name_of != "sglang":
            raise InputError(name, f"an SGLang setting (--scheduler-recv-interval, --stream-interval); leave it at "
                                   f"1 for {engine}")


def held_iterations(lam, k, timeout):
    """Mean iterations a prompt is held when the scheduler releases held prompts together once k of them wait, or
    `timeout` iterations after the first began to wait; prompts arrive as a Poisson stream of lam per iteration.

    A hold starts with one prompt; N(t) more arrive by t. It ends at D = min(timeout, the time N reaches k - 1).
    The first prompt waits D, the others D less their arrival, so the hold's summed wait is the integral of
    1 + N(t) over [0, D): sum over m = 0..k-2 of (1 + m) tau_m, with tau_m = P(N(timeout) > m) / lam the expected
    time N spends at m before the timeout. A hold serves 1 + lam sum(tau_m) prompts. Limits: lam -> 0 gives
    `timeout`; many arrivals give (k - 1) / (2 lam); k <= 1 gives 0."""
    lam, k, timeout = np.broadcast_arrays(np.maximum(np.asarray(lam, dtype=float), 1e-12),
                                          np.asarray(k, dtype=float), np.asarray(timeout, dtype=float))
    x = lam * timeout
    pm = np.exp(-x)                         # P(N(timeout) = m)
    cdf = pm.copy()
    wait, span = np.zeros_like(x), np.zeros_like(x)
    top = int(min(np.nanmax(k), HOLD_MAX_PROMPTS)) if k.size else 0
    for m in range(max(top - 1, 0)):
        tau = np.where(m <= k - 2, np.maximum(1.0 - cdf, 0.0) / lam, 0.0)
        wait, span = wait + (1.0 + m) * tau, span + tau
        pm = pm * x / (m + 1.0)
        cdf = cdf + pm
    return wait / (1.0 + lam * span)


@dataclass(frozen=True)
class ContextHold:
    """TensorRT-LLM's batch waiting (tensorrt_llm/_torch/pyexecutor/py_executor.py, _waiting_requests), arrays or
    numbers: on an instance without attention DP, a waiting prompt is held back while other sequences decode,
    until the held prompts' tokens plus one per decoding sequence reach `tokens` (batch_wait_max_tokens_ratio x
    max_num_tokens) or `iters` iterations have passed (batch_wait_timeout_iters). 0 iterations: no holding."""
    iters: Any = 0.0
    tokens: Any = 0.0

    def iterations(self, b, steps, attn_dp, new_isl, dec_tokens):
        """Mean iterations a prompt is held at running batch b (per instance): b / steps prompts arrive per
        iteration (`steps` decode iterations per request), `dec_tokens` decode tokens run per iteration."""
        iters = np.asarray(self.iters, dtype=float)
        if not np.any(iters > 0):
            return 0.0
        k = np.ceil(np.maximum(np.asarray(self.tokens, dtype=float) - dec_tokens, 0.0) / np.maximum(new_isl, 1.0))
        held = held_iterations(b / np.maximum(steps, 1.0), k, iters)
        # no holding with attention DP (its own balancing instead) or with nothing else decoding
        return np.where((iters > 0) & (np.asarray(attn_dp) <= 1), held, 0.0) * np.clip(b - 1.0, 0.0, 1.0)


def reserve_bytes(p: Params, mc: ModelConsts, max_seqs: Any) -> Any:
    """Bytes per GPU an engine holds beside the weights and the KV cache: the fitted reserve (context, collective
    buffers, allocator slack) and, where the engine sizes its KV cache after a profiling pass (vLLM's
    gpu_worker.determine_available_memory around model_runner.profile_run, whose _dummy_sampler_run samples
    `max_seqs` requests at once with the logits gathered to every TP rank), that pass's sampling buffers:
    `sampler_bytes` per request and vocabulary entry. A 1024-sequence cap on a 152k vocabulary holds 2.8 GB at the
    fitted 17.7 bytes, the 256-sequence cap vLLM keeps on A100 a quarter of that."""
    vocab = mc.lm_head / np.maximum(mc.hidden, 1.0)
    return p.reserve_gb * 1e9 + p.profile_sampler * p.sampler_bytes * np.asarray(max_seqs, dtype=float) * vocab


def kv_budget_bytes(memory, mem_util, weights, reserve, kv_free):
    """Bytes left for the KV cache on one GPU. vLLM's --gpu-memory-utilization and SGLang's --mem-fraction-static
    are shares of the whole memory that weights, activations and the cache fit in; TensorRT-LLM's
    free_gpu_memory_fraction (kv_free 1, data/engines/defaults.yaml) is the share of what is free after the
    weights and the activation reserve are in place."""
    return np.where(np.asarray(kv_free) > 0, mem_util * (memory - weights - reserve),
                    memory * mem_util - weights - reserve)


def running_capacity(kv_budget, kv_token, isl, osl, state, staggered, reserve_out):
    """(running requests the KV cache holds, whether one whole request fits, the bytes a running request holds on
    average) on one rank. A running request holds the KV cache of its prompt and of the tokens it has generated,
    and whatever its engine set aside at admission for the rest of its output: `reserve_out` of it (defaults.yaml
    `kv_reserve_output`: vLLM allocates blocks as tokens are written, SGLang reserves its new-token ratio's share,
    TensorRT-LLM's default policy the whole remainder). Where requests are `staggered` (lengths that vary, arrivals
    of their own) a running request is half way through its output on average; in a fixed-length closed loop they
    end together, each holding its whole context. `state`: bytes per request that do not grow (a recurrent
    state)."""
    share = np.where(staggered, 0.5 + 0.5 * np.asarray(reserve_out, dtype=float), 1.0)
    budget = np.maximum(kv_budget, 0.0)
    held = kv_token * (isl + share * osl) + state
    b_rank = np.floor(budget / np.maximum(held, 1.0))
    fits = np.floor(budget / np.maximum(kv_token * (isl + osl) + state, 1.0)) >= 1
    return b_rank, fits, held


def check_batch_wait(engine: str, iters: Any, tokens: Any) -> None:
    """TensorRT-LLM's batch waiting: whole iterations >= 0 and a token threshold >= 0, both set or neither, and
    only on TensorRT-LLM (`engine` may carry a version). Raises InputError naming the field."""
    for name, v in (("batch_wait_iters", iters), ("batch_wait_tokens", tokens)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise InputError(name, f"must be a whole number >= 0, got {v!r}")
    if (iters > 0) != (tokens > 0):
        raise InputError("batch_wait_tokens" if iters > 0 else "batch_wait_iters",
                         "give both: the iterations a prompt may wait (batch_wait_timeout_iters) and the token "
                         "threshold (batch_wait_max_tokens_ratio x max_num_tokens)")
    if iters > 0 and engine.split(":")[0].strip().lower() != "trtllm":
        raise InputError("batch_wait_iters", f"a TensorRT-LLM setting (batch_wait_timeout_iters); leave it at 0 for "
                                             f"{engine}")


def ramp_share_varied(rho):
    """The ramp's share of a request's mean time per output token in a burst of freely varied lengths, averaged
    over requests as a benchmark does. A request decodes n - 1 ~ Exp(L) tokens after its first, R of them inside
    the ramp: its share min(n - 1, R) / (n - 1) has mean g(R/L) = 1 - e^-r + r E1(r). With R uniform between 0
    and the ramp's length in steps (rho L; the order the prompts were admitted in):
    G(rho) = (1/rho) int_0^rho g = 1 - 1/(2 rho) + e^-rho (1 - rho) / (2 rho) + rho E1(rho) / 2,
    about rho (3/4 + (-gamma - ln rho) / 2) for a short ramp (the ratio of the means, rho / 2, undercounts it)
    and 1 for a ramp longer than the requests."""
    from scipy.special import exp1
    r = np.maximum(np.asarray(rho, dtype=float), 1e-12)
    big = np.maximum(r, 1e-3)                      # the closed form cancels below 1e-3: its series there
    g = np.where(r >= 1e-3, 1.0 - 0.5 / big + np.exp(-big) * (1.0 - big) / (2.0 * big) + 0.5 * big * exp1(big),
                 r * (0.75 + (-np.euler_gamma - np.log(r)) / 2.0) + r * r / 6.0)
    return np.clip(g, 0.0, 1.0)


# benchmark clients drop dataset conversations with short outputs (vLLM's ShareGPT sampler: fewer than 4 tokens), so
# a sampled request decodes at least this many tokens after its first
MIN_DECODE = 3


def inverse_mean_geometric(mean, k_min: int = MIN_DECODE):
    """E[1 / k] for k = k_min - 1 + j, j >= 1 geometric, with E[k] = `mean` (freely varied output lengths, a
    conversation dataset as a benchmark samples it, are near geometric): with p = 1 / (mean - k_min + 1), q = 1 - p,
    E[1 / k] = p q^-k_min (ln(1 / p) - sum_{i < k_min} q^i / i), about ln(L) / L for a long mean L; 1 / mean where
    the mean is at most k_min."""
    L = np.asarray(mean, dtype=float)
    p = 1.0 / np.maximum(L - k_min + 1.0, 1.0)
    q = 1.0 - p
    head = sum(q ** i / i for i in range(1, k_min))
    safe_q = np.maximum(q, 0.2)
    closed = p * safe_q ** -k_min * (-np.log(p) - head)
    # a short mean (p > 0.8): the closed form cancels; its first terms instead
    j = np.arange(1, 65).reshape((-1,) + (1,) * L.ndim)
    summed = np.sum(p * q ** (j - 1) / (k_min - 1 + j), axis=0)
    out = np.where(q < 0.2, summed, closed)
    return np.where(L <= k_min, 1.0 / np.maximum(L, 1.0), out)


def _lockstep_share(spread, steps, wave_steps):
    """Share of a wave's prefill queue that comes back with it, counted in engine steps. A wave's prompts are
    prefilled over `wave_steps` steps; with fixed lengths every request then decodes the same number of steps in
    the same batch, so they come back within those `wave_steps` steps, in the order they were prefilled: the
    wave re-forms. Output lengths drawn from a range of `spread` x the mean smear the finishing steps over
    spread x steps: where that outlasts the wave's prefill steps the wave does not re-form."""
    return np.clip(1.0 - spread * steps / np.maximum(wave_steps, 1.0), 0.0, 1.0)


def serve(mc: ModelConsts, cc: ChipConsts, p: Params, *, attn_tp, attn_dp, pp, moe_ep, moe_tp, replicas,
          wbytes, kvbytes, gemm_peak, dtype_eff, weights_gpu, kv_token_gpu, isl, osl, mode, concurrency,
          rate, num_requests, poisson, spec_draft, spec_accept, prefix_hit, max_seqs, chunk,
          mem_util, sync=1.0, spread=np.inf, spec_verify=0.0, prefill_first=0.0,
          prefill_batch=16384.0, wstream=1.0, recv=1.0, stream=1.0, hold=None) -> dict[str, np.ndarray]:
    """Evaluate every configuration (numpy arrays broadcast together); returns arrays per metric.

    Lengths are tokens; rates per second; `concurrency`, `rate` are per system (all replicas);
    `num_requests` is NaN when the run length is unknown. `spec_verify`: tokens each sequence verifies per step
    with a draft tree (SGLang's --speculative-num-draft-tokens); 0 for a chain, which verifies 1 + spec_draft.
    `prefill_first`: 1 where the engine runs waiting prompts as prompt-only batches of up to `prefill_batch`
    tokens before it resumes decoding (SGLang's default scheduler), 0 where prompt chunks ride along decode
    steps. `recv`: decode steps between the scheduler's polls for new requests (SGLang --scheduler-recv-interval;
    1 polls every step); `stream`: decode steps between flushes of a request's new tokens (--stream-interval).
    The scheduler simulation (perf/simulate.py) polls and flushes every step. `hold`: TensorRT-LLM's batch
    waiting where set (ContextHold; held_iterations)."""
    arr = np.broadcast_arrays(attn_tp, attn_dp, pp, moe_ep, moe_tp, replicas, wbytes, kvbytes, gemm_peak,
                              dtype_eff, weights_gpu, kv_token_gpu, isl, osl, mode, concurrency, rate,
                              num_requests, poisson, spec_draft, spec_accept, prefix_hit, max_seqs, chunk,
                              mem_util, sync, spread, spec_verify, prefill_first, prefill_batch, recv, stream)
    (attn_tp, attn_dp, pp, moe_ep, moe_tp, replicas, wbytes, kvbytes, gemm_peak, dtype_eff, weights_gpu,
     kv_token_gpu, isl, osl, mode, concurrency, rate, num_requests, poisson, spec_draft, spec_accept,
     prefix_hit, max_seqs, chunk, mem_util, sync, spread, spec_verify, prefill_first,
     prefill_batch, recv, stream) = [np.asarray(a, dtype=float) for a in arr]
    recv, stream = np.maximum(recv, 1.0), np.maximum(stream, 1.0)
    held = ContextHold() if hold is None else hold
    width = verify_width(spec_draft, spec_verify)
    sync_in = sync                                 # 1: fixed request lengths, 0: varied (e.g. ShareGPT)
    sync = sync * (mode == MODE_CLOSED)            # lockstep only where finished requests are replaced at once
    lay = dict(attn_tp=attn_tp, attn_dp=attn_dp, pp=pp, moe_ep=moe_ep, moe_tp=moe_tp, wbytes=wbytes,
               kvbytes=kvbytes, gemm_peak=gemm_peak, dtype_eff=dtype_eff, wstream=np.asarray(wstream, dtype=float),
               seq_host=1.0 - STREAM_SHARE + STREAM_SHARE / stream)

    # ---- memory: what is left for the KV cache bounds the running batch
    kv_budget = kv_budget_bytes(cc.memory, mem_util, weights_gpu, reserve_bytes(p, mc, max_seqs), p.kv_free)
    staggered = (sync_in == 0) | (mode == MODE_OPEN)
    b_rank, fits, seq_held = running_capacity(kv_budget, kv_token_gpu, isl, osl,
                                              mc.linear_state_bytes / (attn_tp * pp), staggered, p.kv_reserve_out)
    b_cap = np.maximum(np.minimum(b_rank, max_seqs) * attn_dp, 1.0)   # each attention-DP rank schedules its own

    new_isl = np.maximum(isl * (1.0 - prefix_hit), 1.0)
    accept = np.maximum(spec_accept, 1.0)
    steps = np.maximum(osl / accept, 1.0)          # decode iterations per request
    dec_ctx = isl + osl / 2.0
    pre_ctx = isl * prefix_hit + new_isl / 2.0
    ranks = attn_dp * pp                          # micro-batches the running batch splits into

    # seconds per prompt token when prefill runs alone in full chunks (bursts, synchronised arrivals)
    zero = 0.0 * isl
    big = np.maximum(chunk, new_isl)
    pre_tok_t = pp * stage_time(mc, cc, p, **lay, dec_seqs=zero, dec_tokens=zero, dec_ctx=dec_ctx,
                                pre_tokens=big, pre_ctx=pre_ctx) / big

    def iteration(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean iteration time, TTFT of a request admitted now, prompt tokens per iteration and rank) at batch b.

        Prompts are prefilled in chunks of up to `chunk` tokens that ride along with one decode iteration;
        a fraction f of iterations carries a chunk, the others decode only. (Spreading prompt tokens evenly
        over every iteration would wrongly make each MoE decode step touch most experts.)"""
        b_mb = b / ranks
        dec_tok = b_mb * width
        demand = b * new_isl / steps / ranks       # prompt tokens to prefill per iteration per rank
        # of which a request's own decode iterations carry the other requests' prompts: a closed loop of b holds
        # b - 1 others (one request alone decodes with no prompt beside it); Poisson arrivals see b on average
        others = np.where(mode == MODE_CLOSED, np.maximum(b - 1.0, 0.0) / np.maximum(b, 1.0), 1.0) * demand
        st_dec = stage_time(mc, cc, p, **lay, dec_seqs=b_mb, dec_tokens=dec_tok, dec_ctx=dec_ctx,
                            pre_tokens=0.0 * b_mb, pre_ctx=pre_ctx)
        # prompts that share one prefill chunk: those arriving within an iteration (about B/steps), or the
        # whole batch when a closed loop runs in lockstep. Fixed lengths keep it in lockstep; lengths drawn
        # from a known range smear the wave's return over spread x steps, which dissolves it where that is
        # longer than the steps its prompts take to prefill
        wave = b / attn_dp * new_isl                # a wave's prompt tokens on one attention-DP rank
        partial = _lockstep_share(spread, steps, wave / np.maximum(chunk, 1.0))
        lock = np.where(sync > 0, 1.0, np.where(mode == MODE_CLOSED, partial, 0.0)) * p.sync_eff
        # an engine that polls for new requests every `recv` decode steps admits what arrived since in one batch
        polled = np.minimum(b_mb, b_mb / steps * recv)
        prompts = np.maximum(1.0, polled + lock * (b_mb - polled))
        c = np.maximum(np.minimum(np.maximum(chunk - dec_tok, 0.25 * chunk), prompts * new_isl), 1.0)
        f = np.minimum(demand / c, 1.0)            # share of iterations that carry a prefill chunk
        f_own = np.minimum(others / c, 1.0)        # ... of the iterations a request decodes in
        st_mix = stage_time(mc, cc, p, **lay, dec_seqs=b_mb, dec_tokens=dec_tok, dec_ctx=dec_ctx,
                            pre_tokens=c, pre_ctx=pre_ctx)
        t_dec, t_mix = pp * st_dec, pp * st_mix
        # draft model / MTP head: about one decoder layer plus the lm head per drafted token
        draft = spec_draft * (t_dec / mc.layers + 0.25 * p.step_s)
        t_it = (1.0 - f_own) * t_dec + f_own * t_mix + draft
        n_chunks = np.ceil(new_isl / c)
        # a closed loop in lockstep: B prompts arrive together and queue for prefill
        lockstep = lock * np.maximum(b / attn_dp - 1.0, 0.0) / 2.0 * new_isl * pre_tok_t
        # ... and a request that arrives while others decode waits for the next poll, (recv - 1) / 2 steps on average
        # (an idle scheduler polls at once)
        poll = (1.0 - lock) * (recv - 1.0) / 2.0 * t_it * np.maximum(b - 1.0, 0.0) / np.maximum(b, 1.0)
        ttft = (n_chunks * (t_mix + draft) + 0.5 * t_it + lockstep + poll + p.ttft_s + p.admit_s
                + held.iterations(b, steps, attn_dp, new_isl, dec_tok * ranks) * t_it)
        # prefill first (SGLang; vLLM V0 without chunked prefill): prompts that wait are prefilled in prompt-only
        # batches of up to `prefill_batch` tokens before the next decode step. A fixed-length closed loop then
        # runs in waves: its requests start decoding at the same step, end at the same step, and return
        # together. The i-th of a wave's n batches gives its requests their first token (mean over the wave:
        # (n + 1) / 2 batch times; (n + k) / 2 where each prompt spans k batches), but their second token waits
        # for the batches after it ((n - 1) / 2, (n - k) / 2 on average), which their time per output token
        # carries; decode steps carry no prompts. A request's
        # latency is the whole cycle, n batches plus its decode steps, so Little's law still holds. Lengths from
        # a range and speculative decoding (accepted drafts vary by request) stagger the wave: those keep the
        # mixed model above
        hold = (prefill_first > 0) & (sync > 0) & (spec_draft <= 0)
        if not hold.any():                         # (the search's varied lengths: no wave to evaluate)
            return t_it, ttft, f * c
        n_b = np.maximum(np.ceil(wave / np.maximum(prefill_batch, 1.0)), 1.0)
        t_batch = pp * stage_time(mc, cc, p, **lay, dec_seqs=zero, dec_tokens=zero, dec_ctx=dec_ctx,
                                  pre_tokens=wave / n_b, pre_ctx=pre_ctx)
        # a prompt longer than a batch spans k of them and gets its first token after its last: the j-th of the
        # wave's b_mb requests after j k batches, (n + k) / 2 on average, and waits (n - k) / 2 for the rest
        k = np.maximum(n_b / np.maximum(b_mb, 1.0), 1.0)
        ttft = np.where(hold, (n_b + k) / 2.0 * t_batch + p.ttft_s + p.admit_s, ttft)
        t_it = np.where(hold, t_dec + (n_b - k) / 2.0 * t_batch / np.maximum(steps - 1.0, 1.0), t_it)
        return t_it, ttft, np.where(hold, b_mb * new_isl / steps, f * c)

    def iteration_decode(b: np.ndarray) -> np.ndarray:
        """A decode-only iteration at batch b (no prompt chunk), with the draft cost."""
        b_mb = b / ranks
        st = stage_time(mc, cc, p, **lay, dec_seqs=b_mb, dec_tokens=b_mb * width, dec_ctx=dec_ctx,
                        pre_tokens=0.0 * b_mb, pre_ctx=pre_ctx)
        t = pp * st
        return t + spec_draft * (t / mc.layers + 0.25 * p.step_s)

    def closed(b: np.ndarray):
        t_it, ttft, piggy = iteration(b)
        lat = ttft + (steps - 1.0) * t_it
        # prefill-bound: admissions cannot outrun the prompt tokens the iterations carry
        x = np.minimum(b / lat, piggy * ranks / (new_isl * t_it))
        ttft = np.maximum(ttft, b / x - (steps - 1.0) * t_it)
        return t_it, ttft, b / x, x

    # ---- capacity at the largest running batch
    t_cap, ttft_cap, lat_cap, x_cap = closed(b_cap)

    # ---- closed loop (and burst / offline) at running batch b
    conc_inst = np.where(np.isnan(concurrency), np.inf, concurrency / replicas)
    n_inst = num_requests / replicas
    b_run = np.where(mode == MODE_OFFLINE, np.minimum(b_cap, np.where(np.isnan(n_inst), np.inf, n_inst)),
                     np.minimum(np.minimum(conc_inst, b_cap), np.where(np.isnan(n_inst), np.inf, n_inst)))
    # fewer requests than instances: some instances idle (occupancy < 1); a running batch is at least 1
    occupancy = np.where(mode == MODE_CLOSED, np.minimum(b_run, 1.0), 1.0)
    b_run = np.maximum(b_run, 1.0)

    # ---- open loop: fixed point B = lambda * latency(B), below saturation
    lam = np.where(np.isnan(rate), 0.0, rate / replicas)
    rho = lam / np.maximum(x_cap, 1e-12)
    b_open = np.clip(lam * lat_cap / np.maximum(b_cap, 1.0), 1.0, None)
    for _ in range(12 if np.any(mode == MODE_OPEN) else 0):
        _, _, lat_b, _ = closed(b_open)
        b_open = np.clip(0.5 * b_open + 0.5 * lam * lat_b, 1.0, np.minimum(b_cap, conc_inst))
    is_open = mode == MODE_OPEN
    # a client concurrency cap (rate and max-concurrency both set) bounds the requests in flight: past
    # saturation the excess waits in the client, outside the measured TTFT
    b_run = np.where(is_open, np.where(rho < 1, b_open, np.minimum(b_cap, conc_inst)), b_run)

    t_it, ttft0, lat, x = closed(b_run)
    tpot = t_it / accept
    # a closed-loop client turns a finished request into the next one (release its slot, build and send the next
    # request) and reads the first chunk back on the event loop that serves every open stream: each hop waits
    # behind the other requests in flight, stream_s each (fitted per engine: its front end's share differs).
    # The lag holds for every later token too, so the time per output token does not change, and the C requests
    # turn over once per latency plus lag. Open-loop and burst clients (every request sent at once) send on their
    # own schedule (their rows show no such growth; the scheduler simulation's bursts carry none either)
    burst_n = np.where(np.isnan(n_inst), 0.0, n_inst)
    is_burst = (mode == MODE_OFFLINE) & (burst_n > 0) | (mode == MODE_CLOSED) & (burst_n > 0) & (conc_inst >= burst_n)
    looping = (mode == MODE_CLOSED) & ~is_burst
    lag = np.where(looping, p.stream_s * np.maximum(b_run - 1.0, 0.0), 0.0)
    x = np.where(looping, np.minimum(x, conc_inst / (lat + lag)), x)

    # queueing beyond the running batch (closed loop with C > B_max): Little's law
    wq_closed = np.maximum(conc_inst / x - lat - lag, 0.0)
    wq_closed = np.where(np.isfinite(conc_inst), wq_closed, 0.0)
    # burst: the first B prefill back to back, later ones wait for slots
    first = np.minimum(b_run, np.maximum(burst_n, 1.0))
    # ramp: the first B prompts are prefilled in full chunks while the already-admitted half of them decode
    # (engines schedule running decodes first, then fill the token budget with prompt chunks)
    b_half = first / ranks / 2.0
    wave_tokens = np.maximum(first / attn_dp * new_isl, 1.0)     # the first prompts' tokens on one rank
    # a ramp step carries a full chunk, or the whole wave where it is smaller than one
    c_ramp = np.minimum(np.maximum(chunk - b_half, 0.25 * chunk), wave_tokens)
    t_ramp = pp * stage_time(mc, cc, p, **lay, dec_seqs=b_half, dec_tokens=b_half, dec_ctx=dec_ctx,
                             pre_tokens=c_ramp, pre_ctx=pre_ctx)
    ramp = wave_tokens / c_ramp * t_ramp          # seconds until the last admitted prompt starts
    # the front end hands the burst's prompts to the engine one after another (admit_s each): the ramp is the
    # slower of the two
    ramp = smooth_max(ramp, first * p.admit_s)
    ttft_first = ramp / 2.0 + t_ramp
    # a request admitted mid-ramp spends part of its decode inside ramp steps (slow, shared with prefill)
    n_ramp = np.minimum(steps, ramp / 2.0 / np.maximum(t_ramp, 1e-12))
    t_dec_only = iteration_decode(b_run)
    tpot_burst = (n_ramp * t_ramp + (steps - n_ramp) * t_dec_only) / steps / accept
    rest = np.maximum(burst_n - first, 0.0)
    # lengths that vary freely: a benchmark's mean TPOT averages each request's own (e2e - TTFT) / (n - 1), so a
    # short request weighs as much as a long one. Where prompts ride in decode steps, a short request may finish
    # inside the ramp at its slow steps (ramp_share_varied); an engine that runs waiting prompts first holds every
    # admitted request's second token until the ramp ends, W ~ U(0, ramp) after its first, and W / (n - 1) averages
    # to ramp / 2 x E[1 / (n - 1)] (inverse_mean_geometric, n - 1 >= 3 as benchmarks sample), about 4x ramp / 2 / L
    varied = is_burst & (sync_in <= 0)             # a burst of freely varied lengths (also its drain, below)
    varied_burst = varied & (rest <= 0)
    if np.any(varied_burst):
        share = ramp_share_varied(ramp / np.maximum(t_ramp, 1e-12) / np.maximum(steps, 1.0))
        mixed = (t_dec_only + (t_ramp - t_dec_only) * share) / accept
        held = (t_dec_only + ramp / 2.0 * inverse_mean_geometric(steps)) / accept
        tpot_burst = np.where(varied_burst, np.where(prefill_first > 0, held, mixed), tpot_burst)
    ttft_rest = ttft0 + (rest + 1.0) / (2.0 * x)
    ttft_burst = (first * ttft_first + rest * ttft_rest) / np.maximum(first + rest, 1.0)
    # open loop queueing: M/D/1 below saturation (Poisson), a finite run's backlog above it
    # continuous batching admits an arrival at once while a seat and KV space are free: it waits only for
    # the prompt work ahead of it, so the queue is that of the prefill work (utilisation rho_pre), not of
    # the whole system
    t_pre_req = new_isl * pre_tok_t
    rho_pre = np.minimum(lam * t_pre_req, 0.98)
    wq_open = np.where(rho < 1, rho_pre / (2 * (1 - rho_pre)) * t_pre_req * np.where(poisson > 0, 1.0, 0.2), 0.0)
    n_open = np.where(np.isnan(n_inst), 1000.0, n_inst)
    backlog = np.where((rho >= 1) & ~np.isfinite(conc_inst),
                       0.5 * n_open * (1.0 / x - 1.0 / np.maximum(lam, 1e-12)), 0.0)
    capped = (rho >= 1) & np.isfinite(conc_inst)
    # a closed loop of n > C requests starts with C arrivals at once, and that first wave ramps in like a
    # burst. Fixed-length loops keep arriving in waves, which the lockstep term (sync_eff) already carries
    wave = np.where((mode == MODE_CLOSED) & ~is_burst & (burst_n > first) & (sync_in <= 0),
                    first / np.maximum(burst_n, 1.0), 0.0)
    ttft_closed = (1.0 - wave) * (ttft0 + wq_closed) + wave * ttft_first
    # an open-loop arrival passes the front end alone (its own queue, M/D/1, at utilisation lam x admit_s)
    rho_f = np.minimum(lam * p.admit_s, 0.98)
    front = p.admit_s * rho_f / (2 * (1 - rho_f))
    ttft = np.where(is_open, ttft0 + front + wq_open + backlog + np.where(capped, wq_closed, 0.0),
                    np.where(is_burst, ttft_burst, ttft_closed))
    ttft = ttft + lag
    tpot = np.where(is_burst & (rest <= 0), tpot_burst, tpot)

    # throughput per instance; a burst pays its drain tail
    x_eff = np.where(is_open, np.where(rho < 1, lam, np.minimum(lam, x)), x * occupancy)
    # the run ends with its longest requests. Fixed lengths: a share (burst_tail) of the last admitted requests'
    # lifetime. Lengths that vary freely (a conversation dataset such as ShareGPT: roughly exponential, so the requests
    # still running at any point have the same mean length left): the batch shrinks as b e^(-t / OSL) once no
    # request waits, and summing the step time t0 + c b over that drain gives the running-batch work (already in
    # burst_n / x) plus OSL x t0 x (ln b + 0.58) small-batch steps, of which burst_n / x holds OSL x t0 (the
    # expected longest of b exponential lengths is OSL x (ln b + 0.58)); t0 the step time of a near-empty batch
    # (evaluated only where some row is such a burst: the search's closed loops skip it)
    t_small = iteration_decode(np.ones_like(b_run)) if np.any(varied) else 0.0 * b_run
    drain_var = steps * t_small * np.maximum(np.log(np.maximum(b_run, 1.0)) + 0.5772 - 1.0, 0.0)
    elapsed = burst_n / np.maximum(x, 1e-12) + np.where(sync_in > 0, p.burst_tail * lat, p.burst_tail_var * drain_var)
    x_eff = np.where(is_burst, burst_n / np.maximum(elapsed, 1e-12), x_eff)
    rps = x_eff * replicas
    e2e = ttft + (steps - 1.0) * t_it
    return {
        "fits": fits, "max_batch": b_cap, "batch": b_run, "kv_seq_held_bytes": seq_held, "ttft_s": ttft, "tpot_s": tpot, "itl_s": t_it,
        # device seconds per prompt token (one rank, full prompt-only chunks) and per pure decode step at the
        # running batch: what the input and the output tokens each cost the instance (prices.token_split)
        "prefill_token_s": pre_tok_t + 0.0 * b_run, "decode_step_s": t_dec_only,
        "e2e_s": e2e, "requests_per_s": rps, "output_tokens_per_s": rps * osl,
        "total_tokens_per_s": rps * (isl + osl), "kv_budget_bytes": kv_budget, "utilisation": np.minimum(rho, 1.0),
    }


def serve_disagg(mc: ModelConsts, cc: ChipConsts, p: Params, *, pre: dict, dec: dict, pre_workers, dec_workers,
                 wbytes, kvbytes, gemm_peak, dtype_eff, dec_weights_gpu, dec_kv_token_gpu, kv_token_model,
                 pre_gpus_worker, isl, osl, concurrency, rate, num_requests, poisson, spec_draft, spec_accept,
                 prefix_hit, max_seqs, chunk, mem_util, sync=1.0, spread=np.inf,
                 pre_chip: tuple[ChipConsts, Params, Any, Any, Any] | None = None,
                 pre_weights_gpu: Any = None, spec_verify=0.0, wstream=1.0) -> dict[str, np.ndarray]:
    """Prefill/decode disaggregation: `pre_workers` prefill instances feed `dec_workers` decode instances.

    Decode iterations carry no prompt tokens; a request's TTFT is its prefill, the KV-cache transfer over
    the scale-out network and the wait for a prefill slot. Throughput is the lesser of the pools'. With
    `pre_chip` = (chip constants, parameters, GEMM peak, dtype efficiency, weight-stream share) the prefill pool runs on another chip
    (e.g. H800 prefill, H20 decode): its steps use that chip's figures, the KV hand-off crosses the slower of
    the two NICs, and the prefill instance must hold its share of the weights (`pre_weights_gpu`)."""
    f = lambda a: np.asarray(a, dtype=float)  # noqa: E731
    pcc, pp_, pre_peak, pre_eff, pre_ws = pre_chip if pre_chip is not None else (cc, p, gemm_peak, dtype_eff, wstream)
    isl, osl, conc, rate = f(isl), f(osl), f(concurrency), f(rate)
    dtypes = dict(wbytes=wbytes, kvbytes=kvbytes, gemm_peak=gemm_peak, dtype_eff=dtype_eff, wstream=f(wstream))
    new_isl = np.maximum(isl * (1.0 - f(prefix_hit)), 1.0)
    accept = np.maximum(f(spec_accept), 1.0)
    steps = np.maximum(osl / accept, 1.0)
    dec_ctx, pre_ctx = isl + osl / 2.0, isl * f(prefix_hit) + new_isl / 2.0
    # decode pool
    kv_budget = kv_budget_bytes(cc.memory, f(mem_util), f(dec_weights_gpu), reserve_bytes(p, mc, f(max_seqs)),
                                p.kv_free)
    staggered = (f(sync) == 0) | ~np.isnan(rate)            # varied lengths, or arrivals of their own
    b_rank, fits, seq_held = running_capacity(kv_budget, f(dec_kv_token_gpu), isl, osl,
                                              mc.linear_state_bytes / (f(dec["attn_tp"]) * f(dec["pp"])),
                                              staggered, p.kv_reserve_out)
    b_cap = np.maximum(np.minimum(b_rank, f(max_seqs)) * f(dec["attn_dp"]), 1.0)
    ranks = f(dec["attn_dp"]) * f(dec["pp"])

    def t_dec(b):
        b_mb = b / ranks
        st = stage_time(mc, cc, p, **dec, **dtypes, dec_seqs=b_mb, dec_tokens=b_mb * verify_width(f(spec_draft),
                                                                                                 f(spec_verify)),
                        dec_ctx=dec_ctx, pre_tokens=0.0 * b_mb, pre_ctx=pre_ctx)
        t = f(dec["pp"]) * st
        return t + f(spec_draft) * (t / mc.layers + 0.25 * p.step_s)

    # prefill pool (on its own chip where given): one request alone, and the pool's token rate at full chunks
    zero = 0.0 * isl
    pre_dtypes = dict(wbytes=wbytes, kvbytes=kvbytes, gemm_peak=pre_peak, dtype_eff=pre_eff, wstream=f(pre_ws))
    t_p1 = f(pre["pp"]) * stage_time(mc, pcc, pp_, **pre, **pre_dtypes, dec_seqs=zero, dec_tokens=zero,
                                     dec_ctx=dec_ctx, pre_tokens=new_isl, pre_ctx=pre_ctx)
    big = np.maximum(f(chunk), new_isl)
    t_big = f(pre["pp"]) * stage_time(mc, pcc, pp_, **pre, **pre_dtypes, dec_seqs=zero, dec_tokens=zero,
                                      dec_ctx=dec_ctx, pre_tokens=big, pre_ctx=pre_ctx)
    # requests/s, whole pool; a pipelined prefill worker holds one chunk in each of its pp stages
    mu_pre = f(pre_workers) * f(pre["attn_dp"]) * f(pre["pp"]) * big / (t_big * new_isl)
    link = np.minimum(cc.scaleout_bw, pcc.scaleout_bw)
    t_kv = isl * f(kv_token_model) / (link * p.comm_eff * f(pre_gpus_worker)) + 1e-3
    if pre_weights_gpu is not None:
        # the prefill instance holds its weights and one chunk's KV and activations
        fits = fits & (kv_budget_bytes(pcc.memory, f(mem_util), f(pre_weights_gpu),
                                       reserve_bytes(pp_, mc, f(max_seqs)), pp_.kv_free) > 0)
    workers = f(dec_workers)
    conc_w = np.where(np.isnan(conc), np.inf, conc / workers)
    lam = np.where(np.isnan(rate), np.inf, rate)
    b = np.minimum(np.minimum(conc_w, b_cap), np.where(np.isinf(lam), np.inf, lam / workers * (t_p1 + steps * 0.05)))
    b = np.maximum(np.where(np.isfinite(b), b, b_cap), 1.0)
    for _ in range(12):                              # open loop: B = lambda/workers x decode lifetime
        td = t_dec(b)
        # a client that caps its requests in flight (conc_w) caps the batch under a request rate too
        b_new = np.minimum(np.where(np.isinf(lam), np.inf, lam / workers * (steps * td + t_p1)),
                           np.minimum(conc_w, b_cap))
        b = np.maximum(0.5 * b + 0.5 * b_new, 1.0)
    td = t_dec(b)
    lat0 = t_p1 + t_kv + p.ttft_s + p.pd_handoff_s + (steps - 1.0) * td
    x_dec = workers * np.minimum(b, np.maximum(np.minimum(conc_w, b_cap), 1e-9)) / lat0
    # every request's KV cache crosses from the prefill to the decode pool: the prefill pool's NICs carry at most
    # mu_kv requests/s (isl x KV bytes per token each)
    mu_kv = link * p.comm_eff * f(pre_gpus_worker) * f(pre_workers) / np.maximum(isl * f(kv_token_model), 1.0)
    x = np.minimum(np.minimum(np.minimum(x_dec, mu_pre), mu_kv), lam)
    # the decode batch holds only the requests in their decode phase (Little's law at the system's throughput,
    # B = X (steps - 1) t_dec per worker); the rest are queued or in prefill and hand-off. This matters most when
    # the prefill pool is the bottleneck: its queue starves the decoders, so decode steps run lighter
    for _ in range(4):
        b = np.maximum(np.minimum(b, x * (steps - 1.0) * td / workers), 1.0)
        td = t_dec(b)
    rho = np.minimum(x / mu_pre, 0.98)
    wq = rho / (2 * (1 - rho)) * t_p1 * np.where(f(poisson) > 0, 1.0, 0.2)
    closed_conc = np.where(np.isnan(conc), np.inf, conc)
    # closed loop beyond either pool's capacity: Little's law gives the wait
    wq_little = np.where(np.isfinite(closed_conc), np.maximum(closed_conc / x - lat0, 0.0), 0.0)
    n = np.where(np.isnan(f(num_requests)), 1000.0, f(num_requests))
    # a client concurrency cap keeps the excess of an over-fast request rate out of the measured TTFT
    backlog = np.where(np.isfinite(lam) & (lam > x) & ~np.isfinite(closed_conc), 0.5 * n * (1 / x - 1 / lam), 0.0)
    # C prompts arriving together queue at the prefill pool. Fixed-length closed loops keep arriving in waves
    # (persistence sync_eff); otherwise only a run's first wave does, a share C / n of its n requests
    wave_prompts = np.where(np.isfinite(closed_conc), closed_conc / (f(pre_workers) * f(pre["attn_dp"])), 1.0)
    queue_all = np.where(np.isfinite(closed_conc),
                         np.maximum(wave_prompts - 1.0, 0.0) / 2.0 * new_isl * t_big / big, 0.0)
    wave = np.where(np.isfinite(closed_conc) & np.isfinite(f(num_requests)) & (n > closed_conc),
                    closed_conc / n, 0.0)
    # lengths from a known range: later waves come back smeared over spread x steps (see serve); the prefill
    # pool's steps are prompt-only batches of `big` tokens
    partial = _lockstep_share(f(spread), steps - 1.0, wave_prompts * new_isl / big)
    lockstep = np.where(f(sync) > 0, f(sync) * p.sync_eff, wave + (1.0 - wave) * partial * p.sync_eff) * queue_all
    ttft = t_p1 + t_kv + p.ttft_s + p.pd_handoff_s + np.maximum(wq, wq_little) + backlog + lockstep
    # a closed-loop client's lag behind its other open streams (stream_s each; see serve)
    ttft = ttft + np.where(np.isfinite(closed_conc), p.stream_s * np.maximum(b * workers - 1.0, 0.0), 0.0)
    # a closed loop turns its C requests over once per whole request latency, the waits included
    x = np.where(np.isfinite(closed_conc), np.minimum(x, closed_conc / (ttft + (steps - 1.0) * td)), x)
    return {"fits": fits, "max_batch": b_cap * workers, "batch": b * workers, "kv_seq_held_bytes": seq_held, "ttft_s": ttft, "tpot_s": td / accept,
            "itl_s": td, "e2e_s": ttft + (steps - 1) * td, "requests_per_s": x, "output_tokens_per_s": x * osl,
            "kv_link_share": x / np.maximum(mu_kv, 1e-12), "kv_transfer_s": t_kv + 0.0 * x,
            "total_tokens_per_s": x * (isl + osl), "kv_budget_bytes": kv_budget, "utilisation": rho}
