"""GPU frameworks on Ascend run their NPU ports: their kernel factor is their own, not the GPU one."""
from __future__ import annotations

import copy

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
    assert "torchtitan" in cal.frameworks
    assert gpu.kernel_eff == cal.frameworks["torchtitan"]["kernel_eff"]
    # torchtitan-npu's two rows come via a secondary source (validated, not fitted): a port takes its own factor
    # where fitted, else its GPU parent's (the same framework's scheduling and overlap), and the fitted factors'
    # median only where neither is fitted. Fitted factors never flow the other way: NPU rows do not move the GPU one
    assert "torchtitan-npu" not in cal.frameworks
    assert npu.kernel_eff == gpu.kernel_eff != cal.frameworks["unmeasured"]["kernel_eff"]
    assert cal.params("ascend", "megatron").kernel_eff == cal.frameworks["megatron-npu"]["kernel_eff"]
    assert cal.params("ascend", "megatron").kernel_eff != cal.params("hopper", "megatron").kernel_eff
    assert cal.params("ascend", "deepspeed").kernel_eff == cal.frameworks["deepspeed"]["kernel_eff"]
    bare = copy.deepcopy(cal)
    for name in ("megatron-npu", "megatron"):       # neither fitted: the median
        del bare.frameworks[name]
    assert bare.params("ascend", "megatron").kernel_eff == bare.frameworks["unmeasured"]["kernel_eff"]


def test_a_held_out_port_takes_its_parents_factor() -> None:
    """MindSpeed-LLM (Megatron on Ascend) held out: its port is unmeasured and takes Megatron's fitted factor."""
    from stockpile.calibration.fit_training import default_rows, fit
    cal, _ = fit(default_rows(), exclude_source="mindspeed", rounds=1, max_nfev=5)
    assert "megatron-npu" not in cal.frameworks and "megatron" in cal.frameworks
    assert cal.params("ascend", "megatron").kernel_eff == cal.frameworks["megatron"]["kernel_eff"]


def test_a_figure_via_a_secondary_source_is_validated_not_fitted() -> None:
    """The shipped file's five secondary-source rows (Pangu Ultra, Pangu Ultra MoE, torchtitan-npu, quoted by a
    list) are predicted and say so, but stay out of the fit: they had held Ascend's GEMM efficiency on its bound."""
    from stockpile.calibration.fit_training import BOUNDS, default_file, read_training_rows
    from stockpile.calibration.training import SECONDARY, Case, is_fitted, prepare_rows
    rows = [r for r in read_training_rows(default_file()) if "via secondary" in r["source_url"] + r["notes"]]
    cases = [c for c in prepare_rows(rows) if isinstance(c, Case)]
    assert len(cases) == 5 and not any(is_fitted(c) for c in cases)
    assert all(SECONDARY in c.assumed for c in cases)
    cal = load_training_calibration()
    lo, hi = BOUNDS["gemm_eff"]
    assert lo * 1.01 < cal.families["ascend"]["gemm_eff"] < hi / 1.01


def test_whole_run_rows_with_an_unstated_gpu_count_are_validated_not_fitted() -> None:
    from stockpile.calibration.fit_training import default_file, fit, read_training_rows
    from stockpile.calibration.training import UNSTATED_CLUSTER, Case, prepare_rows, source_of
    rows = [r for r in read_training_rows(default_file()) if source_of(r)[0] == "meta"]
    cases = [c for c in prepare_rows(rows) if isinstance(c, Case)]
    unstated = [c for c in cases if any(UNSTATED_CLUSTER in a for a in c.assumed)]
    assert unstated and all(c.metric == "gpu_hours" for c in unstated)      # Llama 2's A100 GPU-hours
    _, report = fit(rows, rounds=1, max_nfev=5)
    assert report["rows"] == len(cases) - len(unstated)


def test_an_8_bit_recipe_on_a_tpu_without_fp8_runs_int8_and_is_predicted_not_fitted() -> None:
    """MaxText's Trillium "fp8" recipe quantises with AQT int8 (v6e has int8 units, no fp8): the row is predicted
    against the int8 peak, says so, and stays out of the fit; a GPU's 8-bit recipe stays fp8."""
    from stockpile.calibration.fit_training import default_file, fit, read_training_rows
    from stockpile.calibration.training import AQT_INT8, Case, is_fitted, make_case
    from stockpile.catalog import get_chip
    from stockpile.perf.training import TrainChip, eight_bit_dtype
    v6e, h100 = get_chip("tpu-v6e-32gb"), get_chip("h100-sxm-80gb")
    assert eight_bit_dtype(v6e) == "int8" and eight_bit_dtype(h100) == "fp8"
    assert TrainChip.of(v6e).peak_fp8 == v6e.peak_flops("int8") > TrainChip.of(v6e).peak_bf16
    rows = [r for r in read_training_rows(default_file()) if r["accelerator"].startswith("tpu-v6e")
            and r.get("precision") == "fp8"]
    assert rows, "the shipped file has the Trillium GPT-3 175B fp8 recipe"
    case = make_case(rows[0])
    assert isinstance(case, Case) and any(AQT_INT8 in a for a in case.assumed) and not is_fitted(case)
    _, report = fit(rows + [r for r in read_training_rows(default_file()) if r["accelerator"].startswith("tpu-v6e")
                            and r.get("precision") != "fp8"][:3], rounds=1, max_nfev=5)
    assert report["rows"] == 3
