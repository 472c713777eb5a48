"""Per-chip rates the planner needs, behind two small callables so that tests and other layers can swap them.

    ServingRate(model_id, chip_id, isl, osl, ttft_ms, tpot_ms) -> output tokens/s per GPU meeting the SLO
    TrainingRate(params_b, active_params_b, chip_id)          -> training tokens/s per GPU

The defaults ask the performance layers: serving sweeps a few layouts and concurrencies of
:func:`stockpile.perf.inference.estimate` and keeps the best per-GPU throughput that meets the SLO; training
uses ``stockpile.search.training.train`` when it is importable and otherwise the MFU rule

    tokens/s per GPU = MFU * peak_FLOP/s / (6 * N_active)            (Kaplan et al. 2020, C = 6 N D)

Both are cached; nothing heavy is imported until a rate is asked for.
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


@lru_cache(maxsize=4096)
def default_serving_rate(model_id: str, chip_id: str, isl: float, osl: float,
                         ttft_ms: float | None = None, tpot_ms: float | None = None,
                         weight_dtype: str | None = None) -> float:
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


def peak_training_flops(chip_id: str, precision: str = "bf16") -> float:
    """Dense tensor peak of the chip for the training precision, FLOP/s (from the catalog, never guessed)."""
    from stockpile.catalog import get_chip
    return get_chip(chip_id).peak_flops(precision)


def mfu_tokens_per_s(params_active: float, peak_flops: float, mfu: float) -> float:
    """Training tokens/s per GPU = MFU * peak / (6 N_active)  (Kaplan et al. 2020; Chowdhery et al. 2022 MFU)."""
    return mfu * peak_flops / (6.0 * params_active)


def mfu_training_rate(mfu: float = 0.35, precision: str = "bf16",
                      mfu_by_chip: dict[str, float] | None = None) -> TrainingRate:
    """A TrainingRate from a model FLOPs utilisation (per chip override allowed) and the catalog peak."""
    per_chip = {k.lower(): v for k, v in (mfu_by_chip or {}).items()}

    @lru_cache(maxsize=1024)
    def rate(params_b: float, active_params_b: float, chip_id: str) -> float:
        u = per_chip.get(chip_id.lower(), mfu)
        return mfu_tokens_per_s(active_params_b * 1e9, peak_training_flops(chip_id, precision), u)
    return rate


def _search_train() -> Callable[..., Any] | None:
    try:
        from stockpile.search.training import train  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return train  # type: ignore[no-any-return]


def search_training_rate(fallback: TrainingRate, *, models: dict[tuple[float, float], tuple[str, int]] | None = None,
                         tokens: float = 1e12, precision: str = "bf16") -> TrainingRate:
    """Use ``stockpile.search.training.train`` (best layout on that many GPUs) for catalog models when it exists.

    `models` maps (params_b, active_params_b) to (catalog model id, GPUs of the run); generations described only
    by their size use `fallback`, and so does any failure of the search: the planner never depends on it."""
    train = _search_train()
    if train is None or not models:
        return fallback
    names = dict(models)

    @lru_cache(maxsize=1024)
    def rate(params_b: float, active_params_b: float, chip_id: str) -> float:
        job = names.get((params_b, active_params_b))
        if job is None:
            return fallback(params_b, active_params_b, chip_id)
        try:
            res = train(job[0], chip_id, job[1], tokens, precision=precision)
            return float(res.tokens_per_s_per_gpu)
        except Exception:  # noqa: BLE001 - the search is optional; its failure must not stop a plan
            return fallback(params_b, active_params_b, chip_id)
    return rate


@dataclass
class Rates:
    """The two rates the planner uses, plus notes saying where they came from."""

    serving: ServingRate = default_serving_rate
    training: TrainingRate | None = None
    notes: list[str] = field(default_factory=list)
