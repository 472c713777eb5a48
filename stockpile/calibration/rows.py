"""Measured-data CSV rows (CONTRACTS.md schema) -> typed cases the performance models can predict.

The CSV columns give the layout, dtypes, lengths and load; the free-text ``notes`` carry what the schema
has no column for (speculative decoding and its accept length, the number of prompts, Poisson or
constant-rate arrivals, a disaggregated prefill/decode layout). Blank cells take the engine's defaults and
the case records which defaults it took.
"""
from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockpile.calibration import trtllm_bench
from stockpile.calibration.harness import apply_batch_wait, apply_script_settings
from stockpile.calibration.notes import (
    INFERENCEX_HARNESS,
    INFERENCEX_PROMPTS_PER_CONCURRENCY,
    OVER_REQUESTS,
    PROMPT_COUNT,
    STEP_METRICS,
    W4AFP8,
    PoolLayout,
    draft_tree,
    parse_pools,
    parse_spec,
    random_length_ratio,
    scheduler_notes,
)
from stockpile.catalog.dtypes import normalise_dtype
from stockpile.catalog.engines import read_engine
from stockpile.errors import DataError, InputError
from stockpile.perf.serving import check_request_rate

INFERENCE_COLUMNS = ("id", "model", "accelerator", "num_accelerators", "engine", "weight_dtype", "kv_dtype", "tp",
                     "pp", "ep", "dp", "input_len", "output_len", "concurrency", "scenario", "metric", "value",
                     "source_url", "notes")
TRAINING_COLUMNS = ("id", "model", "params_b", "active_params_b", "layers", "hidden", "heads", "kv_heads",
                    "ffn_hidden", "vocab", "experts", "experts_per_token", "seq_len", "tokens_b", "accelerator",
                    "num_accelerators", "precision", "tp", "pp", "dp", "ep", "cp", "global_batch_tokens",
                    "recompute", "metric", "value", "source_url", "notes")
# the distribution of a run (inter-token latency, percentiles) is read from the scheduler simulation
# (beyond shared/CONTRACTS.md's list: the p95s, e2e p50/p90/p95 and the median inter-token gap, as benchmark clients
# print them)
DISTRIBUTION_METRICS = ("itl_ms", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p90_ms",
                        "tpot_p99_ms", "e2e_p99_s", "ttft_p95_ms", "tpot_p95_ms", "e2e_p50_s", "e2e_p90_s",
                        "e2e_p95_s", "itl_p50_ms")
INFERENCE_METRICS = ("output_tokens_per_s", "output_tokens_per_s_per_gpu", "total_tokens_per_s",
                     "total_tokens_per_s_per_gpu", "ttft_ms", "tpot_ms", "e2e_latency_s", "requests_per_s",
                     *DISTRIBUTION_METRICS)



@dataclass
class InferenceCase:
    row_id: str
    metric: str
    measured: float
    model: str
    chip: str
    gpus: int
    engine: str
    weight_dtype: str | None
    kv_dtype: str | None
    tp: int | None
    pp: int | None
    ep: int | None
    dp: int | None
    isl: float
    osl: float
    concurrency: float | None
    request_rate: float | None
    scenario: str
    num_requests: float | None = None
    poisson: bool = True
    spec_draft: int = 0
    spec_accept: float = 1.0
    spec_verify: int = 0               # a draft tree's tokens verified per step (0: a chain of spec_draft)
    spec_assumed: bool = False         # draft count not stated: the layout decides (see validate.prepare)
    fixed_lengths: bool = True
    length_spread: float = math.inf    # (max - min) / mean of request lengths where known (0 when fixed)
    decode_only: bool = False          # the source measured the decode phase alone (e.g. a PD decode node)
    prefill_pool: PoolLayout | None = None
    decode_pool: PoolLayout | None = None
    notes_used: list[str] = field(default_factory=list)
    statistic: str = "mean"            # mean; "median" (of per-request values); "median_itl" (of all token gaps)
    engine_version: str | None = None  # the engine_version column, or a version stated in the notes
    chunked_prefill: bool | None = None  # stated on or off in the notes (None: the engine's default)
    budget: int | None = None          # max_num_batched_tokens / chunked_prefill_size stated in the notes
    max_seqs: int | None = None        # --max-num-seqs / --max-running-requests stated in the notes
    mem_util: float | None = None      # --gpu-memory-utilization / --mem-fraction-static stated in the notes
    graph_max: int | None = None       # largest decode step replayed from CUDA/HIP graphs (0: --enforce-eager)
    full_graphs: bool = False          # vLLM's cudagraph_mode FULL / FULL_DECODE_ONLY / FULL_AND_PIECEWISE stated:
                                       # decode steps are whole graphs even on a port that defaults to piecewise
    act_dtype: str | None = None       # int4 weights multiplied in FP8 (W4AFP8); None: the weights' own path
    v0_engine: bool = False            # the notes say vLLM ran its V0 engine
    multi_step: int = 1                # vLLM V0 --num-scheduler-steps: decode steps between scheduling rounds
    prefix_len: float = 0.0            # prompt tokens shared with earlier requests (a shared-prefix workload)
    prefix_groups: float = 1.0         # how many distinct shared prefixes (each group's first request misses)
    prefix_cache: bool = True          # the engine's prefix cache is on (off when the notes disable it)
    burstiness: float = 1.0            # arrival gaps ~ Gamma(shape b): 1 is Poisson (vLLM bench --burstiness)
    recv_interval: int | None = None   # SGLang --scheduler-recv-interval: decode steps between polls for requests
    stream_interval: int | None = None  # SGLang --stream-interval: decode steps between a request's output flushes
    ssm_dtype: str | None = None       # SGLang --mamba-ssm-dtype: linear-attention state precision (None: fp32)
    publication: str = ""              # the source document: source_url without its #fragment
    bench_tuned: bool = False          # trtllm-bench throughput picked the engine limits (calibration/trtllm_bench)
    batch_wait: tuple[int, float] | None = None   # TensorRT-LLM batch waiting: timeout iterations, token threshold


def _int(row: dict[str, str], key: str, *, required: bool = False) -> int | None:
    v = _num(row, key, integer=True, required=required)
    return None if v is None else int(v)


# a concurrency cell that says the client had no cap (vllm bench serve without --max-concurrency)
_NO_CAP = ("inf", "infinity", "unlimited", "none", "no limit", "max", "-")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")


def cell_number(key: str, raw: str) -> float:
    """A numeric cell as a float; a spreadsheet's thousands separators ("1,234.5") are read, anything else that is
    not a number raises InputError naming the column."""
    try:
        return float(raw.replace(",", "") if _THOUSANDS.match(raw) else raw)
    except ValueError:
        raise InputError(key, f"'{raw}' is not a number") from None


def _num(row: dict[str, str], key: str, *, integer: bool = False, required: bool = False) -> float | None:
    raw = (row.get(key) or "").strip()
    if not raw:
        if required:
            raise InputError(key, "is blank but required")
        return None
    v = cell_number(key, raw)
    if math.isnan(v) or v < 0 or (math.isinf(v) and key != "request_rate"):
        raise InputError(key, f"must be a non-negative number, got {raw}")
    if integer:
        if v != int(v) or v < 1:
            raise InputError(key, f"must be a positive integer, got {raw}")
        return int(v)
    return v




def _tidy(row: dict[Any, Any], n_cols: int) -> dict[str, str]:
    """A CSV row with a cell per column: missing cells become "" and the row is marked malformed (`_cells`),
    surplus cells are dropped (and marked too)."""
    extra = row.pop(None, None)
    short = sum(v is None for v in row.values())
    out = {str(k): ("" if v is None else v) for k, v in row.items()}
    if short or extra:
        out["_cells"] = f"{n_cols - short + len(extra or [])} cells where the header has {n_cols}"
    return out


def read_rows(path: str | Path) -> tuple[str, list[dict[str, str]]]:
    """('inference' | 'training', rows). Raises DataError for an unreadable file or unknown columns."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:     # a spreadsheet's byte-order mark is not a column
            reader = csv.DictReader(fh)
            reader.fieldnames = cols = tuple(c.strip() for c in reader.fieldnames or ())
            rows = [_tidy(r, len(cols)) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {p}: {exc}") from None
    if set(INFERENCE_COLUMNS) <= set(cols):
        return "inference", rows
    if set(TRAINING_COLUMNS) - {"notes"} <= set(cols):
        return "training", rows
    missing = sorted(set(INFERENCE_COLUMNS) - set(cols))
    raise DataError(f"{p.name}: not a measured-data CSV; the inference schema lacks columns {', '.join(missing)} "
                    "(see CONTRACTS.md)")


def float_or_none(x: Any) -> float | None:
    """A cell as a float for the record of a row that could not be predicted (None when it is not a number)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


# Metric names as benchmark clients print them (vLLM's and SGLang's bench_serving result keys) -> (the
# contract's metric, factor on the value). Percentiles: {mean,median,p50,p90,p95,p99}_{ttft,tpot,itl,e2el}_ms.
METRIC_ALIASES = {"output_throughput": ("output_tokens_per_s", 1.0), "total_token_throughput": ("total_tokens_per_s", 1.0),
                  "request_throughput": ("requests_per_s", 1.0), "e2e_latency_ms": ("e2e_latency_s", 1e-3),
                  "e2el_ms": ("e2e_latency_s", 1e-3)}
_BENCH_KEY = re.compile(r"^(mean|median|p50|p90|p95|p99)_(ttft|tpot|itl|e2el)_ms$")


def _bench_metric(name: str) -> tuple[str, float] | None:
    """A bench_serving result key as the contract's metric and the factor on its value, or None."""
    if name in METRIC_ALIASES:
        return METRIC_ALIASES[name]
    m = _BENCH_KEY.match(name)
    if not m:
        return None
    stat, what = m.group(1).replace("median", "p50"), m.group(2)
    if what == "e2el":
        return ("e2e_latency_s", 1e-3) if stat == "mean" else (f"e2e_{stat}_s", 1e-3)
    if what == "itl":       # the simulation gives the mean and the median gap between tokens, not their tail
        return ("itl_ms", 1.0) if stat == "mean" else (("itl_p50_ms", 1.0) if stat == "p50" else None)
    return (f"{what}_ms", 1.0) if stat == "mean" else (f"{what}_{stat}_ms", 1.0)


def metric_and_value(row: dict[str, str], metrics: tuple[str, ...],
                     num: Callable[[dict[str, str], str], float | None],
                     notes: list[str] | None = None) -> tuple[str, float]:
    """A measured row's metric (one of `metrics`, in any case, or a benchmark client's name for one: `notes`
    says which it was read as) and its positive value, read with `num`; a malformed row, an unknown metric or a
    value that is not positive raises InputError naming the column (inference and training rows alike)."""
    if row.get("_cells"):
        raise InputError("row", f"malformed: {row['_cells']}")
    given = (row.get("metric") or "").strip()
    metric, factor = given.lower(), 1.0
    if metric not in metrics:
        alias = _bench_metric(metric)
        if alias is None or alias[0] not in metrics:
            raise InputError("metric", f"'{given}' is not one of {', '.join(metrics)}")
        metric, factor = alias
        if notes is not None:
            notes.append(f"metric '{given}' read as {metric}" + (f" (value x {factor:g})" if factor != 1.0 else ""))
    value = num(row, "value")
    if not value or value <= 0:
        raise InputError("value", "must be a positive measured number")
    return metric, value * factor


def _gpus(row: dict[str, str], used: list[str]) -> int:
    """num_accelerators; where it is blank, tp x pp when the row states tp and no data parallelism (with dp > 1
    the GPU count is ambiguous: attention-DP ranks share the TP group's GPUs, replicas do not)."""
    n = _int(row, "num_accelerators")
    if n is not None:
        return max(n, 1)
    tp, pp, dp = _int(row, "tp"), _int(row, "pp") or 1, _int(row, "dp") or 1
    if tp is None or dp > 1:
        raise InputError("num_accelerators", "is blank; give the GPU count (it is read from tp x pp only where "
                                             "tp is stated and dp is blank or 1)")
    used.append(f"num_accelerators blank: tp x pp = {tp * pp} GPUs")
    return max(tp * pp, 1)


def inference_case(row: dict[str, str]) -> InferenceCase:
    """One CSV row -> InferenceCase. Raises InputError naming the bad column."""
    metric_notes: list[str] = []
    metric, value = metric_and_value(row, INFERENCE_METRICS, lambda r, k: _num(r, k, required=True), metric_notes)
    notes = row.get("notes") or ""
    named = read_engine((row.get("engine") or "").strip() or "vllm")
    engine = named.engine
    draft, accept, used = parse_spec(notes, engine)
    num_req = None
    m = OVER_REQUESTS.search(notes) or PROMPT_COUNT.search(notes)
    if m:
        num_req = float(m.group(1).replace(",", ""))
    rate = _num(row, "request_rate")
    if rate is not None and math.isinf(rate):
        rate = None            # "inf": requests sent as fast as the concurrency cap allows: a closed loop
    if rate is not None:
        check_request_rate(rate)
    if (row.get("concurrency") or "").strip().lower() in _NO_CAP:     # a client without a concurrency cap
        metric_notes.append(f"concurrency '{row['concurrency'].strip()}': no cap, read as blank")
        row = {**row, "concurrency": ""}
    conc = _num(row, "concurrency")
    case = InferenceCase(
        row_id=row.get("id", ""), publication=(row.get("source_url") or "").split("#")[0].strip(),
        metric=metric, measured=float(value), model=(row.get("model") or "").strip(),
        chip=(row.get("accelerator") or "").strip(), gpus=_gpus(row, metric_notes),
        engine=engine, weight_dtype=normalise_dtype(row.get("weight_dtype")),
        kv_dtype=normalise_dtype(row.get("kv_dtype")),
        tp=_int(row, "tp"), pp=_int(row, "pp"), ep=_int(row, "ep"), dp=_int(row, "dp"),
        isl=float(_num(row, "input_len", required=True) or 0), osl=float(_num(row, "output_len", required=True) or 0),
        concurrency=conc, request_rate=rate, scenario=(row.get("scenario") or "").strip().lower(),
        num_requests=num_req, poisson=not re.search(r"constant[- ]rate|fixed rate", notes, re.I),
        spec_draft=draft, spec_accept=accept, spec_verify=draft_tree(notes, draft), notes_used=used,
        spec_assumed=draft > 0 and any("count not stated" in u for u in used),
        fixed_lengths=(not re.search(r"sharegpt|variance|\+/-|varied|random around|nominal isl", notes, re.I)
                       or bool(re.search(r"\bfixed[- ]lengths?\b", notes, re.I))))   # a dataset's text cut to length
    if case.isl <= 0 or case.osl <= 0:
        raise InputError("input_len", "input_len and output_len must be positive")
    case.notes_used += metric_notes + ([named.note] if named.note else [])
    if named.version and not (row.get("engine_version") or "").strip():
        row = {**row, "engine_version": named.version}     # a release written into the engine cell
    if case.spec_verify:
        case.notes_used.append(f"EAGLE draft tree: {case.spec_verify} tokens verified per step "
                               f"({case.spec_draft} draft steps)")
    inferencex = bool(INFERENCEX_HARNESS.search(notes))
    if case.num_requests is None and case.concurrency and inferencex:
        case.num_requests = INFERENCEX_PROMPTS_PER_CONCURRENCY * case.concurrency
        case.notes_used.append(f"{case.num_requests:.0f} requests: the InferenceX harness sends "
                               f"{INFERENCEX_PROMPTS_PER_CONCURRENCY} per unit of concurrency")
    if case.kv_dtype is None and case.weight_dtype in ("fp8", "fp4") and inferencex:
        case.kv_dtype = "fp8"
        case.notes_used.append("KV cache fp8: the InferenceX harness's setting for FP8/FP4 checkpoints")
    if inferencex:
        apply_script_settings(case, notes)
        apply_batch_wait(case, notes)
    if case.weight_dtype == "int4" and W4AFP8.search(notes):
        case.act_dtype = "fp8"
        case.notes_used.append("int4 weights with fp8 activations: fp8 GEMMs")
    ratio = random_length_ratio(notes)
    if ratio is not None and ratio < 1.0:
        scale = (1.0 + ratio) / 2.0          # mean of a uniform draw from [r L, L]
        case.isl, case.osl = case.isl * scale, case.osl * scale
        case.fixed_lengths = False
        case.length_spread = (1.0 - ratio) / scale
        case.notes_used.append(f"random lengths uniform in [{ratio:g} L, L]: mean input {case.isl:.0f}, "
                               f"output {case.osl:.0f} tokens")
    elif ratio == 1.0 or case.fixed_lengths:
        case.length_spread = 0.0
    if case.osl > 1 and (metric.startswith("output") or metric in STEP_METRICS) and re.search(
            r"decode-phase|decode throughput only|\"decode batch\" log", notes, re.I):
        case.decode_only = True
        case.notes_used.append("decode-phase measurement: prompt prefill left out of the prediction")
    scheduler_notes(case, row, notes)
    case.bench_tuned = engine == "trtllm" and not conc and rate is None and bool(trtllm_bench.HARNESS.search(notes))
    units = 2 if case.chip.startswith("ascend-910c") else 1
    if (re.search(r"disaggregat|prefill nodes?\b.*decode nodes?\b", notes, re.I)
            and not re.search(r"no disagg|aggregated \(no", notes, re.I)):
        case.prefill_pool, case.decode_pool = parse_pools(notes, units, case.gpus)
    return case
