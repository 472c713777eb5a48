"""Goodput at cluster scale: interruptions, checkpointing (Young/Daly), restarts, and the largest job a stock
supports with spare nodes.

Defaults are published figures: Meta's Llama 3 405B pre-training saw 419 unexpected interruptions in a
54-day snapshot on 16,384 H100 GPUs (Llama 3 paper, https://arxiv.org/abs/2407.21783, sec. 3.3.4; also
shared/data/fleet_facts.csv), and its checkpoint storage sustains 2 TB/s (same paper, sec. 3.3.1).
Optimal checkpoint interval: Young 1974 ("A first order approximation to the optimum checkpoint interval",
CACM 17(9)) and Daly 2006 ("A higher order estimate of the optimum checkpoint interval for restart dumps",
FGCS 22(3)). Equations: docs/training-model.md.
"""
from __future__ import annotations

import math

from pydantic import BaseModel

from stockpile.errors import InputError

LLAMA3_INTERRUPTIONS = 419
LLAMA3_DAYS = 54.0
LLAMA3_GPUS = 16384
INTERRUPTIONS_PER_GPU_DAY = LLAMA3_INTERRUPTIONS / (LLAMA3_DAYS * LLAMA3_GPUS)   # 4.74e-4
STORAGE_BW_MAX = 2e12          # bytes/s, Llama 3 paper: Tectonic sustains 2 TB/s for checkpoints
STORAGE_BW_PER_NODE = 2e9      # bytes/s a node writes to shared storage (assumption, documented)
RESTART_S = 600.0              # detect, re-schedule, re-initialise communicators, load the checkpoint (assumption)
CHECKPOINT_BYTES_PER_PARAM = 14.0   # bf16 weights + fp32 master weights + two fp32 Adam moments
REPAIR_DAYS = 3.0              # a failed node back in the pool (assumption, documented)


class Goodput(BaseModel):
    """Expected cost of failures for one job: rates in events per day, times in seconds."""

    gpus: int
    interruptions_per_day: float
    mtbf_s: float
    checkpoint_bytes: float
    checkpoint_write_s: float
    checkpoint_interval_s: float
    restart_s: float
    goodput: float               # useful training time / wall-clock time


def interruptions_per_day(gpus: float, rate_per_gpu_day: float = INTERRUPTIONS_PER_GPU_DAY) -> float:
    """Expected unexpected interruptions per day of a job on `gpus` GPUs (any GPU failing stops the job)."""
    return gpus * rate_per_gpu_day


def checkpoint_write_s(checkpoint_bytes: float, gpus: int, *, gpus_per_node: int = 8,
                       storage_bw: float = STORAGE_BW_MAX, node_bw: float = STORAGE_BW_PER_NODE) -> float:
    """Seconds the job stalls writing one checkpoint: all nodes write their shards in parallel, capped by the
    storage system's sustained bandwidth."""
    nodes = max(1, math.ceil(gpus / gpus_per_node))
    return checkpoint_bytes / min(storage_bw, nodes * node_bw)


def optimal_interval_s(write_s: float, mtbf_s: float) -> float:
    """Daly 2006 eq. (37): tau = sqrt(2 delta M) [1 + sqrt(delta/2M)/3 + delta/(9 x 2M)] - delta for delta < 2M,
    else M. Its first term is Young's 1974 sqrt(2 delta M)."""
    d, m = write_s, mtbf_s
    if d >= 2 * m:
        return m
    x = d / (2 * m)
    return math.sqrt(2 * d * m) * (1 + math.sqrt(x) / 3 + x / 9) - d


def goodput_fraction(write_s: float, interval_s: float, restart_s: float, mtbf_s: float) -> float:
    """Useful time / wall time with checkpoints every `interval_s` of work: each interval costs delta to write;
    each failure (one per M on average) costs the restart R plus, on average, half an interval of lost work
    (Young 1974's first-order model): waste = delta/tau + (R + (tau + delta)/2)/M."""
    waste = write_s / interval_s + (restart_s + (interval_s + write_s) / 2) / mtbf_s
    return 1.0 / (1.0 + waste)


def job_goodput(gpus: int, params: float, *, rate_per_gpu_day: float = INTERRUPTIONS_PER_GPU_DAY,
                restart_s: float = RESTART_S, storage_bw: float = STORAGE_BW_MAX,
                gpus_per_node: int = 8) -> Goodput:
    """Goodput of a job of `gpus` GPUs training a model of `params` parameters (Adam, mixed precision)."""
    if gpus < 1 or params <= 0:
        raise InputError("gpus", "a job needs at least one GPU and a model with parameters")
    rate = interruptions_per_day(gpus, rate_per_gpu_day)
    mtbf = 86400.0 / rate if rate > 0 else math.inf
    ckpt = params * CHECKPOINT_BYTES_PER_PARAM
    write = checkpoint_write_s(ckpt, gpus, gpus_per_node=gpus_per_node, storage_bw=storage_bw)
    if math.isinf(mtbf):
        return Goodput(gpus=gpus, interruptions_per_day=0.0, mtbf_s=mtbf, checkpoint_bytes=ckpt,
                       checkpoint_write_s=write, checkpoint_interval_s=math.inf, restart_s=restart_s, goodput=1.0)
    tau = optimal_interval_s(write, mtbf)
    return Goodput(gpus=gpus, interruptions_per_day=rate, mtbf_s=mtbf, checkpoint_bytes=ckpt,
                   checkpoint_write_s=write, checkpoint_interval_s=tau, restart_s=restart_s,
                   goodput=goodput_fraction(write, tau, restart_s, mtbf))


def _poisson_sf(k: int, mu: float) -> float:
    """P(X > k) for X ~ Poisson(mu)."""
    term = cdf = math.exp(-mu)
    for i in range(1, k + 1):
        term *= mu / i
        cdf += term
    return max(0.0, 1.0 - cdf)


def largest_job_nodes(stock_nodes: int, spare_nodes: int, *, gpus_per_node: int = 8,
                      rate_per_gpu_day: float = INTERRUPTIONS_PER_GPU_DAY, repair_days: float = REPAIR_DAYS,
                      risk: float = 0.01) -> int:
    """Largest job (nodes) a stock of `stock_nodes` runs with `spare_nodes` hot spares, such that the chance
    that more nodes are down at once than there are spares stays below `risk`.

    Nodes of the job and its spares fail at rate lambda = gpus_per_node x rate per day and return after
    `repair_days`; by Little's law the nodes down at a time are Poisson with mean (J + S) lambda T_repair."""
    if stock_nodes < 1 or spare_nodes < 0:
        raise InputError("stock_nodes", "needs at least one node and a non-negative number of spares")
    lam = gpus_per_node * rate_per_gpu_day

    def ok(job: int) -> bool:
        return _poisson_sf(spare_nodes, (job + spare_nodes) * lam * repair_days) <= risk

    lo, hi = 0, max(stock_nodes - spare_nodes, 0)      # the risk grows with the job: bisect the largest ok
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo
