"""Engine scheduler simulation: continuous batching, one loop iteration per engine step (or per run of identical
decode steps), on the step-time model of operators.py.

Layers: operators.stage_time gives the seconds of one engine step for a batch (prompt tokens, decoding sequences
and their context). :class:`StepTable` tabulates it once per configuration on a grid and interpolates, so a step
costs microseconds. :func:`simulate` drives a scheduler with an arrival process and returns per-request TTFT,
TPOT and end-to-end latency, throughput, and the queue over time.

Scheduler policies (``policy``):

* ``mixed`` (vLLM V1, TensorRT-LLM in-flight batching): every step first gives each running sequence its decode
  token(s), then fills the rest of the token budget (``max_num_batched_tokens``) with prompt chunks, in arrival
  order, while a seat (``max_num_seqs``) and KV space are free (chunked prefill).
* ``prefill_first`` (SGLang's default, vLLM V0 without chunked prefill): when prompts wait and can be admitted,
  a step prefills only them (up to the budget, a long prompt in chunks) and running sequences pause; otherwise
  the step decodes.

KV cache: a sequence holds its prompt and the tokens generated so far; a prompt is admitted only when its tokens
fit beside what the running sequences hold. When decoding sequences outgrow the cache, the newest is preempted
(vLLM's recompute): it frees its KV and waits at the head of the queue to prefill prompt + generated tokens again.

Time advances straight to the next event when nothing else changes: with no prompt to prefill, k decode steps run
until the next arrival or completion, timed at their mean context. So the loop runs about twice per request plus
once per prompt chunk, not once per token.
"""
from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

POLICIES = ("mixed", "prefill_first")
MAX_TIMELINE = 500


# ------------------------------------------------------------------ arrivals
@dataclass
class Requests:
    """One run's requests, sorted by arrival: seconds, prompt tokens, output tokens, prompt tokens served from
    the prefix cache."""

    arrival: np.ndarray
    isl: np.ndarray
    osl: np.ndarray
    cached: np.ndarray

    def __len__(self) -> int:
        return len(self.arrival)


def _lengths(rng: np.random.Generator, mean: float, n: int, spread: float) -> np.ndarray:
    """Lengths with the given mean: fixed (spread 0), uniform over a known range ((max - min) / mean =
    spread), or, for an unknown spread (a conversation dataset such as ShareGPT), a geometric-like spread
    (exponential with the same mean, at least 1)."""
    if spread <= 0:
        return np.full(n, max(round(mean), 1), dtype=np.int64)
    if math.isfinite(spread):
        lo = mean * (1.0 - min(spread, 2.0) / 2.0)
        hi = mean * (1.0 + min(spread, 2.0) / 2.0)
        return np.maximum(np.rint(rng.uniform(lo, hi, n)), 1).astype(np.int64)
    return np.maximum(np.rint(rng.exponential(mean, n)), 1).astype(np.int64)


def poisson_arrivals(rate: float, n: int, *, isl: float, osl: float, poisson: bool = True, spread: float = 0.0,
                     prefix_hit: float = 0.0, seed: int = 0, burstiness: float = 1.0) -> Requests:
    """n requests at `rate` per second with mean lengths isl/osl: Poisson (gaps Gamma-distributed with shape
    `burstiness` when it is not 1, as vLLM's benchmark draws them: below 1 burstier, above 1 more regular), or
    constant-rate spacing."""
    rng = np.random.default_rng(seed)
    if not poisson:
        gaps = np.full(n, 1.0 / rate)
    elif burstiness != 1.0:
        gaps = rng.gamma(burstiness, 1.0 / (rate * burstiness), n)
    else:
        gaps = rng.exponential(1.0 / rate, n)
    arrival = np.cumsum(gaps) - gaps[0]
    i = _lengths(rng, isl, n, spread)
    return Requests(arrival=arrival, isl=i, osl=_lengths(rng, osl, n, spread), cached=_cached(i, prefix_hit))


def _cached(isl: np.ndarray, prefix_hit: float) -> np.ndarray:
    """Prompt tokens served from the prefix cache: a share of each prompt, at least one token left to prefill."""
    return np.minimum(np.floor(isl * prefix_hit).astype(np.int64), isl - 1)


def burst_arrivals(n: int, *, isl: float, osl: float, spread: float = 0.0, prefix_hit: float = 0.0,
                   seed: int = 0) -> Requests:
    """n requests all sent at time 0 (an offline burst), lengths as poisson_arrivals draws them."""
    rng = np.random.default_rng(seed)
    i = _lengths(rng, isl, n, spread)
    return Requests(arrival=np.zeros(n), isl=i, osl=_lengths(rng, osl, n, spread), cached=_cached(i, prefix_hit))


# ------------------------------------------------------------------ step time
class StepTable:
    """Seconds of one engine step, tabulated over (prompt tokens, decoding sequences, mean decode context) and
    interpolated linearly between grid points. `fn(pre_tokens, dec_seqs, dec_ctx)` takes broadcast arrays."""

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], *, max_pre: float,
                 max_seqs: float, max_ctx: float):
        self.pre = np.unique(np.concatenate([[0.0, 1.0], np.geomspace(1, max(max_pre, 2), 28)]))
        self.dec = np.unique(np.concatenate([[0.0, 1.0], np.geomspace(1, max(max_seqs, 2), 24)]))
        self.ctx = np.unique(np.concatenate([[1.0], np.geomspace(16, max(max_ctx, 32), 8)]))
        P, D, C = np.meshgrid(self.pre, self.dec, self.ctx, indexing="ij")
        self.t = np.asarray(fn(P, D, C), dtype=float).reshape(P.shape)
        self._pre, self._dec, self._ctx = list(self.pre), list(self.dec), list(self.ctx)

    @staticmethod
    def _at(grid: list[float], x: float) -> tuple[int, float]:
        k = bisect_right(grid, x) - 1
        k = min(max(k, 0), len(grid) - 2)
        lo, hi = grid[k], grid[k + 1]
        w = (x - lo) / (hi - lo)
        return k, min(max(w, 0.0), 1.0) if x <= hi else w      # linear extrapolation above the grid

    def __call__(self, pre: float, dec: float, ctx: float) -> float:
        i, a = self._at(self._pre, pre)
        j, b = self._at(self._dec, dec)
        k, c = self._at(self._ctx, ctx)
        t = self.t
        v00 = t[i, j, k] * (1 - c) + t[i, j, k + 1] * c
        v01 = t[i, j + 1, k] * (1 - c) + t[i, j + 1, k + 1] * c
        v10 = t[i + 1, j, k] * (1 - c) + t[i + 1, j, k + 1] * c
        v11 = t[i + 1, j + 1, k] * (1 - c) + t[i + 1, j + 1, k + 1] * c
        return float((v00 * (1 - b) + v01 * b) * (1 - a) + (v10 * (1 - b) + v11 * b) * a)


# ------------------------------------------------------------------ the engine
@dataclass
class EngineSpec:
    """What the scheduler needs of one serving instance."""

    step: Callable[[float, float, float], float]     # seconds of a step: (prompt tokens, decoding seqs, context)
    kv_tokens: float                                 # KV cache capacity in tokens (whole instance)
    max_seqs: int = 256
    budget: int = 8192                               # max_num_batched_tokens / chunked_prefill_size
    policy: str = "mixed"
    accept: float = 1.0                              # tokens per decode step per sequence (speculative decoding)
    fixed_s: float = 0.0                             # per request: latency outside the engine (HTTP, streaming)
    admit_s: float = 0.0                             # per request, serial: the front end's tokenising/admission
    stream_s: float = 0.0                            # closed loop, per other stream in flight: the client's lag
    multi_step: int = 1                              # decode steps per scheduling round (vLLM V0 multi-step)
    # share of each admitted request's remaining output the engine keeps KV room for before it admits another
    # (defaults.yaml kv_reserve_output: vLLM 0, SGLang 0.098, TensorRT-LLM 1; serving.running_capacity)
    reserve_out: float = 0.0


@dataclass
class SimResult:
    ttft: np.ndarray            # seconds, per completed request
    tpot: np.ndarray            # seconds per output token after the first, per request (osl > 1)
    e2e: np.ndarray
    itl_mean: float             # mean gap between tokens over all tokens (token-weighted)
    completed: int
    submitted: int
    duration: float             # first arrival to last completion (or the end of the run)
    output_tokens: int
    backlog: int                # requests still queued at the last arrival
    growing: bool               # the queue was still growing over the run's second half
    timeline: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    itl_p50: float = float("nan")   # median gap between tokens over all tokens (what a median-ITL report measures)

    @property
    def requests_per_s(self) -> float:
        return self.completed / max(self.duration, 1e-12)

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / max(self.duration, 1e-12)

    def stats(self) -> dict[str, float]:
        def pc(a: np.ndarray, q: float) -> float:
            return float(np.percentile(a, q)) if len(a) else float("nan")
        out: dict[str, float] = {}
        for name, a, scale in (("ttft_ms", self.ttft, 1e3), ("tpot_ms", self.tpot, 1e3), ("e2e_s", self.e2e, 1.0)):
            base = name.rsplit("_", 1)
            out[name] = float(np.mean(a)) * scale if len(a) else float("nan")
            for q in (50, 90, 99):
                out[f"{base[0]}_p{q}_{base[1]}"] = pc(a, q) * scale
        out["itl_ms"] = self.itl_mean * 1e3
        out["itl_p50_ms"] = self.itl_p50 * 1e3
        return out


def simulate(eng: EngineSpec, req: Requests, *, max_steps: int = 5_000_000, closed: int = 0) -> SimResult:
    """Run the requests through the engine until all complete (a finite run drains its backlog).

    ``closed`` > 0: a closed loop of that many clients instead of the requests' arrival times: the first
    ``closed`` requests are sent at 0 and each later one the moment an earlier one completes."""
    if eng.policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}")
    n = len(req)
    sent = req.arrival.astype(float)
    released = n
    if closed > 0:
        released = min(int(closed), n)
        sent = np.where(np.arange(n) < released, 0.0, np.inf)
    # the front end takes requests one after another (admit_s each) before the scheduler sees them
    arrival = sent + eng.admit_s
    if eng.admit_s > 0 and n > 1 and not closed:
        gaps = np.diff(sent)
        if (gaps < eng.admit_s).any():
            ready = np.empty(n)
            t = -np.inf
            for i in range(n):
                t = max(sent[i], t) + eng.admit_s
                ready[i] = t
            arrival = ready
    isl = req.isl.astype(np.int64)
    osl = np.maximum(req.osl.astype(np.int64), 1)
    need_pre = (isl - req.cached).astype(np.int64)         # prompt tokens to prefill
    first_tok = np.full(n, np.nan)
    lag = np.zeros(n)                                   # a first token's wait behind the other open streams
    start_t = np.full(n, np.nan)            # when a request's prefill was first scheduled
    done_t = np.full(n, np.nan)
    accept = max(eng.accept, 1.0)
    # decode steps after the first token: ceil((osl - 1) / accept)
    dec_steps = np.ceil(np.maximum(osl - 1, 0) / accept).astype(np.int64)

    waiting: deque[int] = deque()           # arrived, not admitted (or preempted)
    prefilling: list[int] = []              # admitted, prompt partly prefilled (FIFO)
    left = need_pre.copy()                  # prompt tokens still to prefill
    run_start: dict[int, int] = {}          # decoding request -> decode-step counter K when it started
    fin_heap: list[tuple[int, int]] = []    # (K at which it finishes, request)
    kv_held = 0.0                           # prompt tokens (incl. cached) of admitted requests
    sum_isl_dec = 0.0                       # prompt tokens of decoding requests
    sum_k0 = 0                              # sum of start counters of decoding requests (tokens = accept (K - k0))
    sum_fin = 0                             # sum of the counters K at which decoding requests finish
    pre_steps = 0                           # decode steps still ahead of the admitted requests not yet decoding
    K = 0                                   # decode steps executed so far
    now = float(arrival[0]) if n else 0.0
    nxt = 0                                 # next arrival index
    steps = 0
    timeline: list[tuple[float, int, int, float]] = []
    gap_s: list[float] = []                 # token gaps: seconds, and tokens (gap_w), of each decode step or run
    gap_w: list[float] = []
    last_dec = math.nan                     # when the last decode step ended
    every = max(int(eng.multi_step), 1)
    blk = 0                                 # decode-step counter K when the current multi-step round began

    def release(done: float) -> None:
        """A closed-loop client sees its request end `fixed_s` after the engine does (the latency outside the
        engine that TTFT and E2E carry), then sends its next one."""
        nonlocal released
        sent[released] = done + eng.fixed_s
        arrival[released] = sent[released] + eng.admit_s
        released += 1

    def note_gaps(start: float, t: float, k: int, n_dec: int) -> None:
        """k decode steps of t seconds from `start`: the first token's gap also spans the prompt-only steps
        since the last decode step."""
        first = t + (start - last_dec if math.isfinite(last_dec) else 0.0)
        gap_s.append(first)
        gap_w.append(float(n_dec))
        if k > 1:
            gap_s.append(t)
            gap_w.append(float(n_dec * (k - 1)))

    def kv_decoding() -> float:
        return sum_isl_dec + accept * (len(run_start) * K - sum_k0)

    def kv_reserved() -> float:
        """Room the engine keeps for the output its admitted requests have yet to write."""
        return eng.reserve_out * accept * (sum_fin - len(run_start) * K + pre_steps) if eng.reserve_out else 0.0

    def admit_new(budget_left: int, seats: int) -> tuple[list[tuple[int, int]], int]:
        """Prompt chunks for this step: (request, tokens), continuing ones first, then new ones in order."""
        nonlocal kv_held, pre_steps
        chunks = []
        for r in prefilling:
            if budget_left <= 0:
                break
            c = int(min(left[r], budget_left))
            chunks.append((r, c))
            budget_left -= c
        while waiting and budget_left > 0 and seats > 0:
            r = waiting[0]
            if (kv_held + kv_decoding() + kv_reserved() + isl[r] + eng.reserve_out * accept * dec_steps[r]
                    > eng.kv_tokens and (run_start or prefilling)):
                break                               # no KV room until something finishes
            waiting.popleft()
            prefilling.append(r)
            kv_held += isl[r]
            pre_steps += int(dec_steps[r])
            seats -= 1
            if np.isnan(start_t[r]):
                start_t[r] = now
            c = int(min(left[r], budget_left))
            chunks.append((r, c))
            budget_left -= c
        return chunks, budget_left

    while (nxt < n or waiting or prefilling or run_start) and steps < max_steps:
        # arrivals up to now
        while nxt < n and arrival[nxt] <= now + 1e-12:
            waiting.append(nxt)
            nxt += 1
        if not (waiting or prefilling or run_start):
            now = float(arrival[nxt])                       # idle until the next arrival
            continue
        n_dec = len(run_start)
        seats = eng.max_seqs - n_dec - len(prefilling)
        ctx = (kv_decoding() / n_dec) if n_dec else 1.0
        chunks: list[tuple[int, int]] = []
        # multi-step scheduling: prompts join only between rounds of `every` decode steps
        between = every == 1 or n_dec == 0 or (K - blk) % every == 0
        if eng.policy == "mixed":
            if between:
                chunks, _ = admit_new(eng.budget - int(n_dec * accept), seats)
            decode = n_dec > 0
        else:
            if (waiting or prefilling) and between:
                chunks, _ = admit_new(eng.budget, seats)
            decode = not chunks and n_dec > 0
        pre_tok = sum(c for _, c in chunks)
        if not chunks and decode:
            # decode-only steps until the next arrival or completion (or until KV runs out)
            k_fin = fin_heap[0][0] - K if fin_heap else 1
            t1 = eng.step(0.0, n_dec, ctx)
            k = max(1, k_fin)
            if nxt < n and (seats > 0 or not waiting) and math.isfinite(arrival[nxt]):
                k_arr = math.ceil((arrival[nxt] - now) / max(t1, 1e-9))
                if every > 1:                               # the arrival waits for the round to end
                    k_arr = -((K - blk + k_arr) // -every) * every - (K - blk)
                k = max(1, min(k, k_arr))
            if every > 1 and waiting and not between:
                k = max(1, min(k, every - (K - blk) % every))
            room = eng.kv_tokens - kv_held - kv_decoding()
            if room > 0:
                k = max(1, min(k, int(room / max(accept * n_dec, 1e-9))))
            t = eng.step(0.0, n_dec, ctx + accept * (k - 1) / 2.0) if k > 1 else t1
            note_gaps(now, t, k, n_dec)
            now += k * t
            last_dec = now
            K += k
            steps += k
            if len(timeline) < 200_000:
                timeline.append((now, len(waiting), n_dec, float(n_dec)))
        elif chunks or decode:
            t = eng.step(float(pre_tok), float(n_dec if decode else 0), ctx)
            if decode:
                note_gaps(now, t, 1, n_dec)
            now += t
            steps += 1
            if decode:
                K += 1
                last_dec = now
            if chunks:
                blk = K                                     # a scheduling round: the next one `every` steps on
            for r, c in chunks:
                left[r] -= c
            done_pre = [r for r, _ in chunks if left[r] <= 0]
            for r in done_pre:
                prefilling.remove(r)
                kv_held -= isl[r]
                pre_steps -= int(dec_steps[r])
                first_tok[r] = now
                if closed:                          # a closed-loop client's lag behind its other streams
                    lag[r] = eng.stream_s * (len(run_start) + len(prefilling))
                if dec_steps[r] == 0:
                    done_t[r] = now
                    if released < n:                 # closed loop: the client sends its next request
                        release(now + lag[r])
                    continue
                run_start[r] = K
                sum_k0 += K
                sum_fin += K + int(dec_steps[r])
                sum_isl_dec += isl[r]
                heapq.heappush(fin_heap, (K + int(dec_steps[r]), r))
            if len(timeline) < 200_000:
                timeline.append((now, len(waiting), len(run_start), float(pre_tok + n_dec * accept)))
        else:
            # nothing can run: a prompt waits for KV that no running request will free. An engine would reject
            # it; here it runs alone (the result still counts it)
            if not waiting:
                break
            r = waiting.popleft()
            prefilling.append(r)
            kv_held += isl[r]
            pre_steps += int(dec_steps[r])
            continue
        # completions
        while fin_heap and fin_heap[0][0] <= K:
            _, r = heapq.heappop(fin_heap)
            k0 = run_start.pop(r)
            sum_k0 -= k0
            sum_fin -= k0 + int(dec_steps[r])
            sum_isl_dec -= isl[r]
            done_t[r] = now
            if released < n:                         # closed loop: the client sends its next request
                release(now + lag[r])
        # KV overflow: preempt the newest decoding request (recompute later)
        while run_start and kv_held + kv_decoding() > eng.kv_tokens * 1.0001 and len(run_start) > 1:
            r = max(run_start, key=run_start.__getitem__)
            k0 = run_start.pop(r)
            gen = accept * (K - k0)
            sum_k0 -= k0
            sum_fin -= k0 + int(dec_steps[r])
            sum_isl_dec -= isl[r]
            fin_heap = [(kf, q) for kf, q in fin_heap if q != r]
            heapq.heapify(fin_heap)
            left[r] = int(isl[r] + gen)                 # re-prefill prompt + generated tokens
            dec_steps[r] = max(int(dec_steps[r] - (K - k0)), 1)
            waiting.appendleft(r)
    ok = ~np.isnan(done_t)
    ttft = first_tok[ok] - sent[ok] + lag[ok]
    e2e = done_t[ok] - sent[ok] + lag[ok]
    multi = ok & (osl > 1)
    tpot = (done_t[multi] - first_tok[multi]) / (osl[multi] - 1)
    gap_sum = float(np.sum(done_t[multi] - first_tok[multi]))
    itl_mean = gap_sum / max(float(np.sum(osl[multi] - 1)), 1.0)
    # requests sent but not yet scheduled (in the front end or the engine's queue) at the last arrival, and at
    # the run's midpoint: a queue that grows linearly doubles between the two
    started = np.where(np.isnan(start_t), np.inf, start_t)
    t_end, t_half = sent[-1] if n else 0.0, (sent[0] + sent[-1]) / 2 if n else 0.0
    slack = 2.0 * eng.admit_s + 1e-9           # a request just sent is not a backlog
    backlog = int(np.sum((sent < t_end - slack) & (started > t_end + 1e-12)))
    q_half = int(np.sum((sent < t_half - slack) & (started > t_half + 1e-12)))
    growing = backlog > max(1.5 * q_half, 4.0)
    duration = float(np.nanmax(done_t) + eng.fixed_s - sent[0]) if ok.any() else 0.0   # as the clients see it
    tl = _thin(timeline)
    return SimResult(ttft=ttft + eng.fixed_s, tpot=tpot, e2e=e2e + eng.fixed_s, itl_mean=itl_mean,
                     completed=int(ok.sum()), submitted=n, duration=duration,
                     output_tokens=int(osl[ok].sum()), backlog=backlog, growing=bool(growing), timeline=tl,
                     steps=steps, itl_p50=_weighted_median(np.array(gap_s), np.array(gap_w)))


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    if not len(x) or w.sum() <= 0:
        return float("nan")
    o = np.argsort(x)
    c = np.cumsum(w[o])
    return float(x[o][np.searchsorted(c, 0.5 * c[-1])])


def closed_loop(eng: EngineSpec, concurrency: int, req: Requests, **kw: Any) -> SimResult:
    """`concurrency` clients, each sending its next request the moment its last one returns, until `req`
    (lengths only; its arrival times are ignored) is used up."""
    return simulate(eng, req, closed=max(int(concurrency), 1), **kw)


def _thin(timeline: list[tuple[float, int, int, float]]) -> list[dict[str, float]]:
    if not timeline:
        return []
    idx = np.unique(np.linspace(0, len(timeline) - 1, min(MAX_TIMELINE, len(timeline))).astype(int))
    return [{"t_s": round(timeline[i][0], 4), "queued": timeline[i][1], "running": timeline[i][2],
             "batch_tokens": round(timeline[i][3], 1)} for i in idx]
