"""bench/kernels.py: the GPU kernel measurements and their comparison with the calibration."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SHIPPED = BENCH / "results" / "kernels_h200.json"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def test_measure_skips_cleanly_without_a_gpu_and_refuses_an_unknown_part(tmp_path: Path, capsys) -> None:
    kernels = _load("kernels")
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        assert kernels.main(["measure", "--out", str(tmp_path / "k.json")]) == 0
        assert "skipped" in capsys.readouterr().out
        assert not (tmp_path / "k.json").exists()
    with pytest.raises(SystemExit) as e:
        kernels.main(["measure", "--parts", "gemm,gemms"])
    assert e.value.code == 2
    assert "--parts: unknown gemms" in capsys.readouterr().err


def test_the_h200_measurements_read_against_the_calibration() -> None:
    """What the silicon did (shipped file, measured on a lent H200) against the shipped Hopper constants: the
    fitted bandwidth share must stay where the measured read bandwidth is, and the model's device time for a
    whole decoder must stay below what a plain PyTorch step took (an engine's fused kernels only do better)."""
    a = _load("kernels_compare").analyse(SHIPPED)
    bw = a["bandwidth"]
    assert 0.8 < bw["read_share"] < 0.95
    assert abs(bw["calibration_mem_eff"] / bw["read_share"] - 1) < 0.05
    g = a["gemm"]
    assert g["bf16"]["points"] == g["fp8"]["points"] == 75
    assert 0.6 < g["bf16"]["e_inf"] < 0.9 and 0.5 < g["fp8"]["e_inf"] < 0.9
    assert 0.85 < g["fp8_rowwise_over_tensor"] <= 1.0          # finer scales cost a little, never gain
    assert g["bf16"]["median_abs_error"] < 0.15           # the model's GEMM form fits cuBLAS's times
    long = [r for r in a["prefill_attention"]["rows"] if r["seq"] >= 8192]
    assert all(0.4 < r["share_of_peak"] < 0.8 for r in long)
    gg = a["grouped_gemm"]["rows"]
    assert len(gg) == 5
    # one grouped GEMM streams experts of 6 to 235 MB alike; a loop of matmuls falls apart on small experts
    shares = [r["grouped_share"] for r in gg]
    assert max(shares) / min(shares) < 1.5
    small = min(gg, key=lambda r: r["expert_mb"])
    assert small["loop_share"] < 0.5 * small["grouped_share"]
    ta = a["training_attention"]
    assert set(ta["fits"]) == {"cudnn", "flash"}
    assert 1000 < ta["fits"]["cudnn"]["s_half"] < 3000 and ta["fits"]["cudnn"]["max_abs_error"] < 0.1
    # the training fit's attention (one value at every length) sits between the two kernels' short-sequence values
    assert min(r["share_of_peak"] for r in ta["rows"]) < ta["calibration_share_of_peak"] < ta["fits"]["cudnn"]["e_max"]
    steps = a["whole_model"]
    assert len(steps) == 9
    assert all(-0.5 < s["error"] < 0.0 for s in steps)


def test_compare_prints_each_measured_part(capsys) -> None:
    assert _load("kernels").main(["compare", str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    for part in ("HBM: read", "GEMM bf16", "GEMM fp8", "prefill attention", "training attention (fwd+bwd) cudnn", "experts qwen3-30b-a3b",
                 "decode attention", "Llama-3.1-8B decode"):
        assert part in out
    assert json.loads(SHIPPED.read_text())["gpu"] == "NVIDIA H200"
