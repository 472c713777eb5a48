"""Training layout search: the fastest (TP, PP, DP, EP, CP, micro-batch, recompute, ZeRO stage, virtual
stages) that fits, for a model, a chip type and a GPU count.

The space is declared as arrays (one entry per configuration), filtered with masks (divisibility, batch,
framework) and evaluated in one numpy pass by :func:`stockpile.perf.training.evaluate`; there is no Python
loop per configuration. Infeasible layouts stay in the arrays with the reason they fail.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from stockpile.catalog.chips import Chip, get_chip
from stockpile.catalog.models import ModelSpec, get_model
from stockpile.errors import InfeasibleError, InputError, MissingFigureError
from stockpile.perf import frameworks
from stockpile.perf.frameworks import framework, fw_flags
from stockpile.perf.goodput import job_goodput
from stockpile.perf.training import (
    RECOMPUTE,
    F,
    TrainCalibration,
    TrainChip,
    TrainConsts,
    TrainingEstimate,
    TrainJob,
    TrainLayout,
    TrainParams,
    check_layout,
    eight_bit_dtype,
    evaluate,
    load_training_calibration,
)

MAX_BATCH_TOKENS = 2**24     # 16M tokens: Llama 3 405B's final global batch (arXiv:2407.21783 sec. 3.4.1)
MICRO_BATCHES_PER_STAGE = 8  # free batch: at most 8 x pp micro-batches (Korthikanti et al. 2022's benchmarks)
MICRO_BATCHES = (1, 2, 4, 8, 16, 32)
VPP = (1, 2, 4)
DIMS = ("tp", "pp", "dp", "ep", "cp", "mb", "recompute", "zero", "vpp", "rc_frac")


def _pow2(limit: int) -> list[int]:
    return [2**i for i in range(0, max(limit, 1).bit_length()) if 2**i <= limit]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def space(model: ModelSpec, chip: Chip, gpus: int, *, seq: int, zero_stages: tuple[int, ...],
          fixed: dict[str, int] | None = None, model_parallel: int | None = None) -> dict[str, np.ndarray]:
    """All layouts of `gpus` GPUs as flat arrays (before batch and memory masks). `fixed` pins dimensions
    (a measured run's stated degrees); `model_parallel` pins tp x pp."""
    fx = dict(fixed or {})
    dom = chip.scaleup_size
    tps = [t for t in _pow2(min(gpus, max(dom, 8) * 2)) if model.heads % t == 0]
    pps = sorted({p for p in _pow2(model.layers) + _divisors(model.layers) if p <= gpus})
    cps = [c for c in _pow2(min(gpus, 32)) if c == 1 or (seq % (2 * c) == 0 and seq // c >= 1024)]
    eps = _pow2(model.experts) if model.is_moe else [1]
    eps = [e for e in eps if model.experts % e == 0] if model.is_moe else [1]
    triples = [(t, p, c) for t, p, c in itertools.product(
        [fx["tp"]] if "tp" in fx else tps, [fx["pp"]] if "pp" in fx else pps, [fx["cp"]] if "cp" in fx else cps)
        if gpus % (t * p * c) == 0 and (model_parallel is None or t * p == model_parallel)]
    trip = [(t, p, c, gpus // (t * p * c)) for t, p, c in triples
            if "dp" not in fx or gpus // (t * p * c) == fx["dp"]]
    if not trip:
        return {k: np.zeros(0) for k in DIMS}
    rest = {"ep": [fx["ep"]] if "ep" in fx else eps, "mb": [fx["mb"]] if "mb" in fx else list(MICRO_BATCHES),
            "recompute": [fx["recompute"]] if "recompute" in fx else [0, 1, 2],
            "zero": [fx["zero"]] if "zero" in fx else list(zero_stages), "vpp": [fx["vpp"]] if "vpp" in fx else list(VPP)}
    t3 = np.array(trip, dtype=float)
    grids = np.meshgrid(np.arange(len(trip)), *[np.array(v, dtype=float) for v in rest.values()], indexing="ij")
    idx = grids[0].reshape(-1).astype(int)
    out = {"tp": t3[idx, 0], "pp": t3[idx, 1], "cp": t3[idx, 2], "dp": t3[idx, 3]}
    out.update({k: g.reshape(-1) for k, g in zip(rest, grids[1:])})
    ok = (out["vpp"] == 1) | ((out["pp"] > 1) & (out["pp"] * out["vpp"] <= model.layers))   # uneven splits allowed
    ranks = out["tp"] * out["dp"] * out["cp"]
    ok &= (ranks % out["ep"] == 0) & (out["ep"] <= ranks)
    out["rc_frac"] = np.ones_like(out["tp"])             # full recompute covers every layer of a stage
    return {k: v[ok] for k, v in out.items()}


def stage_layers(layers: int, pp: Any) -> Any:
    """Layers on the busiest pipeline stage (an uneven split puts the extra ones there)."""
    return np.ceil(layers / np.asarray(pp, dtype=float))


def with_partial_recompute(sp: dict[str, np.ndarray], batch: np.ndarray, layers: int,
                           run: Any) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """Add, beside each full-recompute layout, the same layout recomputing only the fewest whole layers per stage
    that memory needs (and one more, in case the first is a hair over), for frameworks that offer it. The memory
    model is linear in the share of recomputed layers, so the count comes from the layout's memory with none and
    with all recomputed. `run(sp, batch)` evaluates layouts (the added ones alone, then joined to the first pass);
    returns (the output, layouts, batches)."""
    out = run(sp, batch)
    idx = np.flatnonzero(sp["recompute"] >= 2)
    if idx.size == 0:
        return out, sp, batch
    sub = {k: v[idx] for k, v in sp.items()}
    none = run({**sub, "rc_frac": np.zeros(idx.size)}, batch[idx])
    m0, m1 = none["memory"]["total"], out["memory"]["total"][idx]
    cap = out["memory"]["capacity"][idx]
    ls = stage_layers(layers, sub["pp"])
    need = np.ceil(np.clip((m0 - cap) / np.maximum(m0 - m1, 1.0), 0.0, 1.0) * ls - 1e-9)
    extra_sp, extra_b = [], []
    for n in (need, need + 1.0):
        keep = (n >= 1.0) & (n < ls) & (m0 > cap)
        if keep.any():
            extra_sp.append({**{k: v[keep] for k, v in sub.items()}, "rc_frac": n[keep] / ls[keep]})
            extra_b.append(batch[idx][keep])
    if not extra_sp:
        return out, sp, batch
    add = {k: np.concatenate([e[k] for e in extra_sp]) for k in sp}
    add_b = np.concatenate(extra_b)
    n, m = sp["tp"].size, add["tp"].size
    return (_join(out, run(add, add_b), n, m), {k: np.concatenate([sp[k], add[k]]) for k in sp},
            np.concatenate([batch, add_b]))


def _join(a: Any, b: Any, n: int, m: int) -> Any:
    """Two `evaluate` outputs of n and m layouts as one of n + m (a scalar both share stays a scalar)."""
    if isinstance(a, dict):
        return {k: _join(a[k], b[k], n, m) for k in a}
    if np.ndim(a) == 0 and np.ndim(b) == 0 and a == b:
        return a
    return np.concatenate([np.broadcast_to(a, (n,)), np.broadcast_to(b, (m,))])


def batch_micro_batches(sp: dict[str, np.ndarray], seq: int, batch_tokens: float | None,
                        gpus: int) -> tuple[np.ndarray, np.ndarray]:
    """Global batch and micro-batch count per layout. A given batch must split into whole micro-batches
    (m >= 1, m x pp divisible under interleaving); a free batch takes the most micro-batches, up to 8 x pp,
    that keep it within MAX_BATCH_TOKENS (at least one micro-batch per data-parallel replica)."""
    per_mb = sp["dp"] * sp["mb"] * seq
    if batch_tokens is None:
        m = np.clip(np.floor(MAX_BATCH_TOKENS / per_mb), 1.0, MICRO_BATCHES_PER_STAGE * sp["pp"])
        m = np.where(sp["vpp"] > 1, np.maximum(np.floor(m / sp["pp"]), 1.0) * sp["pp"], m)
        return per_mb * m, m
    m = batch_tokens / per_mb
    return np.full_like(m, float(batch_tokens)), m


def search(job: TrainJob, *, params: TrainParams | None = None, calibration: TrainCalibration | None = None,
           fixed: dict[str, int] | None = None, model_parallel: int | None = None,
           flags: dict[str, float] | None = None, out_bw: float | None = None,
           require_fit: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray], int]:
    """Evaluate the whole space; returns (evaluate output, layout arrays, index of the best layout).

    Best = highest tokens/s among layouts that fit; when none fits, the one with the least memory overshoot
    (require_fit=False) or an InfeasibleError naming it and by how much it is over. A framework with block
    recompute (Megatron) also gets, beside each full-recompute layout, the fewest recomputed layers that fit
    (`with_partial_recompute`) unless `fixed` states the recompute."""
    fw = framework(job.framework)
    cal = calibration or load_training_calibration()
    p = params or cal.params(job.chip.family, job.framework)
    sp = space(job.model, job.chip, job.gpus, seq=job.seq_len, zero_stages=fw.zero, fixed=fixed,
               model_parallel=model_parallel)
    if sp["tp"].size == 0:
        raise InputError("layout", f"no parallel layout of {job.gpus} GPUs matches the stated degrees "
                         f"{fixed or {}} for {job.model.id}")
    batch, m = batch_micro_batches(sp, job.seq_len, job.global_batch_tokens, job.gpus)
    whole = (m >= 1.0 - 1e-9) & (np.abs(m - np.round(m)) < 1e-6) & ((sp["vpp"] == 1) | (np.round(m) % sp["pp"] == 0))
    if job.global_batch_tokens is None:        # a free batch exceeds the cap only with one sequence per micro-batch
        whole &= (batch <= MAX_BATCH_TOKENS) | (sp["mb"] == 1)
    if not whole.any():                 # a stated batch no layout splits exactly: accept fractional m
        whole = m >= 1.0 - 1e-9
    if not whole.any():
        raise InputError("global_batch_tokens", f"{job.global_batch_tokens:.0f} tokens is less than one sequence "
                         "per data-parallel rank for every layout")
    sp = {k: v[whole] for k, v in sp.items()}
    mc, cc = TrainConsts.of(job.model, mtp=job.mtp), TrainChip.of(job.chip, out_bw=out_bw)
    fl = {**fw_flags(fw), **(flags or {})}

    def run(s: dict[str, np.ndarray], b: np.ndarray) -> dict[str, Any]:
        return evaluate(mc, cc, p, fl, seq=float(job.seq_len), batch_tokens=b, fp8=1.0 if job.precision == "fp8" else 0.0,
                        **s)

    if fw.partial_recompute and "recompute" not in (fixed or {}):
        out, sp, _ = with_partial_recompute(sp, batch[whole], job.model.layers, run)
    else:
        out = run(sp, batch[whole])
    fits = np.asarray(out["fits"])
    if fits.any():
        best = int(np.argmax(np.where(fits, out["tokens_per_s"], -np.inf)))
    else:
        over = out["memory"]["total"] - out["memory"]["capacity"]
        best = int(np.argmin(over))
        if require_fit:
            lay = layout_at(sp, best, job.model.layers)
            raise InfeasibleError(
                f"{job.model.id} does not fit on {job.gpus} x {job.chip.id} in any layout; the closest "
                f"({_describe(lay)}) needs {out['memory']['total'][best] / 2**30:.1f} GB per GPU, "
                f"{over[best] / 2**30:.1f} GB over the {job.chip.memory_bytes / 2**30:.0f} GB; use more GPUs")
    return out, sp, best


def layout_at(sp: dict[str, np.ndarray], i: int, layers: int) -> TrainLayout:
    frac = float(sp["rc_frac"][i])
    n = int(round(frac * float(stage_layers(layers, sp["pp"][i]))))
    return TrainLayout(tp=int(sp["tp"][i]), pp=int(sp["pp"][i]), dp=int(sp["dp"][i]), ep=int(sp["ep"][i]),
                       cp=int(sp["cp"][i]), micro_batch=int(sp["mb"][i]),
                       recompute=RECOMPUTE[int(sp["recompute"][i])],  # type: ignore[arg-type]
                       recompute_layers=n if frac < 1.0 and sp["recompute"][i] >= 2 else None,
                       zero=int(sp["zero"][i]), vpp=int(sp["vpp"][i]))


def _describe(lay: TrainLayout) -> str:
    rc = lay.recompute + (f" ({lay.recompute_layers} layers per stage)" if lay.recompute_layers else "")
    return (f"tp={lay.tp} pp={lay.pp} dp={lay.dp} ep={lay.ep} cp={lay.cp} mb={lay.micro_batch} "
            f"recompute={rc} zero={lay.zero} vpp={lay.vpp}")


def best_training_layout(model: ModelSpec | str, chip: Chip | str, gpus: int, *, seq_len: int,
                         global_batch_tokens: float | None = None, precision: str = "bf16", tokens: float | None = None,
                         framework: str = "megatron", calibration: TrainCalibration | None = None,
                         fixed: dict[str, int] | None = None) -> TrainingEstimate:
    """The fastest layout that fits (TrainingEstimate with `evaluated` = configurations scored).

    Raises InfeasibleError when nothing fits (saying by how much the closest layout is over) and InputError
    for bad input."""
    job = make_job(model, chip, gpus, tokens=tokens, seq_len=seq_len, global_batch_tokens=global_batch_tokens,
                   precision=precision, framework=framework)
    out, sp, best = search(job, calibration=calibration, fixed=fixed)
    job = job.model_copy(update={"global_batch_tokens": float(out["tokens_per_s"][best] * out["step"][best])})
    notes = [] if global_batch_tokens else [f"global batch chosen by the search: {job.global_batch_tokens:.0f} tokens "
                                            f"(at most {MAX_BATCH_TOKENS} unless one micro-batch per replica is more)"]
    return to_estimate(job, out, best, layout_at(sp, best, job.model.layers), evaluated=int(sp["tp"].size),
                       notes=notes)


def make_job(model: ModelSpec | str, chip: Chip | str, gpus: int, *, tokens: float | None, seq_len: int | None,
             global_batch_tokens: float | None, precision: str, framework: str = "megatron") -> TrainJob:
    """Validate the inputs of a training question into a TrainJob (InputError names the field)."""
    spec = get_model(model) if isinstance(model, str) else model
    hw = get_chip(chip) if isinstance(chip, str) else chip
    if int(gpus) != gpus or gpus < 1:
        raise InputError("gpus", f"needs a positive whole number of GPUs, not {gpus}")
    if tokens is not None and tokens <= 0:
        raise InputError("tokens", "the token budget must be positive (e.g. 15T)")
    if precision not in ("bf16", "fp16", "fp8"):
        raise InputError("precision", f"'{precision}' is not one of bf16, fp16, fp8")
    frameworks.framework(framework)                # an unknown name: UnknownNameError with the closest ones
    if precision == "fp8" and not hw.has_native(eight_bit_dtype(hw)):
        alt = " or --precision bf16" if hw.has_native("bf16") else ""
        raise InputError("precision", f"{hw.id} has no native FP8 tensor units; pick a chip that has (e.g. H100){alt}")
    seq = int(seq_len or min(spec.max_position or 4096, 8192))
    if seq < 16:
        raise InputError("seq_len", "the sequence length must be at least 16 tokens")
    if global_batch_tokens is not None and global_batch_tokens < seq:
        raise InputError("global_batch_tokens", f"{global_batch_tokens:.0f} tokens is less than one sequence of {seq}")
    return TrainJob(model=spec, chip=hw, gpus=int(gpus), tokens=tokens, seq_len=seq,  # type: ignore[call-arg]
                    global_batch_tokens=global_batch_tokens, precision=precision,  # type: ignore[arg-type]
                    framework=framework)


def train(model_id: str, chip_id: str, gpus: int, tokens: float, seq_len: int | None = None,
          precision: str = "bf16", framework: str = "megatron") -> TrainingEstimate:
    """`stockpile train`: the best layout for the job and the GPU-hours, days, goodput and energy of `tokens`,
    under a training framework's defaults (perf/frameworks.FRAMEWORKS; Megatron unless told)."""
    job = make_job(model_id, chip_id, gpus, tokens=tokens, seq_len=seq_len, global_batch_tokens=None,
                   precision=precision, framework=framework)
    return best_training_layout(job.model, job.chip, gpus, seq_len=job.seq_len, precision=precision, tokens=tokens,
                                framework=framework)


def _pick(x: F, i: int) -> float:
    return float(np.asarray(x).reshape(-1)[i] if np.ndim(x) else x)


def to_estimate(job: TrainJob, out: dict[str, F], i: int, layout: TrainLayout, *, evaluated: int = 1,
                notes: list[str] | None = None) -> TrainingEstimate:
    """The TrainingEstimate of entry `i` of an `evaluate` result, with the token budget's hours, days,
    goodput and energy (TDP x PUE) when `job.tokens` is given."""
    mem = {k: round(_pick(v, i) / 2**30, 3) for k, v in out["memory"].items()}
    tps = _pick(out["tokens_per_s"], i)
    parts = ("gemm", "attention", "elementwise", "tp_comm", "ep_comm", "cp_comm", "pp_p2p", "pp_bubble",
             "dp_comm", "optimizer", "straggler")
    breakdown = {k: round(_pick(out[k], i), 6) for k in parts}
    limits = [f"largest time share: {max(breakdown, key=lambda k: breakdown[k])}"]
    fits = bool(_pick(out["fits"], i))
    over = max(0.0, mem["total"] - mem["capacity"])
    if not fits:
        limits.append(f"does not fit: needs {mem['total']:.1f} GB per GPU, {over:.1f} GB over the "
                      f"{mem['capacity']:.0f} GB of {job.chip.id}")
    est = TrainingEstimate(
        model=job.model.id, chip=job.chip.id, gpus=layout.gpus, precision=job.precision, framework=job.framework,
        layout={**layout.model_dump(), "schedule": layout.schedule}, seq_len=job.seq_len,
        global_batch_tokens=_pick(out["tokens_per_s"], i) * _pick(out["step"], i),
        micro_batches=_pick(out["micro_batches"], i), step_time_s=_pick(out["step"], i), tokens_per_s=tps,
        tokens_per_s_per_gpu=_pick(out["tokens_per_s_per_gpu"], i), tflops_per_gpu=_pick(out["tflops_per_gpu"], i),
        mfu=_pick(out["mfu"], i), hfu=_pick(out["hfu"], i), model_flops_per_token=_pick(out["model_flops_per_token"], i),
        memory_gb=mem, fits=fits, over_memory_gb=round(over, 3), time_breakdown_s=breakdown, evaluated=evaluated,
        limits=limits, notes=list(notes or []))
    from stockpile.calibration.bands import unbacked_family
    from stockpile.catalog.models import model_notes
    est.notes.extend(unbacked_family(job.model, training=True) + model_notes(job.model.id))
    if job.precision == "fp8" and eight_bit_dtype(job.chip) == "int8":
        est.notes.append(f"8-bit training on {job.chip.id}'s int8 units (AQT int8, as MaxText runs it on TPUs without "
                         "fp8 units); MFU is against the int8 peak, and the 8-bit efficiency is the one fitted on GPU FP8 recipes "
                         "(docs/training-model.md)")
    if job.tokens:
        g = job_goodput(layout.gpus, job.model.params)
        hours = job.tokens / tps / 3600.0 / g.goodput
        try:
            energy: float | None = hours * layout.gpus * job.chip.tdp * job.pue / 1000.0
        except MissingFigureError:
            energy = None
            est.notes.append(f"energy unknown: {job.chip.id} has no sourced TDP")
        est = est.model_copy(update=dict(
            tokens=job.tokens, gpu_hours=hours * layout.gpus, days=hours / 24.0, goodput=g.goodput,
            energy_kwh=energy))
        est.notes.append(f"goodput {g.goodput:.3f}: {g.interruptions_per_day:.2f} interruptions/day (Llama 3 "
                         f"rate), checkpoint {g.checkpoint_write_s:.0f} s every {g.checkpoint_interval_s / 60:.0f} "
                         f"min (Young/Daly), restart {g.restart_s:.0f} s")
    return _with_band(est, job, layout)


def _rate_edges(est: TrainingEstimate, job: TrainJob, lay: TrainLayout) -> tuple[float, float]:
    """The training rate's ratio with the chip's estimated speed figures at the slow and the fast end of their
    ranges (catalog/figure_ranges.py), this layout held; (1, 1) where every figure is published."""
    from stockpile.calibration.bands import chip_validated
    from stockpile.catalog.figure_ranges import chip_at_edge, uncertain_speeds
    if not uncertain_speeds(job.chip) or chip_validated(job.chip.id, training=True):
        return 1.0, 1.0
    p = load_training_calibration().params(job.chip.family, job.framework)
    rates = [_pick(_evaluate_layout(job, lay, p, chip=chip, batch=est.global_batch_tokens)["tokens_per_s"], 0)
             for chip in (job.chip, chip_at_edge(job.chip, "slow"), chip_at_edge(job.chip, "fast"))]
    if not (rates[0] > 0 and all(np.isfinite(rates))):
        return 1.0, 1.0
    return rates[1] / rates[0], rates[2] / rates[0]


def _with_band(est: TrainingEstimate, job: TrainJob, layout: TrainLayout) -> TrainingEstimate:
    """The p10-p90 band of each headline figure from the validated error of its regime (calibration/bands.py),
    widened where the validation does not reach: a chip family without training rows (doubled in log units) and
    the chip's estimated speed figures at the ends of their ranges."""
    from stockpile.calibration.bands import describe_training, training_band, training_family_seen, widened
    band: dict[str, list[float]] = {}
    note = None
    slow, fast = _rate_edges(est, job, layout)
    seen = training_family_seen(job.chip.family)
    for metric in ("mfu", "tflops_per_gpu", "tokens_per_s_per_gpu", "gpu_hours", "days"):
        v = getattr(est, metric)
        b = training_band(job.chip.family, metric, job.model.is_moe)
        if v is None or b is None or not np.isfinite(v):
            continue
        edge = (1 / slow, 1 / fast) if metric in ("gpu_hours", "days") else (slow, fast)
        lo, hi, why = widened(b, job.chip.family, edge, seen=seen)
        band[metric] = [round(v * lo, 6), round(v * hi, 6)]
        if metric == "mfu":
            note = f"MFU {describe_training(*b)}"
            if why:
                note += f"; here {100 * (lo - 1):+.0f} %..{100 * (hi - 1):+.0f} %: {'; '.join(why)}"
    return est.model_copy(update={"band": band or None, "band_note": note})


def layout_arrays(layout: TrainLayout, layers: int) -> dict[str, float]:
    frac = 1.0
    if layout.recompute_layers is not None:
        frac = min(layout.recompute_layers / float(stage_layers(layers, layout.pp)), 1.0)
    return dict(tp=float(layout.tp), pp=float(layout.pp), dp=float(layout.dp), ep=float(layout.ep),
                cp=float(layout.cp), mb=float(layout.micro_batch), recompute=float(RECOMPUTE.index(layout.recompute)),
                zero=float(layout.zero), vpp=float(layout.vpp), rc_frac=frac)


def estimate(job: TrainJob, layout: TrainLayout, *, calibration: TrainCalibration | None = None,
             params: TrainParams | None = None) -> TrainingEstimate:
    """Performance of one given layout (the layout must use exactly `job.gpus` GPUs)."""
    check_layout(job, layout)
    cal = calibration or load_training_calibration()
    p = params or cal.params(job.chip.family, job.framework)
    return to_estimate(job, _evaluate_layout(job, layout, p), 0, layout)


def _evaluate_layout(job: TrainJob, layout: TrainLayout, p: TrainParams, *, chip: Chip | None = None,
                     batch: float | None = None) -> dict[str, F]:
    """The step-time model on one layout: on `chip` (default the job's), at `batch` tokens per step (default the
    job's global batch, else one micro-batch per replica and 4 x pp in flight)."""
    batch = batch or job.global_batch_tokens or float(layout.dp * layout.micro_batch * job.seq_len
                                                      * max(4 * layout.pp, 1))
    return evaluate(TrainConsts.of(job.model, mtp=job.mtp), TrainChip.of(chip or job.chip), p,
                    fw_flags(framework(job.framework)), seq=float(job.seq_len), batch_tokens=batch,
                    fp8=1.0 if job.precision == "fp8" else 0.0, **layout_arrays(layout, job.model.layers))
