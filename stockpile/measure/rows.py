"""A measured load point as rows of the measured-data CSV (shared/CONTRACTS.md), ready for validate/calibrate.

``Deployment`` says what was measured (model, chip, GPUs, engine and release, layout, launch flags): from the
JSON that ``stockpile export --json`` wrote (``--spec``) or from explicit flags. ``rows_for`` turns one
load point into one row per metric; the notes carry the engine, its release and launch flags, the load
generator and the arrival process, in the phrases ``validate`` reads back (``N requests``, ``Poisson``,
``--max-num-seqs``, pool layouts of a prefill/decode split).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockpile.calibration.rows import INFERENCE_COLUMNS
from stockpile.catalog.engines import ENGINES
from stockpile.errors import InputError

EXTRA_COLUMNS = ("request_rate", "engine_version")
COLUMNS = (*INFERENCE_COLUMNS, *EXTRA_COLUMNS)
# launch flags that shape performance and that validate reads from the notes; the rest (ports, hosts,
# connector JSON) would only make the notes longer
_KEPT_FLAGS = ("--max-num-seqs", "--max-running-requests", "--max-num-batched-tokens", "--chunked-prefill-size",
               "--gpu-memory-utilization", "--mem-fraction-static", "--kv-cache-dtype", "--quantization",
               "--enable-prefix-caching", "--disable-prefix-caching", "--disable-radix-cache",
               "--speculative-config", "--speculative-algorithm", "--speculative-num-steps", "--max-model-len",
               "--context-length", "--enforce-eager", "--no-enable-chunked-prefill", "--enable-chunked-prefill",
               "--cuda-graph-max-bs", "--disable-cuda-graph", "--max-cudagraph-capture-size")


@dataclass(frozen=True)
class Deployment:
    """What the endpoint runs. ``tp``..``dp`` describe one instance; ``gpus`` counts every GPU behind it;
    ``pools`` the prefill/decode split as (role, instances, tp, ep, attention_dp, gpus)."""

    model: str
    chip: str
    gpus: int
    engine: str
    engine_version: str | None = None
    tp: int | None = None
    pp: int | None = None
    ep: int | None = None
    dp: int | None = None
    weight_dtype: str | None = None
    kv_dtype: str | None = None
    flags: tuple[str, ...] = ()
    pools: tuple[tuple[str, int, int, int, bool, int], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InputError("engine", f"'{self.engine}' is not one of {', '.join(ENGINES)}")
        if self.gpus < 1:
            raise InputError("gpus", f"must be >= 1, got {self.gpus}")


def _kept(argv: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        name = tok.split("=", 1)[0]
        has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--") and "=" not in tok
        if name in _KEPT_FLAGS:
            out += [tok, argv[i + 1]] if has_value else [tok]
        i += 2 if has_value else 1
    return tuple(out)


def deployment_from_spec(path: Path, *, model: str | None = None) -> Deployment:
    """The deployment that ``stockpile export --target vllm|sglang --json`` described (its ``spec``,
    ``engine_version`` and the first engine launch's flags)."""
    try:
        doc = json.loads(Path(path).read_text())
        spec = doc["spec"]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("spec", f"cannot read {path}: {exc}") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise InputError("spec", f"{path} is not what `stockpile export --target vllm|sglang --json` "
                                 "writes (no 'spec' object)") from None
    engine = spec.get("engine")
    launches = [la for la in doc.get("launches") or [] if la.get("role") != "router"]
    argv = launches[0]["argv"] if launches else []
    pd = spec.get("disaggregated")
    pools: tuple[tuple[str, int, int, int, bool, int], ...] = ()
    if pd:
        sides = []
        for role in ("prefill", "decode"):
            r = pd[role]
            per = r["tp"] * r["pp"] * (1 if r["attention_dp"] else r["dp"])
            sides.append((role, r["instances"], r["tp"], r["ep"], bool(r["attention_dp"]), per * r["instances"]))
        pools = tuple(sides)
        gpus = sum(p[5] for p in pools)
        lay = pd["decode"]
    else:
        lay = spec
        gpus = spec["tp"] * spec["pp"] * (1 if spec["attention_dp"] else spec["dp"]) * spec["replicas"]
    return Deployment(model=model or spec["model_id"], chip=spec["chip_id"], gpus=gpus, engine=engine,
                      engine_version=doc.get("engine_version"), tp=lay["tp"], pp=lay["pp"], ep=lay["ep"],
                      dp=lay["dp"], weight_dtype=spec.get("weight_dtype"), kv_dtype=spec.get("kv_dtype"),
                      flags=_kept(argv), pools=pools)


def _notes(dep: Deployment, result: Any, endpoint: str) -> str:
    parts = [f"measured by stockpile measure against {endpoint} on {dt.date.today().isoformat()}",
             f"engine {dep.engine}" + (f" {dep.engine_version}" if dep.engine_version else "")]
    if dep.flags:
        parts.append("launch flags: " + shlex.join(dep.flags))
    for role, inst, tp, ep, adp, gpus in dep.pools:
        parts.append(f"{role}: {inst} worker(s) TP{tp}/EP{ep}{' attnDP' if adp else ''} = {gpus} GPUs")
    if result.mode == "request_rate":
        parts.append(f"open loop at {result.load:g} requests/s, Poisson arrivals")
    else:
        parts.append(f"closed loop at concurrency {int(result.load)}")
    parts.append(f"{result.completed} requests completed of {result.num_requests} ({result.failed} failed) in "
                 f"{result.duration_s:.1f} s")
    parts.append(f"mean input {result.input_tokens_mean:.1f} / output {result.output_tokens_mean:.1f} tokens a request")
    parts.append(f"load generator {result.generator} {result.generator_version}")
    return "; ".join(parts)


def _metrics(result: Any, gpus: int) -> list[tuple[str, float | None]]:
    def stat(name: str, key: str, scale: float = 1.0) -> float | None:
        block = getattr(result, name)
        v = block.get(key) if isinstance(block, dict) else getattr(block, key, None)
        return None if v is None else float(v) * scale

    out: list[tuple[str, float | None]] = [
        ("output_tokens_per_s", result.output_tokens_per_s),
        ("output_tokens_per_s_per_gpu", result.output_tokens_per_s / gpus),
        ("total_tokens_per_s", result.total_tokens_per_s),
        ("requests_per_s", result.requests_per_s),
        ("ttft_ms", stat("ttft_ms", "mean")), ("tpot_ms", stat("tpot_ms", "mean")),
        ("itl_ms", stat("itl_ms", "mean")), ("e2e_latency_s", stat("e2e_ms", "mean", 1e-3))]
    for base in ("ttft", "tpot"):
        out += [(f"{base}_p{q}_ms", stat(f"{base}_ms", f"p{q}")) for q in (50, 90, 99)]
    out.append(("e2e_p99_s", stat("e2e_ms", "p99", 1e-3)))
    return out


def rows_for(dep: Deployment, result: Any, *, endpoint: str, run_id: str, start: int = 1) -> list[dict[str, str]]:
    """One CSV row per metric of one measured load point (``result``: a loadgen.LoadResult)."""
    isl = round(result.input_tokens_mean)
    osl = round(result.output_tokens_mean)
    rate = result.mode == "request_rate"
    common = {"model": dep.model, "accelerator": dep.chip, "num_accelerators": str(dep.gpus),
              "engine": dep.engine, "weight_dtype": dep.weight_dtype or "", "kv_dtype": dep.kv_dtype or "",
              "tp": _s(dep.tp), "pp": _s(dep.pp), "ep": _s(dep.ep), "dp": _s(dep.dp),
              "input_len": str(isl), "output_len": str(osl),
              "concurrency": "" if rate else str(int(result.load)), "scenario": "server",
              "source_url": endpoint, "notes": _notes(dep, result, endpoint),
              "request_rate": f"{result.load:g}" if rate else "", "engine_version": dep.engine_version or ""}
    out: list[dict[str, str]] = []
    for metric, value in _metrics(result, dep.gpus):
        if value is None or value != value or value <= 0:
            continue
        out.append({"id": f"{run_id}-{start + len(out)}", **common, "metric": metric, "value": f"{value:.6g}"})
    return out


def _s(v: int | None) -> str:
    return "" if v is None else str(v)


def merge_csv(path: Path, rows: list[dict[str, str]]) -> str:
    """The CSV text of ``path``'s existing rows (kept as they are) followed by ``rows``."""
    old: list[dict[str, str]] = []
    if path.is_file():
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "metric" not in reader.fieldnames:
                raise InputError("out", f"{path} exists and is not a measured-data CSV; choose another --out")
            old = list(reader)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows([*old, *rows])
    return buf.getvalue()
