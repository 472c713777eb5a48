"""Set kernel times measured by `bench/kernels.py measure` beside the inference model's constants.

Run through `bench/kernels.py compare FILE` (the project's venv). Every number printed is either measured, a
fit of the model's own functional form to the measured times, or the shipped calibration's value, labelled as
such. `analyse()` returns the same as a dict (tests/test_kernels_bench.py checks it on the shipped H200 file).
"""
from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from stockpile.catalog.chips import get_chip
from stockpile.catalog.models import get_model
from stockpile.perf.calibration import load_calibration
from stockpile.perf.operators import ChipConsts, ModelConsts, stage_time

FAMILY = "hopper"
MODEL = "meta-llama/Llama-3.1-8B"


def _gemm_fit(rows: list[dict], key: str, peak: float, bw: float, wbytes: float) -> dict[str, float]:
    """Fit t = max(2MNK / (peak * e_inf * M / (M + m_half)), N K wbytes / (bw * b)) in log time."""
    rows = [r for r in rows if key in r]
    m, n, k = (np.array([r[c] for r in rows], float) for c in ("m", "n", "k"))
    t = np.array([r[key] for r in rows])

    def model(x: np.ndarray) -> np.ndarray:
        e_inf, m_half, b = np.exp(x)
        return np.maximum(2 * m * n * k / (peak * e_inf * m / (m + m_half)), n * k * wbytes / (bw * b))

    sol = least_squares(lambda x: np.log(model(x) / t), np.log([0.7, 64.0, 0.6]))
    e_inf, m_half, b = np.exp(sol.x)
    err = np.abs(np.expm1(sol.fun))
    return {"e_inf": float(e_inf), "m_half": float(m_half), "weight_stream_share": float(b),
            "median_abs_error": float(np.median(err)), "max_abs_error": float(err.max()), "points": len(rows)}


def _grouped(rows: list[dict], bw: float, p: Any) -> dict[str, Any]:
    """Expert weights streamed per second at decode-sized groups (16 tokens per expert), by expert size: one
    grouped GEMM against one matmul per expert; beside the calibration's expert streaming share
    (expert_mem_eff x mem_eff of the catalog bandwidth)."""
    out: dict[str, Any] = {"rows": [], "calibration_share": p.expert_mem_eff * p.mem_eff}
    for r in rows:
        if r["rows"] != 16:
            continue
        item = {"model": r["model"], "experts": r["experts"], "expert_mb": r["n"] * r["k"] * 2 / 1e6,
                "loop_share": r["weight_bytes"] / r["loop_s"] / bw}
        if "grouped_s" in r:
            item["grouped_share"] = r["weight_bytes"] / r["grouped_s"] / bw
        out["rows"].append(item)
    return out


def _training_attention(rows: list[dict], peak: float) -> dict[str, Any]:
    """Causal forward + backward (3.5x the forward FLOPs) by sequence length; e_max * s / (s + s_half) fitted per
    kernel, beside the training calibration's attention efficiency on Hopper (attn_eff x gemm_eff x Megatron's
    kernel factor, one value at every length)."""
    from stockpile.perf.training import load_training_calibration
    out: dict[str, Any] = {"rows": [], "fits": {}}
    if not rows:
        return out
    s = np.array([r["seq"] for r in rows], float)
    for kernel in ("cudnn", "flash"):
        key = f"{kernel}_fwd_bwd_s"
        if not all(key in r for r in rows):
            continue
        y = np.array([3.5 * r["causal_flops_fwd"] / r[key] / peak for r in rows])
        sol = least_squares(lambda x, y=y: np.log(np.exp(x[0]) * s / (s + np.exp(x[1])) / y), np.log([0.6, 1500.0]))
        out["fits"][kernel] = {"e_max": float(np.exp(sol.x[0])), "s_half": float(np.exp(sol.x[1])),
                               "max_abs_error": float(np.abs(np.expm1(sol.fun)).max())}
        for r, v in zip(rows, y):
            out["rows"].append({"kernel": kernel, "batch": r["batch"], "seq": r["seq"], "share_of_peak": float(v)})
    p = load_training_calibration().params(FAMILY, "megatron")
    out["calibration_share_of_peak"] = p.attn_eff * p.gemm_eff * p.kernel_eff
    return out


def _device_params(p: Any) -> Any:
    """The engine's Hopper parameters `p` with its kernel factor at 1 and its host terms at 0: the device
    time of a step as the model sees it, comparable with a step timed under a CUDA graph."""
    return dataclasses.replace(p, kernel_eff=1.0, step_s=0.0, seq_s=0.0, spec_seq_s=0.0, eager_layer_s=0.0,
                               eager_moe_s=0.0, moe_layer_s=0.0)


def _step(p: Any, chip_id: str, *, seqs: float, ctx: float, pre_tokens: float) -> float:
    """The model's time for one step of MODEL at TP1 in bf16: `seqs` decoding at context `ctx`, or a prompt of
    `pre_tokens` (its tokens attend half of it on average)."""
    chip = get_chip(chip_id)
    mc, cc = ModelConsts.of(get_model(MODEL)), ChipConsts.of(chip)
    a = lambda v: np.array(float(v))  # noqa: E731
    t = stage_time(mc, cc, p, attn_tp=a(1), attn_dp=a(1), pp=a(1), moe_ep=a(1), moe_tp=a(1), wbytes=a(2),
                   kvbytes=a(2), gemm_peak=a(chip.peak_flops("bf16")), dtype_eff=a(1.0), dec_seqs=a(seqs),
                   dec_tokens=a(seqs), dec_ctx=a(ctx), pre_tokens=a(pre_tokens), pre_ctx=a(pre_tokens / 2))
    return float(t)


def analyse(path: Path, chip_id: str = "h200-sxm-141gb", engine: str = "vllm") -> dict[str, Any]:
    d = json.loads(Path(path).read_text())
    chip = get_chip(chip_id)
    peak16, peak8, bw = chip.peak_flops("bf16"), chip.peak_flops("fp8"), chip.mem_bw
    p = load_calibration().params(FAMILY, engine)
    out: dict[str, Any] = {"gpu": d.get("gpu"), "chip": chip_id, "engine_for_calibration": engine}
    bwd = d["bandwidth"]
    out["bandwidth"] = {"read_share": bwd["read_tb_s"] * 1e12 / bw, "copy_share": bwd["copy_tb_s"] * 1e12 / bw,
                        "calibration_mem_eff": p.mem_eff}
    g16 = _gemm_fit(d["gemm"], "bf16_s", peak16, bw, 2.0)
    g8 = _gemm_fit(d["gemm"], "fp8_s", peak8, bw, 1.0)
    big = [r for r in d.get("fp8_scaling") or [] if r["m"] >= 4096 and "rowwise_s" in r and "tensor_s" in r]
    rowwise = statistics.median(r["tensor_s"] / r["rowwise_s"] for r in big) if big else None
    out["gemm"] = {"bf16": g16, "fp8": g8, "fp8_over_bf16": g8["e_inf"] / g16["e_inf"],
                   "fp8_rowwise_over_tensor": rowwise,
                   "calibration": {"gemm_eff": p.gemm_eff, "kernel_eff": p.kernel_eff,
                                   "compute_eff": p.gemm_eff * p.kernel_eff, "gemm_m_half": p.gemm_m_half,
                                   "fp8_gemm_eff": p.fp8_gemm_eff}}
    att = []
    for r in d["prefill_attention"]:
        best = min(r[k] for k in ("flash_s", "cudnn_s") if k in r)
        att.append({"batch": r.get("batch", 1), "seq": r["seq"], "share_of_peak": r["causal_flops"] / best / peak16,
                    "over_gemm": r["causal_flops"] / best / peak16 / g16["e_inf"]})
    out["prefill_attention"] = {"rows": att, "calibration_attn_eff": p.attn_eff,
                                "calibration_share_of_peak": p.gemm_eff * p.kernel_eff * p.attn_eff}
    out["grouped_gemm"] = _grouped(d.get("grouped_gemm") or [], bw, p)
    out["training_attention"] = _training_attention(d.get("training_attention") or [], peak16)
    out["decode_attention"] = {"rows": [{"batch": r["batch"], "ctx": r["ctx"], "share": r["tb_s"] * 1e12 / bw}
                                        for r in d["decode_attention"]], "calibration_mem_eff": p.mem_eff}
    dev = _device_params(p)
    steps = []
    for r in d["whole_model"]["decode"]:
        pred = _step(dev, chip_id, seqs=r["batch"], ctx=r["ctx"], pre_tokens=0)
        steps.append({"kind": "decode (CUDA graph)", "batch": r["batch"], "ctx": r["ctx"], "measured_s": r["graph_s"],
                      "predicted_s": pred, "error": pred / r["graph_s"] - 1})
    for r in d["whole_model"]["prefill"]:
        pred = _step(dev, chip_id, seqs=0, ctx=0, pre_tokens=r["tokens"])
        steps.append({"kind": "prefill (eager)", "tokens": r["tokens"], "measured_s": r["s"], "predicted_s": pred,
                      "error": pred / r["s"] - 1})
    out["whole_model"] = steps
    out["whole_model_median_abs_error"] = statistics.median(abs(s["error"]) for s in steps)
    return out


def compare(path: Path, chip_id: str) -> int:
    a = analyse(path, chip_id)
    b = a["bandwidth"]
    print(f"{a['gpu']} as {a['chip']}; calibration read for Hopper with {a['engine_for_calibration']}")
    print(f"HBM: read {b['read_share']:.3f}, copy {b['copy_share']:.3f} of the catalog bandwidth; "
          f"calibration mem_eff {b['calibration_mem_eff']:.3f}")
    g = a["gemm"]
    for k in ("bf16", "fp8"):
        f = g[k]
        print(f"GEMM {k}: e_inf {f['e_inf']:.3f} of peak, m_half {f['m_half']:.0f} rows, weight stream at "
              f"{f['weight_stream_share']:.3f} of HBM ({f['points']} points, median |error| {f['median_abs_error']:.1%})")
    c = g["calibration"]
    print(f"  calibration: gemm_eff {c['gemm_eff']:.3f} x kernel_eff {c['kernel_eff']:.3f} = {c['compute_eff']:.3f}; "
          f"gemm_m_half {c['gemm_m_half']:.1f}; fp8 {c['fp8_gemm_eff']:.3f} (measured fp8/bf16 {g['fp8_over_bf16']:.3f})")
    if g["fp8_rowwise_over_tensor"]:
        print(f"  fp8 with per-row and per-column scales: {g['fp8_rowwise_over_tensor']:.3f} of the per-tensor speed "
              f"(M >= 4096), i.e. {g['fp8_over_bf16'] * g['fp8_rowwise_over_tensor']:.3f} of bf16's share")
    pa = a["prefill_attention"]
    for r in pa["rows"]:
        print(f"prefill attention {r['batch']} x {r['seq']}: {r['share_of_peak']:.3f} of bf16 peak "
              f"({r['over_gemm']:.2f} of the GEMM e_inf)")
    print(f"  calibration: attn_eff {pa['calibration_attn_eff']:.2f}, i.e. {pa['calibration_share_of_peak']:.3f} of peak")
    gg = a["grouped_gemm"]
    for r in gg["rows"]:
        grouped = f"{r['grouped_share']:.2f}" if "grouped_share" in r else "-"
        print(f"experts {r['model']} ({r['experts']} x {r['expert_mb']:.0f} MB), 16 tokens each: weights streamed at "
              f"{grouped} of HBM by one grouped GEMM, {r['loop_share']:.2f} by a matmul per expert")
    if gg["rows"]:
        print(f"  calibration: expert_mem_eff x mem_eff = {gg['calibration_share']:.3f} at every expert size")
    ta = a["training_attention"]
    for kernel, f in ta["fits"].items():
        seqs = ", ".join(f"{r['seq'] // 1024}k {r['share_of_peak']:.2f}" for r in ta["rows"] if r["kernel"] == kernel)
        print(f"training attention (fwd+bwd) {kernel}: {seqs}; fit {f['e_max']:.2f} x s/(s+{f['s_half']:.0f}) "
              f"(within {f['max_abs_error']:.0%})")
    if ta["fits"]:
        print(f"  training calibration (Hopper, Megatron): {ta['calibration_share_of_peak']:.3f} of peak at every length")
    for r in a["decode_attention"]["rows"]:
        print(f"decode attention {r['batch']} x {r['ctx']}: KV read at {r['share']:.3f} of HBM")
    for s in a["whole_model"]:
        size = f"batch {s['batch']}, ctx {s['ctx']}" if "batch" in s else f"{s['tokens']} tokens"
        print(f"Llama-3.1-8B {s['kind']}, {size}: measured {s['measured_s'] * 1e3:.2f} ms, model device time "
              f"{s['predicted_s'] * 1e3:.2f} ms ({s['error']:+.0%})")
    return 0
