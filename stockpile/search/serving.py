"""Serving search: the configuration that serves the most tokens per GPU within the latency targets.

The space (space.py) is scored in one vectorised call per kind (aggregated, disaggregated), masked by memory
fit and the SLO, reduced to a Pareto front of tokens/s per GPU against tokens/s per user, and the best
candidates are explained: what makes them win, and what limits them.
"""
from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
from pydantic import BaseModel

from stockpile.calibration.bands import unbacked_family
from stockpile.calibration.notes import default_accept_length
from stockpile.catalog.chips import Chip
from stockpile.catalog.dtypes import is_auto
from stockpile.catalog.engines import read_engine
from stockpile.catalog.models import ModelSpec, model_notes
from stockpile.errors import InputError
from stockpile.perf.calibration import Calibration, check_release, engine_key, load_calibration, release_notes
from stockpile.perf.explain import decode_breakdown, dominant
from stockpile.perf.inference import (
    KV_DTYPES,
    WEIGHT_DTYPES,
    Configs,
    check_dtype,
    check_engine_chip,
    chip_dtype_tables,
    disagg_core,
    engine_limits,
    evaluate,
    hybrid_kv,
    input_share,
)
from stockpile.perf.operators import ChipConsts, ModelConsts
from stockpile.perf.serving import MODE_CLOSED
from stockpile.search.space import CONCURRENCY_PER_GPU, Space, aggregated_space, instance_layouts

LAYOUT_FIELDS = ("attn_tp", "attn_dp", "pp", "moe_ep", "moe_tp")
MAX_SEARCH_GPUS = 65_536        # bounded work per search (the space grows with the GPU count's divisors)


class Slo(BaseModel):
    ttft_ms: float | None = None
    tpot_ms: float | None = None

    def text(self) -> str:
        parts = [f"TTFT <= {self.ttft_ms:g} ms" if self.ttft_ms else "", f"TPOT <= {self.tpot_ms:g} ms" if self.tpot_ms
                 else ""]
        return " and ".join(p for p in parts if p) or "no latency target"


class Spec(BaseModel):
    """Speculative decoding options: draft lengths to try (None: 0, 1, 3 for models with an MTP head) and an
    accept length (mean tokens per verification step) that overrides the published default."""

    draft: int | None = None
    accept_length: float | None = None

    def drafts(self, model: ModelSpec) -> list[int] | None:
        return None if self.draft is None else sorted({0, self.draft})

    def accept(self, k: int) -> float:
        if k == 0:
            return 1.0
        if self.accept_length is not None:
            return min(self.accept_length, k + 1.0)
        return default_accept_length(k)


class Candidate(BaseModel):
    rank: int
    mode: str                                  # aggregated | disaggregated
    layout: dict[str, int]
    layout_text: str
    prefill: dict[str, Any] | None = None      # disaggregated: prefill instance layout, count (and chip)
    decode: dict[str, int] | None = None
    weight_dtype: str
    kv_dtype: str
    spec_draft: int
    chunk: int | None = None
    concurrency: float
    batch_per_instance: float
    ttft_ms: float
    tpot_ms: float
    output_tokens_per_s: float
    output_tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    requests_per_s: float
    weights_gb_per_gpu: float
    meets_slo: bool
    limits: str
    why: str = ""
    usd_per_million_output_tokens: float | None = None   # with --objective cost
    prefill_chip: str | None = None            # disaggregated: the pools' chips (equal unless a mixed pair)
    decode_chip: str | None = None
    # the p10-p90 band of TTFT, TPOT and tokens/s per GPU from the validated error of the regime (bands.py), and
    # whether the candidate still meets the targets with TTFT and TPOT at their band's upper edge
    band: dict[str, list[float]] | None = None
    meets_slo_at_p90: bool | None = None
    # what its tokens cost where the chip has a price (shared/CONTRACTS.md): device time on prompts (a disaggregated
    # deployment: the prefill pool) prices the input tokens, the rest the output tokens; `price`: the GPU-hour price
    usd_per_mtok_input: float | None = None
    usd_per_mtok_output: float | None = None
    price: dict[str, Any] | None = None


class SearchResult(BaseModel):
    model: str
    chip: str
    gpus: int
    engine: str
    isl: float
    osl: float
    slo: Slo
    evaluated: int
    seconds: float
    feasible: int
    meets_slo: int
    candidates: list[Candidate]
    pareto: list[dict[str, float]]
    message: str
    band_note: str | None = None               # the regime's typical error, in words
    engine_version: str | None = None          # the engine release searched (None: the current one)
    confidence: float | None = None            # targets met at this quantile of the validated error
    margins: dict[str, float] | None = None    # the factors that quantile puts on TTFT and TPOT
    notes: list[str] = []                      # what a stated release is predicted as

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates and self.candidates[0].meets_slo else None


def confidence_margins(release: str, chip: Chip, confidence: float) -> dict[str, float]:
    """The factors on predicted TTFT and TPOT at the `confidence` quantile of the validated error of the regime
    searched (closed-loop load, the engine release family, the chip's family; bands.quantile_factor), widened
    where the chip's family has no validated rows (bands.widened)."""
    from stockpile.calibration.bands import band, quantile_factor, widened
    if not 0.5 <= confidence <= 0.99:
        raise InputError("confidence", f"a share of measured runs between 0.5 and 0.99, got {confidence:g}")
    out = {}
    for m in ("ttft_ms", "tpot_ms"):
        b = band(release, chip.family, m, "closed")
        lo, hi, _ = widened(b, chip.family) if b is not None else (1.0, 1.0, [])
        out[m] = round(quantile_factor(lo, hi, confidence), 4)
    return out


def _scores(out: dict[str, np.ndarray], gpus: int, slo: Slo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    per_gpu = out["output_tokens_per_s"] / gpus
    per_user = 1.0 / np.maximum(out["tpot_s"], 1e-9)
    ok = out["fits"].astype(bool) & np.isfinite(per_gpu)
    meets = ok.copy()
    if slo.ttft_ms:
        meets &= out["ttft_s"] * 1e3 <= slo.ttft_ms
    if slo.tpot_ms:
        meets &= out["tpot_s"] * 1e3 <= slo.tpot_ms
    return per_gpu, per_user, np.where(ok, meets, False)


def _aggregated(model: ModelSpec, chip: Chip, engine: str, gpus: int, isl: float, osl: float, cal: Calibration,
                dtypes: list[str] | None, kv: list[str] | None, spec: Spec) -> tuple[Space, dict[str, np.ndarray]]:
    sp = aggregated_space(model, chip, gpus, engine, dtypes=dtypes, kv_options=kv, spec_options=spec.drafts(model))
    accept = np.array([spec.accept(int(k)) for k in range(9)])[sp.spec_draft.astype(int)]
    cfg = Configs(attn_tp=sp.attn_tp, attn_dp=sp.attn_dp, pp=sp.pp, moe_ep=sp.moe_ep, moe_tp=sp.moe_tp,
                  replicas=sp.replicas, weight_dtype=sp.weight_dtype, kv_dtype=sp.kv_dtype, isl=isl, osl=osl,
                  mode=MODE_CLOSED, concurrency=sp.concurrency, spec_draft=sp.spec_draft, spec_accept=accept,
                  sync=0.0, chunk=sp.chunk)
    return sp, evaluate(model, chip, engine, cfg, cal)      # perf's vectorised entry


def _disaggregated(model: ModelSpec, chip: Chip, engine: str, gpus: int, isl: float, osl: float,
                   cal: Calibration, dtypes: list[str] | None, kv: list[str] | None,
                   prefill_chip: Chip | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """x prefill + y decode instances (each its own layout) that use all `gpus`; one dtype pair per run. With
    `prefill_chip` the prefill instances run on that chip and the decode instances on `chip`."""
    pchip = prefill_chip or chip
    lays = [lay for lay in instance_layouts(model, gpus, chip.scaleup_size, engine) if lay[2] == 1]
    pre_lays = lays if pchip is chip else [lay for lay in instance_layouts(model, gpus, pchip.scaleup_size, engine)
                                           if lay[2] == 1]
    size = {lay: lay[0] * lay[1] for lay in set(lays) | set(pre_lays)}
    combos = []
    for pre, dec in itertools.product(pre_lays, lays):
        n_max = gpus // size[pre] - 1
        # every prefill-instance count on small clusters; on large ones a geometric grid of about 40 (the split
        # ratio matters, not the unit): bounded work however many GPUs
        xs = range(1, n_max + 1) if n_max <= 64 else np.unique(np.round(np.geomspace(1, n_max, 40)).astype(int))
        for x in xs:
            rest = gpus - int(x) * size[pre]
            if rest > 0 and rest % size[dec] == 0:
                combos.append((pre, int(x), dec, rest // size[dec]))
    if not combos:
        return {}, {}
    wd = (dtypes or ["fp8" if chip.has_native("fp8") and pchip.has_native("fp8") else "bf16"])
    rows = [(c, w) for c in combos for w in wd]
    conc = CONCURRENCY_PER_GPU * gpus
    n = conc.size
    arr: dict[str, Any] = {}
    for i, f in enumerate(LAYOUT_FIELDS):
        arr["pre_" + f] = np.repeat([float(r[0][0][i]) for r in rows], n)
        arr["dec_" + f] = np.repeat([float(r[0][2][i]) for r in rows], n)
    arr["pre_workers"] = np.repeat([float(r[0][1]) for r in rows], n)
    arr["dec_workers"] = np.repeat([float(r[0][3]) for r in rows], n)
    arr["weight_dtype"] = np.repeat([r[1] for r in rows], n)
    if kv:
        arr["kv_dtype"] = np.full(arr["weight_dtype"].shape, kv[0])
    else:
        arr["kv_dtype"] = np.where(np.char.startswith(arr["weight_dtype"].astype(str), "fp"), "fp8", "bf16") \
            if chip.has_native("fp8") else np.full(arr["weight_dtype"].shape, "bf16")
    arr["concurrency"] = np.tile(conc, len(rows))
    p = cal.params(chip.family, engine)
    peak, kind = chip_dtype_tables(chip, arr["weight_dtype"])
    max_seqs, chunk, mem_util = engine_limits(engine, chip, Configs())
    out = disagg_core(ModelConsts.of(model), ChipConsts.of(chip), p,
                      pre={f: arr["pre_" + f] for f in LAYOUT_FIELDS}, dec={f: arr["dec_" + f] for f in LAYOUT_FIELDS},
                      pre_workers=arr["pre_workers"], dec_workers=arr["dec_workers"], weight_dtype=arr["weight_dtype"],
                      kv_dtype=arr["kv_dtype"], gemm_peak=peak, kind=kind, isl=isl, osl=osl,
                      concurrency=arr["concurrency"], rate=np.nan, num_requests=np.nan, poisson=1.0, spec_draft=0.0,
                      spec_accept=1.0, prefix_hit=0.0, max_seqs=max_seqs, chunk=chunk, mem_util=mem_util, sync=0.0,
                      hybrid=hybrid_kv(engine),
                      pre_chip=None if prefill_chip is None else (
                          ChipConsts.of(pchip), cal.params(pchip.family, engine),
                          *chip_dtype_tables(pchip, arr["weight_dtype"])))
    if prefill_chip is not None:
        arr["prefill_chip"] = np.full(arr["weight_dtype"].shape, pchip.id)
    return arr, out


def pareto_front(per_user: np.ndarray, per_gpu: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats on both axes (higher is better on both)."""
    order = np.lexsort((-per_gpu, -per_user))
    best = -np.inf
    keep = []
    for i in order:
        if per_gpu[i] > best:
            keep.append(i)
            best = per_gpu[i]
    return np.array(keep, dtype=int)


def _layout_text(tp: float, adp: float, pp: float, ep: float) -> str:
    s = f"TP{int(tp)}" if adp <= 1 else f"attnDP{int(adp)}"
    if pp > 1:
        s += f" PP{int(pp)}"
    if ep > 1:
        s += f" EP{int(ep)}"
    return s


def _limit(model: ModelSpec, chip: Chip, engine: str, cal: Calibration, lay: dict[str, float], wd: str, kvd: str,
           batch: float, max_batch: float, slo: Slo, tpot_ms: float, ttft_ms: float, isl: float, osl: float) -> str:
    """What binds: the SLO, KV capacity, or the largest operator time of a decode step."""
    if slo.tpot_ms and tpot_ms > 0.85 * slo.tpot_ms:
        return f"TPOT target ({tpot_ms:.1f} of {slo.tpot_ms:g} ms): a bigger batch would break it"
    if slo.ttft_ms and ttft_ms > 0.85 * slo.ttft_ms:
        return f"TTFT target ({ttft_ms:.0f} of {slo.ttft_ms:g} ms)"
    if batch >= 0.98 * max_batch:
        return f"KV-cache memory: {int(max_batch)} sequences fit per instance"
    parts = decode_breakdown(model, chip, engine, cal.params(chip.family, engine), layout=lay, wdtype=wd,
                             kvdtype=kvd, batch=batch, context=isl + osl / 2)
    return dominant(parts)


def search(model: ModelSpec, chip: Chip, *, gpus: int, isl: float, osl: float, slo: Slo | None = None,
           engine: str = "vllm", top: int = 5, dtypes: list[str] | None = None, disaggregation: bool = True,
           kv_dtypes: list[str] | None = None, spec: Spec | None = None,
           calibration: Calibration | None = None, prefill_chip: Chip | None = None,
           objective: str = "throughput", aggregated: bool = True,
           engine_version: str | None = None, confidence: float | None = None) -> SearchResult:
    """Search the serving space; candidates best first (those meeting the SLO, else the closest). With
    `engine_version`, every configuration is evaluated as that release's family (perf.calibration.engine_key).
    With `confidence` (0.5-0.99), a configuration meets the targets only if its TTFT and TPOT times the
    `confidence` quantile of the validated error of its regime do (confidence_margins): fewer picks break a
    target when measured, at some cost in tokens per GPU (bench/search_choice.py measures both)."""
    t0 = time.perf_counter()
    named = read_engine(engine, allow_version=False)
    engine = named.engine
    release = engine_key(engine, check_release(engine_version))
    head: dict[str, Any] = {"engine_version": engine_version,
                            "notes": ([named.note] if named.note else []) + release_notes(engine, engine_version)
                            + unbacked_family(model) + model_notes(model.id)}
    check_engine_chip(engine, chip)
    if objective not in ("throughput", "cost"):
        raise InputError("objective", f"'{objective}' is not throughput or cost")
    slo = slo or Slo()
    if gpus < 1:
        raise InputError("gpus", f"must be >= 1, got {gpus}")
    if isl <= 0 or osl <= 0:
        raise InputError("isl" if isl <= 0 else "osl", "must be a positive token count")
    if top < 1:
        raise InputError("top", "must be >= 1")
    if gpus > MAX_SEARCH_GPUS:
        raise InputError("gpus", f"at most {MAX_SEARCH_GPUS:,} GPUs per search (a serving search spans replicas of "
                                 f"one deployment; plan a larger fleet with `stockpile plan`), got {gpus:,}")
    if dtypes:
        dtypes = [check_dtype("weight_dtype", d, WEIGHT_DTYPES) for d in dtypes]
    kv_dtypes = [d for d in kv_dtypes or [] if not is_auto(d)]
    if kv_dtypes:
        kv_dtypes = [check_dtype("kv_dtype", d, KV_DTYPES) for d in kv_dtypes]
    cal = (calibration or load_calibration()).as_release(engine, release)
    margins = confidence_margins(release, chip, confidence) if confidence is not None else None
    slo_shown, slo = slo, (Slo(ttft_ms=round(slo.ttft_ms / margins["ttft_ms"], 1) if slo.ttft_ms else None,
                               tpot_ms=round(slo.tpot_ms / margins["tpot_ms"], 2) if slo.tpot_ms else None)
                           if margins else slo)
    head.update(confidence=confidence, margins=margins)
    target_text = slo_shown.text() + (f" at {100 * confidence:.0f} % confidence" if confidence else "")
    spec = spec or Spec()
    if spec.draft is not None and not 0 <= spec.draft <= 8:
        raise InputError("spec_draft", f"must be 0..8 draft tokens, got {spec.draft}")
    if spec.accept_length is not None and spec.accept_length < 1:
        raise InputError("spec_accept", f"an accept length is >= 1 token per step, got {spec.accept_length}")
    sp, out = _aggregated(model, chip, engine, gpus, isl, osl, cal, dtypes, kv_dtypes, spec)
    per_gpu, per_user, meets = _scores(out, gpus, slo)
    recs: list[dict[str, Any]] = []
    idx = np.flatnonzero(out["fits"].astype(bool))
    for i in (idx if aggregated else []):
        recs.append(dict(mode="aggregated", i=int(i), per_gpu=float(per_gpu[i]), per_user=float(per_user[i]),
                         meets=bool(meets[i]), out=out, lay={f: float(getattr(sp, f)[i]) for f in LAYOUT_FIELDS},
                         replicas=float(sp.replicas[i]), wd=str(sp.weight_dtype[i]), kvd=str(sp.kv_dtype[i]),
                         spec=int(sp.spec_draft[i]), conc=float(sp.concurrency[i]), chunk=int(sp.chunk[i])))
    evaluated = sp.size
    if disaggregation and gpus >= 2:
        if prefill_chip is not None:
            check_engine_chip(engine, prefill_chip)
        arr, dout = _disaggregated(model, chip, engine, gpus, isl, osl, cal, dtypes, kv_dtypes, prefill_chip)
        if dout:
            d_gpu, d_user, d_meets = _scores(dout, gpus, slo)
            evaluated += int(d_gpu.size)
            for i in np.flatnonzero(dout["fits"].astype(bool)):
                recs.append(dict(mode="disaggregated", i=int(i), per_gpu=float(d_gpu[i]), per_user=float(d_user[i]),
                                 meets=bool(d_meets[i]), out=dout,
                                 lay={f: arr["dec_" + f][i] for f in LAYOUT_FIELDS},
                                 pre={f: arr["pre_" + f][i] for f in LAYOUT_FIELDS}, replicas=1.0,
                                 pre_workers=int(arr["pre_workers"][i]), dec_workers=int(arr["dec_workers"][i]),
                                 pre_chip=str(arr["prefill_chip"][i]) if "prefill_chip" in arr else None,
                                 wd=str(arr["weight_dtype"][i]), kvd=str(arr["kv_dtype"][i]), spec=0,
                                 conc=float(arr["concurrency"][i])))
    n_meet = sum(r["meets"] for r in recs)
    if not recs:
        msg = (f"{model.id} does not fit on {gpus} x {chip.id} in any layout "
               f"({model.params / 1e9:.0f}B parameters; {gpus * chip.memory_bytes / 2**30:.0f} GiB in all)")
        return SearchResult(model=model.id, chip=chip.id, gpus=gpus, engine=engine, isl=isl, osl=osl, slo=slo_shown,
                            evaluated=evaluated, seconds=time.perf_counter() - t0, feasible=0, meets_slo=0,
                            candidates=[], pareto=[], message=msg, **head)
    pu = np.array([r["per_user"] for r in recs])
    pg = np.array([r["per_gpu"] for r in recs])
    front = pareto_front(pu, pg)
    pareto = [{"tokens_per_s_per_user": round(float(pu[i]), 2), "output_tokens_per_s_per_gpu": round(float(pg[i]), 1)}
              for i in front]
    if objective == "cost":
        _price_records(recs, chip, prefill_chip, gpus)
    if n_meet:
        rank_key = ((lambda r: (r["usd_per_mtok"], -r["per_user"])) if objective == "cost"
                    else (lambda r: (-r["per_gpu"], -r["per_user"])))
        pool = sorted((r for r in recs if r["meets"]), key=rank_key)
        msg = f"{n_meet:,} of {evaluated:,} configurations meet {target_text}"
    else:
        pool = sorted(recs, key=lambda r: _violation(r, slo))
        msg = (f"no configuration meets {target_text}; showing the closest (least violation). "
               "Relax the targets, add GPUs, or use a faster chip")
        if prefill_chip is not None:
            msg = _kv_rejection(model, prefill_chip, chip, gpus=gpus, isl=isl, osl=osl, slo=slo, engine=engine,
                                cal=cal, dtypes=dtypes, kv_dtypes=kv_dtypes) or msg
    chosen, seen = [], set()
    for r in pool:
        key = (r["mode"], tuple(r["lay"].values()), r.get("pre_workers"), r.get("dec_workers"), r["wd"], r["kvd"],
               r["spec"], r.get("chunk"))
        if key in seen:
            continue
        seen.add(key)
        chosen.append(r)
        if len(chosen) >= top:
            break
    cands = [_candidate(k + 1, r, model, chip, engine, cal, slo, gpus, isl, osl) for k, r in enumerate(chosen)]
    if cands and n_meet and objective == "cost":
        best = cands[0].usd_per_million_output_tokens or 0.0
        cands[0].why = (f"cheapest output tokens ({best:,.3f} USD per million) of the {n_meet:,} configurations "
                        f"meeting {target_text}")
        for c in cands[1:]:
            c.why = f"{100 * ((c.usd_per_million_output_tokens or 0.0) / best - 1):.0f}% dearer per token than the best"
    elif cands and n_meet:
        runner = f"; next best {cands[1].output_tokens_per_s_per_gpu:,.0f}" if len(cands) > 1 else ""
        cands[0].why = (f"most output tokens/s per GPU ({cands[0].output_tokens_per_s_per_gpu:,.0f}) of the {n_meet:,} "
                        f"configurations meeting {target_text}{runner}")
        for c in cands[1:]:
            c.why = f"{100 * (1 - c.output_tokens_per_s_per_gpu / cands[0].output_tokens_per_s_per_gpu):.0f}% " \
                    "fewer tokens/s per GPU than the best"
    edges = _figure_edges(chosen, model, chip, engine, gpus, isl, osl, cal, dtypes, kv_dtypes, spec, prefill_chip)
    band_note = _with_bands(cands, release, chip, slo_shown, edges)
    return SearchResult(model=model.id, chip=chip.id, gpus=gpus, engine=engine, isl=isl, osl=osl, slo=slo_shown,
                        evaluated=evaluated, seconds=time.perf_counter() - t0, feasible=len(recs), meets_slo=n_meet,
                        candidates=cands, pareto=pareto, message=msg, band_note=band_note, **head)


def _figure_edges(chosen: list[dict[str, Any]], model: ModelSpec, chip: Chip, engine: str, gpus: int, isl: float,
                  osl: float, cal: Calibration, dtypes: list[str] | None, kv: list[str] | None, spec: Spec,
                  prefill_chip: Chip | None) -> list[dict[str, tuple[float, float]]]:
    """For each chosen configuration, its TTFT, TPOT and tokens/s per GPU at the chips' estimated speed figures'
    slow and fast ends (catalog/figure_ranges.py) over their values here: the same space evaluated again at each
    end (the space's shape depends on capacities and domains, which stay). Empty dicts where every figure is
    published or the chips have validated rows of their own (bands.chip_validated)."""
    from stockpile.calibration.bands import chip_validated
    from stockpile.catalog.figure_ranges import chip_at_edge, uncertain_speeds
    if all(not uncertain_speeds(c) or chip_validated(c.id) for c in (chip, prefill_chip) if c is not None):
        return [{} for _ in chosen]
    ends: list[dict[str, dict[str, np.ndarray]]] = []
    for side in ("slow", "fast"):
        c, pc = chip_at_edge(chip, side), (chip_at_edge(prefill_chip, side) if prefill_chip is not None else None)
        got: dict[str, dict[str, np.ndarray]] = {}
        if any(r["mode"] == "aggregated" for r in chosen):
            got["aggregated"] = _aggregated(model, c, engine, gpus, isl, osl, cal, dtypes, kv, spec)[1]
        if any(r["mode"] == "disaggregated" for r in chosen):
            got["disaggregated"] = _disaggregated(model, c, engine, gpus, isl, osl, cal, dtypes, kv, pc)[1]
        ends.append(got)
    from stockpile.perf.uncertainty import edge_ratios
    metrics = ("ttft_ms", "tpot_ms", "output_tokens_per_s_per_gpu")
    return [edge_ratios(r["out"], [end[r["mode"]] for end in ends], r["i"], metrics) for r in chosen]


def _with_bands(cands: list[Candidate], release: str, chip: Chip, slo: Slo,
                edges: list[dict[str, tuple[float, float]]]) -> str | None:
    """Give each candidate the p10-p90 band of its headline figures (closed-loop load, the engine release family
    searched, the decode chip's family), widened where the validation does not reach (a chip family without rows;
    the candidate's own `edges`: its figures with the chip's estimated speeds at the ends of their ranges), and
    say whether it meets the targets at the band's upper edge; returns the regime's TTFT and TPOT error in words,
    and what widened them."""
    from stockpile.calibration.bands import band, describe, widened
    metrics = ("ttft_ms", "tpot_ms", "output_tokens_per_s_per_gpu")
    factors = {m: band(release, chip.family, m, "closed") for m in metrics}
    reasons: dict[str, None] = {}
    for c, edge in zip(cands, edges):
        vals = {"ttft_ms": c.ttft_ms, "tpot_ms": c.tpot_ms, "output_tokens_per_s_per_gpu": c.output_tokens_per_s_per_gpu}
        c.band = {}
        for m, v in vals.items():
            if (f := factors[m]) is None:
                continue
            lo, hi, why = widened(f, chip.family, edge.get(m, (1.0, 1.0)))
            c.band[m] = [round(v * lo, 2), round(v * hi, 2)]
            reasons.update({w.split(" move it")[0]: None for w in why})
        c.band = c.band or None
        if c.band:
            hi_edge = {m: c.band[m][1] for m in ("ttft_ms", "tpot_ms") if m in c.band}
            c.meets_slo_at_p90 = bool(c.meets_slo
                                      and (not slo.ttft_ms or hi_edge.get("ttft_ms", c.ttft_ms) <= slo.ttft_ms)
                                      and (not slo.tpot_ms or hi_edge.get("tpot_ms", c.tpot_ms) <= slo.tpot_ms))
    parts = [f"{name} {describe(*f, family=chip.family)}" for name, m in (("TPOT", "tpot_ms"), ("TTFT", "ttft_ms"))
             if (f := factors[m]) is not None]
    if parts and reasons:
        parts.append("each candidate's band widened for " + "; ".join(reasons))
    return "; ".join(parts) or None


def _price_records(recs: list[dict[str, Any]], chip: Chip, prefill_chip: Chip | None, gpus: int) -> None:
    """USD per million output tokens of each configuration (catalog/prices.py): its GPUs' hourly cost (each pool
    at its own chip's price) over its output tokens per hour. A chip without a price stops the cost objective."""
    from stockpile.catalog.prices import gpu_hour_cost
    costs: dict[str, float] = {}
    for c in [chip] + ([prefill_chip] if prefill_chip is not None else []):
        g = gpu_hour_cost(c)
        if g is None:
            raise InputError("objective", f"no price source for {c.id}: give one with --prices FILE, or rank by "
                                          "throughput")
        costs[c.id] = g.usd_per_gpu_hour
    for r in recs:
        if r["mode"] == "disaggregated" and r.get("pre_chip"):
            pre = r["pre"]
            pre_gpus = r["pre_workers"] * pre["attn_tp"] * pre["attn_dp"] * pre["pp"]
            usd_h = pre_gpus * costs[r["pre_chip"]] + (gpus - pre_gpus) * costs[chip.id]
        else:
            usd_h = gpus * costs[chip.id]
        tok_h = r["per_gpu"] * gpus * 3600.0
        r["usd_per_mtok"] = usd_h / tok_h * 1e6 if tok_h > 0 else float("inf")


def _kv_rejection(model: ModelSpec, pre: Chip, dec: Chip, *, gpus: int, isl: float, osl: float, slo: Slo,
                  engine: str, cal: Calibration, dtypes: list[str] | None, kv_dtypes: list[str] | None) -> str | None:
    """Why a mixed pair meets no SLO when the KV hand-off is the reason: the same pair with a scale-out link
    that moves KV for free would meet it (a counterfactual search of the disaggregated space)."""
    from stockpile.catalog.chips import Figure
    from stockpile.perf.operators import ChipConsts
    link = min(ChipConsts.of(pre).scaleout_bw, ChipConsts.of(dec).scaleout_bw) * 8 / 1e9
    free = Figure(value=1e7, source="counterfactual: a link that moves KV for free")
    arr, out = _disaggregated(model, dec.model_copy(update={"scaleout_gbps": free}), engine, gpus, isl, osl, cal,
                              dtypes, kv_dtypes, pre.model_copy(update={"scaleout_gbps": free}))
    if not out:
        return None
    _, _, meets = _scores(out, gpus, slo)
    if not meets.any():
        return None
    link_text = f"{link:,.0f}" if link >= 10 else f"{link:.2g}"
    return (f"rejected: prefill on {pre.id} with decode on {dec.id} meets no {slo.text()} because of the KV "
            f"hand-off: every request's KV cache crosses the scale-out link ({link_text} Gb/s per GPU, the slower "
            f"NIC of the two), and with a link that moved it for free {int(meets.sum()):,} configurations would "
            "meet the targets")


def _violation(r: dict[str, Any], slo: Slo) -> float:
    o, i = r["out"], r["i"]
    v = 0.0
    if slo.ttft_ms:
        v += max(0.0, o["ttft_s"][i] * 1e3 / slo.ttft_ms - 1)
    if slo.tpot_ms:
        v += max(0.0, o["tpot_s"][i] * 1e3 / slo.tpot_ms - 1)
    return v - 1e-9 * r["per_gpu"]


def _token_prices(r: dict[str, Any], o: dict[str, np.ndarray], i: int, chip: Chip, gpus: int, isl: float, osl: float,
                  batch: float) -> dict[str, Any]:
    """USD per million input and output tokens of one candidate, and the GPU-hour price used; empty where a chip
    has no price source."""
    from stockpile.catalog import get_chip
    from stockpile.catalog.prices import gpu_hour_cost, token_split
    dec = gpu_hour_cost(chip)
    pre_chip = get_chip(r["pre_chip"]) if r.get("pre_chip") else chip
    pre = gpu_hour_cost(pre_chip) if pre_chip is not chip else dec
    if dec is None or pre is None:
        return {}
    out_tps = float(o["output_tokens_per_s"][i])
    in_tps = float(o["requests_per_s"][i]) * isl
    if r["mode"] == "aggregated":
        row = {"prefill_token_s": o["prefill_token_s"][i], "decode_step_s": o["decode_step_s"][i], "batch": batch}
        usd_h = gpus * dec.usd_per_gpu_hour
        share = input_share(row, isl, osl, 0.0, 1.0, r["lay"]["attn_dp"])
    else:                        # the prefill pool serves the prompts, the decode pool the output
        pl = r["pre"]
        pre_gpus = r["pre_workers"] * pl["attn_tp"] * pl["attn_dp"] * pl["pp"]
        pre_usd, dec_usd = pre_gpus * pre.usd_per_gpu_hour, (gpus - pre_gpus) * dec.usd_per_gpu_hour
        usd_h, share = pre_usd + dec_usd, pre_usd / max(pre_usd + dec_usd, 1e-15)
    i_usd, o_usd = token_split(usd_h, share, in_tps, out_tps)
    price = {"basis": dec.basis, "usd_per_gpu_hour": round(dec.usd_per_gpu_hour, 4), "how": dec.text,
             "sources": dec.sources}
    if pre is not dec:
        price["prefill"] = {"chip": pre_chip.id, "basis": pre.basis, "usd_per_gpu_hour": round(pre.usd_per_gpu_hour, 4),
                            "how": pre.text, "sources": pre.sources}
    rnd = lambda x: None if x is None else round(x, 4)  # noqa: E731
    return {"usd_per_mtok_input": rnd(i_usd), "usd_per_mtok_output": rnd(o_usd), "price": price}


def _candidate(rank: int, r: dict[str, Any], model: ModelSpec, chip: Chip, engine: str, cal: Calibration, slo: Slo,
               gpus: int, isl: float, osl: float) -> Candidate:
    o, i, lay = r["out"], r["i"], r["lay"]
    tpot, ttft = float(o["tpot_s"][i]) * 1e3, float(o["ttft_s"][i]) * 1e3
    inst = lay["attn_tp"] * lay["attn_dp"] * lay["pp"]
    if r["mode"] == "aggregated":
        text = _layout_text(lay["attn_tp"], lay["attn_dp"], lay["pp"], lay["moe_ep"])
        if r["replicas"] > 1:
            text += f" x {int(r['replicas'])} replicas"
        pre = dec = None
        batch = float(o["batch"][i])
    else:
        pl = r["pre"]
        on_pre = f" on {r['pre_chip']}" if r.get("pre_chip") else ""
        on_dec = f" on {chip.id}" if r.get("pre_chip") else ""
        text = (f"{r['pre_workers']} x prefill {_layout_text(pl['attn_tp'], pl['attn_dp'], pl['pp'], pl['moe_ep'])}"
                f"{on_pre} + {r['dec_workers']} x decode "
                f"{_layout_text(lay['attn_tp'], lay['attn_dp'], lay['pp'], lay['moe_ep'])}{on_dec}")
        pre = {"instances": r["pre_workers"], **{k: int(v) for k, v in pl.items()}}
        if r.get("pre_chip"):
            pre["chip"] = r["pre_chip"]
        dec = {"instances": r["dec_workers"], **{k: int(v) for k, v in lay.items()}}
        batch = float(o["batch"][i]) / max(r["dec_workers"], 1)
    max_batch = float(o["max_batch"][i]) / (1 if r["mode"] == "aggregated" else max(r["dec_workers"], 1))
    limits = _limit(model, chip, engine, cal, lay, r["wd"], r["kvd"], batch, max_batch, slo, tpot, ttft, isl, osl)
    if "kv_link_share" in o and float(o["kv_link_share"][i]) >= 0.95:
        limits = (f"KV hand-off: the prefill pool's NICs carry {100 * float(o['kv_link_share'][i]):.0f}% of what they "
                  "can move from prefill to decode")
    prices = _token_prices(r, o, i, chip, gpus, isl, osl, batch)
    return Candidate(
        **prices,
        rank=rank, mode=r["mode"], layout={"tp": int(lay["attn_tp"]), "attn_dp": int(lay["attn_dp"]),
                                           "pp": int(lay["pp"]), "ep": int(lay["moe_ep"]),
                                           "replicas": int(r["replicas"]), "gpus_per_instance": int(inst)},
        layout_text=text, prefill=pre, decode=dec, weight_dtype=r["wd"], kv_dtype=r["kvd"], spec_draft=r["spec"],
        chunk=r.get("chunk"),
        concurrency=r["conc"], batch_per_instance=round(batch, 1), ttft_ms=round(ttft, 1), tpot_ms=round(tpot, 2),
        output_tokens_per_s=round(float(o["output_tokens_per_s"][i]), 1),
        output_tokens_per_s_per_gpu=round(r["per_gpu"], 1), tokens_per_s_per_user=round(r["per_user"], 1),
        requests_per_s=round(float(o["requests_per_s"][i]), 3),
        weights_gb_per_gpu=round(float(o["weights_bytes"][i]) / 1e9, 1), meets_slo=r["meets"], limits=limits,
        usd_per_million_output_tokens=round(r["usd_per_mtok"], 4) if "usd_per_mtok" in r else None,
        prefill_chip=(r.get("pre_chip") or chip.id) if r["mode"] != "aggregated" else None,
        decode_chip=chip.id if r["mode"] != "aggregated" else None)
