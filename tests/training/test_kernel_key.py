"""GPU frameworks on Ascend run their NPU ports: their kernel factor is their own, not the GPU one."""
from __future__ import annotations

from stockpile.perf.frameworks import kernel_key
from stockpile.perf.training import load_training_calibration


def test_an_npu_port_has_its_own_kernel_factor() -> None:
    assert kernel_key("torchtitan", "hopper") == "torchtitan"
    assert kernel_key("torchtitan", "ascend") == "torchtitan-npu"
    assert kernel_key("megatron2022", "ascend") == "megatron-npu"      # shares Megatron's kernels, then ported
    assert kernel_key("megatron2022", "hopper") == "megatron"
    assert kernel_key("mindspore", "ascend") == "mindspore"            # Ascend-only: already the NPU stack
    cal = load_training_calibration()
    gpu, npu = cal.params("hopper", "torchtitan"), cal.params("ascend", "torchtitan")
    assert "torchtitan-npu" in cal.frameworks and "torchtitan" in cal.frameworks
    assert gpu.kernel_eff == cal.frameworks["torchtitan"]["kernel_eff"]
    assert npu.kernel_eff == cal.frameworks["torchtitan-npu"]["kernel_eff"] != gpu.kernel_eff


def test_whole_run_rows_with_an_unstated_gpu_count_are_validated_not_fitted() -> None:
    from stockpile.calibration.fit_training import UNSTATED_CLUSTER, default_file, fit, read_training_rows
    from stockpile.calibration.training import Case, prepare_rows, source_of
    rows = [r for r in read_training_rows(default_file()) if source_of(r)[0] == "meta"]
    cases = [c for c in prepare_rows(rows) if isinstance(c, Case)]
    unstated = [c for c in cases if any(UNSTATED_CLUSTER in a for a in c.assumed)]
    assert unstated and all(c.metric == "gpu_hours" for c in unstated)      # Llama 2's A100 GPU-hours
    _, report = fit(rows, rounds=1, max_nfev=5)
    assert report["rows"] == len(cases) - len(unstated)
