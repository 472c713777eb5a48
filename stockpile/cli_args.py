"""Argument parsing the CLI's commands share: comma lists of dtypes, latency targets, and the serving
searches that `search` and `export` run from their flags."""
from __future__ import annotations

import math
from typing import Any, Optional


def dtype_list(text: Optional[str]) -> Optional[list[str]]:
    """'fp8, BF16' -> ['fp8', 'bf16']; blank entries dropped; None for no text."""
    return [d.strip().lower() for d in text.split(",") if d.strip()] if text else None


def check_latency_targets(ttft_ms: Optional[float], tpot_ms: Optional[float]) -> None:
    """Latency targets must be finite positive milliseconds (InputError naming the flag otherwise)."""
    from stockpile.errors import InputError
    for name, v in (("ttft_ms", ttft_ms), ("tpot_ms", tpot_ms)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise InputError(name, f"must be a finite positive latency target in ms, got {v}")


def search_runs(model: str, chip: str, gpus: int, isl: str, osl: str, ttft_ms: Optional[float],
                 tpot_ms: Optional[float], engine: str, top: int, weight_dtype: Optional[str], disagg: bool,
                 kv_dtype: Optional[str] = None, spec_draft: Optional[int] = None,
                 spec_accept: Optional[float] = None, prefill_chip: Optional[str] = None,
                 objective: str = "throughput", pairs: bool = False,
                 engine_version: Optional[str] = None,
                 confidence: Optional[float] = None) -> tuple[Any, list[tuple[Any, Any]]]:
    """The model and one serving search per chip (or per prefill/decode pair) the search and export commands
    ask for, after checking their arguments (InputError naming the flag)."""
    from stockpile.catalog import get_chip, get_model
    from stockpile.catalog.models import implied_weight_dtype
    from stockpile.errors import InputError, MissingFigureError
    from stockpile.search.serving import SearchResult, Slo, Spec, search
    from stockpile.units import parse_count
    if gpus < 1:
        raise InputError("gpus", f"must be >= 1, got {gpus}")
    check_latency_targets(ttft_ms, tpot_ms)
    m = get_model(model)
    wd = weight_dtype or implied_weight_dtype(model)
    dtypes = dtype_list(wd)
    chips = [get_chip(c.strip()) for c in chip.split(",") if c.strip()]
    if not chips:
        raise InputError("chip", f"no chip id in '{chip}'; give one (or several separated by commas)")
    if wd and not dtypes:
        raise InputError("weight_dtype", f"no dtype in '{weight_dtype}'; e.g. bf16 or fp8,bf16")
    slo = Slo(ttft_ms=ttft_ms, tpot_ms=tpot_ms)
    kvs = dtype_list(kv_dtype)
    spec = Spec(draft=spec_draft, accept_length=spec_accept)
    pres = [get_chip(x.strip()) for x in prefill_chip.split(",") if x.strip()] if prefill_chip else [None]
    pre = pres[0]
    if pre is not None and not disagg:
        raise InputError("prefill_chip", "a prefill chip needs disaggregated serving; drop --no-disagg")
    n_in, n_out = parse_count(isl, field="isl"), parse_count(osl, field="osl")

    # --prefill-chips P1,P2 --decode-chips D1,D2: every (prefill, decode) pair; the same chip on both is a plain search
    def one(c: Any, p: Any) -> Any:
        try:
            return search(m, c, gpus=gpus, isl=n_in, osl=n_out,
                          slo=slo, engine=engine, top=top, dtypes=dtypes, disaggregation=disagg, kv_dtypes=kvs,
                          spec=spec, prefill_chip=None if p is None or p.id == c.id else p, objective=objective,
                          engine_version=engine_version, confidence=confidence)
        except MissingFigureError as exc:
            if len(chips) * len(pres) == 1:
                raise
            # a comparison goes on without a chip whose figures cannot predict it, and says why
            return SearchResult(model=m.id, chip=c.id, gpus=gpus, engine=engine or "vllm", isl=n_in, osl=n_out,
                                slo=slo, evaluated=0, seconds=0.0, feasible=0, meets_slo=0, candidates=[], pareto=[],
                                message=f"{c.id} left out of the comparison: {exc}")
    results = [(c, one(c, p)) for c in chips for p in pres]
    if pairs:
        if len(chips) < 2 or pre is not None:
            raise InputError("pairs", "--pairs needs two or more --chips (and no --prefill-chip)")
        import itertools
        results += [(dec, search(m, dec, gpus=gpus, isl=n_in, osl=n_out, slo=slo,
                                 engine=engine, top=top, dtypes=dtypes, disaggregation=True, kv_dtypes=kvs, spec=spec,
                                 prefill_chip=p_chip, objective=objective, aggregated=False,
                                 engine_version=engine_version, confidence=confidence))
                    for p_chip, dec in itertools.permutations(chips, 2)]
    return m, results
