"""GPU frameworks on Ascend run their NPU ports: their kernel factor is their own, not the GPU one."""
from __future__ import annotations

from stockpile.perf.training import kernel_key, load_training_calibration


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
