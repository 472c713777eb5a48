"""Per-chip rates the planner needs: serving behind a small callable, training as one model of training speed.

    ServingRate(model_id, chip_id, isl, osl, ttft_ms, tpot_ms) -> output tokens/s per GPU meeting the SLO
    PairServing(model_id, prefill_chip, decode_chip, isl, osl, ttft_ms, tpot_ms) -> PairRate (rate, prefill share)
    training_speed(params_b, active_params_b, chip_id, gpus, *, model_id, precision, seq_len) -> TrainingSpeed
    gpu_hours(tokens, speed) = tokens / speed.tokens_per_s_per_gpu / 3600 / speed.goodput

Serving sweeps layouts, dtypes and batch sizes of the serving search and keeps the best per-GPU throughput
that meets the SLO.

Training has one path whether a generation names a catalog model or gives only its size: the fastest layout
(TP, PP, DP, EP, CP, micro-batch, recompute, ZeRO, virtual stages) of the training model at the run's GPU
count (:func:`stockpile.search.training.best_training_layout` over :mod:`stockpile.perf.training`), and the
goodput of that job (:func:`stockpile.perf.goodput.job_goodput`: Llama 3's interruption rate, Young/Daly
checkpoints, restarts). A catalog model is trained with its published config; a size alone with the shape
:func:`stockpile.catalog.derive.derive_model` scales from the nearest published config. GPU-hours of a run
(failures included) = tokens / (tokens/s per GPU) / 3600 / goodput.

Check (tests/fleet/test_rates.py): DeepSeek-V3, 14.8T tokens on 2048 H800 in fp8 at sequence 4096, comes to
3.01M GPU-hours given by catalog id and 2.94M given by size (671B / 37B active; the derived shape has 59
layers to the real 61, so slightly less attention); DeepSeek reported 2.664M H800 GPU-hours of pre-training
(arXiv 2412.19437; stockpile/data/measurements/fleet_facts.csv), so the model is 10-13 % slow. Its best layout
is TP 4 x EP 256 with full recompute; at DeepSeek's own PP16 x EP64 it gives 3.9M, because the modelled
schedules (1F1B, interleaved) keep a bubble and an exposed all-to-all that DualPipe overlaps (sec. 3.2.1);
the MTP module DeepSeek also trained is not counted. The test asks for 10 % between the two paths and 25 %
to the report.

An explicit ``mfu`` on a generation overrides the model (the user's number stands):

    tokens/s per GPU = MFU * peak_FLOP/s / (6 * N_active)            (Kaplan et al. 2020, C = 6 N D)

Everything is cached; nothing heavy is imported until a rate is asked for.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ServingRate = Callable[[str, str, float, float, "float | None", "float | None"], float]
TrainingRate = Callable[[float, float, str], float]

# GPU pools the serving search is asked about: a node, and two and four nodes for models too large for one.
SEARCH_GPUS = (8, 16, 32)


def default_serving_rate(model_id: str, chip_id: str, isl: float, osl: float,
                         ttft_ms: float | None = None, tpot_ms: float | None = None,
                         weight_dtype: str | None = None) -> float:
    """Best output tokens/s per GPU of `model_id` on `chip_id` whose TTFT and TPOT meet the SLO (0 if none).
    Cached per catalog state (a user's chip figures, ``extra_chips``, are part of the key)."""
    from stockpile.catalog.chips import overlay_version
    return _serving_rate(model_id, chip_id, isl, osl, ttft_ms, tpot_ms, weight_dtype, overlay_version())


@lru_cache(maxsize=4096)
def _serving_rate(model_id: str, chip_id: str, isl: float, osl: float, ttft_ms: float | None,
                  tpot_ms: float | None, weight_dtype: str | None, _version: int) -> float:
    """Best output tokens/s per GPU of `model_id` on `chip_id` whose TTFT and TPOT meet the SLO (0 if none).

    Asks the serving search (:func:`stockpile.search.serving.search`: layouts, dtypes, batch, aggregated or
    disaggregated) for a node and for multi-node pools, and keeps the best per-GPU throughput that meets the SLO."""
    from stockpile.catalog import get_chip, get_model
    from stockpile.errors import StockpileError
    from stockpile.search.serving import Slo, search

    model, chip = get_model(model_id), get_chip(chip_id)
    # serve the checkpoint as published unless the workload names a dtype: quantizing is a quality decision
    dtypes = [weight_dtype or model.default_weight_dtype]
    best = 0.0
    for gpus in SEARCH_GPUS:
        try:
            r = search(model, chip, gpus=gpus, isl=isl, osl=osl, slo=Slo(ttft_ms=ttft_ms, tpot_ms=tpot_ms),
                       top=1, dtypes=dtypes)
        except StockpileError:
            continue
        if r.best is not None:
            best = max(best, r.best.output_tokens_per_s_per_gpu)
        elif best > 0:
            break                # a larger pool will not help a model that already fits with room to spare
    return best


# (model_id, prefill chip, decode chip, isl, osl, ttft_ms, tpot_ms, weight_dtype) -> PairRate or None
PairServing = Callable[..., "PairRate | None"]


@dataclass(frozen=True)
class PairRate:
    """A chip pair's serving rate: output tokens/s per GPU of the pair (prefill and decode GPUs both counted),
    the fraction of its GPUs that are prefill chips, and how the rate was found."""

    tokens_per_s_per_gpu: float
    prefill_share: float
    note: str = ""


def default_pair_rate(model_id: str, prefill_id: str, decode_id: str, isl: float, osl: float,
                      ttft_ms: float | None = None, tpot_ms: float | None = None,
                      weight_dtype: str | None = None) -> PairRate | None:
    """Best disaggregated configuration with prefill on `prefill_id` and decode on `decode_id` that meets the SLO
    (the mixed serving search, ``search --prefill-chips P --decode-chips D``), over the pool sizes the single-chip
    rate tries; a zero rate, with the search's reason as its note, when no configuration meets it. Cached per
    catalog state."""
    from stockpile.catalog.chips import overlay_version
    return _pair_rate(model_id, prefill_id.lower(), decode_id.lower(), isl, osl, ttft_ms, tpot_ms, weight_dtype,
                      overlay_version())


@lru_cache(maxsize=1024)
def _pair_rate(model_id: str, prefill_id: str, decode_id: str, isl: float, osl: float, ttft_ms: float | None,
               tpot_ms: float | None, weight_dtype: str | None, _version: int) -> PairRate | None:
    from stockpile.catalog import get_chip, get_model
    from stockpile.errors import StockpileError
    from stockpile.search.serving import Slo, search

    model, pre, dec = get_model(model_id), get_chip(prefill_id), get_chip(decode_id)
    dtypes = [weight_dtype or model.default_weight_dtype]
    best: PairRate | None = None
    why = ""
    for gpus in SEARCH_GPUS:
        try:
            r = search(model, dec, gpus=gpus, isl=isl, osl=osl, slo=Slo(ttft_ms=ttft_ms, tpot_ms=tpot_ms), top=1,
                       dtypes=dtypes, prefill_chip=pre, aggregated=False)
        except StockpileError:
            continue
        c = r.best
        if c is None or c.prefill is None:
            why = why or f"on {gpus} GPUs: {r.message}"
            if best is not None:
                break
            continue
        p = c.prefill
        pre_gpus = int(p["instances"]) * int(p["attn_tp"]) * int(p["attn_dp"]) * int(p["pp"])
        share = pre_gpus / gpus
        if not 0 < share < 1 or (best is not None and c.output_tokens_per_s_per_gpu <= best.tokens_per_s_per_gpu):
            continue
        best = PairRate(tokens_per_s_per_gpu=float(c.output_tokens_per_s_per_gpu), prefill_share=share,
                        note=f"mixed search on {gpus} GPUs: {c.layout_text}; TTFT {c.ttft_ms:,.0f} ms, TPOT "
                             f"{c.tpot_ms:,.1f} ms")
    # no configuration meets the SLO: a zero rate that says why (the search's own message)
    return best or PairRate(tokens_per_s_per_gpu=0.0, prefill_share=0.5, note=why or "the model fits no pool size")


def peak_training_flops(chip_id: str, precision: str = "bf16") -> float:
    """Dense tensor peak of the chip for the training precision, FLOP/s (from the catalog, never guessed)."""
    from stockpile.catalog import get_chip
    return get_chip(chip_id).peak_flops(precision)


def mfu_tokens_per_s(params_active: float, peak_flops: float, mfu: float) -> float:
    """Training tokens/s per GPU = MFU * peak / (6 N_active)  (Kaplan et al. 2020; Chowdhery et al. 2022 MFU)."""
    return mfu * peak_flops / (6.0 * params_active)


def mfu_training_rate(mfu: float = 0.35, precision: str = "bf16",
                      mfu_by_chip: dict[str, float] | None = None) -> TrainingRate:
    """A TrainingRate from a model FLOPs utilisation (per chip override allowed) and the catalog peak: the rule
    behind a generation's explicit `mfu` override."""
    per_chip = {k.lower(): v for k, v in (mfu_by_chip or {}).items()}

    @lru_cache(maxsize=1024)
    def rate(params_b: float, active_params_b: float, chip_id: str) -> float:
        u = per_chip.get(chip_id.lower(), mfu)
        return mfu_tokens_per_s(active_params_b * 1e9, peak_training_flops(chip_id, precision), u)
    return rate


# Pre-training sequence length when a scenario gives none: 4096 tokens, DeepSeek-V3's ("maximum sequence length
# 4K during pre-training", arXiv 2412.19437 sec. 4.2) and Llama 3 405B's first stage (arXiv 2407.21783 sec.
# 3.4.1: 4,096 for the first 252M tokens, then 8,192). Both extend the context in later, shorter stages.
DEFAULT_TRAIN_SEQ = 4096
# best_training_layout reports goodput only for a token budget; goodput does not depend on its size.
_NOMINAL_TOKENS = 1e12


@dataclass(frozen=True)
class TrainingSpeed:
    """How fast a chip type trains a model on `gpus` GPUs: per-GPU tokens/s in the best layout, the goodput of
    a job that size, the MFU (model FLOPs over the peak of the training precision), the layout and a note."""

    tokens_per_s_per_gpu: float
    goodput: float
    mfu: float
    layout: dict[str, Any] = field(hash=False)
    note: str = ""


def training_speed(params_b: float, active_params_b: float | None, chip_id: str, gpus: int, *,
                   model_id: str | None = None, precision: str = "bf16",
                   seq_len: int | None = None) -> TrainingSpeed | None:
    """Training speed of `gpus` x `chip_id` on a model: the catalog model `model_id` (its published config)
    when given, else a shape of `params_b` total / `active_params_b` active parameters (billions) derived from
    the nearest catalog model. None when the model fits in no layout of that many GPUs or the chip lacks a
    figure the model needs (a missing peak, memory or bandwidth): that chip cannot train it at this size.

    fp8 on a chip without fp8 tensor units trains in bf16 (the note says so). Bad input (unknown chip or
    model, a non-positive size or GPU count) raises InputError. Cached."""
    from stockpile.catalog.chips import overlay_version
    n = int(gpus) if float(gpus).is_integer() else gpus       # 2048.0 from a YAML file is 2048 GPUs
    return _training_speed(float(params_b), None if active_params_b is None else float(active_params_b),
                           chip_id.strip().lower(), n, model_id, precision.lower(),
                           DEFAULT_TRAIN_SEQ if seq_len is None else int(seq_len), overlay_version())


@lru_cache(maxsize=4096)
def _training_speed(params_b: float, active_params_b: float | None, chip_id: str, gpus: int,
                    model_id: str | None, precision: str, seq_len: int, _version: int) -> TrainingSpeed | None:
    from stockpile.catalog import get_chip, get_model
    from stockpile.catalog.derive import derive_model
    from stockpile.errors import InfeasibleError, MissingFigureError
    from stockpile.search.training import best_training_layout

    if model_id:
        model = get_model(model_id)
        what = f"{model.id} (catalog config)"
    else:
        model, what = derive_model(params_b, active_params_b)
    chip = get_chip(chip_id)
    used, why = precision, ""
    if precision == "fp8" and not chip.has_native("fp8"):
        used, why = "bf16", f" (no fp8 units on {chip.id})"
    try:
        est = best_training_layout(model, chip, gpus, seq_len=seq_len, precision=used, tokens=_NOMINAL_TOKENS)
    except (InfeasibleError, MissingFigureError):
        return None
    if not est.fits or est.goodput is None or est.tokens_per_s_per_gpu <= 0:
        return None
    lay = est.layout
    layout = " ".join(f"{k}={lay[k]}" for k in ("tp", "pp", "dp", "ep", "cp", "micro_batch", "recompute",
                                                "recompute_layers", "zero", "vpp") if lay.get(k) is not None)
    note = (f"{what}; on {gpus} x {chip.id}, {used}{why}, seq {seq_len}: {layout}; "
            f"{est.tokens_per_s_per_gpu:.0f} tokens/s per GPU, MFU {est.mfu:.1%}; goodput {est.goodput:.3f} "
            f"(job_goodput at {gpus} GPUs)")
    return TrainingSpeed(tokens_per_s_per_gpu=float(est.tokens_per_s_per_gpu), goodput=float(est.goodput),
                         mfu=float(est.mfu), layout=dict(lay), note=note)


def gpu_hours(tokens: float, speed: TrainingSpeed) -> float:
    """GPU-hours of a whole run of `tokens`, failures included: tokens / (tokens/s per GPU) / 3600 / goodput."""
    return tokens / speed.tokens_per_s_per_gpu / 3600.0 / speed.goodput


# (params_b, active_params_b, chip_id, gpus, model_id) -> (training tokens/s per GPU, goodput), or None
TrainingSpeedFn = Callable[[float, float, str, int, "str | None"], "tuple[float, float] | None"]


def training_speed_fn(precision: str = "bf16", seq_len: int | None = None) -> TrainingSpeedFn:
    """The planner's training rate: :func:`training_speed` as (tokens/s per GPU, goodput), None where the chip
    cannot train the model at that size."""
    def fn(params_b: float, active_params_b: float, chip_id: str, gpus: int, model_id: str | None) -> \
            tuple[float, float] | None:
        sp = training_speed(params_b, active_params_b, chip_id, gpus, model_id=model_id, precision=precision,
                            seq_len=seq_len)
        return None if sp is None else (sp.tokens_per_s_per_gpu, sp.goodput)
    return fn


@dataclass
class Rates:
    """The two rates the planner uses (tests and other layers may inject their own), plus notes on their source."""

    serving: ServingRate = default_serving_rate
    training: TrainingSpeedFn | None = None
    pair: PairServing = default_pair_rate
    notes: list[str] = field(default_factory=list)
