"""`stockpile measure`: drive an established load generator against a live endpoint and write measured rows."""
from __future__ import annotations

import datetime as dt
import json
import urllib.request
from pathlib import Path
from typing import Any, Optional


def _loads(text: Optional[str], field: str, kind: type) -> list[Any]:
    from stockpile.errors import InputError
    if text is None:
        return []
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = kind(part)
        except ValueError:
            raise InputError(field, f"'{part}' is not a {'number' if kind is float else 'whole number'}; "
                                    f"give a comma list such as {'1,2,4' if kind is float else '1,8,32'}") from None
        if not v > 0:
            raise InputError(field, f"must be positive, got {part}")
        out.append(v)
    return out


def served_version(endpoint: str, engine: str) -> Optional[str]:
    """The engine release the server reports (vLLM: GET /version; SGLang: GET /get_server_info), if any."""
    root = endpoint.rstrip("/").removesuffix("/v1")
    paths = {"vllm": ["/version"], "sglang": ["/get_server_info", "/version"]}.get(engine, [])
    for path in paths:
        try:
            with urllib.request.urlopen(root + path, timeout=5) as resp:
                doc = json.loads(resp.read().decode())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("version"), str):
            return doc["version"]
    return None


def measure_command(endpoint: str, model: str, isl: int, osl: int, request_rate: Optional[str],
                    concurrency: Optional[str], out_file: Path, spec: Optional[Path], chip: Optional[str],
                    gpus: Optional[int], tp: Optional[int], pp: Optional[int], ep: Optional[int], dp: Optional[int],
                    engine: Optional[str], engine_version: Optional[str], weight_dtype: Optional[str],
                    kv_dtype: Optional[str], served_model_name: Optional[str], tokenizer: Optional[str],
                    num_requests: Optional[int], seed: int, json_out: bool) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from stockpile.atomic import check_output_path, write_text_atomic
    from stockpile.catalog import get_chip, get_model
    from stockpile.cli_render import emit_json, err, out
    from stockpile.errors import InputError
    from stockpile.measure.loadgen import run_load
    from stockpile.measure.rows import Deployment, deployment_from_spec, merge_csv, rows_for
    if not endpoint.startswith(("http://", "https://")):
        raise InputError("endpoint", f"'{endpoint}' is not an http(s) URL; e.g. http://127.0.0.1:8000/v1")
    for name, v in (("isl", isl), ("osl", osl)):
        if v < 1:
            raise InputError(name, f"must be >= 1 token, got {v}")
    rates, concs = _loads(request_rate, "request_rate", float), _loads(concurrency, "concurrency", int)
    if bool(rates) == bool(concs):
        raise InputError("request_rate", "give exactly one of --request-rate R[,R..] or --concurrency N[,N..]")
    check_output_path(out_file, "out")
    get_model(model)                                   # a catalog id or a config.json path the rows can name
    if tokenizer is None:                              # a config.json path's folder usually holds the tokenizer too
        folder = Path(model) if Path(model).is_dir() else Path(model).parent
        if model.endswith(".json") or Path(model).is_dir():
            if (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file():
                tokenizer = str(folder)
    if spec is not None:
        if chip or gpus or engine:
            raise InputError("spec", "--spec describes the deployment; drop --chip/--gpus/--engine")
        dep = deployment_from_spec(spec, model=model)
    else:
        if not (chip and gpus and engine):
            raise InputError("chip", "say what the endpoint runs: --spec FILE (from `stockpile export --json`) or "
                                     "--chip C --gpus N --engine E [--tp N ...]")
        dep = Deployment(model=model, chip=get_chip(chip).id, gpus=gpus, engine=engine.lower(),
                         engine_version=engine_version, tp=tp, pp=pp, ep=ep, dp=dp, weight_dtype=weight_dtype,
                         kv_dtype=kv_dtype)
    get_chip(dep.chip)
    if dep.engine_version is None:
        found = served_version(endpoint, dep.engine)
        if found:
            from dataclasses import replace
            dep = replace(dep, engine_version=found)
    points = [("request_rate", r) for r in rates] + [("concurrency", float(c)) for c in concs]
    run_id = "run" + dt.datetime.now().strftime("%Y%m%d%H%M%S")
    rows: list[dict[str, str]] = []
    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=err, transient=json_out, disable=json_out) as bar:
        for mode, load in points:
            n = num_requests or (max(int(load * 30), 20) if mode == "request_rate" else max(int(load) * 8, 20))
            label = f"{load:g} req/s" if mode == "request_rate" else f"concurrency {int(load)}"
            task = bar.add_task(f"{label}, {n} requests", total=1.0)

            def advance(frac: float, task: Any = task) -> None:
                bar.update(task, completed=min(max(frac, 0.0), 1.0))

            res = run_load(endpoint, served_model_name or dep.model, isl, osl, num_requests=n, tokenizer=tokenizer,
                           served_model_name=served_model_name, seed=seed,
                           request_rate=load if mode == "request_rate" else None,
                           concurrency=int(load) if mode == "concurrency" else None,
                           on_progress=advance)
            bar.update(task, completed=1.0)
            rows += rows_for(dep, res, endpoint=endpoint, run_id=run_id, start=len(rows) + 1)
            results.append(res)
    path = write_text_atomic(out_file, merge_csv(Path(out_file), rows))
    if json_out:
        from dataclasses import asdict
        emit_json({"written": str(path), "rows": len(rows), "deployment": asdict(dep),
                   "load_points": [asdict(r) for r in results]})
        return
    for res in results:
        label = f"{res.load:g} req/s" if res.mode == "request_rate" else f"concurrency {int(res.load)}"
        out.print(f"{label}: {res.completed}/{res.num_requests} ok, {res.output_tokens_per_s:,.1f} output tok/s, "
                  f"TTFT mean {_fmt(res.ttft_ms)} ms, TPOT mean {_fmt(res.tpot_ms)} ms", highlight=False)
    out.print(f"wrote {len(rows)} rows to {path}; compare with the model: stockpile validate {path}", highlight=False)


def _fmt(block: Any) -> str:
    v = block.get("mean") if isinstance(block, dict) else getattr(block, "mean", None)
    return "-" if v is None else f"{v:,.1f}"
