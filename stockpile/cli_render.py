"""How the command line shows results (rich tables, --json): the CLI's rendering, kept apart from its parsing."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

# Wide tables when output is piped (rich falls back to 80 columns without a terminal).
out = Console(width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160")))
err = Console(stderr=True)


def json_text(obj: Any) -> str:
    """The CLI's JSON output of `obj` (pydantic models and numpy values included)."""
    return json.dumps(obj, indent=2, default=_jsonable) + "\n"


def emit_json(obj: Any) -> None:
    sys.stdout.write(json_text(obj))


def _jsonable(o: Any) -> Any:
    if hasattr(o, "model_dump"):
        return o.model_dump()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def render_estimate(e: Any) -> None:
    if not e.fits:
        out.print(f"[red]{e.model} does not fit on {e.gpus} x {e.chip} ({e.layout_text}, {e.weight_dtype} weights):"
                  f"[/red] {e.limits}")
        for a in e.assumptions:
            out.print(f"[dim]assumed: {a}[/dim]")
        return
    t = Table(title=f"{e.model} on {e.gpus} x {e.chip} ({e.engine}, {e.layout_text}, "
                    f"{e.weight_dtype} weights / {e.kv_dtype} KV)", show_header=True)
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [("fits in memory", "yes" if e.fits else "NO"), ("load", f"{e.mode}" + (
        f", concurrency {e.concurrency:g}" if e.concurrency else "") + (
        f", {e.request_rate:g} req/s" if e.request_rate else "")),
        ("TTFT", f"{e.ttft_ms:,.1f} ms" + (f" (p50 {e.ttft_p50_ms:,.1f}, p90 {e.ttft_p90_ms:,.1f}, "
                                           f"p99 {e.ttft_p99_ms:,.1f})" if e.ttft_p50_ms is not None else "")),
        ("TPOT", f"{e.tpot_ms:,.2f} ms" + (f" (p50 {e.tpot_p50_ms:,.2f}, p90 {e.tpot_p90_ms:,.2f}, "
                                           f"p99 {e.tpot_p99_ms:,.2f})" if e.tpot_p50_ms is not None else "")),
        ("end-to-end latency", f"{e.e2e_latency_s:,.2f} s"),
        ("output tokens/s", f"{e.output_tokens_per_s:,.0f}"),
        ("output tokens/s per GPU", f"{e.output_tokens_per_s_per_gpu:,.0f}"),
        ("total tokens/s", f"{e.total_tokens_per_s:,.0f}"), ("requests/s", f"{e.requests_per_s:,.2f}"),
        ("tokens/s per user", f"{e.tokens_per_s_per_user:,.1f}"),
        ("running batch / max", f"{e.batch:,.0f} / {e.max_batch:,}"),
        ("memory per GPU", f"{e.memory_gb.total_gb:,.1f} GB of {e.memory_gb.capacity_gb:,.0f} "
                           f"(weights {e.memory_gb.weights_gb:,.1f}, KV {e.memory_gb.kv_cache_gb:,.1f}, "
                           f"reserve {e.memory_gb.reserve_gb:,.1f})"),
        ("compute path", e.compute_path), ("limited by", e.limits)]
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)
    if e.cost:
        c = e.cost
        if "missing" in c:
            out.print(f"cost: {c['missing']}")
        else:
            out.print(f"cost: {c['usd_per_million_output_tokens']:,.3f} USD per million output tokens "
                      f"({c['usd_per_million_tokens']:,.3f} per million tokens in+out) at {c['usd_per_gpu_hour']:.2f} "
                      f"USD/GPU-h ({c['how']})")
            if c.get("usd_per_mtok_input") is not None and c.get("usd_per_mtok_output") is not None:
                out.print(f"split by token kind ({100 * c['input_share']:.0f} % of the device time on prompts): "
                          f"{c['usd_per_mtok_input']:,.3f} USD per million input tokens, "
                          f"{c['usd_per_mtok_output']:,.3f} per million output tokens")
            api, be = c.get("api"), (c.get("api") or {}).get("break_even")
            if api and be:
                verdict = (f"self-hosting is cheaper above {100 * be['utilisation']:.0f} % of this deployment's "
                           f"capacity ({be['output_tokens_per_day']:,} output tokens a day)" if be["utilisation"] <= 1
                           else f"this deployment never beats the API (it would need {be['utilisation']:.1f}x its "
                                "capacity)")
                out.print(f"against the API ({api['usd_per_million_input']:g} in / {api['usd_per_million_output']:g} "
                          f"out USD per million, {api['date']}): {verdict}")
    if e.band_note:
        out.print(f"uncertainty: {e.band_note}")
    for a in e.assumptions:
        out.print(f"[dim]assumed: {a}[/dim]")


def render_search(r) -> None:
    t = Table(title=f"{r.model} on {r.gpus} x {r.chip} ({r.engine}), ISL {r.isl:g} / OSL {r.osl:g}, {r.slo.text()}")
    for col in ("#", "mode", "layout", "w/kv", "MTP", "chunk", "conc", "TTFT ms", "TPOT ms", "tok/s/GPU",
                "tok/s/user", "SLO", "limited by"):
        t.add_column(col, overflow="fold")
    for c in r.candidates:
        t.add_row(str(c.rank), "P/D" if c.mode == "disaggregated" else "agg", c.layout_text, f"{c.weight_dtype}/{c.kv_dtype}", str(c.spec_draft or "-"),
                  str(c.chunk or "-"), f"{c.concurrency:g}", f"{c.ttft_ms:,.0f}", f"{c.tpot_ms:,.1f}", f"{c.output_tokens_per_s_per_gpu:,.0f}",
                  f"{c.tokens_per_s_per_user:,.0f}", "yes" if c.meets_slo else "NO", c.limits)
    out.print(t)
    if r.best:
        out.print(f"best: {r.best.layout_text}, {r.best.weight_dtype} weights, {r.best.kv_dtype} KV, concurrency "
                  f"{r.best.concurrency:g}: {r.best.why}")
    out.print(f"{r.message}; {r.evaluated:,} configurations evaluated in {1e3 * r.seconds:.0f} ms")
    for note in r.notes:
        out.print(f"assumed: {note}")
    if r.band_note:
        edge = [c for c in r.candidates if c.meets_slo_at_p90 is not None and c.meets_slo]
        safe = sum(1 for c in edge if c.meets_slo_at_p90)
        tail = (f"; {safe} of the {len(edge)} listed configurations meeting the targets still meet them at their "
                "band's upper edge" if edge and (r.slo.ttft_ms or r.slo.tpot_ms) else "")
        out.print(f"uncertainty: {r.band_note}{tail}")
    if r.pareto:
        front = ", ".join(f"{p['tokens_per_s_per_user']:.0f}->{p['output_tokens_per_s_per_gpu']:.0f}"
                          for p in r.pareto[:: max(1, len(r.pareto) // 8)])
        out.print(f"[dim]Pareto front (tok/s per user -> tok/s per GPU): {front}[/dim]")


def render_comparison(results) -> None:
    from stockpile.catalog import get_chip
    from stockpile.catalog.prices import gpu_hour_cost, usd_per_million
    t = Table(title="Chips side by side (best configuration meeting the targets; USD/GPU-h averaged over the GPUs)")
    for col in ("chip", "layout", "tok/s/GPU", "tok/s per kW", "USD/GPU-h", "USD per M output tok", "TPOT ms",
                "TTFT ms"):
        t.add_column(col)
    notes = []
    for chip, r in results:
        b = r.best
        pre_id = (b.prefill or {}).get("chip") if b is not None else None
        label = f"{pre_id} -> {chip.id} (P/D)" if pre_id else chip.id
        if b is None:
            # a chip the model cannot predict (no sourced peak) was not searched: say so, not that nothing fits
            t.add_row(label, "not predicted (see above)" if r.evaluated == 0 else "nothing meets the targets",
                      "-", "-", "-", "-", "-", "-")
            continue
        # GPUs of each chip in the best configuration (a mixed pair: the prefill pool on its own chip)
        split = {chip.id: float(r.gpus)}
        if pre_id:
            pre = b.prefill or {}
            n_pre = pre.get("instances", 0) * pre.get("attn_tp", 1) * pre.get("attn_dp", 1) * pre.get("pp", 1)
            split = {pre_id: float(n_pre), chip.id: float(r.gpus - n_pre)}
        chips = {cid: get_chip(cid) for cid in split}
        tok_s = b.output_tokens_per_s_per_gpu * r.gpus
        tdps = {cid: c.tdp_w.value for cid, c in chips.items() if c.tdp_w is not None}
        kw_total = sum(n * tdps[cid] / 1000 for cid, n in split.items() if cid in tdps)
        kw = f"{tok_s / kw_total:,.0f}" if kw_total and len(tdps) == len(chips) else "-"
        costs = {cid: gpu_hour_cost(c) for cid, c in chips.items()}
        if any(c is None for c in costs.values()):
            usd, mtok = "no price source", "-"
        else:
            usd_h = sum(split[cid] * c.usd_per_gpu_hour for cid, c in costs.items() if c is not None)
            usd = f"{usd_h / r.gpus:.2f} (" + "/".join(sorted({c.basis for c in costs.values() if c})) + ")"
            per = usd_per_million(usd_h, 1, tok_s)
            mtok = "-" if per is None else f"{per:,.3f}"
            notes += [f"{cid}: {c.text}" for cid, c in costs.items() if c is not None and f"{cid}: {c.text}" not in notes]
        t.add_row(label, b.layout_text, f"{b.output_tokens_per_s_per_gpu:,.0f}", kw, usd, mtok, f"{b.tpot_ms:.1f}",
                  f"{b.ttft_ms:,.0f}")
    out.print(t)
    for n in notes:
        out.print(f"[dim]cost: {n}[/dim]")


def render_allocation(doc: dict[str, Any], every: int = 3) -> None:
    """Chips per chip type and month (every `every` months): training / inference / idle, and utilisation."""
    rows = doc.get("allocation") or []
    months = sorted({r["month"] for r in rows})[::every]
    chips = sorted({r["chip"] for r in rows})
    t = Table(title=f"Allocation (chips: training / inference / idle, utilisation), every {every} months")
    t.add_column("month")
    for c in chips:
        t.add_column(c, justify="right")
    by = {(r["month"], r["chip"]): r for r in rows}
    for m in months:
        cells = []
        for c in chips:
            r = by.get((m, c))
            if r is None:
                cells.append("-")
                continue
            inf = sum((r.get("inference") or {}).values())
            cells.append(f"{r['training']:,} / {inf:,} / {r['idle']:,} ({100 * r['utilisation']:.0f}%)")
        t.add_row(m, *cells)
    out.print(t)


def render_chips(chips: list[Any]) -> None:
    t = Table(title=f"Accelerators ({len(chips)})", show_lines=False)
    for col in ("id", "vendor", "year", "mem GB", "TB/s", "bf16 TF", "fp8 TF", "fp4 TF", "link GB/s", "TDP W",
                "TPP", "3A090", "export status"):
        t.add_column(col, overflow="fold")
    f = lambda fig, d=0: "-" if fig is None else f"{fig.value:,.{d}f}"  # noqa: E731
    for c in chips:
        t.add_row(c.id, c.vendor, str(c.year or "-"), f(c.memory_gb), f(c.memory_bw_gbs and c.memory_bw_gbs.model_copy(
            update={"value": c.memory_bw_gbs.value / 1000}), 2), f(c.bf16_tflops), f(c.fp8_tflops), f(c.fp4_tflops),
            f(c.scaleup_bw_gbs), f(c.tdp_w), "-" if c.tpp is None else f"{c.tpp:,.0f}", c.eccn_3a090,
            c.export.status if c.export else "-")
    out.print(t)


def render_models(recs: list[dict[str, Any]]) -> None:
    t = Table(title=f"Models ({len(recs)})")
    for col in ("id", "type", "params B", "active B", "layers", "hidden", "attn", "heads/kv", "experts", "KV KB/tok"):
        t.add_column(col)
    for r in recs:
        t.add_row(r["id"], r["architecture"], f"{r['params_b']:.2f}", f"{r['active_params_b']:.2f}", str(r["layers"]),
                  str(r["hidden"]), r["attention"], f"{r['heads']}/{r['kv_heads']}",
                  f"{r['experts_per_token']}/{r['experts']}" if r["experts"] else "-",
                  f"{r['kv_bytes_per_token_bf16'] / 1024:.0f}")
    out.print(t)
