"""`stockpile search --request-rate`: run the rate search and show it (the CLI's rendering of search/rate.py)."""
from __future__ import annotations

from typing import Optional

from rich.table import Table


def rate_search_command(model: str, chip: str, gpus: Optional[int], isl: float, osl: float,
                        ttft_ms: Optional[float], tpot_ms: Optional[float], engine: str, top: int,
                        weight_dtype: Optional[str], kv_dtype: Optional[str], rate: float,
                        percentile: Optional[float], json_out: bool) -> None:
    from stockpile.catalog import get_chip, get_model
    from stockpile.catalog.models import implied_weight_dtype
    from stockpile.cli_args import check_latency_targets, dtype_list
    from stockpile.cli_render import emit_json, out
    from stockpile.errors import InfeasibleError
    from stockpile.search.rate import rate_search
    check_latency_targets(ttft_ms, tpot_ms)
    m = get_model(model)
    c = get_chip(chip.split(",")[0].strip())
    dtypes = dtype_list(weight_dtype or implied_weight_dtype(model))
    kvs = dtype_list(kv_dtype)
    r = rate_search(m, c, rate=rate, isl=isl, osl=osl, ttft_ms=ttft_ms, tpot_ms=tpot_ms, percentile=percentile,
                    engine=engine, max_gpus=64 if gpus is None else gpus, dtypes=dtypes, kv=kvs, top=top)
    if json_out:
        emit_json({**r.model_dump(), "best": r.best.model_dump() if r.best else None})
    else:
        stat = f"p{percentile:g}" if percentile is not None else "mean"
        t = Table(title=f"{r.model} on {r.chip} ({r.engine}): {rate:g} req/s, ISL {isl:g} / OSL {osl:g}")
        for col in ("#", "layout", "GPUs", "w/kv", "chunk", f"TTFT {stat} ms", f"TPOT {stat} ms", "TTFT mean",
                    "TPOT mean", "utilisation", "SLO"):
            t.add_column(col)
        for k in r.candidates:
            t.add_row(str(k.rank), k.layout_text, str(k.gpus), f"{k.weight_dtype}/{k.kv_dtype}", str(k.chunk),
                      f"{k.ttft_ms:,.0f}", f"{k.tpot_ms:,.1f}", f"{k.ttft_mean_ms:,.0f}", f"{k.tpot_mean_ms:,.1f}",
                      f"{100 * k.utilisation:.0f}%", "yes" if k.meets_slo else "NO")
        out.print(t)
        out.print(f"{r.message}; {r.evaluated:,} configurations screened, {r.simulated} simulated, in "
                  f"{1e3 * r.seconds:.0f} ms")
    if not r.candidates:
        raise InfeasibleError(r.message)
