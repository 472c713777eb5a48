"""Stockpile's serving search against NVIDIA's aiconfigurator, asked the same questions in one run (issue #4).

Questions: Qwen3-32B and Llama-3.1-70B on 8 x H200 SXM and 8 x H100 SXM, ISL 4000, OSL 500, TTFT <= 1000 ms,
TPOT <= 50 ms, each at bf16 and at fp8 weights. aiconfigurator models TensorRT-LLM and takes the precision from
the checkpoint (its bundled bf16 and FP8 checkpoints below), so Stockpile is asked with engine="trtllm" and the
same weight dtype. Stockpile's unrestricted answer (every dtype) for trtllm and vllm is shown after the table.

aiconfigurator is installed from the package index into its own virtual environment (outside the repo,
~/.cache/stockpile-bench/aic-venv-<version>); installation is timed apart and not counted. Each question is
asked of its CLI (`aiconfigurator cli default`) --aic-runs times; the best configuration is read from the
best_config_topn.csv files it saves. Target: Stockpile >= 100x faster.
Run: .venv/bin/python bench/search_vs_aiconfigurator.py [--aic-runs 1] [--skip-aic]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from stockpile.catalog import get_chip, get_model
from stockpile.search.serving import Slo, search

AIC_VERSION = "0.12.0"
ISL, OSL, GPUS, SLO = 4000, 500, 8, Slo(ttft_ms=1000, tpot_ms=50)
CHIPS = {"h200-sxm-141gb": ("h200_sxm", "H200"), "h100-sxm-80gb": ("h100_sxm", "H100")}
# stockpile model id -> aiconfigurator checkpoint per weight dtype (both ship in aiconfigurator's model_configs)
MODELS = {"Qwen/Qwen3-32B": {"bf16": "Qwen/Qwen3-32B", "fp8": "Qwen/Qwen3-32B-FP8"},
          "meta-llama/Llama-3.1-70B-Instruct": {"bf16": "meta-llama/Meta-Llama-3.1-70B",
                                                "fp8": "nvidia/Llama-3.1-70B-Instruct-FP8"}}
ROOT = Path(__file__).resolve().parent
DT = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16"}



def _home(path) -> str:
    """A path with the home directory written as ~ (results must not name this machine's paths)."""
    return str(path).replace(str(Path.home()), "~")

def stockpile_inprocess(model_id: str, chip_id: str, engine: str, dtypes: list[str] | None) -> dict:
    model, chip = get_model(model_id), get_chip(chip_id)
    run = partial(search, model, chip, gpus=GPUS, isl=ISL, osl=OSL, slo=SLO, engine=engine, dtypes=dtypes)
    t0 = time.perf_counter()
    r = run()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(5):
        t0 = time.perf_counter()
        run()
        warm.append(time.perf_counter() - t0)
    b = r.best
    best = None if b is None else {
        "config": f"{b.layout_text} ({b.mode[:3]}, conc {b.concurrency:g})", "weight_dtype": b.weight_dtype,
        "kv_dtype": b.kv_dtype, "tok_s_gpu": b.output_tokens_per_s_per_gpu, "tok_s_user": b.tokens_per_s_per_user,
        "ttft_ms": b.ttft_ms, "tpot_ms": b.tpot_ms}
    return {"best": best, "evaluated": r.evaluated, "cold_s": cold, "warm_s": statistics.median(warm),
            "message": r.message}


def stockpile_cli(model_id: str, chip_id: str, dtype: str, runs: int = 3) -> dict:
    exe = Path(sys.executable).with_name("stockpile")
    cmd = [str(exe), "search", "--model", model_id, "--chip", chip_id, "--gpus", str(GPUS), "--isl", str(ISL),
           "--osl", str(OSL), "--ttft-ms", str(SLO.ttft_ms), "--tpot-ms", str(SLO.tpot_ms), "--engine", "trtllm",
           "--weight-dtype", dtype, "--json"]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if p.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr[-500:]}")
    best = json.loads(p.stdout)["best"]
    return {"first_s": times[0], "best_s": min(times), "tok_s_gpu": best and best["output_tokens_per_s_per_gpu"]}


def install_aic(venv: Path, version: str) -> tuple[Path | None, float, str]:
    """(aiconfigurator executable or None, install seconds, note)."""
    exe = venv / "bin" / "aiconfigurator"
    pip = venv / "bin" / "pip"
    if exe.exists():
        got = subprocess.run([str(pip), "show", "aiconfigurator"], capture_output=True, text=True,
                             check=False).stdout
        if f"Version: {version}\n" in got:
            return exe, 0.0, f"reusing {_home(venv)}"
    t0 = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
        p = subprocess.run([str(pip), "install", "-q", f"aiconfigurator=={version}"], capture_output=True, text=True,
                           timeout=1800, check=False)
    except (subprocess.SubprocessError, OSError) as e:
        return None, time.perf_counter() - t0, f"could not create the venv / install: {e}"
    if p.returncode or not exe.exists():
        tail = [ln for ln in (p.stderr or p.stdout).strip().splitlines() if not ln.startswith("WARNING")][-2:]
        return None, time.perf_counter() - t0, "pip install failed: " + " | ".join(tail)
    return exe, time.perf_counter() - t0, f"installed aiconfigurator=={version} into {venv}"


def _par(s: str) -> str:
    """'tp2pp1dp1etp1ep1' -> 'TP2' (+ PP/DP/EP when > 1)."""
    d = {k: int(v) for k, v in re.findall(r"(etp|tp|pp|dp|ep)(\d+)", s)}
    return "".join([f"TP{d.get('tp', 1)}"] + [f" {k.upper()}{d[k]}" for k in ("pp", "dp", "ep") if d.get(k, 1) > 1])


def aic_best(save_dir: Path) -> dict | None:
    rows = []
    for f in save_dir.rglob("best_config_topn.csv"):
        rows += [(f.parent.name, r) for r in csv.DictReader(f.open())]
    if not rows:
        return None
    mode, r = max(rows, key=lambda mr: float(mr[1]["tokens/s/gpu_cluster"]))
    reps = GPUS // max(int(float(r["num_total_gpus"])), 1)
    if mode == "disagg":
        cfg, pre = (f"{r['(p)workers']} x prefill {_par(r['(p)parallel'])} + {r['(d)workers']} x decode "
                    f"{_par(r['(d)parallel'])}"), "(d)"
    else:
        cfg, pre = _par(r["parallel"]), ""
    cfg += (f" x {reps} replicas" if reps > 1 else "") + f" ({mode[:3]}, conc {int(float(r['concurrency'])) * reps})"
    return {"config": cfg, "weight_dtype": DT.get(r[pre + "gemm"], r[pre + "gemm"]),
            "kv_dtype": DT.get(r[pre + "kvcache"], r[pre + "kvcache"]), "tok_s_gpu": float(r["tokens/s/gpu_cluster"]),
            "tok_s_user": float(r["tokens/s/user"]), "ttft_ms": float(r["ttft"]), "tpot_ms": float(r["tpot"])}


def aic_ask(exe: Path, checkpoint: str, system: str, runs: int, timeout: int) -> dict:
    walls, inner, best, err = [], [], None, ""
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="aic-") as tmp:
            cmd = [str(exe), "cli", "default", "--model", checkpoint, "--system", system, "--backend", "trtllm",
                   "--total-gpus", str(GPUS), "--isl", str(ISL), "--osl", str(OSL), "--ttft", str(SLO.ttft_ms),
                   "--tpot", str(SLO.tpot_ms), "--save-dir", tmp]
            t0 = time.perf_counter()
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp,
                                   env={**os.environ, "PYTHONWARNINGS": "ignore"}, check=False)
            except subprocess.TimeoutExpired:
                return {"error": f"timed out after {timeout} s", "wall_s": [], "search_s": [], "best": None}
            walls.append(time.perf_counter() - t0)
            if p.returncode:
                err = f"exit {p.returncode}: " + " | ".join((p.stderr or p.stdout).strip().splitlines()[-3:])
                break
            m = re.search(r"All experiments completed in ([\d.]+) seconds", p.stdout + p.stderr)
            inner.append(float(m.group(1)) if m else float("nan"))
            best = aic_best(Path(tmp))
    return {"error": err, "wall_s": walls, "search_s": inner, "best": best}


def fmt(b: dict | None) -> str:
    if not b:
        return "no configuration meets the SLO"
    dt = f"{b['weight_dtype']}/{b['kv_dtype']}"
    return (f"{b['config']:<52} {dt:<14} {b['tok_s_gpu']:>7.1f} {b['tok_s_user']:>6.1f} "
            f"{b['ttft_ms']:>6.0f} {b['tpot_ms']:>5.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aic-version", default=AIC_VERSION)
    ap.add_argument("--aic-venv", type=Path, default=None, help="default ~/.cache/stockpile-bench/aic-venv-<ver>")
    ap.add_argument("--aic-runs", type=int, default=2, help="times each question is asked of aiconfigurator")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per aiconfigurator run")
    ap.add_argument("--skip-aic", action="store_true")
    a = ap.parse_args()
    venv = a.aic_venv or Path.home() / ".cache" / "stockpile-bench" / f"aic-venv-{a.aic_version}"
    exe, install_s, note = (None, 0.0, "skipped (--skip-aic)") if a.skip_aic else install_aic(venv, a.aic_version)
    print(f"aiconfigurator {a.aic_version}: {note}" + (f" in {install_s:.0f} s (not counted)" if install_s else ""))
    if exe is None and not a.skip_aic:
        print("aiconfigurator is unavailable; reporting Stockpile's side only.")
    print(f"Question: {GPUS} GPUs, ISL {ISL}, OSL {OSL}, {SLO.text()}; engine TensorRT-LLM (what aiconfigurator "
          "models).\nColumns: best configuration | weights/KV dtype | tok/s/gpu | tok/s/user | TTFT ms | TPOT ms "
          "| time\n")
    rows = []
    for model_id, ckpts in MODELS.items():
        for chip_id, (system, chip_name) in CHIPS.items():
            for dtype, ckpt in ckpts.items():
                q = f"{model_id.split('/')[-1]} {GPUS}x{chip_name} {dtype}"
                sp = stockpile_inprocess(model_id, chip_id, "trtllm", [dtype])
                cli = stockpile_cli(model_id, chip_id, dtype)
                aic = aic_ask(exe, ckpt, system, a.aic_runs, a.timeout) if exe else None
                row = {"question": q, "model": model_id, "chip": chip_id, "weight_dtype": dtype,
                       "aic_checkpoint": ckpt, "aic_system": system, "stockpile": sp, "stockpile_cli": cli,
                       "aiconfigurator": aic}
                print(f"{q}\n  stockpile      {fmt(sp['best'])}  {sp['warm_s'] * 1e3:.1f} ms in-process "
                      f"({sp['evaluated']:,} configs), CLI {cli['best_s']:.2f} s")
                if aic and aic["wall_s"] and not aic["error"]:
                    t = min(aic["wall_s"])
                    row["ratio"] = {"cli_to_cli": t / cli["best_s"], "cli_to_inprocess": t / sp["warm_s"],
                                    "search_to_inprocess": min(aic["search_s"]) / sp["warm_s"]}
                    runs = ", ".join(f"{w:.1f}" for w in aic["wall_s"])
                    print(f"  aiconfigurator {fmt(aic['best'])}  CLI {runs} s (search {min(aic['search_s']):.1f} s)")
                    x = row["ratio"]
                    print(f"  ratio          aiconfigurator / stockpile: {x['cli_to_cli']:,.0f}x CLI-to-CLI, "
                          f"{x['cli_to_inprocess']:,.0f}x CLI-to-in-process, "
                          f"{x['search_to_inprocess']:,.0f}x search-to-in-process")
                elif aic:
                    print(f"  aiconfigurator failed: {aic['error']}")
                rows.append(row)
    print("\nStockpile, every weight dtype (no restriction), both engines:")
    unrestricted = []
    for model_id in MODELS:
        for chip_id, (_, chip_name) in CHIPS.items():
            for engine in ("trtllm", "vllm"):
                sp = stockpile_inprocess(model_id, chip_id, engine, None)
                unrestricted.append({"model": model_id, "chip": chip_id, "engine": engine, "stockpile": sp})
                print(f"  {model_id.split('/')[-1]:<22} {GPUS}x{chip_name} {engine:<6} {fmt(sp['best'])}  "
                      f"{sp['warm_s'] * 1e3:.1f} ms ({sp['evaluated']:,} configs)")
    if any("ratio" in r for r in rows):
        print("\nSpeed-up (fastest aiconfigurator run; Stockpile CLI: fastest of 3, in-process: median of 5 warm):")
    for key, what in (("cli_to_cli", "aiconfigurator CLI / Stockpile CLI"),
                      ("cli_to_inprocess", "aiconfigurator CLI / Stockpile in-process"),
                      ("search_to_inprocess", "aiconfigurator's own search time / Stockpile in-process")):
        ratios = [r["ratio"][key] for r in rows if "ratio" in r]
        if ratios:
            print(f"  {what:<56} {min(ratios):>7,.0f}x to {max(ratios):>7,.0f}x  "
                  f"target >= 100x: {'met' if min(ratios) >= 100 else 'NOT met'}")
    out = ROOT / "results" / "search_vs_aiconfigurator.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "python": sys.version.split()[0], "cpu": os.cpu_count(),
        "stockpile_commit": subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                           capture_output=True, text=True, check=False).stdout.strip(),
        "question": {"gpus": GPUS, "isl": ISL, "osl": OSL, "ttft_ms": SLO.ttft_ms, "tpot_ms": SLO.tpot_ms,
                     "engine": "trtllm"},
        "aiconfigurator": {"version": a.aic_version, "available": exe is not None, "install_s": install_s,
                           "note": note, "venv": _home(venv)},
        "rows": rows, "stockpile_unrestricted": unrestricted}, indent=1))
    print(f"wrote {out.relative_to(ROOT.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
