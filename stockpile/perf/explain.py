"""What limits a configuration: one decode step's seconds by operator group, and the sentence `estimate` and
`search` print for it."""
from __future__ import annotations

from typing import Any

import numpy as np

from stockpile.catalog.chips import BYTES, Chip
from stockpile.catalog.models import ModelSpec
from stockpile.perf.calibration import Params
from stockpile.perf.inference import WEIGHT_BYTES, chip_dtype_tables, dtype_efficiency, stream_share
from stockpile.perf.layout import Layout
from stockpile.perf.operators import ChipConsts, ModelConsts, stage_time

PART_LABELS = {"gemm": "weight GEMMs",
               "gemm_tile": "16-bit GEMMs' 64-row tensor-core tile floor (few rows on a compute-capped chip)",
               "experts": "expert GEMMs", "attention": "attention (KV-cache and recurrent-state reads)",
               "activations": "activation traffic", "tp_allreduce": "tensor-parallel all-reduce",
               "ep_alltoall": "expert all-to-all", "pp_handoff": "pipeline hand-off", "overhead": "engine overhead",
               "host_launch": "host kernel launches per layer (the step runs outside a whole-step graph)"}


def decode_breakdown(model: ModelSpec, chip: Chip, engine: str, p: Params, *, layout: dict[str, float], wdtype: str,
                     kvdtype: str, batch: float, context: float) -> dict[str, float]:
    """Seconds per operator group of one decode step at `batch` sequences per instance (for explanations)."""
    peak, kind = chip_dtype_tables(chip, wdtype)
    b = batch / (layout["attn_dp"] * layout["pp"])
    A = lambda v: np.array(float(v))  # noqa: E731
    parts = stage_time(ModelConsts.of(model), ChipConsts.of(chip), p, **{k: A(v) for k, v in layout.items()},
                       wbytes=A(WEIGHT_BYTES[wdtype]), kvbytes=A(BYTES[kvdtype]), gemm_peak=A(peak),
                       dtype_eff=dtype_efficiency(p, A(kind)), dec_seqs=A(b), dec_tokens=A(b), dec_ctx=A(context),
                       pre_tokens=A(0.0), pre_ctx=A(context), wstream=stream_share(p, A(kind)), parts=True)
    return {k: float(v) for k, v in parts.items()}


def dominant(parts: dict[str, float]) -> str:
    name, t = max(parts.items(), key=lambda kv: kv[1])
    return f"{PART_LABELS[name]}: {100 * t / max(sum(parts.values()), 1e-12):.0f}% of a decode step"


def limit_text(r: dict[str, Any], layout: Layout, concurrency: float | None, parts: dict[str, float]) -> str:
    if concurrency and concurrency / layout.replicas > float(r["max_batch"]):
        return f"KV-cache memory: at most {int(r['max_batch'])} sequences run per instance; the rest queue"
    if float(r.get("utilisation", 0)) >= 1:
        return "saturated: the offered request rate exceeds capacity; queueing dominates TTFT"
    return dominant(parts)


def reserve_note(engine: str, model: ModelSpec, p: Params, reserve: float, max_seqs: float) -> str:
    """What an engine's reserve holds where its profiling pass's sampler adds to the fitted one (serving.reserve_bytes)."""
    return (f"reserve {reserve / 1e9:.1f} GB per GPU: {p.reserve_gb:.1f} GB fitted and {reserve / 1e9 - p.reserve_gb:.1f} GB "
            f"for {engine}'s profiling pass, which samples {max_seqs:,.0f} sequences over the {model.vocab:,}-token "
            "vocabulary before it sizes the KV cache (set its max-num-seqs lower to keep more cache)")
