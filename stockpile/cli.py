"""Command line: parse, call the library, render. One place catches StockpileError and prints one line."""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from stockpile.errors import StockpileError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Stockpile: how far a fixed stock of accelerators goes, and how to get the most out of each.")
catalog_app = typer.Typer(no_args_is_help=True, help="Browse the accelerator and model catalogs.")
app.add_typer(catalog_app, name="catalog")
out = Console()
err = Console(stderr=True)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn any StockpileError (and bad numbers) into one line on stderr and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StockpileError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
    return wrapper


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(o: Any) -> Any:
    if hasattr(o, "model_dump"):
        return o.model_dump()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ------------------------------------------------------------------ catalog
@catalog_app.command("chips")
@guarded
def catalog_chips(json_out: bool = typer.Option(False, "--json", help="Print the records as JSON.")) -> None:
    """List the accelerators with their key specs and export-control status."""
    from stockpile.catalog.chips import list_chips
    chips = list_chips()
    if json_out:
        emit_json([{**c.model_dump(), "tpp": c.tpp, "eccn_3a090": c.eccn_3a090, "sources": c.sources()}
                   for c in chips])
        return
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


@catalog_app.command("models")
@guarded
def catalog_models(json_out: bool = typer.Option(False, "--json", help="Print the records as JSON.")) -> None:
    """List the shipped model architectures with derived parameter counts."""
    from stockpile.catalog.models import list_models
    models = list_models()
    recs = [{"id": m.id, "architecture": m.architecture, "family": m.family, "params_b": round(m.params / 1e9, 3),
             "active_params_b": round(m.active_params / 1e9, 3), "layers": m.layers, "hidden": m.hidden,
             "attention": m.attention, "heads": m.heads, "kv_heads": m.kv_heads, "experts": m.experts,
             "experts_per_token": m.experts_per_token, "published_params_b": m.published_params_b,
             "kv_bytes_per_token_bf16": m.kv_bytes_per_token(2.0), "aliases": list(m.aliases)} for m in models]
    if json_out:
        emit_json(recs)
        return
    t = Table(title=f"Models ({len(recs)})")
    for col in ("id", "type", "params B", "active B", "layers", "hidden", "attn", "heads/kv", "experts", "KV KB/tok"):
        t.add_column(col)
    for r in recs:
        t.add_row(r["id"], r["architecture"], f"{r['params_b']:.2f}", f"{r['active_params_b']:.2f}", str(r["layers"]),
                  str(r["hidden"]), r["attention"], f"{r['heads']}/{r['kv_heads']}",
                  f"{r['experts_per_token']}/{r['experts']}" if r["experts"] else "-",
                  f"{r['kv_bytes_per_token_bf16'] / 1024:.0f}")
    out.print(t)


# ------------------------------------------------------------------ estimate
def _count(text: Optional[str], field: str) -> Optional[float]:
    from stockpile.units import parse_count
    return None if text is None else parse_count(text, field=field)


@app.command()
@guarded
def estimate(
    model: str = typer.Option(..., "--model", help="HF repo id (or path to a config.json)."),
    chip: str = typer.Option(..., "--chip", help="Accelerator id, e.g. h800-sxm-80gb."),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="GPUs in all (default: tp*pp*dp)."),
    tp: Optional[int] = typer.Option(None, "--tp"), pp: Optional[int] = typer.Option(None, "--pp"),
    ep: Optional[int] = typer.Option(None, "--ep"), dp: Optional[int] = typer.Option(None, "--dp"),
    attention_dp: bool = typer.Option(False, "--attention-dp", help="Attention data parallel (MoE/MLA)."),
    weight_dtype: Optional[str] = typer.Option(None, "--weight-dtype"),
    kv_dtype: Optional[str] = typer.Option(None, "--kv-dtype"),
    engine: str = typer.Option("vllm", "--engine", help="vllm, sglang, trtllm."),
    isl: str = typer.Option(..., "--isl", help="Input tokens per request."),
    osl: str = typer.Option(..., "--osl", help="Output tokens per request."),
    concurrency: Optional[float] = typer.Option(None, "--concurrency", help="Closed-loop concurrency."),
    request_rate: Optional[float] = typer.Option(None, "--request-rate", help="Open-loop requests/s."),
    spec_draft: int = typer.Option(0, "--spec-draft", help="Speculative draft tokens (MTP/EAGLE)."),
    spec_accept: Optional[float] = typer.Option(None, "--spec-accept", help="Mean accepted tokens per step."),
    prefix_hit: float = typer.Option(0.0, "--prefix-hit", help="Fraction of prompt tokens served from cache."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Predict TTFT, TPOT, throughput and memory for one serving configuration."""
    from stockpile.catalog import get_chip, get_model
    from stockpile.catalog.models import implied_weight_dtype
    from stockpile.errors import InputError
    from stockpile.measured import default_accept_length
    from stockpile.perf.inference import estimate as run
    from stockpile.perf.layout import resolve_layout
    m, c = get_model(model), get_chip(chip)
    isl_v, osl_v = _count(isl, "isl"), _count(osl, "osl")
    n = gpus or (tp or 1) * (pp or 1) * ((dp or 1) if not attention_dp else 1) * (1 if tp or ep is None else ep)
    if gpus is not None and gpus < 1:
        raise InputError("gpus", f"must be >= 1, got {gpus}")
    if spec_draft < 0:
        raise InputError("spec_draft", "must be >= 0")
    lay = resolve_layout(gpus=n, tp=tp, pp=pp, ep=ep, dp=dp, is_moe=m.is_moe, attention_dp=attention_dp or None)
    notes = []
    if tp is None:
        notes.append(f"tp not given: TP{lay.attn_tp}")
    wd = weight_dtype or implied_weight_dtype(model)
    accept = spec_accept if spec_accept is not None else default_accept_length(spec_draft)
    e = run(m, c, layout=lay, engine=engine, weight_dtype=wd, kv_dtype=kv_dtype, isl=isl_v, osl=osl_v,
            concurrency=concurrency, request_rate=request_rate, spec_draft=spec_draft, spec_accept=accept,
            prefix_hit=prefix_hit, assumptions=notes)
    if json_out:
        emit_json(e.model_dump())
        return
    _render_estimate(e)
    if not e.fits:
        raise typer.Exit(1)


def _render_estimate(e: Any) -> None:
    t = Table(title=f"{e.model} on {e.gpus} x {e.chip} ({e.engine}, {e.layout_text}, "
                    f"{e.weight_dtype} weights / {e.kv_dtype} KV)", show_header=True)
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [("fits in memory", "yes" if e.fits else "NO"), ("load", f"{e.mode}" + (
        f", concurrency {e.concurrency:g}" if e.concurrency else "") + (
        f", {e.request_rate:g} req/s" if e.request_rate else "")),
        ("TTFT", f"{e.ttft_ms:,.1f} ms"), ("TPOT", f"{e.tpot_ms:,.2f} ms"),
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
    for a in e.assumptions:
        out.print(f"[dim]assumed: {a}[/dim]")


# ------------------------------------------------------------------ validate / calibrate
@app.command()
@guarded
def validate(file: Path = typer.Argument(..., help="Measured-data CSV (CONTRACTS.md schema)."),
             json_out: bool = typer.Option(False, "--json"),
             show: int = typer.Option(40, "--rows", help="Rows to print in the table (worst first).")) -> None:
    """Predict every row of a measured CSV and report the errors."""
    from stockpile.validate import validate_file
    doc = validate_file(file)
    if json_out:
        emit_json(doc)
        return
    rows = doc["rows"]
    t = Table(title=f"{doc['file']}: {len(rows)} rows ({doc['kind']}); worst {min(show, len(rows))} shown")
    for col in ("id", "metric", "measured", "predicted", "error", "status"):
        t.add_column(col, overflow="fold")
    order = sorted(rows, key=lambda r: -abs(r["error"]) if r["error"] is not None else 0)
    for r in order[:show]:
        t.add_row(r["id"], r["metric"], f"{r['measured']:,.4g}" if r["measured"] is not None else "-",
                  "-" if r["predicted"] is None else f"{r['predicted']:,.4g}",
                  "-" if r["error"] is None else f"{100 * r['error']:+.1f}%",
                  r["status"] + (f": {r['reason'][:60]}" if r.get("reason") else ""))
    out.print(t)
    s = doc["summary"]
    fmt = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    out.print(f"n={s['n']} n_predicted={s['n_predicted']} median_ape={fmt(s['median_ape'])} "
              f"mape={fmt(s['mape'])} p90_ape={fmt(s['p90_ape'])}")
    for m, v in s["by_metric"].items():
        out.print(f"  {m:30s} n={v['n']:4d} predicted={v['n_predicted']:4d} median_ape={fmt(v['median_ape'])}")


@app.command()
@guarded
def calibrate(files: list[Path] = typer.Argument(None, help="Measured CSVs (default: the shipped ones)."),
              out_path: Optional[Path] = typer.Option(None, "--out", help="Where to write the fit."),
              json_out: bool = typer.Option(False, "--json")) -> None:
    """Fit the global efficiency parameters to measured data and write the calibration file."""
    from stockpile.calibrate import default_files, fit, write_calibration
    paths = files or default_files()
    with out.status("fitting efficiency parameters ...") if not json_out else _null():
        cal, report = fit(paths)
    dest = write_calibration(cal, out_path)
    if json_out:
        emit_json({"written": str(dest), **report})
        return
    out.print(f"fitted on {report['rows']} rows from {len(paths)} files: median |error| "
              f"{100 * report['median_ape_before']:.1f}% -> {100 * report['median_ape_after']:.1f}%; wrote {dest}")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
