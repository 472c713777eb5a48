"""The serving configuration space, declared as flat numpy arrays (one entry per configuration).

Aggregated serving: TP x PP x (EP, attention-DP for MoE/MLA) x replicas filling the GPU count, weight and
KV dtypes the chip runs natively or the engine emulates, speculative decoding for models that ship an MTP
head, and a geometric grid of concurrencies. Disaggregated serving: x prefill and y decode instances, each
with its own layout, sharing the GPUs. Nothing is evaluated here; serving.py scores the arrays.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from stockpile.catalog.chips import Chip
from stockpile.catalog.models import ModelSpec

CONCURRENCY_PER_GPU = np.unique(np.round(np.geomspace(1, 256, 25))).astype(float)
ENGINE_ATTN_DP = {"vllm": True, "sglang": True, "trtllm": True}


def weight_dtypes(model: ModelSpec, chip: Chip, engine: str) -> list[str]:
    """Weight formats worth trying: 16-bit, fp8 (native, or weight-only where the engine supports it),
    int4 weight-only (AWQ/GPTQ kernels), fp4 where the chip has native FP4."""
    out = ["bf16" if chip.has_native("bf16") else "fp16"]
    # fp8 weights without fp8 tensor cores run through weight-only CUDA kernels (Marlin) on Ampere/Ada only
    if chip.has_native("fp8") or (engine in ("vllm", "sglang") and chip.family in ("ampere", "ada")):
        out.append("fp8")
    if chip.has_native("int8") and not chip.has_native("fp8"):
        out.append("int8")
    out.append("int4")
    if chip.has_native("fp4"):
        out.append("fp4")
    return out


def kv_dtypes(chip: Chip) -> list[str]:
    return ["bf16", "fp8"] if chip.has_native("fp8") else ["bf16"]


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass
class Space:
    """Flat arrays; index i is one configuration."""

    attn_tp: np.ndarray
    attn_dp: np.ndarray
    pp: np.ndarray
    moe_ep: np.ndarray
    moe_tp: np.ndarray
    replicas: np.ndarray
    weight_dtype: np.ndarray
    kv_dtype: np.ndarray
    concurrency: np.ndarray
    spec_draft: np.ndarray
    chunk: np.ndarray

    @property
    def size(self) -> int:
        return int(self.attn_tp.size)


def instance_layouts(model: ModelSpec, gpus: int, domain: int, engine: str) -> list[tuple[int, int, int, int, int]]:
    """(attn_tp, attn_dp, pp, moe_ep, moe_tp) for instances whose size divides `gpus`."""
    out = []
    for size in divisors(gpus):
        for pp in (1, 2, 4, 8):
            if size % pp:
                continue
            world = size // pp
            if world > max(domain, 8) * 2:
                continue                     # TP (or EP) across more than two domains is never the best
            if model.heads % world == 0:     # engines need the attention heads to split evenly over TP
                out.append((world, 1, pp, 1, world))
            if model.is_moe and model.heads % world == 0:
                out.append((world, 1, pp, world, 1))                      # EP over the TP group
                if ENGINE_ATTN_DP.get(engine) and world > 1 and (model.is_mla or model.kv_heads < world):
                    out.append((1, world, pp, world, 1))                  # attention DP + EP
    return sorted(set(out))


CHUNKS = (2048.0, 8192.0)      # chunked-prefill token budgets worth comparing (smooth TPOT vs fast TTFT)


def aggregated_space(model: ModelSpec, chip: Chip, gpus: int, engine: str, *,
                     dtypes: list[str] | None = None, spec_options: list[int] | None = None,
                     kv_options: list[str] | None = None) -> Space:
    lays = instance_layouts(model, gpus, chip.scaleup_size, engine)
    wds = dtypes or weight_dtypes(model, chip, engine)
    kvs = kv_options or kv_dtypes(chip)
    specs = spec_options if spec_options is not None else ([0, 1, 3] if model.mtp_layers else [0])
    conc = CONCURRENCY_PER_GPU * gpus
    rows = list(itertools.product(range(len(lays)), range(len(wds)), range(len(kvs)), specs, CHUNKS))
    L = np.array([lays[r[0]] for r in rows], dtype=float).reshape(-1, 5)
    W = np.array([wds[r[1]] for r in rows])
    K = np.array([kvs[r[2]] for r in rows])
    S = np.array([r[3] for r in rows], dtype=float)
    C = np.array([r[4] for r in rows], dtype=float)
    n_c = conc.size
    rep = lambda a: np.repeat(a, n_c)  # noqa: E731
    size = L[:, 0] * L[:, 1] * L[:, 2]
    return Space(attn_tp=rep(L[:, 0]), attn_dp=rep(L[:, 1]), pp=rep(L[:, 2]), moe_ep=rep(L[:, 3]),
                 moe_tp=rep(L[:, 4]), replicas=rep(gpus / size), weight_dtype=rep(W), kv_dtype=rep(K),
                 concurrency=np.tile(conc, len(rows)), spec_draft=rep(S), chunk=rep(C))
