"""Serve a request rate on the fewest GPUs (``search --request-rate R [--slo-percentile P]``).

Two stages. The analytic steady state (perf.serving, open loop) screens every instance layout, weight and KV
dtype and prefill budget at every replica count up to the GPU limit, and keeps, per configuration, the fewest
replicas whose mean TTFT and TPOT meet the targets below 90 % utilisation. The best few are then run through
the scheduler simulation (perf.simulate) at their share of the rate, and judged on the percentile asked for
(TTFT, and each request's mean TPOT); where the simulation misses a target a replica is added and it is run
again. Ranking: fewest GPUs, then the most headroom (the lowest utilisation).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from pydantic import BaseModel

from stockpile.catalog.chips import Chip
from stockpile.catalog.dtypes import is_auto
from stockpile.catalog.models import ModelSpec
from stockpile.errors import InputError
from stockpile.perf.calibration import Calibration, load_calibration
from stockpile.perf.inference import (
    KV_DTYPES,
    WEIGHT_DTYPES,
    Configs,
    check_dtype,
    check_engine,
    check_engine_chip,
    evaluate,
    hybrid_kv,
)
from stockpile.perf.serving import MODE_OPEN, check_request_rate
from stockpile.search.serving import MAX_SEARCH_GPUS
from stockpile.search.space import CHUNKS, instance_layouts, kv_dtypes, weight_dtypes

SCREEN_UTILISATION = 0.9     # the steady state's utilisation above which a configuration is not kept
RERANK = 6                   # configurations re-run through the simulation
MAX_EXTRA_REPLICAS = 4       # replicas added, one at a time, where the simulation misses a target


class RateCandidate(BaseModel):
    rank: int
    layout_text: str
    instance: dict[str, int]
    replicas: int
    gpus: int
    weight_dtype: str
    kv_dtype: str
    chunk: int
    ttft_ms: float              # at the percentile asked for (mean when none)
    tpot_ms: float
    ttft_mean_ms: float
    tpot_mean_ms: float
    requests_per_s: float
    utilisation: float          # steady-state share of one instance's capacity the rate uses
    backlog: int
    meets_slo: bool
    simulated: bool


class RateSearchResult(BaseModel):
    model: str
    chip: str
    engine: str
    request_rate: float
    isl: float
    osl: float
    ttft_ms: float | None
    tpot_ms: float | None
    percentile: float | None
    max_gpus: int
    evaluated: int
    simulated: int
    seconds: float
    candidates: list[RateCandidate]
    message: str

    @property
    def best(self) -> RateCandidate | None:
        return self.candidates[0] if self.candidates and self.candidates[0].meets_slo else None


def _percentile(a: np.ndarray, p: float | None) -> float:
    if not len(a):
        return float("nan")
    return float(np.mean(a)) if p is None else float(np.percentile(a, p))


def rate_search(model: ModelSpec, chip: Chip, *, rate: float, isl: float, osl: float, ttft_ms: float | None = None,
                tpot_ms: float | None = None, percentile: float | None = None, engine: str = "vllm",
                max_gpus: int = 64, dtypes: list[str] | None = None, kv: list[str] | None = None, top: int = 5,
                num_requests: int = 2000, calibration: Calibration | None = None) -> RateSearchResult:
    t0 = time.perf_counter()
    engine = check_engine(engine)
    check_engine_chip(engine, chip)
    check_request_rate(rate)
    if percentile is not None and not 0 < percentile < 100:
        raise InputError("slo_percentile", f"must be between 0 and 100 (e.g. 90 or 99), got {percentile}")
    if max_gpus < 1 or max_gpus > MAX_SEARCH_GPUS:
        raise InputError("gpus", f"must be 1..{MAX_SEARCH_GPUS:,}, got {max_gpus:,}")
    for name, v in (("isl", isl), ("osl", osl)):
        if not (np.isfinite(v) and v > 0):
            raise InputError(name, f"must be a positive token count, got {v}")
    if dtypes:
        dtypes = [check_dtype("weight_dtype", d, WEIGHT_DTYPES) for d in dtypes]
    kv = [d for d in kv or [] if not is_auto(d)]
    if kv:
        kv = [check_dtype("kv_dtype", d, KV_DTYPES) for d in kv]
    cal = calibration or load_calibration()
    # instance layouts of every size up to the limit (one scale-up domain or less per instance is enough here)
    sizes = [s for s in (1, 2, 4, 8, 16, 32) if s <= max_gpus]
    lays = sorted({lay for s in sizes for lay in instance_layouts(model, s, chip.scaleup_size, engine)
                   if lay[0] * lay[1] * lay[2] == s})
    wds = dtypes or weight_dtypes(model, chip, engine)
    kvs = kv or kv_dtypes(chip)
    rows = [(lay, w, k, c) for lay in lays for w in wds for k in kvs for c in CHUNKS]
    if not rows:
        raise InputError("gpus", f"{model.id} has no instance layout within {max_gpus} x {chip.id}")
    inst = np.array([r[0][0] * r[0][1] * r[0][2] for r in rows], dtype=float)
    reps = [np.arange(1, int(max_gpus // g) + 1, dtype=float) for g in inst]
    row_of = np.concatenate([np.full(len(r), i) for i, r in enumerate(reps)])
    n_rep = np.concatenate(reps)
    L = np.array([rows[i][0] for i in row_of], dtype=float).reshape(-1, 5)
    cfg = Configs(attn_tp=L[:, 0], attn_dp=L[:, 1], pp=L[:, 2], moe_ep=L[:, 3], moe_tp=L[:, 4], replicas=n_rep,
                  weight_dtype=np.array([rows[i][1] for i in row_of]), kv_dtype=np.array([rows[i][2] for i in row_of]),
                  isl=isl, osl=osl, mode=MODE_OPEN, rate=rate, num_requests=float(num_requests), sync=0.0,
                  chunk=np.array([rows[i][3] for i in row_of]), hybrid_kv=hybrid_kv(engine))
    out = evaluate(model, chip, engine, cfg, cal)
    util = np.asarray(out["utilisation"], float)
    ok = np.asarray(out["fits"], bool) & (util < SCREEN_UTILISATION)
    if ttft_ms:
        ok &= np.asarray(out["ttft_s"]) * 1e3 <= ttft_ms
    if tpot_ms:
        ok &= np.asarray(out["tpot_s"]) * 1e3 <= tpot_ms
    # per configuration, its fewest replicas that pass the screen
    first: dict[int, int] = {}
    for jj in np.flatnonzero(ok):
        first.setdefault(int(row_of[jj]), int(jj))
    ranked = sorted(first.values(), key=lambda j: (inst[row_of[j]] * n_rep[j], util[j]))
    cands: list[RateCandidate] = []
    simulated = 0
    for j in ranked[:RERANK]:
        cand = None
        for extra in range(MAX_EXTRA_REPLICAS + 1):
            cand = _simulate(model, chip, engine, cal, rows[int(row_of[j])], int(n_rep[j]) + extra, rate, isl, osl,
                             num_requests, ttft_ms, tpot_ms, percentile, float(util[j]) * n_rep[j] / (n_rep[j] + extra))
            simulated += 1
            if cand.meets_slo or cand.gpus + inst[row_of[j]] > max_gpus:
                break
        assert cand is not None
        cands.append(cand)
    cands.sort(key=lambda c: (not c.meets_slo, c.gpus, c.utilisation))
    cands = cands[:top]
    for k, c in enumerate(cands):
        c.rank = k + 1
    target = " and ".join(t for t in (f"TTFT <= {ttft_ms:g} ms" if ttft_ms else "",
                                       f"TPOT <= {tpot_ms:g} ms" if tpot_ms else "") if t) or "no latency target"
    stat = f"p{percentile:g}" if percentile is not None else "means"
    if cands and cands[0].meets_slo:
        msg = (f"{rate:g} req/s within {target} ({stat}, simulated) on {cands[0].gpus} x {chip.id}: "
               f"{cands[0].layout_text}")
    elif cands:
        msg = (f"no configuration within {max_gpus} GPUs meets {target} at {stat} in the simulation; the closest "
               "are shown. Allow more GPUs (--gpus), relax the targets, or use a faster chip")
    else:
        msg = (f"no configuration within {max_gpus} x {chip.id} serves {rate:g} req/s within {target} even in "
               "the steady state; allow more GPUs (--gpus) or relax the targets")
    return RateSearchResult(model=model.id, chip=chip.id, engine=engine, request_rate=rate, isl=isl, osl=osl,
                            ttft_ms=ttft_ms, tpot_ms=tpot_ms, percentile=percentile, max_gpus=max_gpus,
                            evaluated=int(n_rep.size), simulated=simulated, seconds=time.perf_counter() - t0,
                            candidates=cands, message=msg)


def _simulate(model: ModelSpec, chip: Chip, engine: str, cal: Calibration, row: tuple[Any, ...], replicas: int,
              rate: float, isl: float, osl: float, num_requests: int, ttft_ms: float | None, tpot_ms: float | None,
              percentile: float | None, util: float) -> RateCandidate:
    from stockpile.perf.traffic import simulate_estimate
    lay, wd, kvd, chunk = row
    tp, dp, pp, ep, etp = (int(v) for v in lay)
    cfg = Configs(attn_tp=tp, attn_dp=dp, pp=pp, moe_ep=ep, moe_tp=etp, replicas=replicas, weight_dtype=wd,
                  kv_dtype=kvd, isl=isl, osl=osl, rate=rate, num_requests=float(num_requests), chunk=chunk)
    sim = simulate_estimate(model, chip, engine, cfg, calibration=cal)
    ttft = _percentile(sim.ttft, percentile) * 1e3
    tpot = _percentile(sim.tpot, percentile) * 1e3
    meets = sim.completed > 0 and not sim.growing
    if ttft_ms:
        meets &= ttft <= ttft_ms
    if tpot_ms:
        meets &= tpot <= tpot_ms
    size = tp * dp * pp
    text = f"TP{tp}" + (f" DP{dp}" if dp > 1 else "") + (f" PP{pp}" if pp > 1 else "") + (f" EP{ep}" if ep > 1 else "")
    return RateCandidate(rank=0, layout_text=f"{text} x {replicas} replicas" if replicas > 1 else text,
                         instance={"tp": tp, "attn_dp": dp, "pp": pp, "ep": ep, "gpus": size}, replicas=replicas,
                         gpus=size * replicas, weight_dtype=wd, kv_dtype=kvd, chunk=int(chunk), ttft_ms=round(ttft, 1),
                         tpot_ms=round(tpot, 2), ttft_mean_ms=round(float(np.mean(sim.ttft)) * 1e3, 1),
                         tpot_mean_ms=round(float(np.mean(sim.tpot)) * 1e3 if len(sim.tpot) else float("nan"), 2),
                         requests_per_s=round(sim.requests_per_s * replicas, 3), utilisation=round(util, 3),
                         backlog=sim.backlog, meets_slo=bool(meets), simulated=True)
