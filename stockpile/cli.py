"""Command line: parse, call the library, render. One place catches StockpileError and prints one line."""
from __future__ import annotations

import contextlib
import functools
import math
import os
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.table import Table

from stockpile.cli_render import (
    emit_json,
    err,
    out,
    render_allocation,
    render_chips,
    render_comparison,
    render_estimate,
    render_models,
    render_search,
)
from stockpile.errors import StockpileError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Stockpile: how far a fixed stock of accelerators goes, and how to get the most out of each.")
catalog_app = typer.Typer(no_args_is_help=True, help="Browse the accelerator and model catalogs.")
app.add_typer(catalog_app, name="catalog")


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn any StockpileError (and bad numbers) into one line on stderr and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with contextlib.ExitStack() as stack:
                if kwargs.get("chip_file") is not None:
                    # --chip-file: the user's own accelerators, in the catalog's format, looked up first
                    from stockpile.catalog.chips import extra_chips, load_chip_file
                    stack.enter_context(extra_chips(load_chip_file(kwargs["chip_file"])))
                if kwargs.get("calibration"):
                    _select_calibration(stack, str(kwargs["calibration"]))
                if kwargs.get("prices") is not None:
                    from stockpile.catalog.prices import extra_prices, load_price_file
                    stack.enter_context(extra_prices(load_price_file(kwargs["prices"])))
                if kwargs.get("api_prices") is not None:
                    from stockpile.catalog.prices import extra_api_prices, load_api_price_file
                    stack.enter_context(extra_api_prices(load_api_price_file(kwargs["api_prices"])))
                return fn(*args, **kwargs)
        except StockpileError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
            if os.environ.get("STOCKPILE_DEBUG"):
                raise
            err.print(f"[red]internal error:[/red] {type(exc).__name__}: {exc}. This is a bug in Stockpile; please "
                      "report it with the command (STOCKPILE_DEBUG=1 shows the traceback)", highlight=False,
                      soft_wrap=True)
            raise typer.Exit(3) from None
    return wrapper


def _select_calibration(stack: contextlib.ExitStack, value: str) -> None:
    """--calibration NAME|FILE: a profile written by `stockpile calibrate` (inference, training or both)."""
    from stockpile import profiles
    from stockpile.perf.calibration import read_calibration, use_calibration
    from stockpile.perf.training import read_training_calibration, use_training_calibration
    inf, trn = profiles.resolve(value), profiles.resolve(value, training=True)
    if inf is not None and inf == trn:          # one file given: which model is it for?
        try:
            stack.enter_context(use_calibration(read_calibration(inf)))
        except StockpileError:
            stack.enter_context(use_training_calibration(read_training_calibration(trn)))
        return
    if inf is not None:
        stack.enter_context(use_calibration(read_calibration(inf)))
    if trn is not None:
        stack.enter_context(use_training_calibration(read_training_calibration(trn)))


PRICES_OPT = typer.Option(None, "--prices", help="YAML chip prices (data/prices/chips.yaml format), over the shipped ones.")
CALIBRATION_OPT = typer.Option(None, "--calibration",
                               help="A calibration profile (stockpile calibrate --profile NAME) or file.")


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
    render_chips(chips)


@catalog_app.command("models")
@guarded
def catalog_models(json_out: bool = typer.Option(False, "--json", help="Print the records as JSON.")) -> None:
    """List the shipped model architectures with derived parameter counts."""
    from stockpile.catalog.models import list_models
    models = list_models()
    recs: list[dict[str, Any]] = [{"id": m.id, "architecture": m.architecture, "family": m.family, "params_b": round(m.params / 1e9, 3),
             "active_params_b": round(m.active_params / 1e9, 3), "layers": m.layers, "hidden": m.hidden,
             "attention": m.attention, "heads": m.heads, "kv_heads": m.kv_heads, "experts": m.experts,
             "experts_per_token": m.experts_per_token, "published_params_b": m.published_params_b,
             "kv_bytes_per_token_bf16": m.kv_bytes_per_token(2.0), "aliases": list(m.aliases)} for m in models]
    if json_out:
        emit_json(recs)
        return
    render_models(recs)


# ------------------------------------------------------------------ estimate
def _count(text: Optional[str], field: str) -> Optional[float]:
    from stockpile.units import parse_count
    return None if text is None else parse_count(text, field=field)


def _length(text: str, field: str) -> float:
    from stockpile.units import parse_count
    return parse_count(text, field=field)


@app.command()
@guarded
def estimate(
    model: str = typer.Option(..., "--model", help="HF repo id (or path to a config.json)."),
    chip: str = typer.Option(..., "--chip", help="Accelerator id, e.g. h800-sxm-80gb."),
    chip_file: Optional[Path] = typer.Option(None, "--chip-file", help="YAML chips in the catalog format (your own accelerator)."),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="GPUs in all (default: tp*pp*dp)."),
    tp: Optional[int] = typer.Option(None, "--tp"), pp: Optional[int] = typer.Option(None, "--pp"),
    ep: Optional[int] = typer.Option(None, "--ep"), dp: Optional[int] = typer.Option(None, "--dp"),
    attention_dp: bool = typer.Option(False, "--attention-dp", help="Attention data parallel (MoE/MLA)."),
    weight_dtype: Optional[str] = typer.Option(None, "--weight-dtype"),
    kv_dtype: Optional[str] = typer.Option(None, "--kv-dtype"),
    engine: str = typer.Option("vllm", "--engine", help="vllm, sglang, trtllm."),
    isl: Optional[str] = typer.Option(None, "--isl", help="Input tokens per request (not with --trace)."),
    osl: Optional[str] = typer.Option(None, "--osl", help="Output tokens per request (not with --trace)."),
    concurrency: Optional[float] = typer.Option(None, "--concurrency", help="Closed-loop concurrency."),
    request_rate: Optional[float] = typer.Option(None, "--request-rate", help="Open-loop requests/s (Poisson)."),
    trace: Optional[Path] = typer.Option(None, "--trace", help="JSONL trace: arrival_s, input_len, output_len."),
    num_requests: Optional[int] = typer.Option(None, "--num-requests",
                                               help="Requests in a --request-rate run (default 1,000)."),
    engine_version: Optional[str] = typer.Option(None, "--engine-version",
                                                 help="Engine release, e.g. 0.6.3 (vLLM < 0.8: V0 scheduler)."),
    spec_draft: int = typer.Option(0, "--spec-draft", help="Speculative draft tokens (MTP/EAGLE)."),
    spec_accept: Optional[float] = typer.Option(None, "--spec-accept", help="Mean accepted tokens per step."),
    spec_verify: int = typer.Option(0, "--spec-verify", help="Tokens verified per step with a draft tree (SGLang "
                                                             "--speculative-num-draft-tokens; default drafts + 1)."),
    prefix_hit: float = typer.Option(0.0, "--prefix-hit", help="Fraction of prompt tokens served from cache."),
    length_spread: float = typer.Option(0.0, "--length-spread",
                                        help="Closed loop: how request lengths vary, (max - min) / mean: 0 fixed "
                                             "(default), 0.2 for lengths in [0.8 L, L], inf for chat traffic."),
    allow_long_context: bool = typer.Option(False, "--allow-long-context",
                                            help="Model input + output beyond the model's context window."),
    recv_interval: int = typer.Option(1, "--scheduler-recv-interval",
                                      help="SGLang: decode steps between polls for new requests (default 1)."),
    stream_interval: int = typer.Option(1, "--stream-interval",
                                        help="SGLang: decode steps between flushes of a request's output."),
    batch_wait_iters: int = typer.Option(0, "--batch-wait-iters", help="TensorRT-LLM batch_wait_timeout_iters."),
    batch_wait_tokens: int = typer.Option(0, "--batch-wait-tokens", help="TensorRT-LLM batch waiting's token "
                                          "threshold: batch_wait_max_tokens_ratio x max_num_tokens."),
    calibration: Optional[str] = CALIBRATION_OPT,
    prices: Optional[Path] = PRICES_OPT,
    api_prices: Optional[Path] = typer.Option(None, "--api-prices",
                                              help="YAML API prices per model (data/prices/apis.yaml format)."),
    cost_basis: str = typer.Option("auto", "--cost-basis", help="GPU-hour cost: rental, tco, or auto (rental "
                                                               "where known)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Predict TTFT, TPOT, throughput and memory for one serving configuration."""
    from stockpile.errors import InputError
    from stockpile.perf.request import EstimateRequest, run_estimate
    reqs = None
    if trace is not None:
        from stockpile.perf.trace import read_trace
        if concurrency is not None or request_rate is not None:
            raise InputError("trace", "give --trace alone, without --concurrency or --request-rate")
        reqs = read_trace(trace)          # checked line by line; its mean lengths stand for --isl/--osl
        isl, osl = str(float(reqs.isl.mean())), str(float(reqs.osl.mean()))
    if isl is None or osl is None:
        raise InputError("isl" if isl is None else "osl", "give --isl and --osl (or --trace FILE)")
    req = EstimateRequest.of(
        model=model, chip=chip, gpus=gpus, tp=tp, pp=pp, ep=ep, dp=dp, attention_dp=attention_dp,
        weight_dtype=weight_dtype, kv_dtype=kv_dtype, engine=engine, engine_version=engine_version,
        isl=_length(isl, "isl"), osl=_length(osl, "osl"), concurrency=concurrency, request_rate=request_rate,
        num_requests=num_requests, spec_draft=spec_draft, spec_accept=spec_accept, spec_verify=spec_verify,
        prefix_hit=prefix_hit, length_spread=length_spread, allow_long_context=allow_long_context,
        cost_basis=cost_basis, recv_interval=recv_interval, stream_interval=stream_interval,
        batch_wait_iters=batch_wait_iters, batch_wait_tokens=batch_wait_tokens)
    e = run_estimate(req, requests=reqs)
    if json_out:
        emit_json(e.model_dump())
    else:
        render_estimate(e)
    if not e.fits:
        raise typer.Exit(1)          # text and JSON alike (CONTRACTS.md)


# ------------------------------------------------------------------ search / export
_SEARCH_OPTS = dict(
    model=typer.Option(..., "--model", help="HF repo id or config.json path."),
    chip=typer.Option(..., "--chip", "--chips", "--decode-chips",
                      help="Accelerator id, or several separated by commas (the decode chips of a mixed search)."),
    gpus=typer.Option(..., "--gpus", help="GPUs available."),
    isl=typer.Option(..., "--isl"), osl=typer.Option(..., "--osl"),
    ttft_ms=typer.Option(None, "--ttft-ms", help="TTFT target (ms)."),
    tpot_ms=typer.Option(None, "--tpot-ms", help="TPOT target (ms)."),
    engine=typer.Option("vllm", "--engine", help="vllm, sglang, trtllm."),
    top=typer.Option(5, "--top", help="Candidates to show."),
    weight_dtype=typer.Option(None, "--weight-dtype", help="Restrict weight dtypes (comma list)."),
    disagg=typer.Option(True, "--disagg/--no-disagg", help="Also search prefill/decode disaggregation."),
    kv_dtype=typer.Option(None, "--kv-dtype", help="Restrict KV-cache dtypes (comma list)."),
    spec_draft=typer.Option(None, "--spec-draft", help="Speculative draft tokens to consider (0 disables)."),
    spec_accept=typer.Option(None, "--spec-accept", help="Accept length (tokens per step) for speculation."),
    engine_version=typer.Option(None, "--engine-version",
                                help="Engine release, e.g. 0.6.3 (vLLM < 0.8: V0 scheduler); default the current one."),
    confidence=typer.Option(None, "--confidence", help="Meet the targets for this share of measured runs (0.5-0.99): "
                            "TTFT and TPOT times that quantile of the regime's validated error. Default: the prediction."),
)


@app.command()
@guarded
def search(model: str = _SEARCH_OPTS["model"], chip: str = _SEARCH_OPTS["chip"],
           chip_file: Optional[Path] = typer.Option(None, "--chip-file", help="YAML chips in the catalog format (your own accelerator)."),
           gpus: Optional[int] = typer.Option(None, "--gpus", help="GPUs available (with --request-rate: at most; "
                                                                  "default 64)."),
           isl: str = _SEARCH_OPTS["isl"], osl: str = _SEARCH_OPTS["osl"],
           ttft_ms: Optional[float] = _SEARCH_OPTS["ttft_ms"], tpot_ms: Optional[float] = _SEARCH_OPTS["tpot_ms"],
           engine: str = _SEARCH_OPTS["engine"], top: int = _SEARCH_OPTS["top"],
           weight_dtype: Optional[str] = _SEARCH_OPTS["weight_dtype"], disagg: bool = _SEARCH_OPTS["disagg"],
           kv_dtype: Optional[str] = _SEARCH_OPTS["kv_dtype"], spec_draft: Optional[int] = _SEARCH_OPTS["spec_draft"],
           spec_accept: Optional[float] = _SEARCH_OPTS["spec_accept"],
           engine_version: Optional[str] = _SEARCH_OPTS["engine_version"],
           confidence: Optional[float] = _SEARCH_OPTS["confidence"],
           request_rate: Optional[float] = typer.Option(None, "--request-rate",
                                                        help="Serve this many requests/s on the fewest GPUs."),
           slo_percentile: Optional[float] = typer.Option(None, "--slo-percentile",
                                                          help="Targets apply at this percentile (default: means)."),
           calibration: Optional[str] = CALIBRATION_OPT,
           prices: Optional[Path] = PRICES_OPT,
           prefill_chip: Optional[str] = typer.Option(None, "--prefill-chip", "--prefill-chips",
                                                      help="Run disaggregated prefill on this chip (decode on --chip)."),
           objective: str = typer.Option("throughput", "--objective",
                                         help="Rank by throughput per GPU, or by cost per token (cost)."),
           pairs: bool = typer.Option(False, "--pairs", help="With --chips: also every prefill/decode chip pair."),
           json_out: bool = typer.Option(False, "--json")) -> None:
    """Find the serving configuration with the most tokens/s per GPU within the latency targets (or, with
    --request-rate, the fewest GPUs that serve the rate within them)."""
    from stockpile.cli_args import search_runs
    from stockpile.errors import InfeasibleError, InputError
    if request_rate is not None:
        if engine_version is not None:
            raise InputError("engine_version", "a --request-rate search simulates the current release only; drop "
                                               "--engine-version, or search at a concurrency with --gpus N")
        if confidence is not None:
            raise InputError("confidence", "a --request-rate search simulates its runs; give the targets at a "
                                           "percentile with --slo-percentile instead")
        from stockpile.cli_rate import rate_search_command
        rate_search_command(model, chip, gpus, _length(isl, "isl"), _length(osl, "osl"), ttft_ms, tpot_ms, engine,
                            top, weight_dtype, kv_dtype, request_rate, slo_percentile, json_out)
        return
    if slo_percentile is not None:
        raise InputError("slo_percentile", "applies to --request-rate searches; give --request-rate R")
    if gpus is None:
        raise InputError("gpus", "give --gpus N (or --request-rate R to find the fewest GPUs)")
    m, results = search_runs(model, chip, gpus, isl, osl, ttft_ms, tpot_ms, engine, top, weight_dtype, disagg,
                             kv_dtype, spec_draft, spec_accept, prefill_chip, objective, pairs, engine_version,
                             confidence)
    if json_out:
        docs = [{**r.model_dump(), "best": r.best.model_dump() if r.best else None} for _, r in results]
        emit_json(docs[0] if len(docs) == 1 else {"comparison": docs})
    else:
        for _, r in results:
            render_search(r)
        if len(results) > 1:
            render_comparison(results)
    if all(not r.candidates for _, r in results):
        raise InfeasibleError(results[0][1].message)


@app.command()
@guarded
def export(target: str = typer.Option(..., "--target", help="vllm, sglang or k8s."),
           model: str = _SEARCH_OPTS["model"], chip: str = _SEARCH_OPTS["chip"], gpus: int = _SEARCH_OPTS["gpus"],
           chip_file: Optional[Path] = typer.Option(None, "--chip-file", help="YAML chips in the catalog format (your own accelerator)."),
           isl: str = _SEARCH_OPTS["isl"], osl: str = _SEARCH_OPTS["osl"],
           ttft_ms: Optional[float] = _SEARCH_OPTS["ttft_ms"], tpot_ms: Optional[float] = _SEARCH_OPTS["tpot_ms"],
           engine: Optional[str] = typer.Option(None, "--engine", help="Engine for k8s (default vllm)."),
           rank: int = typer.Option(1, "--rank", help="Export the K-th candidate."),
           weight_dtype: Optional[str] = _SEARCH_OPTS["weight_dtype"], disagg: bool = _SEARCH_OPTS["disagg"],
           kv_dtype: Optional[str] = _SEARCH_OPTS["kv_dtype"], spec_draft: Optional[int] = _SEARCH_OPTS["spec_draft"],
           spec_accept: Optional[float] = _SEARCH_OPTS["spec_accept"],
           image: Optional[str] = typer.Option(None, "--image", help="Container image (k8s)."),
           best_effort: bool = typer.Option(False, "--best-effort",
                                            help="Export the closest candidate even when none meets the targets."),
           prefill_chip: Optional[str] = typer.Option(None, "--prefill-chip",
                                                      help="Disaggregated prefill on this chip (decode on --chip)."),
           fmt: str = typer.Option("text", "--format",
                                   help="vllm/sglang: text (commands per host), script (runnable bash with health "
                                        "checks) or compose (docker compose, one host)."),
           max_model_len: Optional[int] = typer.Option(None, "--max-model-len",
                                                       help="Context length (default: the model's own, or the "
                                                            "longest one sequence's KV cache fits)."),
           out_file: Optional[Path] = typer.Option(None, "--out", help="Write to this file (atomically)."),
           calibration: Optional[str] = CALIBRATION_OPT,
           confidence: Optional[float] = _SEARCH_OPTS["confidence"],
           json_out: bool = typer.Option(False, "--json")) -> None:
    """Emit what runs a searched configuration: launch commands per host (vLLM, SGLang; each instance with its own
    devices and port, a router in front of several), a runnable script, docker compose, or Kubernetes manifests."""
    from stockpile.cli_export import export_command
    export_command(target, model, chip, gpus, isl, osl, ttft_ms, tpot_ms, engine, rank, weight_dtype, disagg,
                   kv_dtype, spec_draft, spec_accept, image, best_effort, prefill_chip, fmt, max_model_len, out_file,
                   json_out, confidence)


@app.command()
@guarded
def measure(endpoint: str = typer.Option(..., "--endpoint", help="OpenAI-compatible base URL, e.g. http://host:8000/v1."),
            model: str = typer.Option(..., "--model", help="Catalog id or config.json path written into the rows."),
            isl: int = typer.Option(..., "--isl", help="Input tokens per request."),
            osl: int = typer.Option(..., "--osl", help="Output tokens per request."),
            request_rate: Optional[str] = typer.Option(None, "--request-rate", help="Open-loop rates, req/s (comma list)."),
            concurrency: Optional[str] = typer.Option(None, "--concurrency", help="Closed-loop concurrencies (comma list)."),
            out_file: Path = typer.Option(..., "--out", help="Measured-data CSV to write (rows are added to an existing one)."),
            spec: Optional[Path] = typer.Option(None, "--spec", help="The deployment, as `stockpile export --json` wrote it."),
            chip: Optional[str] = typer.Option(None, "--chip"), gpus: Optional[int] = typer.Option(None, "--gpus"),
            tp: Optional[int] = typer.Option(None, "--tp"), pp: Optional[int] = typer.Option(None, "--pp"),
            ep: Optional[int] = typer.Option(None, "--ep"), dp: Optional[int] = typer.Option(None, "--dp"),
            engine: Optional[str] = typer.Option(None, "--engine", help="vllm, sglang, trtllm, tgi or other."),
            engine_version: Optional[str] = typer.Option(None, "--engine-version"),
            weight_dtype: Optional[str] = typer.Option(None, "--weight-dtype"),
            kv_dtype: Optional[str] = typer.Option(None, "--kv-dtype"),
            served_model_name: Optional[str] = typer.Option(None, "--served-model-name",
                                                            help="The endpoint's model name when it differs from --model."),
            tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Local tokenizer folder (the hub may be unreachable)."),
            num_requests: Optional[int] = typer.Option(None, "--num-requests", help="Requests per load point."),
            seed: int = typer.Option(0, "--seed"),
            chip_file: Optional[Path] = typer.Option(None, "--chip-file", help="YAML chips in the catalog format (your own accelerator)."),
            json_out: bool = typer.Option(False, "--json")) -> None:
    """Measure a live endpoint with an established load generator and write the results as measured-data rows
    (for `validate` and `calibrate --profile`)."""
    from stockpile.cli_measure import measure_command
    measure_command(endpoint, model, isl, osl, request_rate, concurrency, out_file, spec, chip, gpus, tp, pp, ep, dp,
                    engine, engine_version, weight_dtype, kv_dtype, served_model_name, tokenizer, num_requests, seed,
                    json_out)


# ------------------------------------------------------------------ validate / calibrate
@app.command()
@guarded
def validate(file: Path = typer.Argument(..., help="Measured-data CSV (CONTRACTS.md schema)."),
             json_out: bool = typer.Option(False, "--json"),
             show: int = typer.Option(40, "--rows", help="Rows to print in the table (worst first)."),
             chip_file: Optional[Path] = typer.Option(None, "--chip-file", help="YAML chips in the catalog format (chips the rows name)."),
             calibration: Optional[str] = CALIBRATION_OPT) -> None:
    """Predict every row of a measured CSV and report the errors."""
    from stockpile.calibration.validate import validate_file
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
              profile: str = typer.Option("default", "--profile",
                                          help="Name of the profile written in your data directory."),
              out_path: Optional[Path] = typer.Option(None, "--out", help="Write the fit to this file instead."),
              training: bool = typer.Option(False, "--training", help="Fit the training model instead."),
              full: bool = typer.Option(False, "--full", help="Refit every parameter on FILES (default with your "
                                                               "own runs: only the chip x engine regimes they cover)."),
              chip_file: Optional[Path] = typer.Option(None, "--chip-file", help="YAML chips in the catalog format (the chips of your runs)."),
              calibration: Optional[str] = CALIBRATION_OPT,
              json_out: bool = typer.Option(False, "--json")) -> None:
    """Fit the efficiency parameters to measured data and write a calibration profile (never into the installed
    package); use it with --calibration NAME. With your own runs (FILES), only the chip x engine regimes they cover
    are refitted, starting from and pulled toward the shipped fit (or --calibration), and the error on a held-out
    part of the runs is reported before and after."""
    from stockpile.cli_calibrate import calibrate_command
    calibrate_command(files, profile, out_path, training, full, json_out)


# ------------------------------------------------------------------ training
@app.command()
@guarded
def train(model: str = typer.Option(..., "--model", help="HF repo id or config.json path."),
          chip: str = typer.Option(..., "--chip"), gpus: int = typer.Option(..., "--gpus"),
          chip_file: Optional[Path] = typer.Option(None, "--chip-file", help="YAML chips in the catalog format (your own accelerator)."),
          tokens: str = typer.Option(..., "--tokens", help="Training tokens (15.6T, 15.6e12, ...)."),
          seq_len: Optional[int] = typer.Option(None, "--seq-len"),
          precision: str = typer.Option("bf16", "--precision", help="bf16 or fp8."),
          framework: str = typer.Option("megatron", "--framework", help="Whose defaults: megatron, nemo, torchtitan, mosaic, maxtext, deepspeed, ..."),
          calibration: Optional[str] = CALIBRATION_OPT,
          json_out: bool = typer.Option(False, "--json")) -> None:
    """The fastest training layout that fits, its MFU, and the GPU-hours and days for a token budget."""
    from stockpile.errors import InputError
    from stockpile.search.training import train as run
    n_tokens = _count(tokens, "tokens")
    if not n_tokens or n_tokens <= 0:
        raise InputError("tokens", f"must be a positive token count, got {tokens}")
    if gpus < 1:
        raise InputError("gpus", f"must be >= 1, got {gpus}")
    if precision not in ("bf16", "fp8"):
        raise InputError("precision", f"'{precision}' is not bf16 or fp8")
    from stockpile.catalog import get_chip
    if precision == "bf16" and not get_chip(chip).has_native("bf16"):     # (fp8: make_job says which chips have it)
        raise InputError("precision", f"{chip} has no native BF16 tensor cores; pick a chip that has (e.g. A100)")
    if seq_len is not None and seq_len < 1:
        raise InputError("seq_len", f"must be >= 1, got {seq_len}")
    e = run(model, chip, gpus, n_tokens, seq_len=seq_len, precision=precision, framework=framework)
    if json_out:
        emit_json(e.model_dump())
        return
    lay = e.layout
    t = Table(title=f"Training {e.model} on {e.gpus} x {e.chip} ({e.precision}, {e.framework})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [("layout", ", ".join(f"{k}={v}" for k, v in lay.items() if v is not None)), ("fits in memory", "yes" if e.fits else f"NO (over by {e.over_memory_gb:.1f} GB)"),
            ("step time", f"{e.step_time_s:.2f} s"), ("tokens/s", f"{e.tokens_per_s:,.0f}"),
            ("tokens/s per GPU", f"{e.tokens_per_s_per_gpu:,.0f}"), ("TFLOP/s per GPU", f"{e.tflops_per_gpu:,.0f}"),
            ("MFU / HFU", f"{100 * e.mfu:.1f}% / {100 * e.hfu:.1f}%"),
            ("memory per GPU", ", ".join(f"{k} {v:,.1f}" for k, v in e.memory_gb.items()) + " GB")]
    if e.gpu_hours is not None:
        rows += [("GPU-hours", f"{e.gpu_hours:,.0f}"), ("wall-clock days", f"{e.days:,.1f}"),
                 ("goodput", f"{100 * (e.goodput or 0):.1f}%"),
                 ("energy", "unknown (no sourced TDP)" if e.energy_kwh is None else f"{e.energy_kwh / 1e6:,.2f} GWh")]
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)
    if e.band_note:
        out.print(f"uncertainty: {e.band_note}")
    for note in [*e.limits, *e.notes]:
        out.print(f"[dim]{note}[/dim]")
    if not e.fits:
        raise typer.Exit(1)


# ------------------------------------------------------------------ fleet plan and sizing
@app.command()
@guarded
def plan(scenarios: Optional[list[Path]] = typer.Argument(None, help="Scenario YAML files (default: the bundled "
                                                          "example); two or more are compared side by side."),
         json_out: bool = typer.Option(False, "--json"),
         report: Optional[Path] = typer.Option(None, "--report", help="Write a self-contained HTML report."),
         schema: bool = typer.Option(False, "--schema", help="Print the scenario JSON Schema and exit."),
         samples: int = typer.Option(10000, "--samples", help="Monte Carlo samples for the runway fan "
                                     "(0: the deterministic plan only; at most 1,000,000)."),
         backend: str = typer.Option("numpy", "--backend", help="numpy or process (a local process pool).")) -> None:
    """Split the stock between training and inference month by month; how far the stock alone goes, and the
    runway with P10/P50/P90."""
    from stockpile.errors import InputError
    from stockpile.fleet.planner import compare_scenarios, plan_scenario, scenario_schema
    from stockpile.fleet.runway import MAX_SAMPLES
    if schema:
        emit_json(scenario_schema())
        return
    if not 0 <= samples <= MAX_SAMPLES:
        raise InputError("samples", f"must be 0..{MAX_SAMPLES:,}, got {samples}")
    if report is not None:
        _check_report_path(report)
    paths: list[Any] = list(scenarios or []) or [None]
    if len(paths) > 1:
        if json_out:
            cmp = compare_scenarios(paths, samples=samples, backend=backend)
        else:
            with out.status(f"planning {len(paths)} scenarios ..."):
                cmp = compare_scenarios(paths, samples=samples, backend=backend)
        if report:
            from stockpile.report import write_comparison_report
            err.print(f"report written to {write_comparison_report(cmp, report)}")
        if json_out:
            emit_json(cmp.to_contract())
        else:
            for r in cmp.scenarios:
                out.print(r.headline, highlight=False, markup=False)
            out.print(cmp.summary(), highlight=False, markup=False)
        return
    if json_out:
        res = plan_scenario(paths[0], samples=samples, backend=backend)
    else:
        with out.status("planning the fleet and sampling the runway ..."):
            res = plan_scenario(paths[0], samples=samples, backend=backend)
    if report:
        from stockpile.report import write_plan_report
        err.print(f"report written to {write_plan_report(res, report)}")
    if json_out:
        emit_json(res.to_contract())
    else:
        out.print(res.summary(), highlight=False, markup=False)
        render_allocation(res.to_contract())


def _check_report_path(report: Path) -> None:
    """Refuse an unusable report path before any long work (a folder, a missing parent, no write access)."""

    from stockpile.errors import InputError
    if report.is_dir():
        raise InputError("report", f"{report} is a folder; give a file name such as {report / 'plan.html'}")
    parent = report.parent if str(report.parent) else Path(".")
    if not parent.is_dir():
        raise InputError("report", f"folder {parent} does not exist; create it or write the report elsewhere")
    if not os.access(parent, os.W_OK):
        raise InputError("report", f"cannot write into {parent}; choose a writable folder")


@app.command()
@guarded
def size(compute: Optional[str] = typer.Option(None, "--compute", help="Training compute budget, FLOP (e.g. 3e24)."),
         target_loss: Optional[float] = typer.Option(None, "--target-loss", help="Target pre-training loss."),
         inference_tokens: str = typer.Option("0", "--inference-tokens", help="Lifetime inference tokens (e.g. 2e15)."),
         moe_active_ratio: Optional[float] = typer.Option(None, "--moe-active-ratio",
                                                          help="Active/total parameters for an MoE (e.g. 0.055)."),
         law: str = typer.Option("besiroglu2024", "--law", help="besiroglu2024 or hoffmann2022."),
         json_out: bool = typer.Option(False, "--json")) -> None:
    """Model size and training tokens that minimise training + inference compute for a target loss."""
    from stockpile.errors import InputError
    from stockpile.fleet.planner import size_model
    from stockpile.units import fmt_count
    if target_loss is not None and compute is not None:
        raise InputError("target_loss", "give either --compute (the best loss for a budget) or --target-loss (the "
                                        "cheapest model reaching it), not both")
    if target_loss is not None and not (math.isfinite(target_loss) and target_loss > 0):
        raise InputError("target_loss", f"must be a finite positive loss (e.g. 2.0), got {target_loss}")
    res = size_model(compute_budget_flop=_count(compute, "compute"), target_loss=target_loss,
                     inference_tokens=_count(inference_tokens, "inference_tokens") or 0.0, law=law,
                     moe_active_ratio=moe_active_ratio)
    if json_out:
        emit_json(res.model_dump())
        return
    t = Table(title=f"Sizing ({res.law}; {res.mode}; lifetime inference {fmt_count(res.inference_tokens)} tokens)")
    for col in ("", "active params", "total params", "train tokens", "tokens/param", "train FLOP", "inference FLOP",
                "total FLOP", "loss"):
        t.add_column(col)
    for name, pt in (("inference-aware optimum", res.optimal), ("Chinchilla-optimal", res.chinchilla)):
        t.add_row(name, f"{pt.active_params_b:,.1f}B", f"{pt.total_params_b:,.1f}B", fmt_count(pt.tokens),
                  f"{pt.tokens_per_param:,.0f}", f"{pt.training_flop:.2e}", f"{pt.inference_flop:.2e}",
                  f"{pt.total_flop:.2e}", f"{pt.loss:.3f}")
    out.print(t)
    out.print(f"counting inference saves {100 * res.saving_vs_chinchilla:.1f}% of total compute; source: {res.source}")
    for n in res.notes:
        out.print(f"[dim]{n}[/dim]")


@app.command()
@guarded
def serve(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port")) -> None:
    """Run the REST API and the web dashboard (http://HOST:PORT/)."""
    import uvicorn

    from stockpile.errors import InputError
    if not 0 < port < 65536:
        raise InputError("port", f"must be 1..65535, got {port}")
    uvicorn.run("stockpile.api.app:app", host=host, port=port, log_level="info", timeout_keep_alive=30, backlog=4096)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
