"""Validate: measured CSV -> predictions -> errors, per row and summarised (CONTRACTS.md `validate --json`).

Rows that share a model, chip and engine are predicted together in one vectorised call, so the whole
inference file (about 1,300 rows) takes well under a second; a malformed row becomes ``invalid`` with the
reason, and the rest still run.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from stockpile.calibration import trtllm_bench
from stockpile.calibration.bands import band, fitted_publications, load_kind
from stockpile.calibration.notes import (
    DEFAULT_DRAFT_ATTN_DP,
    PoolLayout,
    default_accept_length,
    prefix_hit_share,
)
from stockpile.calibration.prompt_sets import mark_shared_prompts
from stockpile.calibration.rows import (
    DISTRIBUTION_METRICS,
    InferenceCase,
    float_or_none,
    inference_case,
    read_rows,
)
from stockpile.calibration.status import OK, UNSUPPORTED, status_of
from stockpile.catalog.chips import BYTES, Chip, get_chip, per_die
from stockpile.catalog.models import ModelSpec, get_model, implied_weight_dtype, model_notes
from stockpile.errors import InputError, StockpileError
from stockpile.perf import traffic
from stockpile.perf.calibration import Calibration, Params, engine_graph_limits, engine_key, load_calibration
from stockpile.perf.inference import (
    KV_DTYPES,
    WEIGHT_BYTES,
    WEIGHT_DTYPES,
    Configs,
    check_engine,
    chip_dtype_tables,
    disagg_core,
    dtype_efficiency,
    engine_limits,
    evaluate_core,
    hybrid_kv,
    stream_share,
)
from stockpile.perf.layout import Layout, resolve_layout
from stockpile.perf.operators import ChipConsts, ModelConsts
from stockpile.perf.serving import MODE_CLOSED, MODE_OFFLINE, MODE_OPEN, ContextHold
from stockpile.perf.simulate import SimResult, burst_arrivals, poisson_arrivals

# the memory fraction a measured run that does not fit at its engine's default is evaluated at (Batch): what
# operators set to fit a large model (SGLang's --mem-fraction-static, vLLM's --gpu-memory-utilization)
MEASURED_MEM_UTIL = 0.95
# ... and a closed loop whose concurrency the default fraction's KV cache holds less than this share of (_kv_starved)
KV_STARVED_SHARE = 0.25


@dataclass
class Prepared:
    """A case resolved against the catalogs: what to evaluate and how to read the metric back."""

    case: InferenceCase
    model: ModelSpec
    chip: Chip
    engine: str
    layout: Layout | None
    wdt: str
    kdt: str
    scale_gpus: int        # divide system metrics by this for per-GPU (per-card) metrics
    units_per_gpu: int     # devices the model sees per listed accelerator
    pre: Layout | None = None
    dec: Layout | None = None
    pre_workers: int = 0
    dec_workers: int = 0

    @property
    def engine_key(self) -> str:
        """The calibration key: the engine, or its release family (calibration.engine_key)."""
        return engine_key(self.engine, self.case.engine_version, self.case.v0_engine)


def prepare(case: InferenceCase) -> Prepared:
    model = get_model(case.model)
    case.notes_used.extend(model_notes(case.model))
    chip = get_chip(case.chip)
    if case.chip.strip().lower() != chip.id:
        case.notes_used.append(f"accelerator '{case.chip}' read as {chip.id}")     # a shorthand (B200, h200_sxm)
    engine = check_engine(case.engine)
    units = 1
    if chip.id.startswith("ascend-910c"):
        units = 2
        chip = per_die(chip, 2)
    wdt = case.weight_dtype or implied_weight_dtype(case.model) or model.default_weight_dtype
    if wdt not in WEIGHT_DTYPES:
        raise InputError("weight_dtype", f"unknown '{wdt}'; one of {', '.join(WEIGHT_DTYPES)}")
    kdt = case.kv_dtype or ("fp8" if engine == "trtllm" and wdt in ("fp8", "fp4") else "bf16")
    if kdt not in KV_DTYPES:
        raise InputError("kv_dtype", f"unknown '{kdt}'; one of {', '.join(KV_DTYPES)}")
    _chip_consts(chip)          # every figure the model needs, checked per row (MissingFigureError names it)
    chip_dtype_tables(chip, _compute_dtype(case, chip, wdt))
    devices = case.gpus * units
    prep = Prepared(case, model, chip, engine, None, wdt, kdt, case.gpus, units)
    if case.decode_pool is not None and case.prefill_pool is not None:
        prep.pre, prep.pre_workers = _pool(case.prefill_pool, model)
        prep.dec, prep.dec_workers = _pool(case.decode_pool, model)
        _attention_dp_draft(case, prep.dec.attn_dp > 1)
        return prep
    if case.decode_pool is not None or case.prefill_pool is not None:
        raise StockpileError("disaggregated run: the notes give only one pool's layout")
    prep.layout = resolve_layout(gpus=devices, tp=case.tp, pp=case.pp, ep=case.ep, dp=case.dp, is_moe=model.is_moe)
    _attention_dp_draft(case, prep.layout.attn_dp > 1)
    if case.bench_tuned:
        _bench_limits(case, prep)
    return prep


def _bench_limits(case: InferenceCase, prep: Prepared) -> None:
    """The batch cap and token budget trtllm-bench throughput sets, where the row states neither
    (calibration/trtllm_bench)."""
    lay = prep.layout
    assert lay is not None
    bs, tok = trtllm_bench.bench_limits(prep.model, prep.chip.memory_bytes, lay.attn_tp * lay.attn_dp, lay.pp,
                                        case.isl, case.osl, prep.wdt, prep.kdt)
    if case.budget is None:
        case.budget = tok
        case.notes_used.append(f"max_num_tokens {tok}: what trtllm-bench throughput sets for these lengths")
    if case.max_seqs is None:
        case.max_seqs = bs
        case.notes_used.append(f"max_batch_size {bs}: what trtllm-bench throughput sets for these lengths")


def _compute_dtype(case: InferenceCase, chip: Chip, wdt: str) -> str:
    """The dtype whose tensor cores run the GEMMs: the weights', or FP8 for int4 weights with FP8 activations where
    the chip has FP8 natively (else the weights are dequantized to 16 bit, as for W4A16)."""
    a = case.act_dtype
    return a if wdt == "int4" and a is not None and chip.has_native(a) else wdt


def _attention_dp_draft(case: InferenceCase, attention_dp: bool) -> None:
    """An unstated MTP draft count follows the recipe of the layout: 1 with attention DP, else 3."""
    if case.spec_assumed and attention_dp and case.spec_draft != DEFAULT_DRAFT_ATTN_DP:
        case.spec_draft = DEFAULT_DRAFT_ATTN_DP
        case.spec_accept = default_accept_length(DEFAULT_DRAFT_ATTN_DP)
        case.notes_used = [u for u in case.notes_used if "count not stated" not in u and "accept length" not in u]
        case.notes_used.append(f"speculative decoding with {DEFAULT_DRAFT_ATTN_DP} draft token (attention-DP "
                               "recipe; count not stated)")


def _decode_layout(pr: Prepared) -> Layout:
    """The layout that decodes: the decode pool of a disaggregated run, else the run's own."""
    lay = pr.dec if pr.dec is not None else pr.layout
    assert lay is not None, "prepare() sets a layout or both pools"
    return lay


def _pool(pool: PoolLayout, model: ModelSpec) -> tuple[Layout, int]:
    per_worker = max(pool.gpus // max(pool.workers, 1), 1)
    lay = resolve_layout(gpus=per_worker, tp=pool.tp, pp=pool.pp, ep=pool.ep,
                         dp=pool.dp if pool.attention_dp else 1, is_moe=model.is_moe, attention_dp=pool.attention_dp)
    return lay, pool.workers * lay.replicas


def _mode(c: InferenceCase) -> int:
    if c.request_rate:
        return MODE_OPEN
    if c.concurrency:
        return MODE_CLOSED
    return MODE_OFFLINE


def _metric(out: dict[str, np.ndarray], i: int, prep: Prepared) -> float:
    m = prep.case.metric
    n = prep.scale_gpus
    if m == "ttft_ms":
        return float(out["ttft_s"][i]) * 1e3
    if m == "tpot_ms":
        return float(out["tpot_s"][i]) * 1e3
    if m == "e2e_latency_s":
        return float(out["e2e_s"][i])
    if m == "requests_per_s":
        return float(out["requests_per_s"][i])
    if m in DISTRIBUTION_METRICS:     # no simulation (a P/D split): the steady state's means stand in
        if m.startswith(("itl", "tpot")):
            return float(out["tpot_s"][i]) * 1e3
        if m.startswith("ttft"):
            return float(out["ttft_s"][i]) * 1e3
        return float(out["e2e_s"][i])
    if m.startswith("output") and prep.case.decode_only and prep.dec is None:
        # a decode-phase measurement: the running batch's decode rate (a sequence emits a token per TPOT), not a
        # request cycle that would put the left-out prompt's fixed latency back in (DeepSeek's H800 decode units)
        replicas = max(prep.layout.replicas if prep.layout is not None else 1, 1)
        v = float(out["batch"][i]) * replicas / max(float(out["tpot_s"][i]), 1e-12)
    else:
        v = float(out["output_tokens_per_s" if m.startswith("output") else "total_tokens_per_s"][i])
    return v / n if m.endswith("_per_gpu") else v


def _kv_starved(pr: Prepared, max_batch: float, disagg: bool) -> bool:
    """A closed loop measured at a concurrency whose requests the engine's default memory fraction could hold
    under a quarter of (KV_STARVED_SHARE; per instance, a disaggregated deployment's decode pool as a whole):
    whoever ran the sweep sized the KV cache for it (InferenceX's DeepSeek-R1 FP8 on four B200s at concurrency 32:
    168 GB of weights per GPU leave SGLang's default 0.88 one 8k-token sequence's KV cache). A run short by less
    is left at the default: aic's MiniMax-M2.5 on four H100s at concurrency 64 held about 20 and queued for 30 s."""
    conc = pr.case.concurrency
    if not conc or pr.case.request_rate is not None:
        return False
    per_instance = conc if disagg else conc / max(pr.layout.replicas if pr.layout is not None else 1, 1)
    return max_batch < KV_STARVED_SHARE * per_instance


class Batch:
    """Prepared cases turned into per-row arrays once; :meth:`run` re-evaluates them under a calibration.

    Model, chip and calibration constants are per-row arrays, so a file of mixed rows is one numpy pass per
    kind (aggregated, disaggregated). Calibration calls :meth:`run` many times on one Batch."""

    def __init__(self, preps: list[Prepared], *, simulate: bool = True, max_requests: int | None = None,
                 simulate_bursts: bool = True):
        self.preps = preps
        self.simulate = simulate        # open-loop (request-rate) rows through the scheduler simulation
        self.max_requests = max_requests  # cap on a simulated run's requests per instance (fits); None: as measured
        # vLLM V1 bursts through the simulation too (traffic.preempts_in_bursts); a fit's inner loop keeps their
        # steady state (a burst's mean TTFT depends on its full length, too long to simulate per evaluation), times
        # the factor to validate's prediction that `scale` carries
        self.simulate_bursts = simulate_bursts
        # per-row factors on what run() returns (None: none): a fit's correction from its fast model to the
        # prediction validate makes (fit_inference.validate_factors)
        self.scale: np.ndarray | None = None
        self.parts = []
        for disagg in (False, True):
            idx = [i for i, pr in enumerate(preps) if (pr.dec is not None) == disagg]
            if idx:
                self.parts.append((disagg, idx, self._arrays([preps[i] for i in idx], disagg)))
        self._fit_measured_runs()

    def _fit_measured_runs(self) -> None:
        """A measured run fitted on its GPUs. Where its stated layout does not fit at the engine's default
        memory fraction (and the source does not state one), the operator must have raised it: evaluate the
        row at MEASURED_MEM_UTIL instead, and say so (InferenceX's DeepSeek-R1 in FP8 on four GB200s with attention
        DP: experts split four ways, attention whole on every GPU, past SGLang's default 0.88), and the same where
        it fits but the default's KV cache would hold under a quarter of the concurrency it was measured at
        (`_kv_starved`). A layout that fits at no fraction keeps its refusal, with the numbers (`misfit`). Decided
        under the shipped calibration."""
        self.misfit: dict[int, str] = {}     # row index -> why its stated layout does not fit, with the numbers
        cal = load_calibration()
        for disagg, idx, a in self.parts:
            p = self._params(a, cal)
            out = self._core(disagg, a, p)
            fits = out["fits"].astype(bool)
            raised = False
            for j in range(len(idx)):
                pr = self.preps[idx[j]]
                if pr.case.mem_util is not None or a["limits"][2][j] >= MEASURED_MEM_UTIL:
                    continue
                if not fits[j]:
                    note = (f"memory fraction {MEASURED_MEM_UTIL:g}: the stated layout ran, and at the engine's "
                            "default it would leave no room for the KV cache")
                elif _kv_starved(pr, float(out["max_batch"][j]), disagg):
                    note = (f"memory fraction {MEASURED_MEM_UTIL:g}: at the engine's default the KV cache would "
                            f"hold {float(out['max_batch'][j]):.0f} of the {pr.case.concurrency:.0f} concurrent "
                            "requests the run was measured at")
                else:
                    continue
                a["limits"][2][j] = MEASURED_MEM_UTIL
                raised = True
                if note not in pr.case.notes_used:
                    pr.case.notes_used.append(note)
            if raised:
                out = self._core(disagg, a, p)
            for m in np.flatnonzero(~out["fits"].astype(bool)):
                pr = self.preps[idx[m]]
                self.misfit[idx[m]] = (
                    f"the stated layout does not fit: {float(out['weights_bytes'][m]) / 2**30:.0f} GiB of {pr.wdt} "
                    f"weights per GPU on {pr.chip.id} ({pr.chip.memory_bytes / 2**30:.0f} GiB) leave no room for the "
                    f"KV cache at memory fraction {a['limits'][2][m]:g}; the source's GPU count, layout or weight "
                    "dtype is probably misstated")

    @staticmethod
    def _params(a: dict[str, Any], cal: Calibration) -> Params:
        """Each row's parameters under `cal` (its chip family and engine release), as per-row arrays."""
        table = Params.stack([cal.params(fam, eng) for fam, eng in a["keys"]])
        p = Params(**{k: v[a["key_index"]] for k, v in vars(table).items()})
        # a CUDA-graph limit stated in the notes replaces the engine's default, except where the engine's port replays
        # graphs piecewise (graph_max 0: every step launches per layer whatever the capture sizes) and the notes do
        # not ask for whole-step graphs (cudagraph_mode FULL*: then the engine's own capture limit, or the stated one)
        full = a["full_graphs"] > 0
        g = np.where(full & np.isnan(a["graph_max"]), a["engine_graph_max"], a["graph_max"])
        g = np.where((p.graph_max == 0.0) & ~full, np.nan, g)
        if np.isfinite(g).any():
            lim = {"graph_max": np.where(np.isnan(g), p.graph_max, g),      # per-row arrays, as every field here
                   "graph_max_small_tp": np.where(np.isnan(g), p.graph_max_small_tp, g)}
            p = replace(p, **lim)  # type: ignore[arg-type]
        return p

    @staticmethod
    def _core(disagg: bool, a: dict[str, Any], p: Params) -> dict[str, np.ndarray]:
        """The steady-state model over one part's rows (aggregated or disaggregated) with per-row parameters `p`."""
        max_seqs, chunk, mem_util = a["limits"]
        if disagg:
            return disagg_core(a["mc"], a["cc"], p, pre=a["pre"], dec=a["dec"], pre_workers=a["pre_workers"],
                               dec_workers=a["dec_workers"], weight_dtype=a["wdt"], kv_dtype=a["kdt"],
                               gemm_peak=a["peak"], kind=a["kind"], prefix_hit=a["prefix_hit"], max_seqs=max_seqs,
                               chunk=chunk, mem_util=mem_util, sync=a["sync"], hybrid=a["hybrid"], **a["common"])
        return evaluate_core(a["mc"], a["cc"], p, a["cfg"], gemm_peak=a["peak"], kind=a["kind"],
                             max_seqs=max_seqs, chunk=chunk, mem_util=mem_util)

    @staticmethod
    def _arrays(g: list[Prepared], disagg: bool) -> dict[str, Any]:
        col = lambda f: np.array([f(pr) for pr in g])  # noqa: E731
        tables = [chip_dtype_tables(pr.chip, _compute_dtype(pr.case, pr.chip, pr.wdt)) for pr in g]
        limits = [engine_limits(pr.engine, pr.chip, Configs(max_seqs=pr.case.max_seqs, chunk=pr.case.budget,
                                                            mem_util=pr.case.mem_util),
                                lay.attn_dp, lay.gpus_per_instance) for pr in g for lay in (_decode_layout(pr),)]
        keys = sorted({(pr.chip.family, pr.engine_key) for pr in g})
        a: dict[str, Any] = dict(
            mc=ModelConsts.stack([_model_consts(pr.model, pr.case.ssm_dtype) for pr in g]),
            cc=ChipConsts.stack([_chip_consts(pr.chip) for pr in g]),
            keys=keys, key_index=np.array([keys.index((pr.chip.family, pr.engine_key)) for pr in g]),
            peak=np.array([float(t[0]) for t in tables]), kind=np.array([float(t[1]) for t in tables]),
            limits=[np.array([lim[k] for lim in limits], dtype=float) for k in range(3)],
            common=dict(isl=col(lambda pr: pr.case.isl), osl=col(lambda pr: pr.case.osl),
                        concurrency=col(lambda pr: pr.case.concurrency or np.nan),
                        rate=col(lambda pr: pr.case.request_rate or np.nan),
                        num_requests=col(lambda pr: pr.case.num_requests or np.nan),
                        poisson=col(lambda pr: 1.0 if pr.case.poisson else 0.0),
                        spec_draft=col(lambda pr: pr.case.spec_draft),
                        spec_accept=col(lambda pr: pr.case.spec_accept),
                        spec_verify=col(lambda pr: pr.case.spec_verify),
                        spread=col(lambda pr: np.inf if pr.case.decode_only else pr.case.length_spread)),
            sync=col(lambda pr: 1.0 if pr.case.fixed_lengths and not pr.case.decode_only else 0.0),
            first=[traffic.prefill_policy(pr.engine_key, lim[1], pr.case.engine_version, pr.case.chunked_prefill)
                   for pr, lim in zip(g, limits)],
            hybrid=col(lambda pr: hybrid_kv(pr.engine)),
            prefix_hit=col(lambda pr: 1.0 - 1.0 / max(pr.case.isl, 2.0) if pr.case.decode_only
                           else prefix_hit_share(pr.case)),
            wdt=col(lambda pr: pr.wdt), kdt=col(lambda pr: pr.kdt),
            graph_max=col(lambda pr: np.nan if pr.case.graph_max is None else float(pr.case.graph_max)),
            full_graphs=col(lambda pr: 1.0 if pr.case.full_graphs else 0.0),
            engine_graph_max=col(lambda pr: engine_graph_limits(pr.engine)["graph_max"]))
        if disagg:
            for key in ("pre", "dec"):
                a[key] = {f: col(lambda pr, f=f, key=key: getattr(getattr(pr, key), f))
                          for f in ("attn_tp", "attn_dp", "pp", "moe_ep", "moe_tp")}
            a["pre_workers"], a["dec_workers"] = col(lambda pr: pr.pre_workers), col(lambda pr: pr.dec_workers)
        else:
            a["cfg"] = Configs(attn_tp=col(lambda pr: pr.layout.attn_tp), attn_dp=col(lambda pr: pr.layout.attn_dp),
                               pp=col(lambda pr: pr.layout.pp), moe_ep=col(lambda pr: pr.layout.moe_ep),
                               moe_tp=col(lambda pr: pr.layout.moe_tp), replicas=col(lambda pr: pr.layout.replicas),
                               weight_dtype=a["wdt"], kv_dtype=a["kdt"], mode=np.array([_mode(pr.case) for pr in g]),
                               sync=a["sync"], prefix_hit=a["prefix_hit"], hybrid_kv=a["hybrid"],
                               prefill_first=np.array([f for f, _ in a["first"]], dtype=float),
                               prefill_batch=np.array([b for _, b in a["first"]], dtype=float),
                               recv=col(lambda pr: float(pr.case.recv_interval or 1)),
                               stream=col(lambda pr: float(pr.case.stream_interval or 1)),
                               hold=ContextHold(
                                   iters=col(lambda pr: float(pr.case.batch_wait[0]) if pr.case.batch_wait else 0.0),
                                   tokens=col(lambda pr: pr.case.batch_wait[1] if pr.case.batch_wait else 0.0)),
                               **a["common"])
        return a

    def run(self, cal: Calibration) -> list[float]:
        result = [float("nan")] * len(self.preps)
        for disagg, idx, a in self.parts:
            p = self._params(a, cal)
            out = self._core(disagg, a, p)
            sims: dict[str, SimResult] = {}
            for j, i in enumerate(idx):
                pr = self.preps[i]
                if not bool(out["fits"][j]):
                    result[i] = float("nan")
                elif self.simulate and not disagg and (pr.case.request_rate or (
                        pr.case.concurrency and pr.case.metric in DISTRIBUTION_METRICS)
                        or self.simulate_bursts and _burst(pr)):
                    key = pr.case.row_id
                    if key not in sims:
                        sims[key] = _simulate_row(a, p, out, j, pr, self.max_requests)
                    result[i] = _sim_metric(sims[key], pr)
                else:
                    result[i] = _metric(out, j, pr)
        if self.scale is not None:
            result = [v * float(k) for v, k in zip(result, self.scale)]
        return result


def _burst(pr: Prepared) -> bool:
    """A burst (every prompt sent at once) on an engine that serves it through preemption (traffic.py)."""
    c = pr.case
    return traffic.simulated_burst(pr.engine, c.engine_version, c.concurrency, c.request_rate, c.num_requests)


def _simulate_row(a: dict[str, Any], p: Params, out: dict[str, np.ndarray], j: int, pr: Prepared,
                  max_requests: int | None = None) -> SimResult:
    """The row's run through the scheduler simulation: its request count, Poisson arrivals at its rate per
    instance, its lengths (fixed, a known range, or a conversation dataset's spread)."""
    c = pr.case
    cfg = a["cfg"]
    pj = traffic.pick(p, j)
    lay = pr.layout
    assert lay is not None
    kind = float(a["kind"][j])
    conf = traffic.Config(
        attn_tp=lay.attn_tp, attn_dp=lay.attn_dp, pp=lay.pp, moe_ep=lay.moe_ep, moe_tp=lay.moe_tp,
        wbytes=WEIGHT_BYTES[pr.wdt], kvbytes=BYTES[pr.kdt], gemm_peak=float(a["peak"][j]),
        dtype_eff=float(dtype_efficiency(pj, np.array(kind))), wstream=float(stream_share(pj, np.array(kind))),
        weights_gpu=float(out["weights_bytes"][j]),
        kv_token_gpu=float(out["kv_bytes_per_token"][j]), max_seqs=float(a["limits"][0][j]),
        chunk=float(c.budget or a["limits"][1][j]), mem_util=float(a["limits"][2][j]),
        spec_draft=float(c.spec_draft), spec_accept=float(c.spec_accept), spec_verify=float(c.spec_verify),
        multi_step=c.multi_step)
    replicas = max(lay.replicas, 1)
    policy = traffic.engine_policy(pr.engine_key, c.engine_version, c.chunked_prefill)
    hit = float(np.asarray(cfg.prefix_hit).reshape(-1)[j])
    if _burst(pr):                   # every prompt at once, split over the replicas (never capped: fits keep
        n = int(max(round(float(c.num_requests or 1) / replicas), 1))    # bursts in the steady state)
        req = burst_arrivals(n, isl=c.isl, osl=c.osl, spread=c.length_spread, prefix_hit=hit, seed=0)
        return traffic.run(traffic.pick(a["mc"], j), traffic.pick(a["cc"], j), pj, conf, req, isl=c.isl, osl=c.osl,
                           prefix_hit=hit, policy=policy)
    if not c.request_rate:           # a closed loop: its clients split over the replicas
        per = max(int(round(float(c.concurrency or 1) / replicas)), 1)
        n = int(max(round((c.num_requests or 10 * float(c.concurrency or 1)) / replicas), per))
        if max_requests:
            n = min(n, max(max_requests, per))
        req = poisson_arrivals(1.0, n, isl=c.isl, osl=c.osl, spread=c.length_spread, prefix_hit=hit, seed=0)
        return traffic.run_closed(traffic.pick(a["mc"], j), traffic.pick(a["cc"], j), pj, conf, req, concurrency=per,
                                  isl=c.isl, osl=c.osl, prefix_hit=hit, policy=policy)
    n = int(max(round((c.num_requests or 1000) / replicas), 1))
    if max_requests:
        n = min(n, max_requests)
    req = poisson_arrivals(float(c.request_rate or 1.0) / replicas, n, isl=c.isl, osl=c.osl, poisson=c.poisson,
                           spread=c.length_spread, prefix_hit=float(np.asarray(cfg.prefix_hit).reshape(-1)[j]),
                           seed=0, burstiness=c.burstiness)
    sim = traffic.run(traffic.pick(a["mc"], j), traffic.pick(a["cc"], j), pj, conf, req, isl=c.isl, osl=c.osl,
                      prefix_hit=float(np.asarray(cfg.prefix_hit).reshape(-1)[j]), policy=policy)
    return sim


def _sim_metric(sim: SimResult, pr: Prepared) -> float:
    m, med = pr.case.metric, pr.case.statistic in ("median", "median_itl")
    pick = (lambda arr: float(np.median(arr))) if med else (lambda arr: float(np.mean(arr)))
    if not sim.completed:
        return float("nan")
    if m == "ttft_ms":
        return pick(sim.ttft) * 1e3
    if m == "tpot_ms" and pr.case.statistic == "median_itl":
        return sim.itl_p50 * 1e3
    if m == "tpot_ms":
        return (pick(sim.tpot) if len(sim.tpot) else sim.itl_mean) * 1e3
    if m == "itl_ms":
        return sim.itl_mean * 1e3
    if m == "itl_p50_ms":
        return sim.itl_p50 * 1e3
    if m == "e2e_latency_s":
        return pick(sim.e2e)
    if m in DISTRIBUTION_METRICS:     # ttft_p90_ms, tpot_p99_ms, e2e_p99_s, ...
        name, q, unit = m.split("_")
        arr = {"ttft": sim.ttft, "tpot": sim.tpot, "e2e": sim.e2e}[name]
        if not len(arr):
            return float("nan")
        return float(np.percentile(arr, float(q[1:]))) * (1e3 if unit == "ms" else 1.0)
    reps = max(pr.layout.replicas, 1) if pr.layout is not None else 1   # the run simulated one instance
    if m == "requests_per_s":
        return sim.requests_per_s * reps
    isl_tok = pr.case.isl * sim.completed
    v = sim.output_tokens_per_s * reps
    if m.startswith("total"):
        v += isl_tok / max(sim.duration, 1e-12) * reps
    return v / pr.scale_gpus if m.endswith("_per_gpu") else v


@functools.cache
def _model_consts(model: ModelSpec, ssm_dtype: str | None = None) -> ModelConsts:
    """The model's constants; a recurrent state kept in 16 bits (SGLang --mamba-ssm-dtype bfloat16) halves the
    fp32 state the catalog counts (its small 16-bit convolution window with it)."""
    mc = ModelConsts.of(model)
    if ssm_dtype in ("bf16", "fp16") and mc.linear_state_bytes:
        mc = replace(mc, linear_state_bytes=mc.linear_state_bytes / 2.0)
    return mc


@functools.cache
def _chip_consts(chip: Chip) -> ChipConsts:
    return ChipConsts.of(chip)


def prepare_rows(rows: list[dict[str, str]]) -> list[Prepared | Exception]:
    """Each inference row resolved against the catalogs, or the error that stops it."""
    cases: list[InferenceCase | StockpileError] = []
    for row in rows:
        try:
            cases.append(inference_case(row))
        except StockpileError as exc:
            cases.append(exc)
    mark_shared_prompts(c for c in cases if isinstance(c, InferenceCase))
    prepared: list[Prepared | Exception] = []
    for case in cases:
        try:
            prepared.append(case if isinstance(case, StockpileError) else prepare(case))
        except StockpileError as exc:
            prepared.append(exc)
    return prepared


def prepare_file(path: str | Path) -> tuple[str, list[dict[str, str]], list[Prepared | Exception]]:
    kind, rows = read_rows(path)
    if kind != "inference":
        return kind, rows, [StockpileError("training rows are predicted by stockpile.calibration.training")
                            for _ in rows]
    return kind, rows, prepare_rows(rows)


def validate_rows(rows: list[dict[str, str]], cal: Calibration) -> list[dict[str, Any]]:
    """One record per inference row: predicted, error and status (calibration.status)."""
    prepared = prepare_rows(rows)
    ok = [p for p in prepared if isinstance(p, Prepared)]
    batch = Batch(ok) if ok else None
    preds = iter(batch.run(cal)) if batch else iter(())
    misfit = {id(ok[i]): why for i, why in batch.misfit.items()} if batch else {}
    fitted = fitted_publications(cal.meta)  # rows of these carry the in-sample band; any other source a new one's
    out_rows = []
    for row, prep in zip(rows, prepared):
        measured = float_or_none(row.get("value"))
        metric = row.get("metric", "")
        if isinstance(prep, Prepared):              # as read: a benchmark client's metric name in the contract's
            metric, measured = prep.case.metric, prep.case.measured                 # name and unit
        rec: dict[str, Any] = {"id": row.get("id", ""), "metric": metric, "measured": measured}
        if isinstance(prep, Exception):
            rec.update(predicted=None, error=None, status=status_of(prep), reason=str(prep))
        else:
            v = next(preds)
            if measured is None or not np.isfinite(v):
                rec.update(predicted=None, error=None, status=UNSUPPORTED,
                           reason=misfit.get(id(prep), "the layout does not fit in memory under the model's "
                                                       "assumptions"))
            else:
                rec.update(predicted=round(v, 6), error=round((v - measured) / measured, 6), status=OK)
                c = prep.case
                b = band(prep.engine_key, prep.chip.family, c.metric,
                         load_kind(c.concurrency, c.request_rate, c.num_requests), seen=c.publication in fitted)
                if b is not None:
                    rec.update(predicted_p10=round(v * b[0], 6), predicted_p90=round(v * b[1], 6))
                if prep.case.notes_used:
                    rec["assumed"] = prep.case.notes_used
        out_rows.append(rec)
    return out_rows


